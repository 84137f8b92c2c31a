"""List and dict values that call sites give a module's attribute.

A Linen module freezes its fields: a list becomes a tuple, a dict a FrozenDict.
LU101 checks that the body only reads such an attribute (``_only_read``) when its
default is a list or dict display, and must do the same when the list or dict
comes from a call site instead (``M.partial(hidden=[5, 4])``, ``M(x, cfg={...})``,
``M.init(rng, x, hidden=[...])``): ``hidden + [n_out]`` raises there, and
``hidden == [5, 4]`` is silently False.
"""

from __future__ import annotations

from linen_upgrade.facts import Param


def given_container(index, qual: str | None, params: tuple[Param, ...], name: str) -> str | None:
    """"list" or "dict" when a call site of the run gives the apply parameter ``name`` of the
    module class ``qual`` a display of one (by keyword or by legacy position)."""
    positional = [p.name for p in params if p.kind == "pos"]
    for slot, kind in sorted(index.containers.get(index.canonical(qual), ()) if qual else (), key=repr):
        given = positional[slot] if isinstance(slot, int) and slot < len(positional) else slot
        if given == name:
            return kind
    return None


def reads_sequences(qual: str | None) -> bool:
    """A jax function (``lax.conv_general_dilated(padding=...)``, ``jnp.pad(pad_width=...)``) reads a
    tuple as it reads a list; not the pytree functions, whose result keeps the container's type."""
    return bool(qual) and qual.startswith("jax.") and not qual.startswith(("jax.tree_util.", "jax.tree."))
