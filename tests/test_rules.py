"""Every rule's inline examples and every fixture pair, plus registry facts."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import libcst as cst
import pytest

from linen_upgrade.config import Config
from linen_upgrade.pipeline import rewrite_text
from linen_upgrade.registry import all_rules
from linen_upgrade.rule import Example, NoChange, quote, todo_line

from conftest import FIXTURES, ROOT

ALL_IDS = [r.id for r in all_rules()]


def _rewrite(src: str, ids: list[str] = ALL_IDS) -> str:
    result = rewrite_text(src.encode("utf-8"), "example.py", Config(), ids)
    assert result.error is None, result.error
    return result.new.decode("utf-8") if result.new is not None else src


def _cases():
    for rule in all_rules():
        for i, ex in enumerate(rule.examples):
            yield pytest.param(rule, ex, id=f"{rule.id}-{ex.name or i}")


@pytest.mark.parametrize("rule,example", list(_cases()))
def test_inline_example(rule, example):
    if isinstance(example, Example):
        assert _rewrite(example.before, [rule.id]) == example.after
        assert _rewrite(example.after, [rule.id]) == example.after, "not idempotent"
        compile(example.after, "after.py", "exec")
    else:
        assert isinstance(example, NoChange)
        assert _rewrite(example.code, ALL_IDS) == example.code


FIXTURE_PAIRS = sorted(FIXTURES.glob("rules/*/*.in.py"))


@pytest.mark.parametrize("path", FIXTURE_PAIRS, ids=lambda p: f"{p.parent.name}/{p.name[:-6]}")
def test_fixture_pair(path: Path, regen: bool):
    expected_path = path.with_name(path.name[: -len(".in.py")] + ".out.py")
    got = _rewrite(path.read_text(encoding="utf-8"))
    if regen:
        expected_path.write_text(got, encoding="utf-8")
    assert expected_path.exists(), f"missing {expected_path.name}"
    assert got == expected_path.read_text(encoding="utf-8")
    compile(got, str(expected_path), "exec")


@pytest.mark.parametrize("path", FIXTURE_PAIRS, ids=lambda p: f"{p.parent.name}/{p.name[:-6]}")
def test_fixture_idempotent(path: Path):
    once = _rewrite(path.read_text(encoding="utf-8"))
    assert _rewrite(once) == once


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("modern/*.py")), ids=lambda p: p.name)
def test_modern_code_untouched(path: Path):
    result = rewrite_text(path.read_bytes(), str(path), Config(), ALL_IDS)
    assert result.error is None
    assert result.new is None or result.new == path.read_bytes()
    assert result.findings == []


def test_registry_ids_unique_and_documented():
    rules = all_rules()
    assert len({r.id for r in rules}) == len(rules)
    for r in rules:
        assert re.fullmatch(r"LU\d{3}", r.id)
        assert r.summary and r.__doc__ or sys.modules[r.__module__].__doc__
        assert any(isinstance(e, Example) for e in r.examples), f"{r.id} has no Example"
        assert (FIXTURES / "rules" / r.name).is_dir(), f"fixtures/rules/{r.name}/ missing"


def test_readme_rule_table_is_current():
    table = subprocess.run([sys.executable, "-m", "linen_upgrade.cli", "rules", "--format", "markdown"],
                           capture_output=True, text=True, check=True).stdout.strip()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert table in readme, "README rule table is stale: paste `linen-upgrade rules --format markdown`"


def test_todo_comments_are_one_line():
    """Whatever a rule quotes, its TODO is one comment line LibCST accepts (a
    multi-line quote once left whole files legacy); quoted code is shortened."""
    line = todo_line("LU302", "passed to jax.pmap(\n    lambda o: o,\r\n\taxis_name='b')(...)")
    assert line == "# TODO(linen-upgrade): LU302 passed to jax.pmap( lambda o: o, axis_name='b')(...)"
    cst.EmptyLine(comment=cst.Comment(line))  # validates
    assert quote("jax.pmap(\n    lambda o: o,\n    axis_name='b')") == "jax.pmap(lambda o: o, axis_name='b')"
    assert quote("f(" + "x, " * 50 + ")", limit=20) == "f(x, x, x, x, x,..."
