"""LU101 (module_definitions) in a wrapper's ``apply``: calls that only forward
``*args``/``**kwargs`` into a submodule -> the forwarded ``args``/``kwargs``
attributes (LU102 leaves these calls to LU101).
"""

from __future__ import annotations

from dataclasses import replace

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import FastTransformer, RuleTransformer
from linen_upgrade.rules._cst import comma_list, strip_comma
from linen_upgrade.rules._modules import spec_for_qual, split_call


class Forwarding(FastTransformer):
    """In a wrapper's ``apply``, ``Callee(x, 3, *args, **kwargs)`` -> ``Callee(3,
    *self.args, **self.kwargs)(x)`` (``**kwargs`` also in the call when the
    callee has inputs a call site may forward).  LU102 leaves these calls to this rule."""

    def __init__(self, outer: RuleTransformer, split) -> None:
        super().__init__()
        self.outer = outer
        self.ours = {("*", split.star.name)} if split.star is not None else set()
        if split.forward is not None:
            self.ours.add(("**", split.forward.name))
        self.forward = split.forward.forward if split.forward is not None else None
        self.problem: str | None = None

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        stars = [a for a in updated.args if a.star]
        ours = {a.star: a.value.value for a in stars  # type: ignore[attr-defined]
                if isinstance(a.value, cst.Name) and (a.star, a.value.value) in self.ours}
        if not ours:
            return updated
        spec = spec_for_qual(self.outer.resolve_class(original.func), self.outer.ctx.index)
        at = next((i for i, a in enumerate(updated.args) if a.star == "*"), len(updated.args))
        if len(ours) != len(stars) or spec is None or any(
                a.keyword is None and not a.star for a in updated.args[at:]):
            self.problem = self.problem or (f"{dotted(original.func)}: an unknown module, other *args/**kwargs "
                                            "or positional arguments after *args")
            return updated
        rest = [a for a in updated.args if not a.star]
        rest = [*rest[:-1], strip_comma(rest[-1])] if rest else rest
        # the callee's changed defaults travel in the forwarded dict (a keyword given twice is an error)
        new, problem = split_call(updated.with_changes(args=rest), replace(spec, explicit={}) if "**" in ours
                                  else spec, updated.func)
        if new is None:
            self.problem = self.problem or problem
            return updated
        inner: cst.Call = new.func  # type: ignore[assignment]
        args = list(inner.args)
        if "*" in ours:
            # right after the positional attributes, which the index checked keep their Linen places
            given = spec.legacy[:sum(a.keyword is None for a in rest)]
            positional = sum(a.keyword is None for a in args)
            if positional != sum(n not in spec.inputs for n in given):
                self.problem = self.problem or f"{dotted(original.func)}: the arguments before *{ours['*']} " \
                                               "change places in Linen"
                return updated
            args.insert(positional, cst.Arg(_self_attr(ours["*"]), star="*"))
        if "**" in ours:
            args.append(cst.Arg(_self_attr(ours["**"]), star="**"))
        inner = inner.with_changes(args=comma_list(args))
        call_args = list(new.args)
        if "**" in ours and self.forward is not None and self.forward.inputs:
            call_args = comma_list([*call_args, cst.Arg(cst.Name(ours["**"]), star="**")])
        return new.with_changes(func=inner, args=call_args)


def _self_attr(name: str) -> cst.Attribute:
    return cst.Attribute(value=cst.Name("self"), attr=cst.Name(name))

