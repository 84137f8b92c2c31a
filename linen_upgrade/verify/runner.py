"""Two-sided runner: the legacy side (flax 0.3.6 on the compat layer, or the
user's own old python with ``legacy_python``) and the modern side (current
flax) each run in their own subprocess, with a time limit, exchanging arrays
through ``.npz`` files in a temporary folder.

Standard library only at import time (numpy is imported by the result
readers, inside functions).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from . import legacy_env

HERE = Path(__file__).resolve().parent
BOOT = HERE / "legacy_boot.py"
LEGACY_MODULE_DRIVER = HERE / "legacy_module_driver.py"
MODERN_MODULE_DRIVER = HERE / "modern_module_driver.py"
MODERN_PROGRAM_BOOT = HERE / "modern_program_boot.py"

DEFAULT_TIMEOUT = 600.0

# reasons a side could not run (exit 2 in the CLI)
REASON_TIMEOUT = "time limit"
REASON_IMPORT = "import error in user code"
REASON_SYNTAX = "syntax error in user code"
REASON_MISSING_MODULE = "module not found in file"
REASON_LEGACY_ENV = "legacy runtime unavailable"
REASON_MISSING_INPUTS = "missing inputs"
REASON_ERROR = "error in user code"
REASON_LAUNCH = "could not start python"
REASON_NO_FILE = "file not found"
REASON_NO_OPTIMIZER = "no optimizer found"
REASON_OPTIMIZER = "could not build the optimizer"
REASON_UNCHECKED = "too little checked"


@dataclass
class SideResult:
    side: str                      # 'legacy' | 'modern'
    ok: bool
    returncode: Optional[int]
    stdout: str = ""
    stderr: str = ""
    reason: Optional[str] = None   # one of REASON_*, None when ok
    detail: Optional[str] = None   # the exception line, or what went wrong
    wall_s: float = 0.0
    command: List[str] = field(default_factory=list)
    started_at: float = 0.0        # time.time() when the process was started

    def to_json(self) -> Dict[str, Any]:
        d = asdict(self)
        d["stdout"] = self.stdout[-4000:]
        d["stderr"] = self.stderr[-4000:]
        return d


_EXC_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)?)(?::\s?(?P<msg>.*))?$")


def _last_exception(stderr: str) -> Optional[str]:
    lines = [l for l in stderr.strip().splitlines() if l.strip()]
    tb = max((i for i, l in enumerate(lines) if l.startswith("Traceback (most recent call last)")),
             default=None)
    if tb is None:
        return lines[-1].strip() if lines else None
    for l in reversed(lines[tb:]):
        if not l.startswith(" ") and _EXC_LINE.match(l.strip()) and not l.startswith("----"):
            return l.strip()
    return lines[-1].strip()


def classify_failure(returncode: int, stderr: str) -> tuple:
    exc = _last_exception(stderr) or f"exit status {returncode}"
    head = exc.split(":", 1)[0]
    if head in ("ModuleNotFoundError", "ImportError") or head.endswith(".ImportError"):
        return REASON_IMPORT, exc
    if head in ("SyntaxError", "IndentationError", "TabError"):
        return REASON_SYNTAX, exc
    return REASON_ERROR, exc


FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"
FAST_COMPILE_ENV_VAR = "LINEN_UPGRADE_XLA_FAST_COMPILE"


def _accelerator_present() -> bool:
    return any(os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/accel0",
                                           "/dev/vfio"))


def fast_compile_wanted(platform: Optional[str], env: Dict[str, str]) -> bool:
    """On CPU, compile with LLVM optimisations off: the two sides compile dozens
    of small functions once each and run them once or twice, so compile time is
    nearly everything (ResNet fixture: legacy init 8.4 s -> 1.4 s). Both sides
    get the same flags. ``LINEN_UPGRADE_XLA_FAST_COMPILE=0`` turns it off; an
    ``xla_backend_optimization_level`` already in ``XLA_FLAGS`` is kept."""
    setting = env.get(FAST_COMPILE_ENV_VAR, "").strip().lower()
    if setting in ("0", "no", "false", "off"):
        return False
    if "xla_backend_optimization_level" in env.get("XLA_FLAGS", ""):
        return False
    if setting in ("1", "yes", "true", "on"):
        return True
    target = platform or env.get("JAX_PLATFORMS", "").split(",")[0].strip().lower() or None
    if target is not None:
        return target == "cpu"
    return not _accelerator_present()


def platform_env(platform: Optional[str]) -> Dict[str, str]:
    env = dict(os.environ)
    if platform:
        env["JAX_PLATFORMS"] = {"gpu": "cuda", "cpu": "cpu", "tpu": "tpu"}.get(platform, platform)
    if fast_compile_wanted(platform, env):
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + FAST_COMPILE_FLAG).strip()
    env.setdefault("PYTHONHASHSEED", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONSTARTUP", None)
    return env


def run_process(cmd: Sequence[str], *, side: str, timeout: float, cwd: Optional[str] = None,
                env: Optional[Dict[str, str]] = None) -> SideResult:
    """Run one side; kill its whole process group at the time limit."""
    t0 = time.monotonic()
    started_at = time.time()
    try:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=cwd, env=env, start_new_session=True)
    except OSError as e:
        return SideResult(side, False, None, reason=REASON_LAUNCH, detail=str(e), command=list(cmd))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        out, err = proc.communicate()
        return SideResult(side, False, None, out, err, REASON_TIMEOUT,
                          f"{side} side ran past the time limit of {timeout:g} s",
                          time.monotonic() - t0, list(cmd), started_at)
    wall = time.monotonic() - t0
    if proc.returncode == 0:
        return SideResult(side, True, 0, out, err, None, None, wall, list(cmd), started_at)
    reason, detail = classify_failure(proc.returncode, err)
    return SideResult(side, False, proc.returncode, out, err, reason, detail, wall, list(cmd), started_at)


def legacy_command(target: str, *, driver: bool = False, args: Sequence[str] = (),
                   legacy_python: Optional[str] = None, user_dirs: Sequence[str] = (),
                   program_dir: Optional[str] = None) -> List[str]:
    """Command line of the legacy side. Without ``legacy_python`` the cached
    flax 0.3.6 is installed on first use and booted with the compat layer.
    ``program_dir``: record the script's inits there (program mode)."""
    if legacy_python:
        cmd = [legacy_python, str(BOOT), "--no-compat"]
    else:
        root = legacy_env.ensure()
        cmd = [sys.executable, str(BOOT), "--legacy-root", str(root)]
    for d in user_dirs:
        cmd += ["--user-dir", str(d)]
    if program_dir:
        cmd += ["--program-dir", str(program_dir)]
    cmd += ["--driver" if driver else "--script", str(target), "--", *args]
    return cmd


def run_legacy(target: str, *, driver: bool = False, args: Sequence[str] = (),
               legacy_python: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT,
               platform: Optional[str] = None, cwd: Optional[str] = None,
               user_dirs: Sequence[str] = (), program_dir: Optional[str] = None) -> SideResult:
    target = str(Path(target).resolve())
    if not Path(target).is_file():
        return SideResult("legacy", False, None, reason=REASON_NO_FILE, detail=target)
    try:
        cmd = legacy_command(target, driver=driver, args=args, legacy_python=legacy_python,
                             user_dirs=user_dirs, program_dir=program_dir)
    except legacy_env.LegacyEnvError as e:
        return SideResult("legacy", False, None, reason=REASON_LEGACY_ENV, detail=str(e))
    return run_process(cmd, side="legacy", timeout=timeout,
                       cwd=cwd or str(Path(target).resolve().parent), env=platform_env(platform))


def run_modern(target: str, *, args: Sequence[str] = (), python: Optional[str] = None,
               timeout: float = DEFAULT_TIMEOUT, platform: Optional[str] = None,
               cwd: Optional[str] = None, carry_from: Optional[str] = None,
               report: Optional[str] = None) -> SideResult:
    """``carry_from``: the legacy side's ``program_dir``; the script then starts
    from its weights and masks and writes ``report`` (modern_program_boot.py)."""
    target = str(Path(target).resolve())
    if not Path(target).is_file():
        return SideResult("modern", False, None, reason=REASON_NO_FILE, detail=target)
    boot = [str(MODERN_PROGRAM_BOOT), "--legacy-dir", str(carry_from), "--report", str(report)] \
        if carry_from else []
    cmd = [python or sys.executable, *boot, str(target), *args]
    return run_process(cmd, side="modern", timeout=timeout,
                       cwd=cwd or str(Path(target).resolve().parent), env=platform_env(platform))


def run_both(legacy_fn, modern_fn):
    """Run the two sides concurrently (they are independent processes)."""
    res: Dict[str, SideResult] = {}
    t = threading.Thread(target=lambda: res.__setitem__("legacy", legacy_fn()))
    t.start()
    res["modern"] = modern_fn()
    t.join()
    return res["legacy"], res["modern"]


def make_workdir(prefix: str = "linen-upgrade-verify-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
