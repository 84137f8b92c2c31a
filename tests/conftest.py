from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--regen", action="store_true",
                     help="rewrite fixtures/rules/*/*.out.py from the current rules (review the diff!)")


@pytest.fixture
def regen(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--regen"))


def upgrade_file(legacy: Path, out_dir: Path) -> Path:
    """``legacy`` rewritten by every rule, with nothing left to a person, written into ``out_dir``."""
    from linen_upgrade.config import Config
    from linen_upgrade.pipeline import rewrite_text
    from linen_upgrade.registry import all_rules

    result = rewrite_text(legacy.read_bytes(), str(legacy), Config(), [r.id for r in all_rules()])
    assert result.error is None and result.new is not None
    assert result.findings == [], result.findings
    path = out_dir / f"{legacy.stem}_upgraded.py"
    path.write_bytes(result.new)
    return path


def verify_cases(legacy: Path, upgraded: Path, cases: dict) -> dict:
    """Every module of ``cases`` (name -> (inputs, paths)) verified in one legacy process."""
    from linen_upgrade.verify import legacy_env
    from linen_upgrade.verify.module import verify_modules

    legacy_env.ensure()
    return verify_modules(str(legacy), str(upgraded), {m: inputs for m, (inputs, _) in cases.items()},
                          timeout=600)


def upgrade_and_verify(legacy: Path, cases: dict, tmp_path_factory) -> dict:
    """``legacy`` upgraded (nothing left to a person) and each module of ``cases`` verified against it."""
    return verify_cases(legacy, upgrade_file(legacy, tmp_path_factory.mktemp("upgraded")), cases)


def assert_verified(result, must_cover: set[str]) -> None:
    """The module agreed with legacy on every row, and the rows cover ``must_cover``."""
    assert result.status == "ok", (result.reason, result.detail, [
        (r.mode, r.kind, r.path, r.max_abs, r.note) for r in result.failed_rows])
    paths = {r.path for r in result.rows}
    assert must_cover <= paths, must_cover - paths


def nested(flat: dict, prefix: str) -> dict:
    """``{'params/a/b': v}`` -> ``{'a': {'b': v}}`` for the keys under ``prefix``."""
    out: dict = {}
    for key, value in flat.items():
        if key.startswith(prefix + "/"):
            *parents, leaf = key[len(prefix) + 1:].split("/")
            node = out
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
    return out
