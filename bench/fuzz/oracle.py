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
from linen_upgrade.verify.runner import REASON_UNCHECKED

VERDICTS = ("equivalent", "honest", "silent-wrong", "tool-crash", "invalid", "unchecked")
TIMEOUT = 240


@dataclass
class Outcome:
    verdict: str
    detail: str = ""
    upgraded: str = ""          # the upgraded source ('' when the tool wrote nothing)
    seconds: float = 0.0


def check_program(program) -> Outcome:
    """The verdict on a generated :class:`~fuzz.generate.Program` (``source``: its main file)."""
    return check(program.source, program.top, program.inputs, program.kwargs, program.deterministic,
                 program.optimizer_func, program.files, program.replay)


def upgrade(files: dict[str, str], folder: Path) -> tuple[dict[str, str], list[str], str | None]:
    """The tool's run over ``files`` (name -> source) written into ``folder``, as the
    command line makes it: ``(the sources it changed, findings, errors)``."""
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    result = run(sorted(folder / name for name in files), Config(), [r.id for r in all_rules()], jobs=1)
    changed = {Path(r.path).name: r.new.decode("utf-8") for r in result.results if r.new is not None}
    errors = [r.error for r in result.results if r.error]
    return changed, [str(f) for r in result.results for f in r.findings], "\n".join(errors) or None


def check(source: str, top: str, inputs: list, kwargs: dict, deterministic: bool,
          optimizer: str | None = None, files: dict | None = None, replay: bool = True,
          timeout: float = TIMEOUT) -> Outcome:
    """The verdict on one legacy program; ``top`` is its model (module mode feeds it
    ``inputs`` and the keywords ``kwargs``), ``optimizer`` the function that builds
    its optimizer when verify cannot find the one call that does, ``files`` the
    program's other files (name -> source); ``replay``: module mode also replays two
    optimizer steps."""
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="lu-fuzz-"))
    try:
        outcome = _check({"main.py": source, **(files or {})}, top, inputs, kwargs, deterministic, optimizer,
                         2 if replay else 0, work, timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    outcome.seconds = time.monotonic() - start
    return outcome


def _check(files: dict[str, str], top: str, inputs: list, kwargs: dict, deterministic: bool, optimizer: str | None,
           train_steps: int, work: Path, timeout: float) -> Outcome:
    from linen_upgrade.verify import module, program

    (work / "legacy").mkdir()
    (work / "upgraded").mkdir()
    try:
        changed, findings, error = upgrade(files, work / "upgraded")
    except Exception as exc:  # noqa: BLE001 - the pipeline must not raise: that is the verdict
        return Outcome("tool-crash", f"{type(exc).__name__}: {exc}")
    new = changed.get("main.py", "")
    if error:
        return Outcome("tool-crash", error)
    if findings:
        return Outcome("honest", "\n".join(findings), new)
    if not new:
        return Outcome("silent-wrong", "the tool changed nothing and reported nothing")
    for name, text in files.items():
        (work / "legacy" / name).write_text(text, encoding="utf-8")
        (work / "upgraded" / name).write_text(changed.get(name, text), encoding="utf-8")
    legacy_py, upgraded_py = work / "legacy" / "main.py", work / "upgraded" / "main.py"

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
                           kwargs=dict(kwargs), train_steps=train_steps, optimizer=optimizer,
                           input_source="given")
    (res,) = module.verify_batch(str(legacy_py), [job], processes=1, timeout=timeout,
                                 upgraded_paths=[str(upgraded_py.parent)])
    if res.status == "ok":
        return Outcome("equivalent", "", new)
    if res.legacy is not None and (not res.legacy.ok or (res.reason or "").startswith("legacy")):
        return Outcome("invalid", f"module mode: {res.reason}: {res.detail}", new)
    if res.reason == REASON_UNCHECKED:
        return Outcome("unchecked", f"module mode: {res.detail}", new)
    rows = "\n".join(f"  {r.mode} {r.kind} {r.path}: max abs {r.max_abs} {r.note}" for r in res.failed_rows[:6])
    return Outcome("silent-wrong", f"module mode: {res.reason}: {res.detail}\n{rows}", new)
