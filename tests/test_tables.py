"""Every rename target in the tables exists in the installed jax / flax."""
from __future__ import annotations

import importlib

import pytest

from linen_upgrade.tables.jax_renames import JAX_INDEX_OPS, JAX_RENAMES
from linen_upgrade.tables.nn_symbols import NN_SYMBOLS


def _exists(qualname: str) -> bool:
    parts = qualname.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("old,new", sorted(JAX_RENAMES.items()))
def test_jax_rename_target_exists(old, new):
    pytest.importorskip("jax")
    assert _exists(new), f"{old} -> {new}: target missing in installed jax"


@pytest.mark.parametrize("method", sorted(set(JAX_INDEX_OPS.values())))
def test_at_methods_exist(method):
    jnp = pytest.importorskip("jax.numpy")
    assert hasattr(jnp.zeros(3).at[0], method)


@pytest.mark.parametrize("old,row", sorted((k, v) for k, v in NN_SYMBOLS.items() if v.linen))
def test_linen_names_exist(old, row):
    pytest.importorskip("flax")
    assert _exists(f"flax.linen.{row.linen}"), f"{old} -> flax.linen.{row.linen} missing"


def _builtin_rows():
    from linen_upgrade.tables.nn_modules import BUILTIN_MODULES
    return sorted(BUILTIN_MODULES.items())


@pytest.mark.parametrize("old,row", _builtin_rows(), ids=lambda v: v if isinstance(v, str) else "")
def test_builtin_module_targets_exist(old, row):
    """Every Linen field, renamed keyword and call argument of a built-in row exists."""
    import dataclasses
    import inspect

    linen = pytest.importorskip("flax.linen")
    cls = getattr(linen, row.linen)
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(row.linen_fields) <= fields, set(row.linen_fields) - fields
    assert set(row.explicit) <= fields
    call = set(inspect.signature(cls.__call__).parameters)
    assert set(row.linen_call) <= call, set(row.linen_call) - call
    for legacy, new in row.renames.items():
        assert new in fields | call, f"{old}: {legacy} -> {new} missing"
    if row.carry_size is not None:  # initialize_carry is built from features (+ kernel_size) and carry_init
        assert {"features", "carry_init"} <= fields and hasattr(cls, "initialize_carry")
        assert row.carry_size == "features" or "kernel_size" in fields


def test_attention_cache_and_axes_targets():
    """decode= and the 'cache' collection variables the cache conversion relies on."""
    import dataclasses

    import jax
    import jax.numpy as jnp
    linen = pytest.importorskip("flax.linen")
    from linen_upgrade.tables.nn_modules import ATTENTION_CACHE, BUILTIN_MODULES

    for qual in ATTENTION_CACHE:
        cls = getattr(linen, BUILTIN_MODULES[qual].linen)
        assert "decode" in {f.name for f in dataclasses.fields(cls)}
    variables = linen.MultiHeadDotProductAttention(num_heads=1, decode=True).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 3, 2)))
    assert set(variables["cache"]) == {"cached_key", "cached_value", "cache_index"}
