"""``linen-upgrade status``: legacy constructs left and the share of Flax files
converted, on the fixture tree ``fixtures/status`` (numbers counted by hand:
see the comments of ``test_text_report``)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT
from linen_upgrade.cli import main
from linen_upgrade.constructs import code_only, count
from linen_upgrade.registry import all_rules
from linen_upgrade.tables.legacy_constructs import LEGACY_CONSTRUCTS

TREE = "fixtures/status"


def status(*args: str, cwd: Path = ROOT) -> int:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return main(["status", *args])
    finally:
        os.chdir(old)


def test_text_report(capsys):
    assert status(TREE) == 0
    assert capsys.readouterr().out == (
        "legacy constructs left, by kind (and the rule that converts it):\n"
        "  flax.nn                   2  LU100\n"  # legacy_model's import, the notebook's %%bash cell
        "  flax.optim                1  LU301\n"  # legacy_model: `from flax import nn, optim`
        "  def apply(self            1  LU101\n"
        "  Module.partial(           1  LU103\n"  # nn.Conv.partial(
        "  .init_by_shape(           1  LU201\n"
        "  nn.Model                  1  LU202\n"  # the docstring's and the comment's do not count
        "  optim.<Optimizer>(        1  LU301\n"  # optim.Momentum( (plain.py's torch optim.Adam( does not)
        "  .apply_gradient(          1  LU302\n"  # train.py (apply_gradients( does not count)
        "  jax.tree_multimap         2  LU401\n"  # jax_utils.py and the notebook's %timeit line
        "  TODO(linen-upgrade)       1\n"  # train.py
        "by file:\n"
        f"  {TREE}/jax_utils.py: 1 (jax.tree_multimap 1)\n"
        f"  {TREE}/legacy_model.py: 7 (flax.nn 1, flax.optim 1, def apply(self 1, Module.partial( 1, "
        ".init_by_shape( 1, nn.Model 1, optim.<Optimizer>( 1)\n"
        f"  {TREE}/notebook.ipynb: 2 (flax.nn 1, jax.tree_multimap 1)\n"
        f"  {TREE}/train.py: 2 (.apply_gradient( 1, TODO(linen-upgrade) 1)\n"
        # Flax files: all but plain.py; converted.py alone holds nothing
        "converted: 1 of 5 Flax files (20.0%); 12 legacy constructs left\n")


def test_json_report(capsys):
    assert status("--format", "json", TREE) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"] == {"flax_files": 5, "converted_files": 1, "share_converted": 20.0,
                              "constructs_left": 12}
    assert doc["kinds"]["jax.tree_multimap"] == 2 and sum(doc["kinds"].values()) == 12
    assert {f["path"]: (f["converted"], f["left"]) for f in doc["files"]} == {
        f"{TREE}/converted.py": (True, 0), f"{TREE}/jax_utils.py": (False, 1),
        f"{TREE}/legacy_model.py": (False, 7), f"{TREE}/notebook.ipynb": (False, 2),
        f"{TREE}/train.py": (False, 2)}
    assert doc["errors"] == []


@pytest.mark.parametrize("percent,code", [("0", 0), ("20", 0), ("20.5", 1), ("100", 1)])
def test_fail_under(capsys, percent, code):
    assert status("--fail-under", percent, TREE) == code
    err = capsys.readouterr().err
    assert ("20.0% of the Flax files converted, under the required" in err) == (code == 1)


def test_exclude_and_usage_errors(capsys):
    assert status("--exclude", "notebook.ipynb", "--format", "json", TREE) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["share_converted"] == 25.0  # 1 of 4
    assert status("--fail-under", "101", TREE) == 2
    assert status() == 2  # no paths


def test_tree_without_flax_is_converted(tmp_path, capsys):
    (tmp_path / "a.py").write_text("import os\n")
    assert status("--fail-under", "100", str(tmp_path)) == 0
    assert capsys.readouterr().out == "converted: 0 of 0 Flax files (100.0%); 0 legacy constructs left\n"


def test_unreadable_file_exits_2(tmp_path, capsys):
    (tmp_path / "a.py").write_bytes(b"# -*- coding: no-such-codec -*-\nfrom flax import nn\n")
    (tmp_path / "b.ipynb").write_text("not json")
    assert status(str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "a.py:1:1: cannot decode" in err and "b.ipynb:1:1: not a Jupyter notebook" in err


def test_the_share_rises_when_the_tool_converts(tmp_path, capsys):
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES / "status", tree)
    assert status("--format", "json", str(tree)) == 0
    before = json.loads(capsys.readouterr().out)["summary"]
    main(["-q", "--exit-zero-even-if-changed", str(tree)])
    assert status("--format", "json", str(tree)) == 0
    after = json.loads(capsys.readouterr().out)["summary"]
    assert after["flax_files"] == before["flax_files"]
    assert after["converted_files"] > before["converted_files"]
    assert after["constructs_left"] < before["constructs_left"]
    # the notebook's IPython lines hold legacy code: the rewrite leaves all of it, status counts it
    assert (tree / "notebook.ipynb").read_bytes() == (FIXTURES / "status" / "notebook.ipynb").read_bytes()


def test_comments_and_strings_are_blanked_in_place():
    text = 'x = "nn.Model"  # nn.Model\ny = f"""\nnn.Model\n""" + nn.Model\n'
    code = code_only(text)
    assert len(code) == len(text) and code.count("\n") == text.count("\n")
    assert code.count("nn.Model") == 1 and code.rstrip().endswith("+ nn.Model")
    assert count(["from flax import nn\n" + text])[0] == {"flax.nn": 1, "nn.Model": 1}


def test_every_kind_names_a_rule():
    ids = {r.id for r in all_rules()}
    assert {row.rule for row in LEGACY_CONSTRUCTS} <= ids
    assert len({row.kind for row in LEGACY_CONSTRUCTS}) == len(LEGACY_CONSTRUCTS)


def test_the_share_is_rounded_down_and_the_threshold_is_exact():
    from collections import Counter

    from linen_upgrade.status import FileStatus, Status

    almost = Status([FileStatus(f"{i}.py", Counter()) for i in range(2499)]
                    + [FileStatus("left.py", Counter({"nn.Model": 1}))], [])
    assert (almost.share, almost.percent) == (99.96, "99.9%")  # never shown as 100%
    assert almost.under(100) and almost.under(99.97) and not almost.under(99.96)
