"""LU104 param_state: ``self.param`` argument order, ``self.state`` -> ``self.variable``, rng and state queries.

What it does
    Inside legacy module classes:
    ``self.param(name, shape, init)`` -> ``self.param(name, init, shape)``;
    ``self.state(name, shape, init)`` -> ``self.variable('batch_stats', name,
    lambda s: init(key, s), shape)`` (the collection is ``state-collection``
    in the configuration, shared with verify and convert-checkpoint);
    ``self.get_param(name)`` -> ``self.get_variable('params', name)``;
    ``self.is_stateful()`` -> ``(self.is_mutable_collection('batch_stats') or
    'batch_stats' in self.variables)`` (legacy was stateful in a read-only
    ``nn.stateful(state, mutable=False)`` too, as at evaluation);
    ``nn.make_rng()`` -> ``self.make_rng('dropout')`` (``rng-kind``).
Why
    Linen initialisers are called ``init(key, *args)`` for params but
    ``init_fn(*args)`` for other variables; legacy state initialisers took
    ``(rng, shape)``, so they are wrapped.  Key-independent initialisers
    (zeros, ones) get ``None`` as key; others draw from the 'params' stream.
    A subclass of a built-in that only wraps ``param`` (weight standardization:
    ``class StdConv(nn.Conv): def param(self, name, shape, initializer): p =
    super().param(name, shape, initializer) ...``) -> ``def param(self, name,
    *init_args, **init_kwargs)`` and ``super().param(name, *init_args,
    **init_kwargs)``: a Linen subclass of the same built-in, whose calls LU102 splits.
    An apply parameter defaulting to None that is only ever an explicit state
    collection (``self.state(..., collection=batch_stats)``, ``self.is_stateful()
    or batch_stats``, BatchNorm's ``batch_stats=``, or only handed on by keyword
    to such a parameter of another module: ``VirtualBatchNorm(x, batch_stats=p)``,
    ``VirtualBatchNorm.partial(batch_stats=p)``, ``block(x, batch_stats=p)`` with
    ``block`` bound only to such classes, init2winit's ResNets) and that no call gives
    goes: the state lives in the state collection (``self.variable('batch_stats',
    ...)``), as legacy kept it under ``nn.stateful``; LU102 and LU103 drop it where it
    is handed on.
    A plain function that calls ``nn.make_rng()`` itself (or legacy
    ``nn.dot_product_attention`` with dropout and maybe no ``dropout_rng``,
    which drew one so: LU106) and that the run only calls from legacy module
    classes (a helper of this file or another, flax's cifar10
    ``shake_shake_train``) gets a keyword-only ``make_rng``, which each
    call fills with the module's own rng: ``make_rng=lambda: self.make_rng('dropout')``
    (``index.rng_helpers``).
Not converted (TODO)
    ``self.state(..., collection=...)`` with any other explicit collection object;
    a helper drawing ``nn.make_rng()`` that is also called outside module classes
    (or whose file imports another ``make_rng`` by name: the parameter would shadow it;
    legacy's own, ``from flax.nn.stochastic import make_rng``, is what it stands for).
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from linen_upgrade.facts import INIT_ARGS
from linen_upgrade.rule import Context, Example, FastTransformer, NoChange, Rule, RuleTransformer
from linen_upgrade.resolve import dotted
from linen_upgrade.rules._cst import appended, kwarg, with_keyword_only
from linen_upgrade.rules._modules import LegacyBodyTransformer

# legacy signatures, for keyword calls
_PARAM = ("name", "shape", "initializer")
_STATE = ("name", "shape", "initializer", "collection")
_KEY_FREE = frozenset({
    "flax.nn.initializers.zeros", "flax.nn.initializers.ones",
    "jax.nn.initializers.zeros", "jax.nn.initializers.ones",
})


class ParamState(Rule):
    id = "LU104"
    summary = "self.param(name, shape, init) -> self.param(name, init, shape); self.state -> self.variable; make_rng"
    examples = [
        Example(
            "from flax import nn\nfrom flax.nn import initializers\n\n\nclass BatchNorm(nn.Module):\n"
            "    def apply(self, x):\n"
            "        scale = self.param('scale', (x.shape[-1],), initializers.ones)\n"
            "        ra_mean = self.state('mean', (x.shape[-1],), initializers.zeros)\n"
            "        return x * scale - ra_mean.value\n",
            "from flax import nn\nfrom flax.nn import initializers\n\n\nclass BatchNorm(nn.Module):\n"
            "    def apply(self, x):\n"
            "        scale = self.param('scale', initializers.ones, (x.shape[-1],))\n"
            "        ra_mean = self.variable('batch_stats', 'mean', lambda s: initializers.zeros(None, s), "
            "(x.shape[-1],))\n"
            "        return x * scale - ra_mean.value\n",
        ),
        Example(
            "from flax import nn\n\n\nclass Drop(nn.Module):\n    def apply(self, x):\n"
            "        return x * jax.random.bernoulli(nn.make_rng(), 0.5, x.shape)\n",
            "from flax import nn\n\n\nclass Drop(nn.Module):\n    def apply(self, x):\n"
            "        return x * jax.random.bernoulli(self.make_rng('dropout'), 0.5, x.shape)\n",
            name="make_rng",
        ),
        NoChange("class Store:\n    def apply(self):\n        return self.state('a', (1,), f)\n", name="plain"),
    ]


    def transformer(self, ctx: Context) -> RuleTransformer:
        return _Transformer(self, ctx)


def _bind(call: cst.Call, names: tuple[str, ...]) -> dict[str, cst.BaseExpression] | None:
    out: dict[str, cst.BaseExpression] = {}
    for i, a in enumerate(call.args):
        if a.star:
            return None
        key = a.keyword.value if a.keyword is not None else (names[i] if i < len(names) else None)
        if key is None or key not in names or key in out:
            return None
        out[key] = a.value
    return out


def _looks_like_shape(expr: cst.BaseExpression) -> bool:
    """A tuple/list display or ``x.shape``-something: how shapes are written."""
    if isinstance(expr, (cst.Tuple, cst.List)):
        return True
    from linen_upgrade.resolve import dotted

    name = dotted(expr) if isinstance(expr, (cst.Attribute, cst.Name)) else None
    return bool(name and (name.endswith(".shape") or "shape" in name.rsplit(".", 1)[-1]))


def _args(old: Sequence[cst.Arg], *values: cst.BaseExpression) -> list[cst.Arg]:
    """New positional arguments in the old ones' places (commas and line breaks kept)."""
    out = [a.with_changes(value=v, keyword=None, equal=cst.MaybeSentinel.DEFAULT)
           for a, v in zip(old, values)]
    out += [cst.Arg(value=v) for v in values[len(old):]]
    if len(values) > len(old) and len(old):
        out[len(old) - 1] = out[len(old) - 1].with_changes(
            comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return [*out[:-1], out[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)]


class _Transformer(LegacyBodyTransformer):
    def __init__(self, rule, ctx) -> None:
        super().__init__(rule, ctx)
        self._functions: list[bool] = []  # per enclosing function: a helper given the module's rng?

    def _helper_qual(self, func: cst.BaseExpression) -> str | None:
        """The qualified name a call's callee stands for (a top-level function of this file, too)."""
        qual = self.resolve(func)
        if qual is None and isinstance(func, cst.Name) and not any(func.value in b for b in self._scopes):
            module = self.ctx.facts.module_name
            qual = f"{module}.{func.value}" if module else func.value
        return self.ctx.index.canonical(qual) if qual else None

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        top = not self._functions and not self._classes
        self._functions.append(top and self.ctx.index.rng_helper(self.ctx.facts.module_name, node.name.value))
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        if not self._functions.pop():
            return updated
        # only legacy modules call it: they hand over their rng (legacy drew it from nn.stochastic)
        self.fixed(f"{original.name.value}: nn.make_rng() -> the make_rng its module callers give")
        return updated.with_changes(params=with_keyword_only(updated.params, "make_rng"))

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        updated = super().leave_ClassDef(original, updated)
        qual = self.resolve_class(original.name)
        if qual in self.ctx.index.linen_subclasses:
            self.fixed(f"class {original.name.value}: param(self, name, shape, init) -> param(self, name, "
                       "*init_args, **init_kwargs)")
            return updated.visit(_LinenParam())
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if any(self._functions) and self.resolve(original.func) == "flax.nn.make_rng" and not updated.args:
            return cst.Call(cst.Name("make_rng"))
        if not self.in_legacy_body:
            return updated
        func = updated.func
        if isinstance(func, (cst.Name, cst.Attribute)) and self._helper_qual(original.func) in \
                self.ctx.index.rng_helpers:
            self.fixed(f"{dotted(func)}(...) is handed the module's rng")
            given = kwarg("make_rng", cst.parse_expression(f"lambda: self.make_rng({self.ctx.config.rng_kind!r})"))
            return updated.with_changes(args=appended(updated.args, given))
        if self.resolve(original.func) == "flax.nn.make_rng" and not updated.args:
            self.fixed("nn.make_rng() -> self.make_rng(...)")
            return cst.parse_expression(f"self.make_rng({self.ctx.config.rng_kind!r})")
        if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                and func.value.value == "self"):
            return updated
        method = func.attr.value
        if method == "param":
            bound = _bind(updated, _PARAM)
            if bound is None or set(bound) != set(_PARAM):
                self.todo("self.param: pass (name, initializer, *shape) in Linen's order")
                return updated
            if _looks_like_shape(bound["initializer"]) and not _looks_like_shape(bound["shape"]):
                return updated  # already (name, init, shape): a re-run must not swap back
            self.fixed("self.param(name, shape, init) -> self.param(name, init, shape)")
            return updated.with_changes(args=_args(updated.args, bound["name"], bound["initializer"], bound["shape"]))
        if method == "state":
            bound = _bind(updated, _STATE)
            if bound is not None and self._explicit_collection(bound.get("collection")):
                del bound["collection"]  # a parameter only ever None here: the state collection
            if bound is None or "collection" in bound or "initializer" not in bound:
                self.todo("self.state: convert to self.variable(collection, name, init_fn, *args) by hand")
                return updated
            init = bound["initializer"]
            key = "None" if self.resolve(init) in _KEY_FREE else "self.make_rng('params')"
            init_src = cst.Module([]).code_for_node(init)
            init_fn = cst.parse_expression(f"lambda s: ({init_src})({key}, s)"
                                           if not isinstance(init, (cst.Name, cst.Attribute))
                                           else f"lambda s: {init_src}({key}, s)")
            args = [cst.SimpleString(repr(self.ctx.config.state_collection)), bound["name"], init_fn]
            if "shape" in bound:
                args.append(bound["shape"])
            self.fixed("self.state(...) -> self.variable(...)")
            return updated.with_changes(func=func.with_changes(attr=cst.Name("variable")), args=_args(updated.args, *args))
        if method == "get_param" and len(updated.args) == 1:
            return updated.with_changes(func=func.with_changes(attr=cst.Name("get_variable")),
                                        args=[cst.Arg(cst.SimpleString("'params'")), *updated.args])
        if method == "is_stateful" and not updated.args:
            # legacy: inside any nn.stateful block, read-only (mutable=False, evaluation) included
            coll = repr(self.ctx.config.state_collection)
            self.fixed("self.is_stateful() -> the state collection is mutable or given")
            return cst.parse_expression(f"(self.is_mutable_collection({coll}) or {coll} in self.variables)")
        return updated


    def _explicit_collection(self, value: cst.BaseExpression | None) -> bool:
        """Is ``value`` the class's parameter that only ever is an explicit state collection, always None
        (no call gives it, ``index.py``'s role 'collection'; LU101 drops it from the class)?"""
        legacy = self.ctx.index.legacy_module(self._classes[-1]) if self.in_legacy_body else None
        return isinstance(value, cst.Name) and legacy is not None and any(
            p.name == value.value and p.role == "collection" for p in legacy.apply_params or ())

    def leave_BooleanOperation(self, original: cst.BooleanOperation, updated: cst.BooleanOperation
                               ) -> cst.BaseExpression:
        """``self.is_stateful() or batch_stats`` with that parameter: always None, so the test alone."""
        if isinstance(updated.operator, cst.Or) and self._explicit_collection(original.right) \
                and isinstance(original.left, cst.Call) and isinstance(original.left.func, cst.Attribute) \
                and original.left.func.attr.value == "is_stateful":
            return updated.left
        return updated


class _LinenParam(FastTransformer):
    """A built-in's subclass that only wraps ``param`` (``facts._wraps_param``): Linen calls
    ``param(name, init_fn, *init_args)``, so ``shape, initializer`` become ``*init_args,
    **init_kwargs``, handed on to ``super().param`` as they come."""

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        this, name = updated.params.params[:2]
        return updated.with_changes(params=updated.params.with_changes(
            params=[this, name.with_changes(comma=cst.MaybeSentinel.DEFAULT)],
            star_arg=cst.Param(cst.Name(INIT_ARGS[0])), star_kwarg=cst.Param(cst.Name(INIT_ARGS[1]))))

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        func = updated.func
        if isinstance(func, cst.Attribute) and func.attr.value == "param" and isinstance(func.value, cst.Call) \
                and isinstance(func.value.func, cst.Name) and func.value.func.value == "super":
            return updated.with_changes(args=[updated.args[0].with_changes(comma=cst.MaybeSentinel.DEFAULT),
                                              cst.Arg(cst.Name(INIT_ARGS[0]), star="*"),
                                              cst.Arg(cst.Name(INIT_ARGS[1]), star="**")])
        return updated
