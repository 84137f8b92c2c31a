"""The names a converted field may not take are exactly the installed flax.linen.Module's members."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from flax import linen as nn

from linen_upgrade.rules._member_names import LINEN_MODULE_MEMBERS


def test_members_are_flax_linen_module_members() -> None:
    class Probe(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x

    bound: list[str] = []
    Probe().apply({}, jnp.ones(1), method=lambda m, x: bound.extend(vars(m)))
    members = {n for n in dir(nn.Module) if not n.startswith("__")}
    members |= {f.name for f in dataclasses.fields(Probe)} | set(bound)
    assert LINEN_MODULE_MEMBERS == members
