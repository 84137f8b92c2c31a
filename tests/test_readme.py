"""The README shows what the tool does today: its before/after is the tool's
real output, its set-up commands are what CI runs, its tour uses options that
exist, and its links lead somewhere.  (The rule table: tests/test_rules.py;
the pre-commit snippets: tests/test_precommit.py.)"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import click
import pytest
import yaml

from linen_upgrade.cli import cli as cli_group

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"^```{language}\n(.*?)^```$", README, re.M | re.S)]


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "linen_upgrade.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_readme_is_a_front_door() -> None:
    assert len(README.splitlines()) <= 200


def test_before_and_after_is_the_tools_output_on_the_example() -> None:
    (shown,) = code_blocks("diff")
    proc = cli("--diff", "examples/")
    assert proc.returncode == 1, proc.stderr
    assert shown.rstrip("\n") == proc.stdout.rstrip("\n"), (
        "README's diff is stale: paste `linen-upgrade --diff examples/`")
    # it shows the whole story: a module, init and Model, the optimizer, a training step
    for legacy, upgraded in [("def apply(self", "@nn.compact"), ("init_by_shape", ".init("),
                             ("nn.Model(", "CNN().apply("), ("optim.Momentum", "optax.sgd"),
                             ("apply_gradient(", "apply_gradients(")]:
        assert re.search(rf"^-.*{re.escape(legacy)}", shown, re.M), legacy
        assert re.search(rf"^\+.*{re.escape(upgraded)}", shown, re.M), upgraded


def test_ci_runs_the_readme_set_up_commands() -> None:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    commands = [block.strip() for block in re.findall(r"^```sh\n(.*?)^```$", section("Set-up: two commands"),
                                                      re.M | re.S)]
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands
    assert commands[0].endswith("linen-upgrade --diff examples/")
    assert commands[1].endswith(".venv/bin/pytest") and "'.[dev]'" in commands[1]
    proc = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == commands


def test_tour_uses_commands_and_options_that_exist() -> None:
    (tour,) = re.findall(r"^```sh\n(.*?)^```$", section("A tour"), re.M | re.S)
    hooks = {h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}
    commands = set(cli_group.list_commands(click.Context(cli_group)))
    helps: dict[str, str] = {}
    for line in tour.splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] == ["pre-commit", "run"]:
            assert words[2] in hooks, line
            continue
        assert words[0] == "linen-upgrade", line
        command = words[1] if words[1] in commands else "rewrite"  # the default command
        if command not in helps:
            proc = cli(command, "--help")
            assert proc.returncode == 0, proc.stderr
            helps[command] = proc.stdout
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert re.search(rf"(^|[\s,]){re.escape(option)}\b", helps[command]), (option, command)


def test_links_lead_to_files() -> None:
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [t for t in targets if "://" not in t]
    assert local
    for target in local:
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
    for page in sorted((ROOT / "docs").glob("*.md")):
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to {target}"
