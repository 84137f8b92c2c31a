"""Whole legacy programs (fixtures/programs/<name>/), upgraded with no hand edits.

Each program is copied, upgraded by the pipeline the CLI runs (all rules),
and then:

* its leftovers are counted: every ``TODO(linen-upgrade)`` the run left
  (LU9xx findings and the converting rules' own), reported per program;
* there must be none, and the upgraded program must print, on current
  flax/optax/jax, the numbers flax 0.3.6 printed (``expected.txt``, recorded
  by ``fixtures/programs/record.py``), within rtol 2e-4.
"""
from __future__ import annotations

import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from linen_upgrade.config import Config
from linen_upgrade.engine import Finding
from linen_upgrade.files import atomic_write
from linen_upgrade.pipeline import run
from linen_upgrade.registry import all_rules

from conftest import FIXTURES

pytestmark = pytest.mark.legacy

PROGRAMS_DIR = FIXTURES / "programs"
PROGRAMS = sorted(p.parent.name for p in PROGRAMS_DIR.glob("*/main.py"))
RTOL = 2e-4

@dataclass
class Upgraded:
    folder: Path
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _upgrade(name: str, root: Path) -> Upgraded:
    folder = root / name
    shutil.copytree(PROGRAMS_DIR / name, folder, ignore=shutil.ignore_patterns("expected.txt", "__pycache__"))
    result = run(sorted(folder.glob("*.py")), Config(), [r.id for r in all_rules()], jobs=1)
    up = Upgraded(folder)
    for r in result.results:
        if r.error:
            up.errors.append(r.error)
        if r.new is not None and r.error is None:
            atomic_write(Path(r.path), r.new)
        up.findings.extend(r.findings)
    return up


def _run(folder: Path):
    from linen_upgrade.verify import runner

    return runner.run_process([sys.executable, str(folder / "main.py")], side="modern", timeout=300,
                              cwd=str(folder), env=runner.platform_env(None))


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory) -> dict[str, Upgraded]:
    root = tmp_path_factory.mktemp("programs")
    return {name: _upgrade(name, root) for name in PROGRAMS}


@pytest.fixture(scope="module")
def outputs(upgraded):
    """The upgraded programs' runs on current flax, two at a time."""
    jobs = {name: up.folder for name, up in upgraded.items() if not up.errors and not up.findings}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, folder) for name, folder in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def _compare(name: str, result) -> None:
    from linen_upgrade.verify.program import compare_outputs

    assert result.ok, f"{name}: {result.reason}: {result.detail}\n{result.stderr[-3000:]}"
    expected = (PROGRAMS_DIR / name / "expected.txt").read_text(encoding="utf-8")
    compared = compare_outputs(expected, result.stdout, rtol=RTOL)
    assert compared.ok, "\n".join(
        f"line {m.line}: {m.kind}: legacy {m.legacy_line!r} / upgraded {m.upgraded_line!r}"
        for m in compared.mismatches)
    assert compared.numbers > 0


def test_programs_are_recorded():
    assert len(PROGRAMS) >= 8
    for name in PROGRAMS:
        assert (PROGRAMS_DIR / name / "expected.txt").is_file(), f"run fixtures/programs/record.py {name}"


@pytest.mark.parametrize("name", PROGRAMS)
def test_no_legacy_use_left(name, upgraded, record_property):
    """(a) What the upgrade left for a person: nothing."""
    up = upgraded[name]
    assert not up.errors, up.errors
    record_property("leftovers", len(up.findings))
    assert not up.findings, "\n".join(str(f) for f in up.findings)


@pytest.mark.parametrize("name", PROGRAMS)
def test_upgraded_program_prints_the_legacy_numbers(name, upgraded, outputs):
    """(b) The same printed numbers as flax 0.3.6."""
    assert name in outputs, "not run: the upgrade left legacy code (see test_no_legacy_use_left)"
    _compare(name, outputs[name])
