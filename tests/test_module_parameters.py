"""A module class held in an apply parameter (``block_cls=Block``,
``conv=nn.Conv``, ``Net.partial(block_cls=...)``) is called like the class
after the upgrade: proven on flax 0.3.6 with weights carried over."""
from __future__ import annotations

import subprocess
import sys

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
    # a partial fixing train=, handed to a function defined in apply that calls it
    "DenseStack": ([((2, 5), "float32")], {"params/Growth_2/Dense_0/kernel", "batch_stats/Growth_1/BatchNorm_0/var"}),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return upgrade_and_verify(LEGACY, CASES, tmp_path_factory)


@pytest.mark.parametrize("module", sorted(CASES))
def test_module_class_parameters_match_legacy(module, results):
    assert_verified(results[module], CASES[module][1])


REJECTED = FIXTURES / "rules" / "submodule_calls" / "keyword_legacy_rejected"
RAISES = """
import jax, jax.numpy as jnp
exec(open({path!r}).read())
try:
    {init}
except TypeError as e:
    print("TypeError:" + str(e).split("()", 1)[1])
"""


def test_keyword_legacy_rejected_is_rejected_by_linen_too(tmp_path):
    """A keyword the module's apply does not take (``cache=None`` to a block without
    one): legacy raised TypeError at that call, and the rewritten call raises it too."""
    from linen_upgrade.verify import runner
    legacy = tmp_path / "legacy.py"
    legacy.write_text(RAISES.format(path=str(REJECTED.with_suffix(".in.py")),
                                    init="Decoder.init_by_shape(jax.random.PRNGKey(0), [((1, 3), jnp.float32)])"))
    linen = tmp_path / "linen.py"
    linen.write_text(RAISES.format(path=str(REJECTED.with_suffix(".out.py")),
                                   init="Decoder().init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))"))
    old = runner.run_legacy(str(legacy), timeout=300)
    new = subprocess.run([sys.executable, str(linen)], capture_output=True, text=True, timeout=300)
    assert old.ok and new.returncode == 0, (old.stderr, new.stderr)
    assert old.stdout.strip() == new.stdout.strip() == "TypeError: got an unexpected keyword argument 'cache'"
