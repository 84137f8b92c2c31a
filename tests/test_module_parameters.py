"""A module class held in an apply parameter (``block_cls=Block``,
``conv=nn.Conv``, ``Net.partial(block_cls=...)``) is called like the class
after the upgrade: proven on flax 0.3.6 with weights carried over."""
from __future__ import annotations

import pytest

from conftest import FIXTURES, assert_verified, upgrade_and_verify

pytestmark = pytest.mark.legacy

LEGACY = FIXTURES / "equivalence" / "module_parameters_legacy.py"

CASES = {
    "Net": ([((2, 6, 6, 4), "float32")], {"params/Block_0/conv/kernel", "params/Block_1/conv/bias"}),
    # one parameter given two blocks whose calls split alike (ResNet18/ResNet50): both convert
    "Net18": ([((2, 6, 6, 4), "float32")], {"params/Block_0/conv/kernel"}),
    "Net50": ([((2, 6, 6, 4), "float32")], {"params/Bottleneck_0/expand/kernel", "params/Bottleneck_1/conv/bias"}),
    "Wider": ([((2, 6, 6, 4), "float32")], {"params/Wide_0/wide/kernel"}),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return upgrade_and_verify(LEGACY, CASES, tmp_path_factory)


@pytest.mark.parametrize("module", sorted(CASES))
def test_module_class_parameters_match_legacy(module, results):
    assert_verified(results[module], CASES[module][1])
