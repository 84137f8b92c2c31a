"""A definition held by a name bound in a loop (LU201/LU202, ``Analysis.ty``).

``module`` in ``for s in scales: model, module = create_model(key, s)`` (or ``module =
MLP.partial(scale=s)``) holds each iteration's definition; a Model kept from an earlier iteration
(``prev = model`` read at the top of the next one, ``best`` read after the loop) is of another one.
The typing is flow-insensitive, so a name holding a Model of such a definition is known by
``module`` only where it surely holds this iteration's: read in the loop's body after a statement
of it binding the name, or the field (``self.model = ...``: not under an ``if`` or an inner loop),
at or after the one binding ``module``; a parameter's default (``lambda x, m=model: m(x)``) never, as it was read where the
function was made.  Elsewhere the name is forgotten, and the use gets the TODO of a
definition no name there holds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import libcst as cst

from linen_upgrade.rules._usage_types import TUPLE, Ty

if TYPE_CHECKING:
    from linen_upgrade.rules._usage_analysis import Analysis
    from linen_upgrade.rules._usage_scopes import Scope


def current(a: Analysis, t: Ty | None, read: cst.Name | cst.Attribute, found: Scope | None = None) -> Ty | None:
    """``t``, the type of the name ``read`` (bound in ``found``) or of the field ``read`` (``self.model``),
    without the name of a definition bound in a loop where the value may be of an earlier iteration."""
    if t is None:
        return None
    if t.kind == TUPLE:
        items = tuple(current(a, i, read, found) for i in t.items)
        return t if items == t.items else replace(t, items=items)
    var = t.ref.def_var if t.ref is not None else None
    if var is None or isinstance(read, cst.Name) and var == (id(found), read.value):
        return t
    holders = a.bound_at.get(var, [])
    loops = [_loop(a, n, a.scope_of[id(n)].node) for n in holders]
    if not loops or None in loops:
        return t  # bound once for the whole run of the scope
    loop = loops[0]
    if isinstance(read, cst.Name) and var[0] != id(found):
        # a closure's or a parameter's value is checked where it was read; a default's was read where
        # the function was defined (``lambda x, m=model: m(x)``), perhaps in an earlier iteration
        if not _defaulted(found.node, read.value):  # type: ignore[union-attr]
            return t
    elif all(other is loop for other in loops):
        start = max(_statement(a, n, loop)[0] for n in holders)  # type: ignore[union-attr]
        binds = [_statement(a, n, loop) for n in _binding_nodes(a, read, found)]
        at = _statement(a, read, loop)
        # the value is the one a binding gave it in this iteration, after the definition's
        if at is not None and any(b is not None and not b[1] and start <= b[0] < at[0] for b in binds):
            return t
    return replace(t, ref=replace(t.ref, def_var=None))  # type: ignore[arg-type]


def _binding_nodes(a: Analysis, read: cst.Name | cst.Attribute, found: Scope | None) -> list[cst.CSTNode]:
    """The targets binding the name, or the field of the same name (``self.model = ...``)."""
    if isinstance(read, cst.Name):
        return a.bound_at.get((id(found), read.value), [])
    base = read.value.value if isinstance(read.value, cst.Name) else None
    return [target for _, target, _, _ in a.field_bindings if target.attr.value == read.attr.value
            and isinstance(target.value, cst.Name) and target.value.value == base]


def _defaulted(fn: cst.CSTNode, name: str) -> bool:
    """Is ``name`` a parameter of ``fn`` with a default?"""
    params = fn.params if isinstance(fn, (cst.FunctionDef, cst.Lambda)) else None
    return params is not None and any(p.name.value == name and p.default is not None for p in (
        *params.posonly_params, *params.params, *params.kwonly_params))


def _loop(a: Analysis, node: cst.CSTNode, scope: cst.CSTNode) -> cst.For | cst.While | None:
    """The innermost loop of ``scope`` running ``node`` (None: none does)."""
    p = a.parent.get(id(node))
    while p is not None and p is not scope:
        if isinstance(p, (cst.For, cst.While)):
            return p
        p = a.parent.get(id(p))
    return None


def _statement(a: Analysis, node: cst.CSTNode, loop: cst.For | cst.While) -> tuple[int, bool] | None:
    """(the index in ``loop``'s body of the statement holding ``node``, -1 for the loop's target;
    whether something between may skip or repeat it), or None when the loop does not hold it."""
    child, p, skipped = node, a.parent.get(id(node)), False
    while p is not None:
        if p is loop:
            return -1, skipped
        if p is loop.body and isinstance(p, cst.IndentedBlock):
            return list(p.body).index(child), skipped  # type: ignore[arg-type]
        skipped |= isinstance(p, cst.BaseCompoundStatement) and not isinstance(p, cst.With) \
            or isinstance(p, (cst.Lambda, cst.BaseComp, cst.IfExp, cst.BooleanOperation))
        child, p = p, a.parent.get(id(p))
    return None
