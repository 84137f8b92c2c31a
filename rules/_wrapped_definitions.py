"""A legacy module that runs a module definition it is given itself (the masking wrapper of
pruning code): ``apply(self, *args, wrapped, mask=None, **kwargs)`` makes its parameters with
``_, p = wrapped.init(rng, *args, **kwargs)`` inside a ``self.param`` initializer and applies
them with ``wrapped.call(p, *args, **kwargs)``; its call sites mix the wrapped module's
attributes, its inputs and the wrapper's own arguments, ``Masked(x, features=3,
wrapped=nn.Dense, mask=m)``.

Linen form, the same parameters under the same paths (``Masked_0/<param name>/kernel``): the
definition carries its attributes, ``wrapped=partial(nn.Dense, features=3)``, ``*args``/``**kwargs``
of ``__call__`` carry its inputs, and the body makes an unbound instance,
``self.wrapped(parent=None).init(rng, *args, **kwargs).get('params', {})`` (a module without
parameters, nn.Dropout, has no 'params' collection) and
``self.wrapped(parent=None).apply({'params': p}, *args, **kwargs)``, with ``rngs=`` handing the
wrapper's rng on where a module the run gives it draws one (``DefinitionForward.rngs``).  ``parent=None`` matters: an
instance made in a compact method without it is adopted as a child and takes an auto-name of the
wrapper (the wrapper's own ``nn.Dense`` became ``Dense_1`` instead of legacy's ``Dense_0``).

LU101 writes the class (``DefinitionCalls``); LU102 splits its calls (``split_definition_call``)
where the definition passed is a built-in or a module of the run; the facts and the index decide
the pattern (``facts._definition_uses``, ``index.DefinitionForward``).
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from linen_upgrade.facts import DefinitionFactory
from linen_upgrade.rule import FastTransformer
from linen_upgrade.rules._cst import kwarg
from linen_upgrade.rules._modules import CallSpec, split_call


# what to write by hand for a module given that needs more than params (``ProjectIndex.needs``)
_BY_HAND = {
    "rngs": "draws rngs (nn.dropout, nn.make_rng: itself or in the modules it runs), which legacy took from "
            "nn.stochastic and Linen's apply of it inside the wrapper does not get: give that apply "
            "rngs={'dropout': self.make_rng('dropout')} if self.has_rng('dropout') else None",
    "state": "keeps state (self.state, nn.BatchNorm: itself or in the modules it runs), which legacy kept in "
             "nn.stateful's collection and Linen's apply of it inside the wrapper does not get: hold the "
             "batch_stats in a variable of the wrapper, self.variable('batch_stats', ...), pass them to that "
             "apply with mutable=['batch_stats'] and store what it returns",
    "unknown": "runs a module held in a parameter that this run does not trace, which may draw rngs or keep "
               "state that Linen's apply of it inside the wrapper does not get: check it",
}


def runs_with_collections(given: str, spec: CallSpec, needs: frozenset[str]) -> str | None:
    """Why a call giving ``given`` (which ``needs`` rngs or state) to the wrapper keeps a TODO."""
    if not needs or needs == {"rngs"} and spec.definition_rngs:  # its apply hands the wrapper's rngs on
        return None
    why = "; it ".join(_BY_HAND[n] for n in sorted(needs))
    return f"{given} given as {spec.definition} {why}; then split this call by hand"


class DefinitionCalls(FastTransformer):
    """In the wrapper's ``__call__`` (after ``SelfAttributes``): ``self.wrapped.init(rng, ...)``
    -> ``self.wrapped(parent=None).init(rng, ...).get('params', {})`` (for the ``_, p = ...`` or ``[1]`` the
    facts checked), ``self.wrapped.call(p, ...)`` -> ``self.wrapped(parent=None).apply({'params': p}, ...)``."""

    def __init__(self, name: str, rng_kind: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.rng_kind = rng_kind  # a module given draws rngs: apply hands the wrapper's on

    def _method(self, node: cst.BaseExpression) -> str | None:
        if (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
                and node.func.attr.value in ("init", "call") and isinstance(node.func.value, cst.Attribute)
                and isinstance(node.func.value.value, cst.Name) and node.func.value.value.value == "self"
                and node.func.value.attr.value == self.name):
            return node.func.attr.value
        return None

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        method = self._method(original)
        if method is None:
            return updated
        func: cst.Attribute = updated.func  # type: ignore[assignment]
        instance = cst.Call(func=func.value, args=[kwarg("parent", cst.Name("None"))])
        if method == "init":
            return updated.with_changes(func=func.with_changes(value=instance))
        first, *rest = updated.args
        variables = cst.Dict([cst.DictElement(cst.SimpleString("'params'"), first.value)])
        if self.rng_kind is not None:  # legacy's inner nn.dropout drew from the enclosing nn.stochastic
            at = next((i for i, a in enumerate(rest) if a.star == "**"), len(rest))
            kind = repr(self.rng_kind)
            rngs = kwarg("rngs", cst.parse_expression(
                f"{{{kind}: self.make_rng({kind})}} if self.has_rng({kind}) else None"))
            rest = [*rest[:at], rngs.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
                    *rest[at:]] if at < len(rest) else [*rest[:-1], rest[-1].with_changes(
                        comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), rngs]
        return updated.with_changes(func=func.with_changes(value=instance, attr=cst.Name("apply")),
                                    args=[first.with_changes(value=variables), *rest])

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        if self._method(original.value) != "init":
            return updated
        kept = updated.targets[0].target.elements[1].value  # type: ignore[attr-defined]
        return updated.with_changes(targets=[cst.AssignTarget(kept)], value=_params_of(updated.value))

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript) -> cst.BaseExpression:
        if self._method(original.value) != "init":
            return updated
        return _params_of(updated.value)


def _params_of(value: cst.BaseExpression) -> cst.Call:
    return cst.Call(func=cst.Attribute(value, cst.Name("get")),
                    args=_commas([cst.Arg(cst.SimpleString("'params'")), cst.Arg(cst.Dict([]))]))


def _own(call: cst.Call, spec: CallSpec) -> dict[str, cst.Arg]:
    """The arguments of ``call`` that the wrapper's apply takes itself, by legacy name."""
    takes = spec.positional or 0
    mine = dict(zip(spec.legacy[:takes], [a for a in call.args if a.keyword is None]))
    mine.update((a.keyword.value, a) for a in call.args if a.keyword is not None and a.keyword.value in spec.legacy)
    return mine


def given_attributes(spec: CallSpec, keywords) -> list[str]:
    """The ``keywords`` of a ``.partial``/``.shared`` of the wrapper that its apply does not take: the
    attributes of the module it runs (``Masked.partial(features=3)``), which in Linen that module
    carries (LU103 leaves such a definition legacy with a TODO, LU102 its calls)."""
    return [k for k in keywords if spec.definition and k not in spec.legacy and k != "name"]


def definition_given(call: cst.Call, spec: CallSpec) -> cst.BaseExpression | None:
    """The module definition ``call`` gives the wrapper (``nn.Dense`` of ``wrapped=nn.Dense``)."""
    given = _own(call, spec).get(spec.definition or "")
    return given.value if given is not None else None


def split_definition_call(call: cst.Call, spec: CallSpec, ctor: cst.BaseExpression,
                          wrapped: tuple[CallSpec, cst.BaseExpression] | None,
                          adapt: Callable[[cst.Call, CallSpec], cst.Call],
                          partial: Callable[[], str]) -> tuple[cst.BaseExpression | None, str | None]:
    """``Masked(x, features=3, wrapped=nn.Dense, mask=m, name='a')`` ->
    ``Masked(wrapped=partial(nn.Dense, features=3), name='a')(x, mask=m)``, or ``(None, why not)``.
    ``wrapped``: the call spec and Linen constructor of the module given (None: not a module this
    run knows); ``adapt`` writes the initializers of its split call for Linen; ``partial`` spells
    ``functools.partial``."""
    if any(a.star for a in call.args):
        return None, "the call passes *args/**kwargs: split constructor and call arguments by hand"
    own = set(spec.legacy)
    positional = [a for a in call.args if a.keyword is None]
    takes = spec.positional or 0
    mine = _own(call, spec)
    if spec.definition not in mine:
        return None, f"no module is given as {spec.definition}: pass it explicitly"
    if wrapped is None or wrapped[0].problem or wrapped[0].definition or wrapped[0].features_from_carry:
        return None, (f"the module given as {spec.definition} is not one this run can split (a value it cannot "
                      f"trace, or a module whose call needs a person): pass {spec.definition}=partial(<module>, "
                      "<attributes>) and its inputs to the call by hand")
    rest = [a for a in positional[takes:]] + [a for a in call.args if a.keyword is not None
                                              and a.keyword.value not in own and a.keyword.value != "name"]
    inner, problem = split_call(cst.Call(func=wrapped[1], args=rest), wrapped[0], wrapped[1])
    if inner is None:
        return None, f"{spec.definition}: {problem}"
    inner = adapt(inner, wrapped[0])  # type: ignore[arg-type]
    attrs = inner.func.args  # type: ignore[attr-defined]
    definition = wrapped[1] if not attrs else cst.Call(func=cst.parse_expression(partial()),
                                                       args=_commas([cst.Arg(wrapped[1]), *attrs]))
    ctor_args = [kwarg(name, definition if name == spec.definition else a.value)
                 for name, a in mine.items() if name not in spec.inputs]
    ctor_args += [kwarg("name", a.value) for a in call.args if a.keyword is not None and a.keyword.value == "name"]
    # the wrapper's own inputs: positional ones first (``__call__(self, x, *args, ...)``), keywords last
    inputs = [n for n in spec.legacy if n in mine and n in spec.inputs]
    first = [cst.Arg(mine[n].value) for n in inputs if n in spec.legacy[:takes]]
    last = [kwarg(n, mine[n].value) for n in inputs if n not in spec.legacy[:takes]]
    return cst.Call(func=cst.Call(func=ctor, args=_commas(ctor_args)), args=_commas([*first, *inner.args, *last]),
                    lpar=call.lpar, rpar=call.rpar), None


def _commas(args: list[cst.Arg]) -> list[cst.Arg]:
    space = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return [a.with_changes(comma=space) for a in args[:-1]] + [a.with_changes(comma=cst.MaybeSentinel.DEFAULT)
                                                               for a in args[-1:]]


def factory_return(fn: cst.FunctionDef, spec: CallSpec, partial: Callable[[], str]) -> cst.FunctionDef | None:
    """``def masked(module, mask): return Masked.partial(wrapped=module, mask=mask)`` ->
    ``return functools.partial(Masked(wrapped=module), mask=mask)``: the wrapper's attributes go to
    its constructor and the call inputs it fixed to a partial of the instance (one the calls, all in
    module bodies, call at once: ``factory_call``), so ``masked(partial(nn.Dense, features=3), m)(x)``
    runs ``Masked(wrapped=...)(x, mask=m)``, named as legacy named it.  None when a keyword has no
    Linen place (a positional argument, ``**``)."""
    body = fn.body.body  # type: ignore[attr-defined]
    ret = body[-1].body[0] if isinstance(body[-1], cst.SimpleStatementLine) else None
    call = ret.value if isinstance(ret, cst.Return) else None
    if not isinstance(call, cst.Call) or not isinstance(call.func, cst.Attribute):
        return None
    own = [a for a in call.args if a.keyword is not None and a.keyword.value not in spec.inputs]
    inputs = [a for a in call.args if a.keyword is not None and a.keyword.value in spec.inputs]
    if len(own) + len(inputs) != len(call.args):
        return None
    made: cst.BaseExpression = cst.Call(func=call.func.value, args=_commas(
        [a.with_changes(keyword=cst.Name(spec.renames.get(a.keyword.value, a.keyword.value))) for a in own]))
    if inputs:
        made = cst.Call(func=cst.parse_expression(partial()), args=_commas([cst.Arg(made), *inputs]))
    line = body[-1].with_changes(body=[ret.with_changes(value=made)])  # type: ignore[union-attr]
    return fn.with_changes(body=fn.body.with_changes(body=[*body[:-1], line]))


def factory_call(call: cst.Call, made: cst.Call, factory: DefinitionFactory, spec: CallSpec,
                 split: Callable[[cst.Call], tuple[cst.BaseExpression | None, str | None]]
                 ) -> tuple[cst.BaseExpression | None, str | None]:
    """``masked(nn.Dense, m)(x, features=3)`` (``made`` the factory's call, ``factory_return``) ->
    ``masked(partial(nn.Dense, features=3), m)(x)``; ``split`` splits the wrapper's own call
    (``Masked(x, features=3, wrapped=nn.Dense)``) as ``split_definition_call`` does, with its checks."""
    if any(a.star for a in [*made.args, *call.args]):
        return None, "the calls pass *args/**kwargs: split constructor and call arguments by hand"
    plain = [a for a in made.args if a.keyword is None]
    at = next((i for i, a in enumerate(made.args) if a.keyword is not None and a.keyword.value == factory.param),
              factory.position if factory.position < len(plain) else None)
    if at is None:
        return None, f"no module is given as {factory.param}: pass it explicitly"
    attributes = set(spec.legacy) - spec.inputs | {"name"}
    given = [a.keyword.value for a in call.args if a.keyword is not None and a.keyword.value in attributes]
    if given:
        return None, (f"the call gives the wrapper {given[0]}=, which Linen takes where the factory constructs it: "
                      "pass it there by hand")
    new, problem = split(cst.Call(func=cst.Name("_"), args=[*call.args, kwarg(factory.key, made.args[at].value)]))
    if new is None:
        return None, problem
    if len(new.func.args) != 1:  # type: ignore[attr-defined]
        return None, "the wrapper takes attributes the factory does not give: pass them there by hand"
    definition = new.func.args[0].value  # type: ignore[attr-defined]
    args = [a.with_changes(value=definition) if i == at else a for i, a in enumerate(made.args)]
    return new.with_changes(func=made.with_changes(args=args)), None  # type: ignore[attr-defined]
