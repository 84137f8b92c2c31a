"""The cases of bench/real_models.py are well-formed data (the bench itself
is not run in CI: it needs the corpus and takes minutes)."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from real_models_cases import CASES, FOLDERS, Case  # noqa: E402

from linen_upgrade.verify.module import parse_input_spec  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"


def test_cases_cover_enough_classes_and_folders():
    assert len(CASES) >= 25
    assert len({c.folder for c in CASES}) >= 5
    assert len({c.name for c in CASES}) == len(CASES)  # names are unique


def test_each_case_is_well_formed():
    for c in CASES:
        assert isinstance(c, Case) and c.folder in FOLDERS, c
        assert c.file.endswith(".py") and not c.file.startswith("/"), c
        assert c.module.isidentifier(), c
        shapes = [parse_input_spec(s) for s in c.inputs]
        assert shapes and all(len(shape) >= 1 and shape[0] >= 2 for shape, _ in shapes), c  # a batch of 2+
        assert json.loads(json.dumps(c.kwargs)) == c.kwargs, c  # JSON values, as verify takes them
        assert c.roots and all(not r.startswith("/") for r in c.roots), c


def test_case_files_exist_in_the_corpus_when_it_is_there():
    if not CORPUS.is_dir():
        pytest.skip("no ../shared/corpus beside the project (shared material, not in a plain checkout)")
    missing = [c.name for c in CASES if not (CORPUS / c.folder / c.file).is_file()]
    assert not missing


def test_verdict_of_each_kind_of_result():
    from real_models import verdict

    from linen_upgrade.verify.module import ModuleResult, TensorRow
    from linen_upgrade.verify.runner import REASON_UNCHECKED

    def row(ok=True, max_abs=1e-7, unchecked=""):
        return TensorRow("train", "grad", "params/w", [2], max_abs, max_abs, ok, unchecked=unchecked)

    assert verdict(ModuleResult("M", "ok", rows=[row()]))[0] == "OK"
    # too little checked comes as a "differ" whose rows all agree
    unchecked = ModuleResult("M", "differ", reason=REASON_UNCHECKED, rows=[row(), row(unchecked="zero")])
    assert verdict(unchecked)[0] == "NOT CHECKED"
    assert verdict(ModuleResult("M", "error", reason="legacy side failed"))[0] == "FAILS"
    status, max_abs, _, reason = verdict(ModuleResult("M", "differ", rows=[row(), row(ok=False, max_abs=0.5)]))
    assert (status, max_abs) == ("DIFFER", 0.5) and reason.startswith("1 of 2 rows differ")
