"""LU102 + LU103 on .shared()/.partial() locals that fix call inputs, proven
on flax 0.3.6: the rewritten modules (inputs moved to every call of the
instance, attributes to the constructor) agree with legacy in train and eval
mode, batch_stats of the shared layer included."""
from __future__ import annotations

import pytest

from conftest import FIXTURES, assert_verified, upgrade_and_verify

pytestmark = pytest.mark.legacy

LEGACY = FIXTURES / "equivalence" / "fixed_inputs_legacy.py"

CASES = {
    # one shared layer called in a loop with a fixed mask and train flag
    "TiedStack": ([((2, 3, 4), "float32")], {"params/layer/Dense_0/kernel", "batch_stats/layer/BatchNorm_0/mean"}),
    # a shared module fixing train, called on two inputs
    "TwoTowers": ([((2, 3, 4), "float32")], {"params/tower/layer/Dense_0/kernel",
                                             "batch_stats/tower/layer/BatchNorm_0/var"}),
    # the mask set again (before the definition) in a branch
    "Prefixed": ([((2, 3, 4), "float32")], {"params/layer/Dense_0/kernel", "batch_stats/layer/BatchNorm_0/var"}),
    # a partial fixing the mask and train flag, two instances
    "Blocks": ([((2, 3, 4), "float32")], {"params/first/Dense_0/kernel", "batch_stats/Layer_0/BatchNorm_0/mean"}),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    # upgrade_file: every rule, no finding left (no TODO at a definition or a call)
    return upgrade_and_verify(LEGACY, CASES, tmp_path_factory)


@pytest.mark.parametrize("module", sorted(CASES))
def test_fixed_inputs_moved_to_calls_match_legacy(module, results):
    assert_verified(results[module], CASES[module][1])
