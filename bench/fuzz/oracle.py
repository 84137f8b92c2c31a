"""The oracle: upgrade a generated program with the tool, run both sides, give a verdict.

* **tool-crash**: the run reported an error for the file (a rule raised, or its
  rewrite would not compile).
* **honest**: the tool left a ``TODO(linen-upgrade)`` (a finding).
* **silent-wrong**: no TODO, and the upgraded program crashes, fails to import
  or computes different numbers, in either of two checks that run on the
  ``verify`` machinery:

  - program mode: the legacy ``main()`` on flax 0.3.6 and the upgraded one on
    current flax print the same lines; the same numbers too when the program is
    deterministic (every weight from numpy, no random draws);
  - module mode: the model's outputs (train and eval), state updates and
    gradients with the legacy weights carried over, and two optimizer steps of
    the legacy ``flax.optim`` optimizer against the upgraded optax transform.
* **equivalent**: both checks pass.

Two more verdicts say the check itself proved nothing, and are counted apart:
**invalid** (the *legacy* program failed: a generator bug) and **unchecked**
(module mode compared mostly zeros or constants).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from linen_upgrade.config import Config
from linen_upgrade.pipeline import run
from linen_upgrade.registry import all_rules

VERDICTS = ("equivalent", "honest", "silent-wrong", "tool-crash", "invalid", "unchecked")
TIMEOUT = 240


@dataclass
class Outcome:
    verdict: str
    detail: str = ""
    upgraded: str = ""          # the upgraded source ('' when the tool wrote nothing)
    seconds: float = 0.0


def upgrade(source: str, folder: Path) -> tuple[str | None, list[str], str | None]:
    """``(upgraded source or None when unchanged, findings, error)``: the tool's run
    over ``folder/main.py`` as the command line makes it."""
    path = folder / "main.py"
    path.write_text(source, encoding="utf-8")
    result = run([path], Config(), [r.id for r in all_rules()], jobs=1)
    (r,) = result.results
    new = r.new.decode("utf-8") if r.new is not None else None
    return new, [str(f) for f in r.findings], r.error


def check(source: str, top: str, inputs: list, kwargs: dict, deterministic: bool,
          timeout: float = TIMEOUT) -> Outcome:
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="lu-fuzz-"))
    try:
        outcome = _check(source, top, inputs, kwargs, deterministic, work, timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    outcome.seconds = time.monotonic() - start
    return outcome


def _check(source: str, top: str, inputs: list, kwargs: dict, deterministic: bool, work: Path,
           timeout: float) -> Outcome:
    from linen_upgrade.verify import module, program

    (work / "legacy").mkdir()
    (work / "upgraded").mkdir()
    legacy_py = work / "legacy" / "main.py"
    try:
        new, findings, error = upgrade(source, work / "upgraded")
    except Exception as exc:  # noqa: BLE001 - the pipeline must not raise: that is the verdict
        return Outcome("tool-crash", f"{type(exc).__name__}: {exc}")
    if error:
        return Outcome("tool-crash", error)
    upgraded_py = work / "upgraded" / "main.py"
    if findings:
        return Outcome("honest", "\n".join(findings), new or "")
    if new is None:
        return Outcome("silent-wrong", "the tool changed nothing and reported nothing")
    upgraded_py.write_text(new, encoding="utf-8")
    legacy_py.write_text(source, encoding="utf-8")

    ran = program.verify_run(str(legacy_py), str(upgraded_py), timeout=timeout)
    if ran.legacy is not None and not ran.legacy.ok:
        return Outcome("invalid", f"legacy program: {ran.reason}: {ran.detail}\n{ran.legacy.stderr[-2000:]}",
                       new)
    if ran.upgraded is not None and not ran.upgraded.ok:
        return Outcome("silent-wrong", f"upgraded program: {ran.reason}: {ran.detail}\n"
                                       f"{ran.upgraded.stderr[-2000:]}", new)
    mismatches = [m for m in ran.mismatches if deterministic or m.kind != "number"]
    if mismatches:
        return Outcome("silent-wrong", "upgraded program prints other numbers:\n" + "\n".join(
            f"  line {m.line}: {m.kind}: legacy {m.legacy_line!r} / upgraded {m.upgraded_line!r}"
            for m in mismatches[:5]), new)

    job = module.ModuleJob(top, str(upgraded_py), inputs=[(tuple(s), d) for s, d in inputs],
                           kwargs=dict(kwargs), train_steps=2, input_source="given")
    (res,) = module.verify_batch(str(legacy_py), [job], processes=1, timeout=timeout)
    if res.status == "ok":
        return Outcome("equivalent", "", new)
    if res.legacy is not None and (not res.legacy.ok or (res.reason or "").startswith("legacy")):
        return Outcome("invalid", f"module mode: {res.reason}: {res.detail}", new)
    if res.reason == "too little checked" or (res.reason or "").startswith("tensors not checked"):
        return Outcome("unchecked", f"module mode: {res.detail}", new)
    rows = "\n".join(f"  {r.mode} {r.kind} {r.path}: max abs {r.max_abs} {r.note}" for r in res.failed_rows[:6])
    return Outcome("silent-wrong", f"module mode: {res.reason}: {res.detail}\n{rows}", new)
