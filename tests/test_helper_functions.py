"""Legacy module calls in plain functions that an apply calls (LU102/LU103),
and module definitions returned by functions of the run, in the same file or
another one (LU102 at the calls).  Proven on flax 0.3.6: the rewritten module
agrees with legacy, its weights carried over by the legacy call order
(fixtures/programs/helper_functions runs a whole two-file program); the
cross-file pairs in fixtures/cross_file/."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES, assert_verified, upgrade_file, verify_cases
from linen_upgrade.config import Config
from linen_upgrade.pipeline import run
from linen_upgrade.registry import all_rules

LEGACY = FIXTURES / "equivalence" / "helper_functions_legacy.py"
CROSS_FILE = sorted(p for p in (FIXTURES / "cross_file").iterdir() if p.is_dir())


@pytest.mark.legacy
def test_submodules_made_in_helper_functions_match_legacy(tmp_path):
    # upgrade_file: every rule, no finding left
    results = verify_cases(LEGACY, upgrade_file(LEGACY, tmp_path), {"Net": ([((2, 6, 6, 3), "float32")], set())})
    # Conv_1/Conv_2 and BatchNorm_0 come from stack(), Dense_1/Dense_2 from head(): legacy's
    # Conv_1, BatchNorm_2, Conv_3, Dense_6, Dense_7 (one counter) carried to the per-class names
    assert_verified(results["Net"], {"params/Conv_2/kernel", "batch_stats/BatchNorm_0/var", "params/norm/scale",
                                     "batch_stats/norm/mean", "params/Dense_1/kernel", "params/Dense_2/kernel"})


def _run(work: Path) -> dict[str, str]:
    result = run(sorted(work.glob("*.py")), Config(), [r.id for r in all_rules()], jobs=1)
    out = {}
    for r in result.results:
        assert r.error is None, r.error
        out[Path(r.path).name] = (r.new or r.original).decode()
    return out


@pytest.mark.parametrize("folder", CROSS_FILE, ids=lambda p: p.name)
def test_cross_file_pair(folder: Path, tmp_path: Path, regen: bool):
    """Each ``<file>.in.py`` of the folder is upgraded in one run with the others, to ``<file>.out.py``."""
    for src in folder.glob("*.in.py"):
        shutil.copy(src, tmp_path / src.name.replace(".in.py", ".py"))
    got = _run(tmp_path)
    for name, text in got.items():
        expected = folder / name.replace(".py", ".out.py")
        if regen:
            expected.write_text(text, encoding="utf-8")
        assert text == expected.read_text(encoding="utf-8"), name
        compile(text, str(expected), "exec")
    # a second run over the output changes nothing (a file left with nothing legacy is not even read)
    again = tmp_path / "again"
    again.mkdir()
    for name, text in got.items():
        (again / name).write_text(text)
    second = _run(again)
    assert second == {name: text for name, text in got.items() if name in second}
