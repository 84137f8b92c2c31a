"""Every legacy built-in ``flax.nn`` module: how its ``apply`` call splits.

One row per old module.  ``legacy`` is the legacy ``apply`` parameter order
(read from flax 0.3.6's source); ``inputs`` are the parameters that stay
call arguments in Linen; everything else becomes a constructor attribute.
``linen_fields`` is the Linen dataclass field order (a positional legacy
argument stays positional only while the two orders agree); ``renames`` map
legacy keywords to Linen ones; ``explicit`` are Linen attributes whose
default changed (legacy ``False``, Linen ``None``): the legacy value is passed
when the call omitted it.  ``manual`` keywords have no safe automatic form.
Facts: ``shared/reference/api_mapping.md`` §2.2-2.4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_INIT = ("kernel_init", "bias_init")


@dataclass(frozen=True)
class BuiltinModule:
    linen: str
    legacy: tuple[str, ...]
    inputs: tuple[str, ...]
    linen_fields: tuple[str, ...]
    linen_call: tuple[str, ...]
    renames: dict[str, str] = field(default_factory=dict)
    explicit: dict[str, str] = field(default_factory=dict)
    manual: dict[str, str] = field(default_factory=dict)
    # Linen cells need ``features``, which legacy cells read off the carry:
    # how to recover it from the carry expression (``{carry}`` is substituted)
    features_from_carry: str | None = None
    # how the legacy static ``initialize_carry(rng, batch_dims, size)`` reads ``size``:
    # "features" (an int: the hidden size) or "shape" (ConvLSTM: spatial dims + features)
    carry_size: str | None = None
    # legacy parameters without a default: a call that does not bind them all
    # is not a legacy call (it is already Linen: ``nn.Dense(3)``)
    required: int = 2
    # legacy parameters that take arrays though they are no Linen call input (attention masks
    # become one ``mask=``): an apply parameter passed there is a call argument (``index.py``)
    arrays: tuple[str, ...] = ()
    # a ``.partial`` of another built-in: a call giving a keyword it fixed (legacy call keywords
    # override a partial's) calls that built-in: keyword -> its row
    unfixed: dict[str, str] = field(default_factory=dict)


_BIAS = {"bias": "use_bias"}
_BIAS_SCALE = {"bias": "use_bias", "scale": "use_scale"}
_CELL = ("carry", "inputs", "gate_fn", "activation_fn", "kernel_init", "recurrent_kernel_init", "bias_init")
_CELL_FIELDS = ("features", "gate_fn", "activation_fn", "kernel_init", "recurrent_kernel_init", "bias_init")
_ATTENTION_MANUAL = {
    # LU102 converts a literal attention_axis (ATTENTION_AXES); this is for the other forms
    "attention_axis": "Linen attends over the axis before the features only: flatten the attention axes "
                      "between batch and features into one (x.reshape) and reshape the output back",
    # causal_mask=True and padding masks are converted by LU102 (ATTENTION_MASKS); these
    # messages are for the forms it cannot convert
    "causal_mask": "build `mask=nn.make_causal_mask(...)` and pass it at call time",
    "padding_mask": "build `mask=nn.make_attention_mask(q_mask, kv_mask)` and pass it at call time",
    "key_padding_mask": "build `mask=nn.make_attention_mask(q_mask, kv_mask)` and pass it at call time",
    "segmentation": "build `mask=nn.make_attention_mask(seg_q, seg_kv, jnp.equal)` by hand",
    "key_segmentation": "build `mask=nn.make_attention_mask(seg_q, seg_kv, jnp.equal)` by hand",
    "cache": "use `decode=True` and the 'cache' collection",
    # Linen 0.12 calls attention_fn(query, key, value, **kw), kw filtered by the function's signature
    "attention_fn": "Linen calls it as attention_fn(query, key, value, mask=..., dropout_rng=..., "
                    "dropout_rate=..., deterministic=..., dtype=..., ...) with only the keywords its signature "
                    "names (never legacy's bias=, the masks as a -1e10 bias, nor axis=; none through **kwargs): "
                    "pass a function of that form (nn.dot_product_attention) or wrap this one by hand",
}
_ATTENTION_LEGACY = (
    "inputs_q", "inputs_kv", "num_heads", "dtype", "qkv_features", "out_features", "attention_axis",
    "causal_mask", "padding_mask", "key_padding_mask", "segmentation", "key_segmentation", "cache",
    "broadcast_dropout", "dropout_rng", "dropout_rate", "deterministic", "precision", "kernel_init",
    "bias_init", "bias", "attention_fn")
_ATTENTION_ARRAYS = ("padding_mask", "key_padding_mask", "segmentation", "key_segmentation")
_ATTENTION_FIELDS = ("num_heads", "dtype", "param_dtype", "qkv_features", "out_features",
                     "broadcast_dropout", "dropout_rate", "deterministic")

BUILTIN_MODULES: dict[str, BuiltinModule] = {
    "flax.nn.Dense": BuiltinModule(
        "Dense", ("inputs", "features", "bias", "dtype", "precision", *_INIT), ("inputs",),
        ("features", "use_bias", "dtype", "param_dtype", "precision", *_INIT), ("inputs",), _BIAS),
    "flax.nn.DenseGeneral": BuiltinModule(
        "DenseGeneral",
        ("inputs", "features", "axis", "batch_dims", "bias", "dtype", *_INIT, "precision"), ("inputs",),
        ("features", "axis", "batch_dims", "use_bias", "dtype", "param_dtype", *_INIT), ("inputs",), _BIAS),
    "flax.nn.Conv": BuiltinModule(
        "Conv",
        ("inputs", "features", "kernel_size", "strides", "padding", "input_dilation", "kernel_dilation",
         "feature_group_count", "bias", "dtype", "precision", *_INIT), ("inputs",),
        ("features", "kernel_size", "strides", "padding", "input_dilation", "kernel_dilation",
         "feature_group_count", "use_bias"), ("inputs",), _BIAS, required=3),
    "flax.nn.ConvTranspose": BuiltinModule(
        "ConvTranspose",
        ("inputs", "features", "kernel_size", "strides", "padding", "kernel_dilation", "bias", "dtype",
         "precision", *_INIT), ("inputs",),
        ("features", "kernel_size", "strides", "padding", "kernel_dilation", "use_bias"), ("inputs",), _BIAS,
        required=3),
    "flax.nn.Embed": BuiltinModule(
        "Embed", ("inputs", "num_embeddings", "features", "embedding_init"), ("inputs",),
        ("num_embeddings", "features"), ("inputs",), required=3),
    "flax.nn.BatchNorm": BuiltinModule(
        "BatchNorm",
        ("x", "batch_stats", "use_running_average", "axis", "momentum", "epsilon", "dtype", "bias", "scale",
         "bias_init", "scale_init", "axis_name", "axis_index_groups"), ("x",),
        ("use_running_average", "axis", "momentum", "epsilon", "dtype", "param_dtype", "use_bias",
         "use_scale"), ("x",), _BIAS_SCALE,
        explicit={"use_running_average": "False"},
        manual={"batch_stats": "legacy explicit batch_stats has no Linen form: state lives in 'batch_stats'"},
        required=1),
    "flax.nn.LayerNorm": BuiltinModule(
        "LayerNorm", ("x", "epsilon", "dtype", "bias", "scale", "bias_init", "scale_init"), ("x",),
        ("epsilon", "dtype", "param_dtype", "use_bias", "use_scale"), ("x",), _BIAS_SCALE, required=1),
    "flax.nn.GroupNorm": BuiltinModule(
        "GroupNorm",
        ("x", "num_groups", "group_size", "epsilon", "dtype", "bias", "scale", "bias_init", "scale_init"),
        ("x",), ("num_groups", "group_size", "epsilon", "dtype", "param_dtype", "use_bias", "use_scale"),
        ("x",), _BIAS_SCALE, required=1),
    "flax.nn.MultiHeadDotProductAttention": BuiltinModule(
        "MultiHeadDotProductAttention", _ATTENTION_LEGACY, ("inputs_q", "inputs_kv", "dropout_rng"),
        _ATTENTION_FIELDS, ("inputs_q", "inputs_k", "inputs_v"), {**_BIAS, "inputs_kv": "inputs_k"},
        explicit={"deterministic": "False"}, manual=_ATTENTION_MANUAL, required=3, arrays=_ATTENTION_ARRAYS),
    # legacy SelfAttention is MultiHeadDotProductAttention.partial(inputs_kv=None): keeping the
    # class keeps the checkpoint name MultiHeadDotProductAttention_k; ``inputs_kv=enc`` at a call
    # makes it cross-attention (legacy wmt's encoder-decoder attention)
    "flax.nn.SelfAttention": BuiltinModule(
        "MultiHeadDotProductAttention", tuple(a for a in _ATTENTION_LEGACY if a != "inputs_kv"),
        ("inputs_q", "dropout_rng"), _ATTENTION_FIELDS, ("inputs_q",), _BIAS,
        explicit={"deterministic": "False"}, manual=_ATTENTION_MANUAL, arrays=_ATTENTION_ARRAYS,
        unfixed={"inputs_kv": "flax.nn.MultiHeadDotProductAttention"}),
    # the LSTM carry is (c, h), each (batch..., features); the GRU carry is h
    "flax.nn.LSTMCell": BuiltinModule("LSTMCell", _CELL, ("carry", "inputs"), _CELL_FIELDS,
                                      ("carry", "inputs"), features_from_carry="{carry}[0].shape[-1]",
                                      carry_size="features"),
    "flax.nn.OptimizedLSTMCell": BuiltinModule(
        "OptimizedLSTMCell", _CELL, ("carry", "inputs"), _CELL_FIELDS, ("carry", "inputs"),
        features_from_carry="{carry}[0].shape[-1]", carry_size="features"),
    "flax.nn.GRUCell": BuiltinModule("GRUCell", _CELL, ("carry", "inputs"), _CELL_FIELDS,
                                     ("carry", "inputs"), features_from_carry="{carry}.shape[-1]",
                                     carry_size="features"),
    "flax.nn.ConvLSTM": BuiltinModule(
        "ConvLSTMCell", ("carry", "inputs", "features", "kernel_size", "strides", "padding", "bias", "dtype"),
        ("carry", "inputs"), ("features", "kernel_size", "strides", "padding", "use_bias"),
        ("carry", "inputs"), _BIAS, required=4, carry_size="shape"),
    # the function became a module; rng stays a call argument
    "flax.nn.dropout": BuiltinModule(
        "Dropout", ("inputs", "rate", "deterministic", "rng"), ("inputs", "rng"),
        ("rate", "broadcast_dims", "deterministic"), ("inputs",), explicit={"deterministic": "False"}),
}

# built-ins whose Linen namesakes create the same parameters (names, shapes) through
# ``self.param``: a subclass overriding only ``param`` (weight standardization) works on both
SAME_PARAMS = frozenset({"flax.nn.Dense", "flax.nn.DenseGeneral", "flax.nn.Conv", "flax.nn.ConvTranspose",
                         "flax.nn.Embed"})

# legacy attention mask arguments LU102 turns into one Linen ``mask=`` call argument.
# Legacy padding masks came as (batch, length, 1) or (batch, length) (api_mapping.md §2.1);
# Linen takes (batch, length): the reshape accepts both (1-D attention, the common case).
ATTENTION_MASKS = {
    "causal_mask": "{nn}.make_causal_mask({q}[..., 0])",  # for True; for a value: behind `if value`
    # legacy masks are (batch, length) or (batch, length, 1): each goes in as (batch, length)
    "flat": "{m}.reshape({m}.shape[:2])",
    "padding": "{nn}.make_attention_mask({pq}, {pk})",
    "segmentation": "{nn}.make_attention_mask({sq}, {sk}, {eq})",
}

# legacy attention over several axes (attention_axis=(1, ..., k)) is one softmax over all of them
# (dot_product_attention transposes them last and normalises jointly), which is attention over the
# flattened axes; Linen attends over the axis before the features only.  The input is flattened
# with the axes spelled out, so an input whose rank is not k + 2 fails in reshape rather than
# silently attending over other axes; the output goes back to the input's layout.
# attention_axis=(1,) is the legacy default for (batch, length, features): dropped.
ATTENTION_AXES = {
    "flatten": "{x}.reshape(({x}.shape[0], {length}, {x}.shape[-1]))",  # length: x.shape[1] * x.shape[2]
    "unflatten": "{y}.reshape({x}.shape[:-1] + (-1,))",
}

# legacy autoregressive decoding (``cache=`` an ``nn.attention.Cache``) -> Linen ``decode=True``
# with the 'cache' collection (cached_key, cached_value, cache_index: the legacy _CacheEntry).
# Legacy asserts causal_mask with a cache (Linen's decoding is causal by itself) and ignores
# padding masks while decoding (``and not cache``): LU102 drops them from mask= while decoding.
# Segmentations stay in mask= while decoding, as legacy kept them: a query segmentation of the
# decoded token against a key segmentation of the whole cache is the same mask on both sides (legacy
# failed to reshape a segmentation alone against a cache longer than one, so working code
# passes None there).  Value: the keywords that keep a cached call manual.
_CACHE_MANUAL = frozenset({"attention_axis"})
ATTENTION_CACHE = {
    "flax.nn.SelfAttention": _CACHE_MANUAL,
    "flax.nn.MultiHeadDotProductAttention": _CACHE_MANUAL,
}

# what LU102 writes where legacy code passes a Cache to a module outside module bodies
CACHE_USAGE = ("cache=: the module's cache parameter became `decode: bool = False`: "
               "`variables = M(decode=True).init(rng, jnp.zeros((batch, max_len, features)))` "
               "gives variables['cache'] (legacy initialize_cache((batch, max_len))); per step "
               "`y, upd = M(decode=True).apply({'params': params, 'cache': cache}, x_t, mutable=['cache'])`, "
               "`cache = upd['cache']`")

# apply parameters of user modules that stay call arguments, by name
# (besides the first positional one, which always does)
CALL_ARGUMENT_NAMES = frozenset({
    "train", "training", "is_training", "deterministic", "use_running_average", "mask", "carry",
    "rng", "dropout_rng", "padding_mask", "causal_mask", "key_padding_mask", "segmentation",
    "inputs_kv", "cache", "decode", "state",
})

# built-in legacy layers that may make no parameter where every call may turn these keywords off (flax
# 0.3.6: ``if scale: self.param(...)``, ``if bias: ...``; Linen's use_scale/use_bias likewise)
NO_PARAMS_WHEN = {"flax.nn.LayerNorm": frozenset({"bias", "scale"}), "flax.nn.GroupNorm": frozenset({"bias", "scale"})}
