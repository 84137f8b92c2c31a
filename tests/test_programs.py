"""Whole legacy programs (fixtures/programs/<name>/), upgraded with no hand edits.

Each program is copied, upgraded by the pipeline the CLI runs (all rules),
and then:

* its leftovers are counted: every ``TODO(linen-upgrade)`` the run left
  (LU9xx findings and the converting rules' own), reported per program;
* a program with none must print, on current flax/optax/jax, the numbers
  flax 0.3.6 printed (``expected.txt``, recorded by
  ``fixtures/programs/record.py``), within rtol 2e-4;
* a program whose only leftovers are ``flax.optim`` code (the optimizer
  rules are another issue) is marked ``xfail(strict=True)`` on that check, so
  it flips when they land; meanwhile it runs with a test-only ``flax.optim``
  stand-in on optax (``optim_stand_in.py``), which checks everything the
  usage rules rewrote against the same recorded numbers.
"""
from __future__ import annotations

import os
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

# still flax.optim after the upgrade: optimizer construction, .create, apply_gradient, .target
# belong to the optimizer rules (issue 6); remove a name when its program converts fully
NEEDS_OPTIMIZER_RULES: frozenset[str] = frozenset()


@dataclass
class Upgraded:
    folder: Path
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def optimizer_only(self) -> bool:
        return bool(self.findings) and all(_is_optimizer(f) for f in self.findings)


def _is_optimizer(f: Finding) -> bool:
    return f.rule.startswith("LU3") or (f.rule == "LU901" and ("flax.optim" in f.message
                                                                or "optax" in f.message))


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


def _run(folder: Path, stand_in: bool):
    from linen_upgrade.verify import runner

    env = runner.platform_env(None)
    if stand_in:
        extra = folder.parent / "optim-stand-in"
        if not extra.exists():
            extra.mkdir()
            shutil.copy(PROGRAMS_DIR / "optim_stand_in.py", extra)
            sys.path.insert(0, str(PROGRAMS_DIR))
            try:
                from optim_stand_in import SITECUSTOMIZE
            finally:
                sys.path.remove(str(PROGRAMS_DIR))
            (extra / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra), env.get("PYTHONPATH")]))
    return runner.run_process([sys.executable, str(folder / "main.py")], side="modern", timeout=300,
                              cwd=str(folder), env=env)


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory) -> dict[str, Upgraded]:
    root = tmp_path_factory.mktemp("programs")
    return {name: _upgrade(name, root) for name in PROGRAMS}


@pytest.fixture(scope="module")
def outputs(upgraded):
    """The upgraded programs' runs on current flax, two at a time: fully
    converted ones as they are, optimizer-only ones with the stand-in."""
    jobs = {name: (up.folder, bool(up.findings)) for name, up in upgraded.items()
            if not up.errors and (not up.findings or up.optimizer_only)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, *job) for name, job in jobs.items()}
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
    assert NEEDS_OPTIMIZER_RULES <= set(PROGRAMS)


@pytest.mark.parametrize("name", PROGRAMS)
def test_leftovers(name, upgraded, record_property):
    """(a) What the upgrade left for a person: nothing, or flax.optim code only."""
    up = upgraded[name]
    assert not up.errors, up.errors
    record_property("leftovers", len(up.findings))
    other = [str(f) for f in up.findings if not _is_optimizer(f)]
    print(f"{name}: {len(up.findings)} legacy uses left "
          f"({len(up.findings) - len(other)} flax.optim, {len(other)} other)")
    assert not other, "\n".join(other)
    assert bool(up.findings) == (name in NEEDS_OPTIMIZER_RULES), (
        "update NEEDS_OPTIMIZER_RULES" if not up.findings else [str(f) for f in up.findings])


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="flax.optim code: needs the optimizer rules"))
    if n in NEEDS_OPTIMIZER_RULES else n for n in PROGRAMS])
def test_upgraded_program_prints_the_legacy_numbers(name, upgraded, outputs):
    """(b) Zero legacy uses left, and the same printed numbers as flax 0.3.6."""
    up = upgraded[name]
    assert not up.findings, [str(f) for f in up.findings]
    _compare(name, outputs[name])


@pytest.mark.parametrize("name", sorted(NEEDS_OPTIMIZER_RULES))
def test_usage_rules_with_an_optimizer_stand_in(name, upgraded, outputs):
    """Meanwhile: everything but flax.optim is upgraded; with the stand-in the numbers match."""
    up = upgraded[name]
    if not up.findings:
        pytest.skip("fully converted: test_upgraded_program_prints_the_legacy_numbers covers it")
    assert up.optimizer_only
    _compare(name, outputs[name])
