"""Discovery, the prefilter, module names, and writes that cannot lose a file."""

from __future__ import annotations

import fnmatch
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

SOURCE_SUFFIXES = (".py", ".ipynb")
# folders that never hold the user's own source
SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", ".bzr", "__pycache__", ".venv", "venv", ".env", ".tox", ".nox",
    "build", "dist", "node_modules", ".eggs", "site-packages", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints", ".hypothesis",
})
PREFILTER_WORD = b"flax"


def _excluded(rel: str, globs: Iterable[str]) -> bool:
    parts = rel.split("/")
    names = {"/".join(parts[: i + 1]) for i in range(len(parts))} | set(parts)
    return any(fnmatch.fnmatch(n, g.rstrip("/")) for g in globs for n in names)


def _is_virtualenv(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "pyvenv.cfg"))


def discover(paths: Iterable[str], exclude: Iterable[str] = ()) -> Iterator[Path]:
    """Yield source files below ``paths`` in a stable order.

    Explicitly named files are always taken; inside folders, excluded globs,
    virtual environments, build folders and symlinks that leave the tree are
    skipped.  Folder symlinks are never followed.
    """
    exclude = list(exclude)
    seen: set[Path] = set()
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            if root.resolve() not in seen:
                seen.add(root.resolve())
                yield root
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"{raw}: no such file or directory")
        real_root = root.resolve()
        for current, dirs, files in os.walk(root, followlinks=False):
            rel_dir = os.path.relpath(current, root).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            dirs[:] = sorted(
                d for d in dirs
                if d not in SKIP_DIRS and not d.endswith(".egg-info")
                and not os.path.islink(os.path.join(current, d))
                and not _is_virtualenv(os.path.join(current, d))
                and not _excluded(rel_dir + d, exclude)
            )
            for name in sorted(files):
                if not name.endswith(SOURCE_SUFFIXES) or _excluded(rel_dir + name, exclude):
                    continue
                path = Path(current) / name
                if path.is_symlink():
                    target = path.resolve()
                    if not target.is_relative_to(real_root) or not target.is_file():
                        continue
                resolved = path.resolve()
                if resolved in seen:
                    continue
                seen.add(resolved)
                yield path


def module_name(path: Path) -> str:
    """Dotted module name by Python's rule: climb while the folder is a package."""
    path = path.resolve()
    parts = [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file():
        parts.append(directory.name)
        directory = directory.parent
    if parts[0] == "__init__":
        parts = parts[1:]
    return ".".join(reversed(parts))


def mentions_flax(data: bytes) -> bool:
    return PREFILTER_WORD in data


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    The original is replaced only by a complete file (``os.replace`` is atomic
    on POSIX and Windows); its permission bits are kept.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".lu-tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
