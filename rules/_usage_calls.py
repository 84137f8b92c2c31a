"""Building the arguments of Linen calls for the usage rules: legacy ``apply``
arguments split into constructor attributes and call inputs (``split_usage``).
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rules._cst import kwarg
from linen_upgrade.rules._linen_named import linen_named
from linen_upgrade.rules._modules import CallSpec, split_call


def string(value: str) -> cst.SimpleString:
    return cst.SimpleString(repr(value))


def split_usage(args: list[cst.Arg], spec: CallSpec, bound: dict[str, cst.BaseExpression],
                fixed: frozenset[str] = frozenset()) -> tuple[list[cst.Arg], list[cst.Arg], str | None]:
    """Legacy ``apply`` arguments (plus what a partial fixed) -> constructor
    attributes and call inputs, by the same split as the module rules
    (``CallSpec``): attributes by keyword, inputs positional while in order;
    keywords a wrapper forwards through ``**kwargs`` packed as LU102 packs
    them (``kwargs={...}``, forwarded inputs such as ``train=`` at call time)."""
    if spec.problem:
        return [], [], spec.problem
    if any(a.star for a in args):
        return [], [], "*args/**kwargs: split constructor and call arguments by hand"
    forwarded: list[cst.Arg] = []
    named: dict[str, tuple[cst.BaseExpression, bool]] = {}
    positional = [a for a in args if a.keyword is None]
    if len(positional) > len(spec.legacy):
        return [], [], "more positional arguments than the module's apply takes"
    for name, a in zip(spec.legacy, positional):
        named[name] = (a.value, True)
    for a in args:
        if a.keyword is None:
            continue
        key = a.keyword.value
        if key == "name":
            return [], [], "name= at the top level: Linen names the root module itself"
        if key not in spec.legacy and spec.forward is not None:
            forwarded.append(a)
            continue
        if key not in spec.legacy or key in named:
            return [], [], f"unknown or repeated argument {key!r}"
        named[key] = (a.value, False)
    for key in named:
        if key in spec.manual:
            return [], [], f"{key}: {spec.manual[key]}"
    merged = {**{k: (v, False) for k, v in bound.items() if k not in named}, **named}
    already, problem = linen_named(bound, spec, {spec.renames.get(n, n) for n in merged if n in spec.legacy})
    if problem:
        return [], [], problem
    ctor: list[cst.Arg] = []
    inputs: list[cst.Arg] = []
    in_order = True
    for name in spec.legacy:
        if name not in merged:
            continue
        value, was_pos = merged[name]
        new = spec.renames.get(name, name)
        if name in spec.inputs:
            k = len(inputs)
            if in_order and was_pos and k < len(spec.linen_call) and spec.linen_call[k] == new:
                inputs.append(cst.Arg(value=value))
            else:
                in_order = False
                inputs.append(kwarg(new, value))
        else:
            ctor.append(kwarg(new, value))
    ctor.extend(already)
    given = {spec.renames.get(n, n) for n in [*merged, *fixed]}
    for attr, source in spec.explicit.items():
        if attr not in given:
            ctor.append(kwarg(attr, cst.parse_expression(source)))
    if spec.forward is not None:  # the module rules' packing: only the forwarded keywords go through it
        given_here = {a.keyword.value for a in forwarded if a.keyword is not None}
        partial = [kwarg(k, v) for k, v in bound.items() if k not in spec.legacy and k not in given_here]
        packed, problem = split_call(cst.Call(cst.Name("_"), [*partial, *forwarded]), spec, cst.Name("_"))
        if packed is None:
            return [], [], problem
        ctor.extend(packed.func.args)  # type: ignore[attr-defined]
        inputs.extend(packed.args)  # type: ignore[attr-defined]
    return ctor, inputs, None


def subscript(value: cst.BaseExpression, key: str) -> cst.Subscript:
    return cst.Subscript(value, [cst.SubscriptElement(cst.Index(string(key)))])
