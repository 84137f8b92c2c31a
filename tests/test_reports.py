"""What a run reports: originals that did not compile before the rewrite, and
every fix and finding at ``path:line:col``."""
from __future__ import annotations

import json

import libcst as cst

from linen_upgrade.cli import main
from linen_upgrade.config import Config
from linen_upgrade.engine import SOURCE_RULE
from linen_upgrade.pipeline import rewrite_text
from linen_upgrade.registry import all_rules

ALL_IDS = [r.id for r in all_rules()]
# a published file whose real __future__ import was replaced by a placeholder
REDACTED = ('"""A model."""\nfrom __future__ import REDACTED\nfrom __future__ import division\n'
            "import jax\nimport flax\n\ny = jax.tree_multimap(f, a, b)\n")


def rewrite(source: str):
    return rewrite_text(source.encode("utf-8"), "m.py", Config(), ALL_IDS)


def test_original_that_does_not_compile_is_rewritten_with_a_finding(tmp_path, capsys):
    path = tmp_path / "m.py"
    path.write_text(REDACTED)
    assert main([str(path)]) == 1
    assert path.read_text() == REDACTED.replace("jax.tree_multimap", "jax.tree_util.tree_map")
    out = capsys.readouterr().out
    assert (f"{path}:2:1: {SOURCE_RULE} needs manual change: the file did not compile before the rewrite "
            "(future feature REDACTED is not defined)") in out


def test_notebook_that_does_not_compile_keeps_the_finding_with_its_cell(tmp_path, capsys):
    cells = ["x = 1\n", REDACTED.replace('"""A model."""\n', "")]
    doc = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                      "source": source} for source in cells],
           "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(doc))
    assert main(["--format", "json", "--check", str(path)]) == 1
    findings = json.loads(capsys.readouterr().out)["files"][0]["findings"]
    assert [(f["rule"], f["cell"], f["line"]) for f in findings] == [(SOURCE_RULE, 2, 1)]


def test_rewrite_that_adds_a_compile_error_is_still_refused(monkeypatch):
    rule = next(r for r in all_rules() if r.id == "LU401")
    transform = rule.transform

    def and_nonlocal(self, module, ctx):
        # a second error, hidden behind the original's own: `nonlocal` at module level
        module = transform(self, module, ctx)
        return module.with_changes(body=[*module.body, cst.parse_statement("nonlocal q\n")])

    monkeypatch.setattr(rule, "transform", and_nonlocal)
    result = rewrite(REDACTED)
    assert result.new is None
    assert result.error == ("m.py:8:1: the rewritten code does not compile (nonlocal declaration not allowed "
                            "at module level); file left unchanged")
    # and so is one whose original compiles
    result = rewrite(REDACTED.replace("REDACTED", "annotations"))
    assert result.new is None and "nonlocal declaration not allowed at module level" in result.error


MODULE = ("from flax import nn\n\n\n"
          "class M(nn.Module):\n"
          "    def apply(self, x, train=True):\n"
          "        x = nn.Dense(x, 3)\n"
          "        return nn.dropout(x, rate=0.5, deterministic=not train)\n")


def test_every_fix_is_reported_where_the_rewritten_file_has_it(tmp_path, capsys):
    path = tmp_path / "m.py"
    path.write_text(MODULE)
    assert main(["-v", str(path)]) == 1
    new = path.read_text().splitlines()
    err = capsys.readouterr().err
    fixes = [line for line in err.splitlines() if " [*] " in line]
    assert fixes == [f"{path}:1:1: LU100 [*] from flax import ... -> flax.linen",
                     f"{path}:4:1: LU101 [*] class M: apply -> __call__",
                     f"{path}:7:9: LU102 [*] nn.Dense(x, ...) -> nn.Dense(...)(x)",
                     f"{path}:8:9: LU102 [*] nn.dropout(x, ...) -> nn.Dropout(...)(x)"]
    # each place is the statement the fix changed, in the file as written (@nn.compact added a line)
    assert new[6].startswith(" " * 8 + "x = nn.Dense(3)(x)") and "nn.Dropout(rate=0.5" in new[7]
    assert "<linen-upgrade-fix" not in path.read_text()


def test_json_report_locates_fixes_and_names_the_output(tmp_path, capsys):
    path = tmp_path / "m.py"
    path.write_text(MODULE)
    assert main(["--format", "json", "--diff", str(path)]) == 1
    fixed = json.loads(capsys.readouterr().out)["files"][0]["fixed"]
    assert {"line": 8, "col": 9, "rule": "LU102", "message": "nn.dropout(x, ...) -> nn.Dropout(...)(x)"} in fixed
    assert all(set(f) == {"line", "col", "rule", "message"} for f in fixed) and len(fixed) == 4


def test_notebook_fixes_name_cell_and_line(tmp_path, capsys):
    cells = ["import jax\nfrom flax import nn\n", "\n" + MODULE.split("\n\n\n")[1]]
    doc = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                      "source": source} for source in cells],
           "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(doc))
    assert main(["--format", "json", str(path)]) == 1
    fixed = json.loads(capsys.readouterr().out)["files"][0]["fixed"]
    places = {(f["rule"], f["message"].split("(")[0]): (f["cell"], f["line"], f["col"]) for f in fixed}
    assert places == {("LU100", "from flax import ... -> flax.linen"): (1, 2, 1),
                      ("LU101", "class M: apply -> __call__"): (2, 2, 1),
                      ("LU102", "nn.Dense"): (2, 5, 9), ("LU102", "nn.dropout"): (2, 6, 9)}
    second = json.loads(path.read_text())["cells"][1]["source"]
    assert "".join(second).splitlines()[4].strip() == "x = nn.Dense(3)(x)"


def test_notebook_lines_a_rule_added_above_the_first_cell_open_it():
    from linen_upgrade import notebook

    code = "import functools\n# <linen-upgrade-cell 0>\nimport jax\n# <linen-upgrade-cell 2>\nx = 1\n"
    assert [notebook.locate_in(code, line) for line in (1, 3, 5)] == [(0, 1), (0, 2), (2, 1)]
