"""Runs that switch jax to 64-bit floats (``jax_enable_x64``): the dtype legacy layers gave their parameters.

Legacy built-in layers made their parameters with the initializers' default dtype, jax's default
float (``jnp.float_``): float64 under x64, float32 without it.  Linen's make them as ``param_dtype``,
float32 unless told: without more, an upgraded x64 program stores float32 weights (and recurrent
carries) where the legacy program had float64 ones.  Python's ``float`` given as ``param_dtype`` is jax's
default float again (jax canonicalizes it when the parameter is made): float64 under x64, float32
without it, with no warning either way.  So in a run where some file turns x64 on, each converted
layer named here gets ``param_dtype=float`` (and legacy's float32 ``dtype``); runs without x64 are
written as before.

Measured on flax 0.3.6 under x64 (``fixtures/programs/x64_default_float``: Dense, Conv, Embed,
LayerNorm, GroupNorm, BatchNorm, LSTMCell and attention; GRUCell by hand; the other layers below take
the same initializers' default): float64 parameters; legacy attention made float32 ones (its
``dtype`` is float32), which Linen's default keeps.  Not matched: Linen's BatchNorm starts its running averages as float32 zeros (legacy:
float64); the first update makes them float64 again, so the numbers agree.  Not seen: x64 turned on
outside the run's code (``JAX_ENABLE_X64=1`` in the shell), or by a file the run does not hold.
"""

from __future__ import annotations

# Linen built-in (``BuiltinModule.linen``) -> the attributes it gets in an x64 run, as
# ``BuiltinModule.explicit`` values (source text; a call that gives one keeps its own).
# ``param_dtype``: the legacy parameters took jax's default float.  ``dtype``: legacy computed in
# float32 (its ``dtype`` default) even on float64 inputs, Linen in the inputs' dtype (``None``); the
# string keeps the output float32 as before (a scan carry or a saved array keeps its type) without an import.
_LAYER = {"param_dtype": "float", "dtype": "'float32'"}
_PARAMS_ONLY = {"param_dtype": "float"}  # no legacy dtype: they computed in the inputs' dtype
EXPLICIT = {
    **dict.fromkeys(("Dense", "DenseGeneral", "Conv", "ConvTranspose", "BatchNorm", "LayerNorm", "GroupNorm"),
                    _LAYER),
    **dict.fromkeys(("Embed", "LSTMCell", "OptimizedLSTMCell", "GRUCell", "ConvLSTMCell"), _PARAMS_ONLY),
    "MultiHeadDotProductAttention": {"dtype": "'float32'"},  # float32 parameters on both sides
}
ATTRIBUTES = frozenset(k for attrs in EXPLICIT.values() for k in attrs)

# what a file writes to turn x64 on: the config option or environment variable, as a string
# (``jax.config.update("jax_enable_x64", True)``, ``os.environ["JAX_ENABLE_X64"] = "1"``,
# absl's ``--jax_enable_x64``), or a function that does (``with jax.experimental.enable_x64():``).
# A false positive only writes what legacy did in every run (``float`` is float32 without x64).
SWITCH_STRINGS = frozenset({"jax_enable_x64", "JAX_ENABLE_X64", "--jax_enable_x64"})
SWITCH_FUNCTIONS = frozenset({"jax.experimental.enable_x64", "jax.enable_x64"})
