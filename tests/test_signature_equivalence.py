"""Legacy apply signatures split by evidence (issue #4), proven numerically:
``*args``/``**kwargs`` only forwarded into submodules become attributes, and
parameters that are not the first positional one stay inputs when the body
or the call sites use them as arrays.  The legacy file is rewritten with no
hand edits and each module verified against the real flax 0.3.6 release
(outputs in train and eval mode, batch_stats, gradients; weights carried
over).  The rewrite itself, across files, is checked without the legacy
runtime."""
from __future__ import annotations

from pathlib import Path

import pytest

from linen_upgrade.config import Config
from linen_upgrade.pipeline import rewrite_text, run
from linen_upgrade.registry import all_rules

from conftest import FIXTURES, assert_verified, upgrade_and_verify

LEGACY = FIXTURES / "equivalence" / "signatures_legacy.py"
ALL_IDS = [r.id for r in all_rules()]

# module -> (inputs, tensor paths that prove the case was checked)
CASES = {
    "Forwarding": ([((2, 4), "float32")], {
        "params/DenseWrapper_0/Dense_0/kernel",  # **kwargs -> nn.Dense(**self.kwargs)
        "params/head/Dense_0/kernel",
        "params/BlockWrapper_0/Block_0/Dense_0/kernel",  # train= forwarded as a call argument
        "batch_stats/BlockWrapper_0/Block_0/BatchNorm_0/mean",
        "batch_stats/NormWrapper_0/BatchNorm_0/var",  # use_running_average=False in the dict
    }),
    "TwoInputs": ([((2, 4), "float32"), ((2, 3), "float32")], {  # a second positional input
        "params/Gated_0/Dense_0/kernel", "params/Context_0/Dense_1/kernel", "params/Dense_0/kernel",
    }),
    "ArgsForwarding": ([((2, 6, 6, 3), "float32")], {
        "params/ConvArgs_0/Conv_0/kernel",  # *args -> nn.Conv(6, *self.args, **self.kwargs)
        "params/DenseArgs_0/Dense_0/kernel",
        "params/BlockArgs_0/Block_0/Dense_0/kernel",  # into a user module, train= forwarded
        "batch_stats/BlockArgs_0/Block_0/BatchNorm_0/mean",
        "params/DenseBoth_0/Dense_0/bias",  # precision by name into kwargs, bias_init ones
    }),
    # list/dict/set defaults -> field(default_factory=...), by default and given (issue 16)
    "MutableOverride": ([((2, 4), "float32")], {
        "params/defaults/Dense_2/kernel", "params/given/Dense_1/kernel", "params/given/Dense_0/bias"}),
    # conflicting evidence decided by the stronger kind: width and dtype become attributes (issue 12)
    "Evidence": ([((2, 4), "float32")], {
        "params/CastHead_0/Dense_0/kernel", "params/Dense_0/bias", "params/Affine_0/bias"}),
}


def test_rewrite_splits_by_evidence():
    result = rewrite_text(LEGACY.read_bytes(), str(LEGACY), Config(), ALL_IDS)
    assert result.error is None and result.new is not None
    assert result.findings == [], result.findings
    new = result.new.decode()
    assert "    kwargs: Any = FrozenDict()\n" in new
    assert "return nn.Dense(**self.kwargs)(x)" in new
    assert "return Block(**self.kwargs)(x, **kwargs) * self.scale" in new
    assert "kwargs: Any = FrozenDict({'use_running_average': False})" in new
    assert "x = BlockWrapper(2.0, kwargs={'features': 5})(x, train=train)" in new
    assert "x = DenseWrapper(kwargs={'features': 6, 'use_bias': False})(x)" in new
    assert "def __call__(self, x, gate):" in new
    assert "def __call__(self, x, other):" in new
    assert "x = Shift()(x, offset=self.width)" in new
    assert "x = CastHead(features=self.width, dtype=self.dtype)(x)" in new
    assert "return jnp.asarray(nn.Dense(self.features, dtype=self.dtype)(x), self.dtype)" in new
    assert "h = Mix(0.25)(h, nn.Dense(self.features)(x))" in new
    assert "return Context()(h, context)" in new
    assert "    args: Any = ()\n" in new
    assert "return nn.Dense(*self.args)(x)" in new
    assert "return nn.Conv(6, *self.args, **self.kwargs)(x)" in new
    assert "x = ConvArgs(args=((3, 3), (2, 2), 'SAME'), kwargs={'use_bias': False})(x)" in new
    assert "x = DenseArgs(args=(8, False, jnp.float32))(x)" in new
    assert "x = BlockArgs(args=(5,))(x, train=train)" in new
    assert ("return DenseBoth(args=(3, True, jnp.float32), kwargs={'precision': None, "
            "'bias_init': nn.initializers.ones})(x)") in new
    again = rewrite_text(result.new, str(LEGACY), Config(), ALL_IDS)
    assert again.error is None and again.new is None, "not idempotent"


LAYERS = '''\
from flax import nn


class Mix(nn.Module):
    def apply(self, x, other, ratio):
        return x * ratio + other * (1.0 - ratio)


class Wrapper(nn.Module):
    def apply(self, x, **kwargs):
        return nn.Dense(x, **kwargs)
'''

MODELS = '''\
from flax import nn

from layers import Mix, Wrapper


class Net(nn.Module):
    def apply(self, x):
        h = Wrapper(x, features=3, bias=False)
        return Mix(h, x, 0.5)
'''


def test_call_sites_in_another_file_decide(tmp_path: Path):
    """``Mix``'s body says nothing about ``other`` and ``ratio``; the call in
    ``models.py`` (an array, a literal) decides, for both files alike."""
    (tmp_path / "layers.py").write_text(LAYERS)
    (tmp_path / "models.py").write_text(MODELS)
    result = run(sorted(tmp_path.glob("*.py")), Config(), ALL_IDS, jobs=1)
    out = {}
    for r in result.results:
        assert r.error is None, r.error
        assert r.findings == [], r.findings
        out[Path(r.path).name] = (r.new or r.original).decode()
    assert "class Mix(nn.Module):\n    ratio: Any\n" in out["layers.py"]
    assert "def __call__(self, x, other):" in out["layers.py"]
    assert "return nn.Dense(**self.kwargs)(x)" in out["layers.py"]
    assert "h = Wrapper(kwargs={'features': 3, 'use_bias': False})(x)" in out["models.py"]
    assert "return Mix(0.5)(h, x)" in out["models.py"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return upgrade_and_verify(LEGACY, CASES, tmp_path_factory)


@pytest.mark.legacy
@pytest.mark.parametrize("module", sorted(CASES))
def test_rewritten_signatures_match_legacy(module, results):
    assert_verified(results[module], CASES[module][1])
