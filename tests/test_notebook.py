"""Notebooks: cell magics convert, IPython lines that hold legacy code block
the whole notebook (all or nothing), and the report names cell and line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from linen_upgrade import notebook
from linen_upgrade.cli import main

IMPORTS = "import jax\nfrom flax import nn\n"
MODULE = "class M(nn.Module):\n    def apply(self, x):\n        return nn.Dense(x, 3)\n"
INIT = "_, params = M.init_by_shape(jax.random.PRNGKey(0), [(1, 4)])\n"
LINEN_MODULE = "class M(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n        return nn.Dense(3)(x)\n"
LINEN_INIT = ("params = M().init(jax.random.PRNGKey(0), "
              "jax.numpy.zeros((1, 4), jax.numpy.float32))['params']\n")


def write_notebook(path: Path, cells: list[str]) -> bytes:
    doc = {
        "cells": [{"cell_type": "markdown", "id": "title", "metadata": {}, "source": ["# A legacy notebook"]}]
        + [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
            "source": source.splitlines(keepends=True)} for i, source in enumerate(cells)],
        "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path.read_bytes()


def code_cells(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_cell_magic_cells_convert_like_any_other(tmp_path, capsys):
    path = tmp_path / "n.ipynb"
    write_notebook(path, ["%%time\n" + IMPORTS, MODULE, "%%capture captured\n" + INIT])
    assert main([str(path)]) == 1
    assert code_cells(path) == ["%%time\nimport jax\nfrom flax import linen as nn\n", LINEN_MODULE,
                                "%%capture captured\n" + LINEN_INIT]
    assert main([str(path)]) == 0  # converted: a second run changes nothing


@pytest.mark.parametrize("line,kind", [
    pytest.param("%timeit jax.tree_multimap(lambda a: a, params)", "jax.tree_multimap", id="line magic"),
    pytest.param("!python -c 'from flax import nn'", "flax.nn", id="shell line, code in quotes"),
])
def test_ipython_line_holding_legacy_code_leaves_notebook_unchanged(tmp_path, capsys, line, kind):
    path = tmp_path / "n.ipynb"
    before = write_notebook(path, [IMPORTS, MODULE, "x = 1\n" + line + "\n"])
    assert main([str(path)]) == 0  # nothing written, the finding says why
    assert path.read_bytes() == before
    out = capsys.readouterr().out
    assert f"{path}:cell_4:2:1: LU901 needs manual change: IPython line `{line}` holds legacy code (`{kind}`)" in out
    assert "the notebook is left unchanged until then" in out


def test_line_magic_whose_statement_the_rewrite_changes_blocks_the_notebook(tmp_path, capsys):
    path = tmp_path / "n.ipynb"
    before = write_notebook(path, [IMPORTS, MODULE, "for i in range(3):\n    %time y = M.call(params, x)\n"])
    assert main(["--format", "json", str(path)]) == 0
    assert path.read_bytes() == before
    [finding] = json.loads(capsys.readouterr().out)["files"][0]["findings"]
    assert (finding["cell"], finding["line"], finding["col"], finding["rule"]) == (4, 2, 5, "LU901")
    assert ("IPython line `%time y = M.call(params, x)` runs code the rewrite changes "
            "(to `y = M().apply({'params': params}, x)`)") in finding["message"]


def test_line_magic_with_modern_code_is_kept_and_the_rest_converts(tmp_path):
    path = tmp_path / "n.ipynb"
    write_notebook(path, [IMPORTS, MODULE, "for i in range(3):\n    %timeit -n 10 -r 2 print(i)\n"])
    assert main([str(path)]) == 1
    assert code_cells(path)[1:] == [LINEN_MODULE, "for i in range(3):\n    %timeit -n 10 -r 2 print(i)\n"]


def test_other_language_cell(tmp_path, capsys):
    path = tmp_path / "n.ipynb"
    before = write_notebook(path, [IMPORTS, MODULE, "%%bash\npython -c 'from flax import nn'\n"])
    assert main([str(path)]) == 0
    assert path.read_bytes() == before
    assert (f"{path}:cell_4:1:1: LU901 needs manual change: a %%bash cell holds legacy code (`flax.nn`)"
            in capsys.readouterr().out)
    write_notebook(path, [IMPORTS, MODULE, "%%bash\necho flax is installed\n"])  # no legacy code in it
    assert main([str(path)]) == 1
    assert code_cells(path)[2] == "%%bash\necho flax is installed\n"


def test_cell_that_does_not_parse_fails_the_notebook(tmp_path, capsys):
    path = tmp_path / "n.ipynb"
    before = write_notebook(path, [IMPORTS, MODULE, "x = 1\ny = (\n"])
    assert main([str(path)]) == 2
    assert path.read_bytes() == before
    assert f"{path}:cell_4:2:" in capsys.readouterr().err


def test_a_cell_magic_stays_first_when_a_rule_adds_lines_above_it():
    raw = json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                                 "source": ["%%time\n", "x = 1\n"]}], "metadata": {}, "nbformat": 4,
                      "nbformat_minor": 5}).encode()
    nb = notebook.extract(raw, "n.ipynb")
    rebuilt = notebook.rebuild(nb, "import optax\n" + nb.code)  # an import added above the first cell
    assert rebuilt.problems == []
    assert json.loads(rebuilt.data)["cells"][0]["source"] == ["%%time\n", "import optax\n", "x = 1\n"]


@pytest.mark.parametrize("line,statement", [
    ("%timeit -n 10 -r 3 f(x)", "f(x)"),
    ("%timeit -n10 -q f(x)", "f(x)"),
    ("%timeit -n 10\tf(x)", "f(x)"),
    ("  %time y = f(x)", "y = f(x)"),
    ("%prun -l 5 -s cumulative train(state)", "train(state)"),
    ("%matplotlib inline", None),
    ("%time", None),
    ("%time for", None),
])
def test_statement_of_a_line_magic(line, statement):
    assert notebook._python_statement(line) == statement


def test_a_lost_ipython_line_leaves_the_notebook_unchanged():
    raw = json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                                 "source": ["%%time\n", "x = 1\n", "!ls\n"]}], "metadata": {}, "nbformat": 4,
                      "nbformat_minor": 5}).encode()
    nb = notebook.extract(raw, "n.ipynb")
    lost = "\n".join(line for line in nb.code.split("\n") if "pass" not in line)  # as if a rule dropped them
    rebuilt = notebook.rebuild(nb, lost)
    assert rebuilt.data == raw
    assert [(p.line, p.message.split(":")[0]) for p in rebuilt.problems] == [
        (1, "the rewrite lost the IPython line `%%time`"), (3, "the rewrite lost the IPython line `!ls`")]
