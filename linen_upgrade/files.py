"""Discovery, the prefilter, module names, and writes that cannot lose a file."""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from collections.abc import Iterable, Iterator
from functools import lru_cache
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
    skipped.  Folder symlinks are never followed.  (``os.scandir`` entries
    carry their file type, so a no-op run costs little more than reading.)
    """
    exclude = list(exclude)
    seen: set[str] = set()
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            key = os.path.realpath(root)
            if key not in seen:
                seen.add(key)
                yield root
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"{raw}: no such file or directory")
        real_root = os.path.realpath(root)
        yield from _walk(str(root), "", real_root, exclude, seen)


def _walk(directory: str, rel: str, real_root: str, exclude: list[str], seen: set[str]) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    subdirs = []
    for entry in entries:
        name = entry.name
        rel_name = rel + name
        if entry.is_dir(follow_symlinks=False):
            if (name not in SKIP_DIRS and not name.endswith(".egg-info")
                    and not _is_virtualenv(entry.path)
                    and not (exclude and _excluded(rel_name, exclude))):
                subdirs.append(entry)
            continue
        if not name.endswith(SOURCE_SUFFIXES) or (exclude and _excluded(rel_name, exclude)):
            continue
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if not target.startswith(real_root + os.sep) or not os.path.isfile(target):
                continue
            key = target
        else:
            if not entry.is_file():
                continue
            key = os.path.join(real_root, rel_name)
        if key not in seen:
            seen.add(key)
            yield Path(entry.path)
    for entry in subdirs:
        yield from _walk(entry.path, rel + entry.name + "/", real_root, exclude, seen)


def mentions_flax(data: bytes) -> bool:
    return PREFILTER_WORD in data


# What a file's bytes must hold for a rule to apply to it by itself (``applicability.py``): a
# legacy flax name, a JAX name the tables rename (every dotted part present), or a call only a
# FrozenDict has.  Other files mentioning flax get facts only when they import a file that has
# them (the pipeline's second pass), so a tree of modern Flax code is read, not parsed.
_LEGACY_FLAX = re.compile(rb"flax\s*\.\s*(?:nn|optim|deprecated)\b")
_FROM_FLAX = re.compile(rb"from\s+flax\s+import\s+(\([^)]*\)|[^\n]*)")
_FROZENDICT = (b"unfreeze(", b".pop(", b".copy({")
TODO_MARK = b"TODO(linen-upgrade)"


@lru_cache(maxsize=1)
def _jax_markers() -> tuple[tuple[bytes, ...], ...]:
    from linen_upgrade.applicability import JAX_NAMES

    return tuple(tuple(part.encode() for part in name.split(".")[1:]) for name in JAX_NAMES)


def _imports_legacy_from_flax(data: bytes) -> bool:
    """``from flax import nn, optim`` (the imported names, not ``linen as nn``)."""
    for names in _FROM_FLAX.findall(data):
        items = names.strip(b"()").replace(b"\\", b" ").split(b",")
        if {item.split()[0] for item in items if item.split()} & {b"nn", b"optim", b"deprecated"}:
            return True
    return False


def may_need_rewrite(data: bytes) -> bool:
    """Could a rule apply to this file by itself?  (A cheap test on bytes; never wrong the
    other way: a file it rejects holds no name any rule's ``applies`` looks for.)"""
    if not mentions_flax(data):
        return False
    if _LEGACY_FLAX.search(data) or TODO_MARK in data or _imports_legacy_from_flax(data):
        return True  # (our TODOs: a re-run reports what is left)
    return any(all(part in data for part in names) for names in _jax_markers()) \
        or any(marker in data for marker in _FROZENDICT)


class ReadOnlyError(OSError):
    """A read-only source file was not rewritten (``force`` rewrites it)."""


def write_source(path: Path, data: bytes, *, force: bool = False) -> None:
    """Rewrite an existing source file with ``data``, keeping what the user set up.

    A symlink rewrites its target and stays a link.  Mode, owner and group are
    kept.  A file with other hard links, or one whose owner this user cannot
    give a new file, has its content replaced through the same inode (after a
    backup).  A read-only file raises :class:`ReadOnlyError` unless ``force``.
    """
    real = Path(os.path.realpath(path))
    st = os.stat(real)
    if not force and (not st.st_mode & 0o222 or not os.access(real, os.W_OK)):
        raise ReadOnlyError(errno.EACCES, "the file is read-only (--force rewrites it)")
    if st.st_nlink > 1:
        write_in_place(real, data)
        return
    try:
        atomic_write(real, data, owner=(st.st_uid, st.st_gid))
    except PermissionError:
        # another user's file in a folder we may write: a new file would be ours
        write_in_place(real, data)


def atomic_write(path: Path, data: bytes, owner: tuple[int, int] | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    The original is replaced only by a complete file (``os.replace`` is atomic
    on POSIX and Windows); its permission bits are kept, and a new file gets
    the umask's (mkstemp's would be 0600).  ``owner`` (uid, gid) is given to
    the new file; PermissionError when this user cannot, with nothing changed.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    import tempfile  # (only a write needs it: not at start-up)

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".lu-tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if owner is not None and hasattr(os, "chown"):
            os.chown(tmp, *owner)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_in_place(path: Path, data: bytes) -> None:
    """Replace ``path``'s content through its own inode (hard links, owner and
    mode stay), safe against a crash: the original is first written to a
    backup file beside it, which is removed once the new content is on disk
    (after a crash, the backup holds the original)."""
    original = path.read_bytes()
    import tempfile

    fd, backup = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".lu-backup")
    with os.fdopen(fd, "wb") as handle:
        handle.write(original)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        _overwrite(path, data)
    except BaseException:
        _overwrite(path, original)  # a full disk or an interrupt: the original goes back
        os.unlink(backup)
        raise
    os.unlink(backup)


def _overwrite(path: Path, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.write(data)
        handle.truncate()
        handle.flush()
        os.fsync(handle.fileno())
