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
