import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "verify"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def legacy_root():
    """The legacy flax 0.3.6 runtime, installed into the cache on first use (needs PyPI then)."""
    from linen_upgrade.verify import legacy_env
    return legacy_env.ensure()


@pytest.fixture(scope="session")
def fixtures_dir():
    return FIXTURES
