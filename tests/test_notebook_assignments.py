"""IPython lines that assign a magic's or a shell command's output (``files = !ls``,
``t = %timeit -o f(x)``) and help on an expression (``model(x)?``) are IPython, not Python:
hidden from the rules like other magics, they no longer fail the whole notebook."""
from __future__ import annotations

import json

import pytest

from linen_upgrade.cli import main

from test_notebook import IMPORTS, LINEN_MODULE, MODULE, code_cells, write_notebook


@pytest.mark.parametrize("line", [
    pytest.param("files = !ls", id="shell output assigned"),
    pytest.param("first, rest = !ls -1", id="shell output unpacked"),
    pytest.param("  t = %timeit -o print(1)", id="line magic output assigned"),
    pytest.param("env = %env", id="magic without a statement"),
    pytest.param("M(3)?", id="help on an expression"),
    pytest.param("jax.numpy.ones??", id="source of an attribute"),
])
def test_ipython_line_is_kept_and_the_notebook_converts(tmp_path, line):
    path = tmp_path / "n.ipynb"
    write_notebook(path, [IMPORTS, MODULE, "if True:\n" + line + "\n" if line.startswith(" ") else line + "\n"])
    assert main([str(path)]) == 1
    assert code_cells(path)[1] == LINEN_MODULE
    assert line in code_cells(path)[2]


def test_assigned_line_magic_whose_statement_the_rewrite_changes_blocks_the_notebook(tmp_path, capsys):
    path = tmp_path / "n.ipynb"
    before = write_notebook(path, [IMPORTS, MODULE, "t = %timeit -o M.init_by_shape(jax.random.PRNGKey(0), [(1, 4)])\n"])
    assert main(["--format", "json", str(path)]) == 0
    assert path.read_bytes() == before
    [finding] = json.loads(capsys.readouterr().out)["files"][0]["findings"]
    assert (finding["cell"], finding["line"], finding["rule"]) == (4, 1, "LU901")
    assert finding["message"].startswith("IPython line `t = %timeit -o M.init_by_shape(")
