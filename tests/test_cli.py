"""The command line: exit codes, modes, safety, discovery, configuration."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from linen_upgrade import files as files_mod
from linen_upgrade.cli import main

LEGACY = "from flax import nn\nimport jax\n\ny = jax.tree_multimap(f, a, b)\n"
UPGRADED = "from flax import linen as nn\nimport jax\n\ny = jax.tree_util.tree_map(f, a, b)\n"
MODERN = "from flax import linen as nn\n\nx = nn.Dense(3)\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "legacy.py").write_text(LEGACY)
    (tmp_path / "modern.py").write_text(MODERN)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "other.py").write_text("import numpy\n")
    return tmp_path


def run(*args: str, cwd: Path | None = None) -> int:
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        return main(list(args))
    finally:
        os.chdir(old)


def test_exit_0_when_nothing_changes(tmp_path, capsys):
    (tmp_path / "m.py").write_text(MODERN)
    assert run(str(tmp_path)) == 0
    assert "0 rewritten" in capsys.readouterr().err


def test_rewrites_in_place_exit_1(tree, capsys):
    assert run(str(tree)) == 1
    assert (tree / "legacy.py").read_text() == UPGRADED
    assert (tree / "modern.py").read_text() == MODERN
    assert "1 rewritten" in capsys.readouterr().err
    assert run(str(tree)) == 0  # idempotent


def test_exit_zero_even_if_changed(tree):
    assert run("--exit-zero-even-if-changed", str(tree)) == 0
    assert (tree / "legacy.py").read_text() == UPGRADED


def test_check_writes_nothing(tree, capsys):
    assert run("--check", str(tree)) == 1
    out = capsys.readouterr().out
    assert f"would rewrite {tree / 'legacy.py'}" in out
    assert (tree / "legacy.py").read_text() == LEGACY


def test_diff_writes_nothing(tree, capsys):
    assert run("--diff", str(tree)) == 1
    out = capsys.readouterr().out
    assert "-from flax import nn" in out and "+from flax import linen as nn" in out
    assert (tree / "legacy.py").read_text() == LEGACY


def test_usage_errors_exit_2(tree, capsys):
    assert run("--select", "LU999", str(tree)) == 2
    assert "unknown rule" in capsys.readouterr().err
    assert run(str(tree / "missing")) == 2
    assert run("--jobs", "0", str(tree)) == 2


def test_no_paths_is_a_noop():
    assert run() == 0


def test_broken_file_among_good_ones(tree, capsys):
    (tree / "broken.py").write_text("from flax import nn\ndef f(:\n")
    assert run(str(tree)) == 2
    err = capsys.readouterr().err
    assert "broken.py:2" in err and "cannot parse" in err
    assert (tree / "legacy.py").read_text() == UPGRADED  # the others were still processed
    assert (tree / "broken.py").read_text() == "from flax import nn\ndef f(:\n"


def test_undecodable_file_is_reported(tmp_path, capsys):
    # (a file whose bytes hold no legacy name is not decoded at all: files.may_need_rewrite)
    (tmp_path / "bad.py").write_bytes(b"from flax import nn\nx = '\xff'\n")
    assert run(str(tmp_path)) == 2
    assert "bad.py" in capsys.readouterr().err


def test_stdin_to_stdout():
    proc = subprocess.run([sys.executable, "-m", "linen_upgrade.cli", "-"], input=LEGACY.encode(),
                          capture_output=True)
    assert proc.returncode == 1
    assert proc.stdout.decode() == UPGRADED
    proc = subprocess.run([sys.executable, "-m", "linen_upgrade.cli", "--check", "-"],
                          input=MODERN.encode(), capture_output=True)
    assert proc.returncode == 0 and proc.stdout == b""


def test_jobs_parallel_same_result(tmp_path):
    for n in range(12):
        (tmp_path / f"f{n}.py").write_text(LEGACY if n % 2 else MODERN)
    serial = tmp_path.parent / (tmp_path.name + "_serial")
    serial.mkdir()
    for p in tmp_path.iterdir():
        (serial / p.name).write_bytes(p.read_bytes())
    assert run("-j", "2", str(tmp_path)) == 1
    assert run("-j", "1", str(serial)) == 1
    for p in tmp_path.iterdir():
        assert p.read_bytes() == (serial / p.name).read_bytes()


def test_interrupted_write_leaves_original(tree, monkeypatch, capsys):
    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_mod.os, "replace", boom)
    assert run(str(tree / "legacy.py")) == 2
    assert (tree / "legacy.py").read_text() == LEGACY
    assert not [p for p in tree.iterdir() if p.name.endswith(".lu-tmp")]
    assert "cannot write" in capsys.readouterr().err


def test_rule_crash_names_rule_and_keeps_file(tree, monkeypatch, capsys):
    from linen_upgrade.registry import all_rules

    rule = next(r for r in all_rules() if r.id == "LU401")

    def crash(self, module, ctx):
        raise RuntimeError("planted")

    monkeypatch.setattr(rule, "transform", crash)
    assert run("-j", "1", str(tree / "legacy.py")) == 2
    err = capsys.readouterr().err
    assert "LU401" in err and "planted" in err
    assert (tree / "legacy.py").read_text() == LEGACY


def test_invalid_result_is_not_written(tree, monkeypatch, capsys):
    import libcst as cst

    from linen_upgrade.registry import all_rules

    rule = next(r for r in all_rules() if r.id == "LU401")

    def garbage(self, module, ctx):
        # ``return`` outside a function: LibCST prints it, Python refuses it
        return cst.Module(body=[cst.SimpleStatementLine(body=[cst.Return(cst.Integer("1"))])])

    monkeypatch.setattr(rule, "transform", garbage)
    assert run(str(tree / "legacy.py")) == 2
    assert "does not compile" in capsys.readouterr().err
    assert (tree / "legacy.py").read_text() == LEGACY


@pytest.mark.parametrize("raw,expected", [
    (LEGACY.replace("\n", "\r\n").encode(), UPGRADED.replace("\n", "\r\n").encode()),
    (b"\xef\xbb\xbf" + LEGACY.encode(), b"\xef\xbb\xbf" + UPGRADED.encode()),
    (("# -*- coding: latin-1 -*-\n" + LEGACY + "s = 'caf\xe9'\n").encode("latin-1"),
     ("# -*- coding: latin-1 -*-\n" + UPGRADED + "s = 'caf\xe9'\n").encode("latin-1")),
    (LEGACY.rstrip("\n").encode(), UPGRADED.rstrip("\n").encode()),
], ids=["crlf", "bom", "latin-1", "no-final-newline"])
def test_encodings_and_newlines_preserved(tmp_path, raw, expected):
    path = tmp_path / "f.py"
    path.write_bytes(raw)
    assert run(str(path)) == 1
    assert path.read_bytes() == expected


@pytest.mark.parametrize("raw", [
    MODERN.replace("\n", "\r\n").encode(),
    b"\xef\xbb\xbf" + MODERN.encode(),
    ("# -*- coding: latin-1 -*-\nimport flax\ns = 'caf\xe9'\n").encode("latin-1"),
], ids=["crlf", "bom", "latin-1"])
def test_untouched_files_byte_identical(tmp_path, raw):
    path = tmp_path / "f.py"
    path.write_bytes(raw)
    assert run(str(path)) == 0
    assert path.read_bytes() == raw


def test_mode_is_kept(tmp_path):
    path = tmp_path / "script.py"
    path.write_text(LEGACY)
    path.chmod(0o751)
    assert run(str(path)) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o751


def test_skip_comments(tmp_path):
    path = tmp_path / "f.py"
    path.write_text("import jax  # a flax project\n\na = jax.tree_multimap(f, x)  # linen-upgrade: skip\n"
                    "# linen-upgrade: skip\nb = jax.tree_multimap(f, x)\nc = jax.tree_multimap(f, x)\n")
    assert run(str(path)) == 1
    assert path.read_text() == ("import jax  # a flax project\n\na = jax.tree_multimap(f, x)  # linen-upgrade: skip\n"
                                "# linen-upgrade: skip\nb = jax.tree_multimap(f, x)\n"
                                "c = jax.tree_util.tree_map(f, x)\n")
    skip_file = tmp_path / "g.py"
    skip_file.write_text("# linen-upgrade: skip-file\n" + LEGACY)
    assert run(str(skip_file)) == 0


def test_config_and_cli_override(tree):
    (tree / "pyproject.toml").write_text('[tool.linen-upgrade]\nignore = ["LU401"]\n')
    assert run(str(tree)) == 1
    assert "jax.tree_multimap" in (tree / "legacy.py").read_text()  # LU401 ignored
    assert "linen as nn" in (tree / "legacy.py").read_text()
    assert run("--ignore", "LU100", str(tree)) == 1  # the command line wins
    assert "jax.tree_util.tree_map" in (tree / "legacy.py").read_text()


def test_bad_config_is_usage_error(tree, capsys):
    (tree / "pyproject.toml").write_text('[tool.linen-upgrade]\nselcet = ["LU401"]\n')
    assert run(str(tree)) == 2
    assert "selcet" in capsys.readouterr().err


def test_select_family_and_slug(tree):
    assert run("--select", "jax_renames", str(tree / "legacy.py")) == 1
    assert (tree / "legacy.py").read_text() == LEGACY.replace("jax.tree_multimap", "jax.tree_util.tree_map")


def test_discovery_skips_venv_excluded_and_outside_symlinks(tmp_path):
    root = tmp_path / "proj"
    (root / "venv_x").mkdir(parents=True)
    (root / "venv_x" / "pyvenv.cfg").write_text("")
    (root / "venv_x" / "a.py").write_text(LEGACY)
    (root / "build").mkdir()
    (root / "build" / "b.py").write_text(LEGACY)
    (root / "third_party").mkdir()
    (root / "third_party" / "c.py").write_text(LEGACY)
    outside = tmp_path / "outside.py"
    outside.write_text(LEGACY)
    (root / "link.py").symlink_to(outside)
    (root / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    (root / "ok.py").write_text(LEGACY)
    found = sorted(p.name for p in files_mod.discover([str(root)], ["third_party"]))
    assert found == ["ok.py"]
    assert run("--exclude", "third_party", str(root)) == 1
    assert outside.read_text() == LEGACY
    assert (root / "third_party" / "c.py").read_text() == LEGACY


def test_json_and_github_formats(tree, capsys):
    (tree / "todo.py").write_text("from flax import nn\n\nm = nn.Model(CNN, p)\n")
    assert run("--check", "--format", "json", str(tree)) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["changed"] == 2 and doc["summary"]["findings"] == 1
    finding = next(f for f in doc["files"] if f["path"].endswith("todo.py"))["findings"][0]
    assert finding["rule"] == "LU901" and finding["line"] == 3
    assert run("--check", "--format", "github", str(tree)) == 1
    out = capsys.readouterr().out
    assert "::warning file=" in out and "title=LU901" in out


def test_findings_reported_and_not_duplicated(tmp_path, capsys):
    path = tmp_path / "f.py"
    path.write_text("from flax import nn\n\nm = nn.Model(CNN, p)\n")
    assert run(str(path)) == 1
    first = path.read_text()
    assert first.count("TODO(linen-upgrade): LU901") == 1
    assert f"{path}:3:1: LU901 needs manual change" in capsys.readouterr().out
    assert run(str(path)) == 0
    assert path.read_text() == first
    assert "1 finding left" in capsys.readouterr().err  # still reported on a re-run


def test_cross_file_index_and_prefilter(tmp_path, capsys):
    (tmp_path / "layers.py").write_text(
        "from flax import nn\n\nclass Block(nn.Module):\n    def apply(self, x, features):\n"
        "        return nn.Dense(x, features)\n")
    # mentions no flax: found because it imports a module of the run that does
    (tmp_path / "model.py").write_text(
        "import layers\n\nclass Net(layers.Block):\n    def apply(self, x):\n        return x\n\n"
        "net = layers.Block.partial(features=3)\n")
    (tmp_path / "unrelated.py").write_text("import os\n\nclass Net:\n    def apply(self, x):\n        return x\n")
    assert run(str(tmp_path)) == 1
    capsys.readouterr()
    model = (tmp_path / "model.py").read_text()
    # a subclass of a module defined in another file; this file imported no flax
    assert "import flax\n" in model
    assert "class Net(layers.Block):\n    @flax.linen.compact\n    def __call__(self, x):" in model
    assert "net = partial(layers.Block, features=3)" in model  # LU201: a top-level partial
    assert "def apply" in (tmp_path / "unrelated.py").read_text()


@pytest.mark.parametrize("source, expected", [
    (b"from flax import nn\n", True),
    (b"from flax import (linen as nn,\n    optim)\n", True),
    (b"import flax\ny = flax.nn.Dense\n", True),
    (b"from flax.deprecated import nn\n", True),
    (b"from flax import linen\ny = jax.tree_multimap(f, a)\n", True),
    (b"from flax import linen as nn\nv = v.unfreeze()\n", True),
    (b"from flax import linen\n# TODO(linen-upgrade): LU202 by hand\n", True),
    (b"from flax import linen as nn\nimport jax\n", False),
    (b"from flax import struct, serialization\n", False),
    (b"import jax\ny = jax.tree_multimap(f, a)\n", False),  # no flax: the rules never read it
])
def test_prefilter_admits_what_a_rule_may_read(source, expected):
    assert files_mod.may_need_rewrite(source) is expected


def test_a_rerun_reports_the_todos_left_in_modern_code(tmp_path, capsys):
    (tmp_path / "done.py").write_text("from flax import linen as nn\n\n"
                                      "# TODO(linen-upgrade): LU202 apply the module by hand\nx = 1\n")
    assert run("--check", str(tmp_path)) == 0
    out = capsys.readouterr()
    assert "LU202 needs manual change: apply the module by hand" in out.out + out.err
    assert "1 finding left for manual work" in out.out + out.err


def test_prefilter_does_not_parse_unrelated_files(tmp_path):
    from linen_upgrade.config import Config
    from linen_upgrade.pipeline import run as pipeline_run
    from linen_upgrade.registry import all_rules

    (tmp_path / "a.py").write_text("import os\n")
    (tmp_path / "b.py").write_text("# flax mentioned only\nimport os\n")
    (tmp_path / "c.py").write_text("# like flax.nn.Dense, but no legacy code\nimport os\n")
    paths = [tmp_path / name for name in ("a.py", "b.py", "c.py")]
    result = pipeline_run(paths, Config(), [r.id for r in all_rules()], 1)
    # a.py, b.py: not even ast-parsed (no name a rule looks for: files.may_need_rewrite)
    assert [r.path for r in result.results] == [str(tmp_path / "c.py")]
    assert not result.results[0].parsed  # c.py: ast facts only, never LibCST


def test_rewrite_run_never_imports_jax(tmp_path):
    path = tmp_path / "f.py"
    path.write_text(LEGACY)
    code = ("import sys; from linen_upgrade.cli import main; rc = main(['--check', sys.argv[1]]); "
            "print('JAX' if 'jax' in sys.modules else 'NOJAX', rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert proc.stdout.split()[-2:] == ["NOJAX", "1"], proc.stderr


def test_rules_command_lists_examples(capsys):
    assert run("rules") == 0
    out = capsys.readouterr().out
    assert "LU401 jax_renames" in out and "before:" in out and "after:" in out


def test_notebook_roundtrip(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": ["# Title flax"]},
            {"cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {"tags": ["x"]},
             "outputs": [{"name": "stdout", "output_type": "stream", "text": ["hi\n"]}],
             "source": ["%matplotlib inline\n", "import jax\n", "!pip install flax==0.3.6"]},
            {"cell_type": "code", "execution_count": 2, "id": "c2", "metadata": {}, "outputs": [],
             "source": ["y = jax.tree_multimap(f, a)\n", "y"]},
            {"cell_type": "code", "execution_count": 3, "id": "c3", "metadata": {}, "outputs": [],
             "source": ["%%bash\n", "echo flax"]},
        ],
        "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5,
    }
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb, indent=1) + "\n")
    assert run(str(path)) == 1
    new = json.loads(path.read_text())
    assert new["cells"][2]["source"] == ["y = jax.tree_util.tree_map(f, a)\n", "y"]
    for key in ("cells",):
        for old_cell, new_cell in zip(nb[key], new[key]):
            assert {k: v for k, v in old_cell.items() if k != "source"} == \
                   {k: v for k, v in new_cell.items() if k != "source"}
    assert new["cells"][1]["source"] == nb["cells"][1]["source"]  # magics survive
    assert new["cells"][3]["source"] == nb["cells"][3]["source"]
    assert new["metadata"] == nb["metadata"]
    assert run(str(path)) == 0


def test_module_called_with_hyperparameters_in_another_file(tmp_path):
    (tmp_path / "layers.py").write_text(
        "from flax import nn\n\n\nclass Block(nn.Module):\n    def apply(self, x, features, train=True):\n"
        "        x = nn.Dense(x, features)\n        return nn.BatchNorm(x, use_running_average=not train)\n")
    (tmp_path / "model.py").write_text(
        "from flax import nn\nfrom layers import Block\n\n\nclass Net(nn.Module):\n"
        "    def apply(self, x, width=8, train=True):\n"
        "        x = Block(x, width, train=train, name='b0')\n        return Block(x, features=2 * width)\n")
    assert run(str(tmp_path)) == 1
    assert "class Block(nn.Module):\n    features: Any\n\n    @nn.compact\n    def __call__(self, x, train=True):" \
        in (tmp_path / "layers.py").read_text()
    model = (tmp_path / "model.py").read_text()
    assert "x = Block(self.width, name='b0')(x, train=train)" in model
    assert "return Block(features=2 * self.width)(x)" in model
    assert run(str(tmp_path)) == 0  # idempotent across files


def test_progress_bar_only_for_long_runs_on_terminals(capsys):
    from linen_upgrade.cli import _Progress

    quiet = _Progress(enabled=False)
    quiet(10, 100)
    short = _Progress(enabled=True)
    short(3, 10)  # a short run: plain lines only
    assert capsys.readouterr().err == ""
    bar = _Progress(enabled=True)
    bar(50, 100)
    bar(100, 100)
    bar.close()
    err = capsys.readouterr().err
    assert "[###############...............] 50/100 files" in err and "100/100 files" in err
    assert err.endswith("\r")  # the bar is cleared before the summary
