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
