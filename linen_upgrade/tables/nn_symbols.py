"""Every public legacy ``flax.nn`` symbol: its ``flax.linen`` name, or why none.

One row per old symbol (canonical spelling, see ``resolve.canonical``).
``linen`` is the attribute of ``flax.linen`` that replaces it under the same
call convention *as far as the import is concerned*; ``None`` means there is
no drop-in name, and ``guideline`` says what a person (or a later rule) does.
Facts: ``shared/reference/api_mapping.md`` §2.1-2.2.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NnSymbol:
    linen: str | None
    guideline: str = ""


_SAME = NnSymbol
_LAYERS = [
    "Module", "Dense", "DenseGeneral", "Conv", "ConvTranspose", "Embed", "BatchNorm",
    "LayerNorm", "GroupNorm", "MultiHeadDotProductAttention", "SelfAttention",
    "LSTMCell", "OptimizedLSTMCell", "GRUCell", "dot_product_attention",
    "max_pool", "avg_pool", "pool", "initializers", "attention", "linear",
    # Linen names the module rules emit through the legacy alias (``nn.compact``)
    "compact", "Dropout", "ConvLSTMCell", "make_causal_mask", "make_attention_mask", "combine_masks",
]
_ACTIVATIONS = [
    "celu", "elu", "gelu", "glu", "leaky_relu", "log_sigmoid", "log_softmax", "relu",
    "sigmoid", "soft_sign", "softmax", "softplus", "swish", "silu", "tanh", "selu",
    "hard_tanh", "relu6", "hard_sigmoid", "hard_swish", "normalize", "one_hot",
]

# legacy sub-modules of plain functions used as objects (``getattr(flax.nn.activation, name)``):
# flax.linen has each under the same name, with every function and its call convention
_FUNCTION_NAMESPACES = ["activation", "pooling"]
_COPIES = "linen_upgrade/tables/nn_functions.py"

NN_SYMBOLS: dict[str, NnSymbol] = {
    **{f"flax.nn.{name}": _SAME(name) for name in _LAYERS + _ACTIVATIONS + _FUNCTION_NAMESPACES},
    "flax.nn.ConvLSTM": NnSymbol("ConvLSTMCell", "renamed; `features` is an attribute"),
    # module-level initializers of flax.nn.linear that flax.nn does not re-export: the same
    # jax initializers (lecun_normal; variance_scaling(1.0, 'fan_in', 'normal', out_axis=0))
    "flax.nn.default_kernel_init": NnSymbol("linear.default_kernel_init"),
    "flax.nn.default_embed_init": NnSymbol("linear.default_embed_init"),
    # private in both, the same code (lax dimension numbers for channels-last inputs, HWIO kernels)
    "flax.nn._conv_dimension_numbers": NnSymbol("linear._conv_dimension_numbers"),
    "flax.nn.dropout": NnSymbol(None, "the function became the module `nn.Dropout(rate, deterministic=...)(x)`"),
    "flax.nn.module": NnSymbol(None, "write a class with `@nn.compact def __call__`"),
    "flax.nn.module_method": NnSymbol(None, "a plain method, called with `apply(..., method=M.f)`"),
    "flax.nn.Model": NnSymbol(None, "pass params explicitly: `M(...).apply({'params': params}, x)`"),
    "flax.nn.Collection": NnSymbol(None, "a variable collection: `variables['batch_stats']`"),
    "flax.nn.stateful": NnSymbol(None, "`apply(..., mutable=['batch_stats'])` returns the updated state"),
    "flax.nn.stochastic": NnSymbol(None, "pass `rngs={'dropout': rng}` to `init`/`apply`"),
    "flax.nn.make_rng": NnSymbol(None, "`self.make_rng('dropout')` inside a module"),
    "flax.nn.is_stochastic": NnSymbol(None, "`self.has_rng('dropout')` inside a module"),
    "flax.nn.is_stateful": NnSymbol(None, "`self.is_mutable_collection('batch_stats') or 'batch_stats' in self.variables` in a module"),
    "flax.nn.get_state": NnSymbol(None, "no Linen equivalent: read the variables you passed to `apply`"),
    "flax.nn.capture_module_outputs": NnSymbol(
        None, "`apply(..., capture_intermediates=True, mutable=['intermediates'])`"),
    "flax.nn.ModuleState": NnSymbol(None, "`nn.Variable`"),
    "flax.nn.TransparentModule": NnSymbol(None, "internal helper with no Linen equivalent"),
    "flax.nn.TruncatedModule": NnSymbol(None, "use `capture_intermediates`"),
    "flax.nn.Cache": NnSymbol(None, "`MultiHeadDotProductAttention(decode=True)` and the `cache` collection"),
    # LU106 copies these three into the file that uses them (tables/nn_functions.py), where it can
    "flax.nn.make_padding_mask": NnSymbol(None, f"copy flax 0.3.6's function ({_COPIES}); "
                                          "`nn.make_attention_mask(query_mask, key_mask)` is the same "
                                          "for one attention axis"),
    "flax.nn._make_causal_mask": NnSymbol(None, f"copy flax 0.3.6's function ({_COPIES})"),
    "flax.nn._invert_perm": NnSymbol(None, f"copy flax 0.3.6's function ({_COPIES})"),
    "flax.nn._CacheEntry": NnSymbol(None, "the `cache` collection of `decode=True` attention"),
    "flax.nn.scan_in_dim": NnSymbol(None, "`flax.jax_utils.scan_in_dim`"),
    "flax.nn.utils": NnSymbol(None, "internal helpers with no Linen equivalent"),
    "flax.nn.base": NnSymbol(None, "import from `flax.linen`"),
}

# legacy sub-modules that were namespaces of ``flax.nn`` itself: importing one
# (``from flax.nn import base``) is importing ``flax.linen``
NN_NAMESPACE_MODULES = frozenset({
    "flax.nn.base", "flax.nn.linear", "flax.nn.normalization", "flax.nn.recurrent",
    "flax.nn.activation", "flax.nn.pooling",
})
