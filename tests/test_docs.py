"""The generated rule pages (docs/rules/) say what the rules' docstrings and
examples say: a stale page fails here."""
from __future__ import annotations

import textwrap
from pathlib import Path

from linen_upgrade import docs
from linen_upgrade.registry import all_rules
from linen_upgrade.rule import Example, NoChange

from conftest import ROOT


def test_rule_pages_are_current() -> None:
    assert docs.DEFAULT_FOLDER == ROOT / "docs" / "rules"
    assert docs.stale(docs.DEFAULT_FOLDER) == [], "run `python -m linen_upgrade.docs` and commit docs/rules/"


def test_every_rule_has_a_page_with_its_docstring_and_examples() -> None:
    for rule in all_rules():
        page = (docs.DEFAULT_FOLDER / f"{rule.name}.md").read_text(encoding="utf-8")
        assert f"# {rule.id} `{rule.name}`" in page
        # every heading of the docstring, and every example verbatim
        for line in docs._docstring(rule).splitlines()[1:]:
            if line.strip() and not line[0].isspace():
                assert f"## {docs._markdown(line.strip())}" in page, (rule.id, line)
        for ex in rule.examples:
            assert isinstance(ex, (Example, NoChange))
            codes = [ex.before, ex.after] if isinstance(ex, Example) else [ex.code]
            for code in codes:
                assert textwrap.dedent(code).strip("\n") in page, (rule.id, ex)
    index = (docs.DEFAULT_FOLDER / docs.INDEX).read_text(encoding="utf-8")
    assert all(f"]({rule.name}.md)" in index for rule in all_rules())


def test_check_names_stale_missing_and_orphan_pages(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    assert docs.main([str(folder)]) == 0
    assert docs.stale(folder) == []
    assert docs.main(["--check", str(folder)]) == 0

    rule = all_rules()[0]
    page = folder / f"{rule.name}.md"
    page.write_text(page.read_text(encoding="utf-8").replace(rule.summary, "an old summary"),
                    encoding="utf-8")
    (folder / docs.INDEX).unlink()
    (folder / "removed_rule.md").write_text("# LU999\n", encoding="utf-8")
    assert docs.stale(folder) == sorted([page.name, docs.INDEX, "removed_rule.md"])
    assert docs.main(["--check", str(folder)]) == 1

    assert docs.main([str(folder)]) == 0  # rewrites the two, removes the orphan
    assert docs.stale(folder) == []
    assert not (folder / "removed_rule.md").exists()
