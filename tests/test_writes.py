"""Writes keep what the user set up (symlinks, owner, mode, hard links, read-only
files), Ctrl-C stops cleanly, and options may come before a sub-command."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from linen_upgrade import files as files_mod
from linen_upgrade.cli import TEST_PAUSE_ENV, main

LEGACY = "from flax import nn\nimport jax\n\ny = jax.tree_multimap(f, a, b)\n"
UPGRADED = "from flax import linen as nn\nimport jax\n\ny = jax.tree_util.tree_map(f, a, b)\n"


def leftovers(folder: Path) -> list[str]:
    """Temporary and backup files of a write, anywhere below ``folder``."""
    return [p.name for p in folder.rglob("*") if p.name.endswith((".lu-tmp", ".lu-backup"))]


def test_symlink_rewrites_its_target_once_and_stays_a_link(tmp_path, capsys):
    real = tmp_path / "real.py"
    real.write_text(LEGACY)
    link = tmp_path / "link.py"
    link.symlink_to(real)
    assert main([str(link), str(real)]) == 1  # the target given too: one file, written once
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == UPGRADED
    err = capsys.readouterr().err
    assert "1 file scanned, 1 rewritten" in err and err.count("rewrote") == 1
    # a link inside a folder that points into it: the target is rewritten, the link stays
    real.write_text(LEGACY)
    assert main([str(tmp_path)]) == 1
    assert link.is_symlink() and real.read_text() == UPGRADED
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a file away needs root")
def test_owner_and_group_are_kept(tmp_path):
    path = tmp_path / "theirs.py"
    path.write_text(LEGACY)
    os.chown(path, 4242, 4343)  # another user's file, rewritten by root
    path.chmod(0o640)
    assert main([str(path)]) == 1
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4242, 4343, 0o640)
    assert path.read_text() == UPGRADED


def test_new_file_gets_the_original_owner(tmp_path, monkeypatch):
    path = tmp_path / "f.py"
    path.write_text(LEGACY)
    st = path.stat()
    calls = []
    monkeypatch.setattr(files_mod.os, "chown", lambda p, uid, gid: calls.append((Path(p).name, uid, gid)))
    assert main([str(path)]) == 1
    assert len(calls) == 1 and calls[0][0].endswith(".lu-tmp")
    assert calls[0][1:] == (st.st_uid, st.st_gid)
    assert path.read_text() == UPGRADED


def test_owner_this_user_cannot_give_is_kept_by_writing_in_place(tmp_path, monkeypatch):
    path = tmp_path / "theirs.py"
    path.write_text(LEGACY)
    inode = path.stat().st_ino

    def refuse(p, uid, gid):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(files_mod.os, "chown", refuse)
    assert main([str(path)]) == 1
    assert path.stat().st_ino == inode  # the same file, so the same owner
    assert path.read_text() == UPGRADED
    assert leftovers(tmp_path) == []


def test_hard_link_is_rewritten_in_place(tmp_path):
    path = tmp_path / "a.py"
    path.write_text(LEGACY)
    other = tmp_path / "elsewhere.txt"
    os.link(path, other)
    inode = path.stat().st_ino
    assert main([str(path)]) == 1
    assert path.stat().st_ino == other.stat().st_ino == inode and path.stat().st_nlink == 2
    assert other.read_text() == UPGRADED
    assert leftovers(tmp_path) == []


def test_failed_in_place_write_puts_the_original_back(tmp_path, monkeypatch, capsys):
    path = tmp_path / "a.py"
    path.write_text(LEGACY)
    os.link(path, tmp_path / "b.py")
    real_overwrite = files_mod._overwrite
    backups = []

    def half_then_full_disk(p, data):
        if not backups:  # the first call writes the new content: cut it off halfway
            backups.extend(q.read_bytes() for q in tmp_path.glob("*.lu-backup"))
            p.write_bytes(data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        real_overwrite(p, data)

    monkeypatch.setattr(files_mod, "_overwrite", half_then_full_disk)
    assert main([str(path)]) == 2
    assert backups == [LEGACY.encode()]  # the backup was on disk before the file was touched
    assert path.read_text() == LEGACY
    assert leftovers(tmp_path) == []
    assert "cannot write: No space left on device" in capsys.readouterr().err


def test_read_only_file_is_refused_unless_force(tmp_path, capsys):
    locked = tmp_path / "locked.py"
    locked.write_text(LEGACY)
    locked.chmod(0o444)
    (tmp_path / "open.py").write_text(LEGACY)
    assert main([str(tmp_path)]) == 2
    assert locked.read_text() == LEGACY and (tmp_path / "open.py").read_text() == UPGRADED
    assert f"{locked}: not rewritten: the file is read-only (--force rewrites it)" in capsys.readouterr().err
    assert main(["--force", str(locked)]) == 1
    assert locked.read_text() == UPGRADED and stat.S_IMODE(locked.stat().st_mode) == 0o444


def test_ctrl_c_exits_130_names_the_written_files_and_a_second_run_finishes(tmp_path):
    paths = [tmp_path / f"m{i}.py" for i in range(3)]
    for p in paths:
        p.write_text(LEGACY)
    command = [sys.executable, "-m", "linen_upgrade.cli", "-j", "1", str(tmp_path)]
    # the run stops after its first write (a test hook), so Ctrl-C lands at a known point
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, TEST_PAUSE_ENV: "1"})
    assert proc.stderr is not None
    assert proc.stderr.readline() == "paused after 1 writes\n"
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, err
    assert f"interrupted: 1 file rewritten before Ctrl-C:\n  {paths[0]}\n" in err
    assert "run the same command again to finish" in err and "Traceback" not in err
    assert [p.read_text() for p in paths] == [UPGRADED, LEGACY, LEGACY]
    assert leftovers(tmp_path) == []
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 1 and "3 files scanned, 2 rewritten" in done.stderr
    assert [p.read_text() for p in paths] == [UPGRADED] * 3


def test_options_before_a_sub_command(tmp_path, capsys):
    # `-v verify ...` is the verify command, not a rewrite of a path named "verify"
    assert main(["-v", "verify", str(tmp_path / "missing.py"), str(tmp_path / "b.py")]) == 2
    err = capsys.readouterr().err
    assert "give --module NAME (module mode) or --run" in err and "no such file" not in err
    # an option the sub-command has is its own, wherever it stands
    assert main(["--format", "json", "rules"]) == 0
    assert {"id", "name", "summary", "examples"} <= set(json.loads(capsys.readouterr().out)[0])
    assert main(["rules", "--format", "json"]) == 0
    json.loads(capsys.readouterr().out)
    # and before the default command
    (tmp_path / "f.py").write_text(LEGACY)
    assert main(["-q", "rewrite", "--check", str(tmp_path / "f.py")]) == 1
    assert capsys.readouterr().err == ""
