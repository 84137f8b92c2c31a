"""The legacy runtime's files: the real flax 0.3.6 release, installed with
``pip install --no-deps --target`` into a cache folder.

Only the standard library is imported here, so the CLI can report on the
cache without starting jax.

Layout::

    $LINEN_UPGRADE_CACHE (default ~/.cache/linen-upgrade)/
        legacy-flax-0.3.6/
            flax/...                      the unmodified release
            linen-upgrade-env.json        marker: version, source, install time

The install goes into a temporary sibling folder first and is renamed into
place, so a half-finished install is never seen and two concurrent installs
cannot corrupt each other (the loser discards its copy).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

FLAX_VERSION = "0.3.6"
CACHE_ENV_VAR = "LINEN_UPGRADE_CACHE"
MARKER = "linen-upgrade-env.json"
# files whose presence proves a usable install
_REQUIRED = ("flax/__init__.py", "flax/deprecated/nn/base.py", "flax/optim/base.py",
             "flax/serialization.py", "flax/version.py")


class LegacyEnvError(RuntimeError):
    """The legacy runtime could not be installed or is not usable."""


def cache_root() -> Path:
    """Folder holding linen-upgrade's caches (``$LINEN_UPGRADE_CACHE`` or ~/.cache/linen-upgrade)."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "linen-upgrade"


def env_path() -> Path:
    """Folder of the legacy flax install (it goes first on the legacy side's sys.path)."""
    return cache_root() / f"legacy-flax-{FLAX_VERSION}"


def _installed_version(path: Path) -> str | None:
    vfile = path / "flax" / "version.py"
    try:
        ns: dict = {}
        exec(compile(vfile.read_text(), str(vfile), "exec"), ns)  # tiny constant file
        return ns.get("__version__")
    except (OSError, SyntaxError):
        return None


def is_installed(path: Path | None = None) -> bool:
    path = Path(path) if path is not None else env_path()
    if not all((path / f).is_file() for f in _REQUIRED):
        return False
    return _installed_version(path) == FLAX_VERSION and (path / MARKER).is_file()


def info(path: Path | None = None) -> dict:
    """What is installed where (for ``legacy-env info``)."""
    path = Path(path) if path is not None else env_path()
    out = {"path": str(path), "installed": is_installed(path), "flax_version": FLAX_VERSION,
           "cache_env_var": CACHE_ENV_VAR}
    marker = path / MARKER
    if marker.is_file():
        try:
            out["marker"] = json.loads(marker.read_text())
        except ValueError:
            out["marker"] = None
    return out


def _find_wheel(from_path: Path) -> Path:
    if from_path.is_file():
        return from_path
    if from_path.is_dir():
        wheels = sorted(from_path.glob(f"flax-{FLAX_VERSION}-*.whl"))
        if wheels:
            return wheels[0]
        raise LegacyEnvError(
            f"no flax-{FLAX_VERSION}-*.whl in {from_path} "
            f"(get one with: pip download --no-deps flax=={FLAX_VERSION} -d {from_path})")
    raise LegacyEnvError(f"--from path does not exist: {from_path}")


def _extract_wheel(wheel: Path, target: Path) -> None:
    """Pure-python wheel (py3-none-any): unpacking it is what pip --target does."""
    if not zipfile.is_zipfile(wheel):
        raise LegacyEnvError(f"not a wheel (zip) file: {wheel}")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        if "flax/deprecated/nn/base.py" not in names:
            raise LegacyEnvError(f"{wheel} is not a flax {FLAX_VERSION} wheel")
        for name in names:
            dest = (target / name).resolve()
            if not str(dest).startswith(str(target.resolve())):
                raise LegacyEnvError(f"unsafe path in wheel: {name}")
        zf.extractall(target)


def _pip_install(args: list[str], target: Path, python: str, timeout: float) -> None:
    cmd = [python, "-m", "pip", "install", "--no-deps", "--target", str(target),
           "--disable-pip-version-check", "--no-input", "--quiet", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LegacyEnvError(f"pip install timed out after {timeout:.0f} s: {' '.join(cmd)}")
    except OSError as e:
        raise LegacyEnvError(f"could not run pip ({e})")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise LegacyEnvError(
            f"pip install of flax=={FLAX_VERSION} failed (exit {proc.returncode}):\n  "
            + "\n  ".join(tail)
            + "\nWithout a package registry: download the wheel elsewhere "
              f"(pip download --no-deps flax=={FLAX_VERSION}) and run "
              "`linen-upgrade legacy-env install --from WHEEL_OR_DIR`.")


def install(from_path: str | os.PathLike | None = None, force: bool = False, *,
            path: str | os.PathLike | None = None, python: str | None = None,
            timeout: float = 600.0) -> Path:
    """Install flax 0.3.6 (no dependencies) into the cache; return its folder.

    ``from_path``: a wheel file, or a folder containing ``flax-0.3.6-*.whl``;
    no package registry is contacted then. Otherwise pip fetches it from the
    configured index. Idempotent: an existing valid install is kept unless
    ``force``.
    """
    dest = Path(path) if path is not None else env_path()
    if is_installed(dest) and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    python = python or sys.executable
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        if from_path is not None:
            wheel = _find_wheel(Path(from_path).expanduser())
            source = str(wheel.resolve())
            try:
                _pip_install([str(wheel)], tmp, python, timeout)
            except LegacyEnvError:
                # pip may be absent (or refuse); the wheel is pure python
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
                _extract_wheel(wheel, tmp)
        else:
            source = f"pip:flax=={FLAX_VERSION}"
            _pip_install([f"flax=={FLAX_VERSION}"], tmp, python, timeout)
        missing = [f for f in _REQUIRED if not (tmp / f).is_file()]
        if missing:
            raise LegacyEnvError(f"install is incomplete, missing {missing}")
        got = _installed_version(tmp)
        if got != FLAX_VERSION:
            raise LegacyEnvError(f"installed flax is {got!r}, expected {FLAX_VERSION}")
        (tmp / MARKER).write_text(json.dumps(
            {"flax_version": FLAX_VERSION, "source": source, "installed_at": time.time(),
             "python": python}, indent=1))
        if dest.exists():
            if not force and is_installed(dest):  # someone else finished first
                return dest
            old = dest.with_name(dest.name + f".old-{os.getpid()}")
            os.replace(dest, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, dest)
        except OSError:
            if is_installed(dest):  # lost a race to a concurrent install
                return dest
            raise
        return dest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure(path: str | os.PathLike | None = None) -> Path:
    """The legacy env folder, installing it on first use."""
    dest = Path(path) if path is not None else env_path()
    if is_installed(dest):
        return dest
    return install(path=dest)
