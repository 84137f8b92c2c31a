"""The ``'params'`` collection of a Linen ``init``: legacy ``init``/``init_by_shape``
gave a module without parameters (only pooling, activations) an empty dict, Linen's
``init`` gives it no ``'params'`` at all, so ``...['params']`` raised KeyError.

``.get('params', {})`` is right for every module; LU201 writes it only where the
class (of this file) names nothing that can make a parameter, and keeps the usual
``['params']`` elsewhere.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.index import LEGACY_MODULE_BASES
from linen_upgrade.rules._modules import spec_for_qual


def params_of(variables: cst.BaseExpression, quals: list[str], ctx) -> cst.BaseExpression:
    """``variables['params']``, or ``variables.get('params', {})`` where one of the module
    classes ``quals`` (the definitions the init may run) may make no parameters."""
    key = cst.SimpleString("'params'")
    if any(_may_make_none(q, ctx) for q in quals):
        comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        return cst.Call(cst.Attribute(variables, cst.Name("get")), [cst.Arg(key, comma=comma), cst.Arg(cst.Dict([]))])
    return cst.Subscript(variables, [cst.SubscriptElement(cst.Index(key))])


def _may_make_none(qual: str, ctx) -> bool:
    """Does the class ``qual`` of this file name nothing that makes a parameter: no built-in
    layer, no module of the run, no ``param``? (A helper function that makes some is
    still served right by ``.get``.)"""
    names = ctx.facts.named.get(qual)
    return names is not None and not any(_makes_params(n, ctx.index) for n in names)


def _makes_params(name: str, index) -> bool:
    if name in LEGACY_MODULE_BASES:
        return False  # the class's own base
    return name.rpartition(".")[2] == "param" or spec_for_qual(name, index) is not None \
        or index.is_legacy_module(name)
