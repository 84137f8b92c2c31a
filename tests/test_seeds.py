"""Seed 001 (Linen + flax.optim) upgraded must behave like seed 000 (Linen + optax).

The code blocks of seed 001 (``fixtures/seeds/managing_state_001.rst``, a copy of
``shared/seeds/001_*.txt``) are extracted as they are, upgraded with every rule,
run on current flax/optax, and their trained numbers compared with seed 000's
code (``fixtures/seeds/managing_state_000.py``) run on the same set-up.
"""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from linen_upgrade.config import Config
from linen_upgrade.pipeline import rewrite_text
from linen_upgrade.registry import all_rules
from linen_upgrade.verify.program import compare_outputs

from conftest import FIXTURES

SEEDS = FIXTURES / "seeds"
# what each section prints once trained (legacy spelling: the upgrade rewrites it too)
REPORT = {
    "1": "print(jax.tree_util.tree_leaves(optimizer.target), jax.tree_util.tree_leaves(state))\n",
    "2": "print(loss, jax.tree_util.tree_leaves(optimizer.target), jax.tree_util.tree_leaves(state))\n",
}


def _sections() -> dict[str, str]:
    """The ``testsetup``/``testcode`` blocks, one program per ``testsetup``."""
    text = SEEDS.joinpath("managing_state_001.rst").read_text()
    blocks = re.findall(r"^\.\. (testsetup|testcode)::\n\n((?:(?:  .*)?\n)+)", text, flags=re.MULTILINE)
    sections: list[list[str]] = []
    for kind, body in blocks:
        if kind == "testsetup":
            sections.append([])
        sections[-1].append(textwrap.dedent(body))
    return {str(i + 1): "\n".join(parts) for i, parts in enumerate(sections)}


@pytest.mark.parametrize("section", ["1", "2"])
def test_seed_001_upgraded_behaves_like_seed_000(section, tmp_path):
    legacy = _sections()[section] + REPORT[section]
    assert "from flax import optim" in legacy and "variables.pop('params')" in legacy
    result = rewrite_text(legacy.encode(), "seed001.py", Config(), [r.id for r in all_rules()])
    assert result.error is None and result.new is not None
    upgraded = result.new.decode()
    code = "\n".join(line.split("#")[0] for line in upgraded.splitlines())
    assert not re.search(r"\boptim\b|\.pop\('params'\)", code), upgraded  # flax.optim and FrozenDict.pop gone
    assert result.findings == [], result.findings
    path = tmp_path / "seed001_upgraded.py"
    path.write_text(upgraded)
    got = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-3000:]
    want = subprocess.run([sys.executable, str(SEEDS / "managing_state_000.py"), section],
                          capture_output=True, text=True, timeout=300)
    assert want.returncode == 0, want.stderr[-3000:]
    compared = compare_outputs(want.stdout, got.stdout, rtol=1e-6, atol=1e-7)
    assert compared.status == "ok" and not compared.mismatches, (compared.mismatches, got.stdout)
