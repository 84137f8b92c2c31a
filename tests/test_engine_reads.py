"""What a run reads of each file, counted (no timed assertions): a file that another file's rules
read too (``train.py`` follows ``models.create_model``) is parsed and scanned once, whether the
run names its files relative to the working folder or not."""
from __future__ import annotations

import collections
from pathlib import Path

import libcst
import pytest

from linen_upgrade import engine
from linen_upgrade.config import Config
from linen_upgrade.pipeline import run
from linen_upgrade.registry import RULES
from test_performance import MODELS, TRAIN


@pytest.mark.parametrize("relative", [True, False])
def test_a_file_read_by_another_files_rules_is_parsed_and_scanned_once(tmp_path: Path, monkeypatch,
                                                                        relative: bool):
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "train.py").write_text(TRAIN)
    monkeypatch.chdir(tmp_path)
    parses: collections.Counter = collections.Counter()
    scans: collections.Counter = collections.Counter()
    parse_module, facts_for = libcst.parse_module, engine._facts_for

    def counted_parse(source, *args, **kwargs):
        parses[source if isinstance(source, bytes) else source.encode()] += 1
        return parse_module(source, *args, **kwargs)

    def counted_facts(data, path, module_name):
        scans[Path(path).name] += 1
        return facts_for(data, path, module_name)

    monkeypatch.setattr(libcst, "parse_module", counted_parse)
    monkeypatch.setattr(engine, "_facts_for", counted_facts)
    files = [Path("models.py"), Path("train.py")] if relative else [tmp_path / "models.py", tmp_path / "train.py"]
    result = run(files, Config(), [i for i, _ in RULES], jobs=1)
    new = {Path(r.path).name: r.new for r in result.results}
    assert new["train.py"] is not None and b"models.create_model" in new["train.py"]  # it read models.py
    assert parses[MODELS.encode()] == 1 and parses[TRAIN.encode()] == 1
    assert scans == {"models.py": 1, "train.py": 1}
