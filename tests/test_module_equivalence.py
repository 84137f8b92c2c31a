"""The module rules, proven numerically: a legacy file with every converted
built-in layer is rewritten by linen-upgrade (no hand edits) and each module
is verified against the real flax 0.3.6 release (outputs in train and eval
mode, batch_stats updates, gradients), weights carried over with keys.py.
"""
from __future__ import annotations

import pytest

from conftest import FIXTURES, assert_verified, upgrade_and_verify

pytestmark = pytest.mark.legacy

LEGACY = FIXTURES / "equivalence" / "builtins_legacy.py"

# module -> (inputs, tensor paths that prove each built-in was checked)
CASES = {
    "Vision": ([((2, 8, 8, 3), "float32")], {
        "params/stem/kernel",  # Conv through a .partial
        "params/Block_0/Conv_0/kernel",  # a user module called positionally
        "batch_stats/Block_0/BatchNorm_0/mean",
        "params/ConvTranspose_0/kernel",
        "params/GroupNorm_0/scale",
        "params/MultiHeadDotProductAttention_0/query/kernel",  # legacy SelfAttention
        "params/MultiHeadDotProductAttention_1/out/kernel",
        "params/LayerNorm_0/bias",
        "params/DenseGeneral_0/kernel",
        "params/Dense_0/kernel",
    }),
    "ResNet": ([((2, 8, 8, 3), "float32")], {  # partials passed into a block and called there
        "params/ResidualBlock_0/conv_proj/kernel", "params/ResidualBlock_1/Conv_1/kernel",
        "batch_stats/ResidualBlock_1/BatchNorm_1/var", "params/bn_init/scale",
    }),
    "Stage": ([((2, 6, 6, 3), "float32")], {  # partials through a block class held in block_cls
        "params/WideBlock_1/narrow/kernel", "batch_stats/WideBlock_0/bn/mean"}),
    "AutoEncoder": ([((2, 16), "float32")], {  # a shared submodule built in setup()
        "params/decoder/Dense_1/kernel", "params/encoder/latents/kernel"}),
    "CustomInit": ([((2, 4), "float32")], {"params/Dense_0/kernel"}),  # a two-argument initializer
    "MaskedAttention": ([((2, 5, 4), "float32")], {  # causal and padding masks -> mask=
        "params/MultiHeadDotProductAttention_2/out/kernel"}),
    "VariableCausalMask": ([((2, 5, 4), "float32")], {  # causal_mask=<a variable>: True and False
        "params/CausalBlock_0/MultiHeadDotProductAttention_1/out/kernel",
        "params/CausalBlock_1/MultiHeadDotProductAttention_0/query/kernel"}),
    "ConvRecurrent": ([((2, 6, 6, 3), "float32")], {  # ConvLSTM.initialize_carry -> ConvLSTMCell's
        "params/ConvLSTMCell_0/ih/kernel", "params/ConvLSTMCell_1/hh/kernel"}),
    "AxialAttention": ([((2, 3, 4, 4), "float32")], {  # attention_axis=(1, 2) -> flattened axes
        "params/MultiHeadDotProductAttention_0/query/kernel", "params/MultiHeadDotProductAttention_1/key/kernel",
        "params/MultiHeadDotProductAttention_2/out/kernel"}),
    "PackedAttention": ([((2, 6, 4), "float32")], {  # segmentation -> make_attention_mask(.., equal)
        "params/MultiHeadDotProductAttention_0/out/kernel"}),
    "Tokens": ([((2, 5), "int32")], {"params/embed/embedding"}),  # Embed through .shared
    "Recurrent": ([((3, 4), "float32")], {
        "params/LSTMCell_0/hi/kernel", "params/OptimizedLSTMCell_0/ii/kernel", "params/GRUCell_0/hn/bias",
    }),
    # @nn.module functions calling each other (LU107)
    "FnStack": ([((2, 5), "float32")], {"params/GatedDense_1/Dense_1/kernel", "params/LayerNorm_0/scale"}),
    # a helper making .shared layers from hyper-parameters -> built once in setup() (issue 16)
    "Tower": ([((2, 4), "float32")], {"params/d0/kernel", "params/d1/bias"}),
    # ... and its module method, on hyper-parameters given through .shared
    "TowerBoth": ([((2, 4), "float32")], {"params/tower/d0/kernel", "params/tower/d2/kernel"}),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every module verified in one legacy process (the file is imported once)."""
    return upgrade_and_verify(LEGACY, CASES, tmp_path_factory)


@pytest.mark.parametrize("module", sorted(CASES))
def test_rewritten_builtins_match_legacy(module, results):
    assert_verified(results[module], CASES[module][1])
