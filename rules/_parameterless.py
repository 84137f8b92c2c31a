"""The ``'params'`` collection of a Linen ``init``: legacy ``init``/``init_by_shape``
gave a module without parameters (only pooling, activations) an empty dict, Linen's
``init`` gives it no ``'params'`` at all, so ``...['params']`` raised KeyError.

``.get('params', {})`` is right for every module; LU201 writes it only where the
class (of this file) names nothing that can make a parameter, and keeps the usual
``['params']`` elsewhere.  What makes one: ``param``, a built-in layer (``dropout`` makes
none, nor may ``LayerNorm``/``GroupNorm`` called only with ``bias`` and ``scale`` given values
that may be false: ``False``, or a flag), a module
of another file of the run, and a module class of this file that names one.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.index import LEGACY_MODULE_BASES
from linen_upgrade.rules._modules import spec_for_qual
from linen_upgrade.tables.nn_modules import NO_PARAMS_WHEN

# built-in legacy layers that make no parameter, whatever their arguments
NO_PARAMS = frozenset({"flax.nn.dropout"})


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
    return qual in ctx.facts.named and not _makes_params(qual, ctx, set())


def _makes_params(qual: str, ctx, seen: set[str]) -> bool:
    """Does running the module class ``qual`` of this file make a parameter (through the
    module classes of this file it names)?"""
    seen.add(qual)
    for name in ctx.facts.named[qual]:
        if name in LEGACY_MODULE_BASES or name in NO_PARAMS or name in seen or _switched_off(qual, name, ctx):
            continue  # the class's own base, a layer without parameters, a class already asked
        if name in ctx.facts.named and ctx.index.is_legacy_module(name):
            if _makes_params(name, ctx, seen):  # a module class of this file
                return True
        elif name.rpartition(".")[2] == "param" or spec_for_qual(name, ctx.index) is not None \
                or ctx.index.is_legacy_module(name):
            return True
    return False


def _switched_off(qual: str, name: str, ctx) -> bool:
    """Is ``name`` a built-in that every call in the class ``qual`` may make without parameters
    (``nn.LayerNorm(x, bias=False, scale=False)``, or flags known only at run time)?"""
    off = NO_PARAMS_WHEN.get(name)
    return off is not None and off <= ctx.facts.off_keywords.get(qual, {}).get(name, frozenset())
