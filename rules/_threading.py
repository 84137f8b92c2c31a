"""Helpers for values threaded through functions: scopes, which parameter an argument
binds, removing one item of a comma-separated list, and the arguments of
``jax.jit``/``jax.pmap`` that name the function's arguments or results."""

from __future__ import annotations

from typing import Sequence, TypeVar

import libcst as cst
from libcst.metadata import MetadataWrapper, ScopeProvider

from linen_upgrade.resolve import ImportMap
from linen_upgrade.transformer import parents

T = TypeVar("T", cst.Arg, cst.Param, cst.Element)

WRAPPERS = frozenset({"jax.jit", "jax.pmap"})
# keywords of jax.jit / jax.pmap that do not refer to arguments or results
_NEUTRAL = frozenset({"axis_name", "devices", "backend", "axis_size", "device", "inline",
                      "keep_unused", "abstracted_axes", "global_arg_shapes"})
_ARGNUMS = frozenset({"static_argnums", "static_broadcasted_argnums", "donate_argnums"})
_ARGNAMES = frozenset({"static_argnames", "donate_argnames"})
_CODE = cst.Module([]).code_for_node


def positional(fn: cst.FunctionDef) -> list[cst.Param]:
    return [*fn.params.posonly_params, *fn.params.params]


def bind_args(call: cst.Call, fn: cst.FunctionDef) -> dict[str, cst.Arg] | None:
    """Parameter name -> the argument a call passes it; None where ``*args``,
    ``**kwargs`` or a keyword the signature lacks leave that unknown."""
    pos = [p.name.value for p in positional(fn)]
    by_name = {p.name.value for p in (*fn.params.params, *fn.params.kwonly_params)}
    out: dict[str, cst.Arg] = {}
    for k, arg in enumerate(call.args):
        if arg.star:
            return None
        if arg.keyword is None:
            if k >= len(pos):
                return None
            out[pos[k]] = arg
        elif arg.keyword.value in by_name and arg.keyword.value not in out:
            out[arg.keyword.value] = arg
        else:
            return None
    return out


def drop_item(items: Sequence[T], k: int) -> list[T]:
    """``items`` without item ``k``; the last item keeps the removed one's comma."""
    out = list(items)
    removed = out.pop(k)
    if k == len(out) and out:
        out[-1] = out[-1].with_changes(comma=removed.comma)
    return out


def is_simple(node: cst.BaseExpression) -> bool:
    """Names, attributes and constant subscripts: evaluating them has no effect."""
    if isinstance(node, (cst.Name, cst.Integer, cst.SimpleString)):
        return True
    if isinstance(node, cst.Attribute):
        return is_simple(node.value)
    if isinstance(node, cst.Subscript):
        return is_simple(node.value) and all(
            isinstance(s.slice, cst.Index) and is_simple(s.slice.value) for s in node.slice)
    return False


def wrapper_call(node: cst.BaseExpression, imports: ImportMap) -> tuple[str, list[cst.Arg]] | None:
    """A decorator ``@jax.jit`` / ``@partial(jax.pmap, **kw)``: the wrapper and its keywords."""
    if imports.resolve(node) in WRAPPERS:
        return imports.resolve(node), []  # type: ignore[return-value]
    if isinstance(node, cst.Call) and imports.resolve(node.func) == "functools.partial" and node.args \
            and not node.args[0].keyword and imports.resolve(node.args[0].value) in WRAPPERS:
        return imports.resolve(node.args[0].value), list(node.args[1:])  # type: ignore[return-value]
    return None


def _ints(node: cst.BaseExpression) -> list[int] | None:
    if isinstance(node, cst.Integer):
        return [int(node.value)]
    if isinstance(node, (cst.Tuple, cst.List)) and all(isinstance(e.value, cst.Integer) for e in node.elements):
        return [int(e.value.value) for e in node.elements]  # type: ignore[attr-defined]
    return None


def _strs(node: cst.BaseExpression) -> list[str] | None:
    if isinstance(node, cst.SimpleString):
        return [node.evaluated_value]  # type: ignore[list-item]
    if isinstance(node, (cst.Tuple, cst.List)) and all(isinstance(e.value, cst.SimpleString) for e in node.elements):
        return [e.value.evaluated_value for e in node.elements]  # type: ignore[attr-defined]
    return None


def _without(node: cst.BaseExpression, k: int, keep: int, single: bool = False) -> cst.BaseExpression | str:
    """A tuple of per-item values without item ``k``, which must equal item ``keep``."""
    if not isinstance(node, (cst.Tuple, cst.List)):
        return node if isinstance(node, (cst.Integer, cst.Name)) else "a computed axis specification"
    elements = node.elements
    if max(k, keep) >= len(elements) or any(isinstance(e, cst.StarredElement) for e in elements):
        return "an axis specification of another length"
    if _CODE(elements[k].value) != _CODE(elements[keep].value):
        return "different axes for the optimizer and the state"
    rest = drop_item(elements, k)
    if single and len(rest) == 1:
        return rest[0].value
    return node.with_changes(elements=rest)


def merge_wrapper_args(args: list[cst.Arg], fn: str, opt: tuple[int, str], state: tuple[int, str],
                       out: tuple[int, int, int]) -> list[cst.Arg] | str:
    """The keywords of a ``jax.jit``/``jax.pmap`` of a function whose ``state``
    argument (position, name) merges into ``opt``, and whose result ``out[1]``
    of ``out[2]`` merges into ``out[0]``; or why they cannot follow."""
    new: list[cst.Arg] = []
    for arg in args:
        key = arg.keyword.value if arg.keyword else None
        if key is None or arg.star:
            return f"{fn}: positional wrapper arguments"
        if key in _NEUTRAL:
            new.append(arg)
            continue
        if key in _ARGNUMS or key in _ARGNAMES:
            values = _ints(arg.value) if key in _ARGNUMS else _strs(arg.value)
            if values is None:
                return f"{fn}: {key} is not a literal"
            o, s = (opt[0], state[0]) if key in _ARGNUMS else (opt[1], state[1])
            if s in values and (key.startswith("static") or o not in values):
                return f"{fn}: {key} treats the state and the optimizer differently"
            if o in values and s not in values and key.startswith("donate"):
                return f"{fn}: {key} would donate the state's buffers too"
            values = [v for v in values if v != s]
            if key in _ARGNUMS:
                values = [v - 1 if v > s else v for v in values]  # type: ignore[operator]
                if any(v < 0 for v in values):  # type: ignore[operator]
                    return f"{fn}: negative {key}"
            items = [repr(v) for v in values]
            code = items[0] if isinstance(arg.value, (cst.Integer, cst.SimpleString)) and len(items) == 1 \
                else "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
            new.append(arg.with_changes(value=cst.parse_expression(code)))
            continue
        if key in ("in_axes", "out_axes"):
            k, keep, single = (state[0], opt[0], False) if key == "in_axes" else (out[1], out[0], out[2] == 2)
            value = _without(arg.value, k, keep, single)
            if isinstance(value, str):
                return f"{fn}: {key}: {value}"
            new.append(arg.with_changes(value=value))
            continue
        return f"{fn}: wrapper keyword {key}"
    return new


class Scopes:
    """LibCST scopes and parents of one module, and the questions asked of them."""

    def __init__(self, module: cst.Module) -> None:
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)  # keeps node identities
        self.scopes = wrapper.resolve(ScopeProvider)
        self.parents = parents(module)
        self.all_scopes = list({id(s): s for s in self.scopes.values() if s is not None}.values())

    def top(self, node: cst.CSTNode, block: cst.CSTNode) -> int:
        """Index in ``block``'s statements of the statement holding ``node`` (-1: outside)."""
        while True:
            parent = self.parents.get(node)
            if parent is None:
                return -1
            if parent is block:
                return [id(s) for s in block.body].index(id(node))  # type: ignore[attr-defined]
            node = parent

    def referents(self, name: cst.Name) -> set:
        """The assignments a read of ``name`` may see."""
        scope = self.scopes.get(name)
        for acc in scope.accesses[name.value] if scope else ():
            if acc.node is name:
                return set(acc.referents)
        return set()

    def accesses(self, assignments) -> list:
        """Every access, in any scope, that may read one of ``assignments``."""
        ids = {id(a) for a in assignments}
        names = {a.name for a in assignments}
        return [acc for s in self.all_scopes for n in names for acc in s.accesses[n]
                if any(id(r) in ids for r in acc.referents)]

    @staticmethod
    def visible(name: str, inner, outer) -> bool:
        """Does ``name`` in scope ``inner`` mean ``outer``'s ``name``?"""
        while inner is not outer:
            if name in inner.assignments:
                return False
            inner = inner.parent
        return True

    def calls_only(self, assignment) -> set[int] | None:
        """id of every call of what ``assignment`` binds; None where it is used any other way
        or bound more than once."""
        calls = set()
        for acc in assignment.references:
            call = self.parents.get(acc.node)
            if not (isinstance(call, cst.Call) and call.func is acc.node):
                return None
            calls.add(id(call))
        return calls if len(assignment.scope.assignments[assignment.name]) == 1 else None
