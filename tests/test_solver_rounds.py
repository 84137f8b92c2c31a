"""The usage analysis's solver types again only the sites whose reads changed (``Analysis._fixed_point``,
``analysis.watched``): on every whole-program fixture and every model_apply input, each solve gives
the same ``env``, ``rets`` (keys in the same order) and untyped set as typing every site in every
round, the solver it replaced."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from linen_upgrade.analysis.watched import EVERY, Watched
from linen_upgrade.config import Config
from linen_upgrade.pipeline import run
from linen_upgrade.registry import RULES
from linen_upgrade.rules import _usage_analysis
from linen_upgrade.rules._usage_analysis import Analysis

FIXTURES = Path(__file__).parent.parent / "fixtures"


class _Every(Watched):
    """Every site reads everything: any change types every site again (the old solver)."""
    __slots__ = ("_seen",)

    @property  # type: ignore[override]
    def seen(self) -> set:
        return self._seen

    @seen.setter
    def seen(self, reads: set) -> None:
        reads.add(EVERY)
        self._seen = reads


def _compared(monkeypatch) -> list:
    solved: list = []
    fixed_point = Analysis._fixed_point

    def both(self: Analysis) -> set:
        env, rets = self.env, self.rets
        untyped = fixed_point(self)
        got = (untyped, list(self.env.items()), list(self.rets.items()))
        self.env, self.rets = env, rets
        monkeypatch.setattr(_usage_analysis, "Watched", _Every)
        try:
            everything = fixed_point(self)
        finally:
            monkeypatch.setattr(_usage_analysis, "Watched", Watched)
        assert got == (everything, list(self.env.items()), list(self.rets.items()))
        solved.append(len(got[1]))
        return untyped

    monkeypatch.setattr(Analysis, "_fixed_point", both)
    return solved


@pytest.mark.parametrize("name", ["programs", "model_apply"])
def test_solving_again_only_what_changed_matches_solving_everything(tmp_path: Path, monkeypatch, name: str):
    if name == "programs":
        for program in sorted((FIXTURES / "programs").iterdir()):
            if program.is_dir():
                shutil.copytree(program, tmp_path / program.name, ignore=shutil.ignore_patterns("*.txt", "*.json"))
    else:
        for case in sorted((FIXTURES / "rules" / "model_apply").glob("*.in.py")):
            folder = tmp_path / case.name.removesuffix(".in.py")
            folder.mkdir()
            shutil.copy(case, folder / "main.py")
    solved = _compared(monkeypatch)
    monkeypatch.chdir(tmp_path)
    for folder in sorted(p for p in tmp_path.iterdir() if p.is_dir()):
        run(sorted(folder.rglob("*.py")), Config(), [i for i, _ in RULES], jobs=1)
    assert len(solved) > 50 and sum(solved) > 500  # (the analyses ran, and typed something)
