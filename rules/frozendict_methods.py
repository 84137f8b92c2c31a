"""LU404 frozendict_methods: ``FrozenDict`` methods -> ``flax.core`` functions.

What it does
    ``state, params = variables.pop('params')`` -> ``state, params =
    flax.core.pop(variables, 'params')``; ``x.unfreeze()`` ->
    ``flax.core.unfreeze(x)``; ``x.copy({...})`` -> ``flax.core.copy(x, {...})``.
Why
    Current Flax's ``init`` returns plain dicts: ``dict.pop`` returns only
    the value, and dicts have no ``unfreeze``; the ``flax.core`` functions
    work on both dicts and ``FrozenDict`` (the managing-state guide, seed 001
    -> 000).
Safe because
    Each form is one a plain dict cannot have: ``dict.pop`` unpacked into two
    names, ``unfreeze()``, ``copy`` with an argument.  Only in files that use
    flax.linen, flax.nn or flax.optim, and never on ``self`` (FrozenDict's own code).
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rule import Context, Example, NoChange, Rule, RuleTransformer
from linen_upgrade.rules._cst import add_import, build_dotted, express


class FrozenDictMethods(Rule):
    id = "LU404"
    summary = "FrozenDict methods on init results -> flax.core.pop / unfreeze / copy (plain dicts since flax 0.7)"
    examples = [
        Example(
            "from flax import linen as nn\n\nstate, params = variables.pop('params')\n",
            "from flax import linen as nn\nimport flax\n\nstate, params = flax.core.pop(variables, 'params')\n",
        ),
        Example(
            "import flax\nfrom flax import linen as nn\n\nparams = variables['params'].unfreeze()\n",
            "import flax\nfrom flax import linen as nn\n\nparams = flax.core.unfreeze(variables['params'])\n",
            name="unfreeze",
        ),
        NoChange("from flax import linen as nn\n\nvalue = d.pop('k')\nother = d.copy()\n", name="plain dict use"),
        NoChange("import flax\n\n\nclass Frozen:\n    def thaw(self):\n        return self.unfreeze()\n",
                 name="a FrozenDict's own code"),
    ]


    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        t = _Transformer(self, ctx)
        module = module.visit(t)
        if t.needed:
            module = add_import(module, t.needed)
        return module


class _Transformer(RuleTransformer):
    needed: str | None = None

    def _core(self, name: str) -> cst.BaseExpression:
        spelled, needed = express(f"flax.core.{name}", self.ctx.facts.imports)
        if needed:
            self.needed = needed
        return build_dotted(spelled)

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        value = updated.value
        target = updated.targets[0].target if len(updated.targets) == 1 else None
        if (isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2
                and isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
                and value.func.attr.value == "pop" and len(value.args) == 1
                and not value.args[0].keyword and not value.args[0].star):
            self.fixed("x.pop(k) unpacked in two -> flax.core.pop(x, k)")
            args = [cst.Arg(value.func.value), value.args[0].with_changes(comma=cst.MaybeSentinel.DEFAULT)]
            return updated.with_changes(value=cst.Call(func=self._core("pop"), args=args))
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        func = updated.func
        if not isinstance(func, cst.Attribute) or (
                isinstance(func.value, cst.Name) and func.value.value == "self"):  # a class's own method
            return updated
        if func.attr.value == "unfreeze" and not updated.args:
            self.fixed("x.unfreeze() -> flax.core.unfreeze(x)")
            return cst.Call(func=self._core("unfreeze"), args=[cst.Arg(func.value)])
        if (func.attr.value == "copy" and len(updated.args) == 1 and not updated.args[0].star
                and isinstance(updated.args[0].value, cst.Dict)):
            self.fixed("x.copy({...}) -> flax.core.copy(x, {...})")
            return cst.Call(func=self._core("copy"), args=[cst.Arg(func.value), updated.args[0]])
        return updated
