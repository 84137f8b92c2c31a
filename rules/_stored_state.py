"""Values a legacy ``apply`` stores on ``self`` for its helper methods (LU101).

Legacy ``apply`` ran on a fresh instance that took any attribute, so code
stashed what its helpers read: ``self.features = features``, ``self.num_nodes
= x.shape[0]``, then ``self._propagate(m)`` reads ``self.num_nodes``.  A Linen
module is frozen outside ``setup()``: the assignment raises.  When the
stores are plain statements of ``apply`` itself and every method reading them
is called only from ``apply``, after the store, the value becomes a local of
``__call__`` handed to those methods as one more parameter; a store of an
``apply`` parameter that becomes an attribute under the same name is dropped
(the field holds it).  Anything else is left to the rule's TODO.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rule import FastTransformer, FastVisitor
from linen_upgrade.rules._cst import attribute_uses, comma_list, kwarg, line_comments, names_in
from linen_upgrade.rules._definitions import reassigned_names, self_stores


def _self_attr(node: cst.CSTNode) -> str | None:
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
        return node.attr.value
    return None


def _store(stmt: cst.BaseStatement) -> tuple[str, cst.BaseExpression] | None:
    """``self.<name> = value`` as one statement: (name, value)."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign):
        assign = stmt.body[0]
        if len(assign.targets) == 1:
            name = _self_attr(assign.targets[0].target)
            if name is not None:
                return name, assign.value
    return None


class _Reads(FastVisitor):
    """Which of ``self.<names>`` are read, and which ``self.<method>(...)`` are called."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.reads: set[str] = set()
        self.calls: set[str] = set()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        name = _self_attr(node)
        if name in self.names:
            self.reads.add(name)

    def visit_Call(self, node: cst.Call) -> None:
        name = _self_attr(node.func)
        if name is not None:
            self.calls.add(name)


class _Rewrite(FastTransformer):
    """``self.<name>`` -> ``name``; ``self.<method>(...)`` gets ``name=name`` for what the method reads."""

    def __init__(self, names: set[str], hand: dict[str, list[str]]) -> None:
        self.names = names
        self.hand = hand

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        name = _self_attr(original)
        return cst.Name(name) if name in self.names else updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        given = self.hand.get(_self_attr(original.func) or "", [])
        if not given:
            return updated
        return updated.with_changes(args=comma_list([*updated.args, *(kwarg(n, cst.Name(n)) for n in given)]))


def thread_stored(body: list, apply_at: int, attrs: set[str]) -> list | None:
    """The class body with ``apply``'s stores made locals handed to the methods reading them;
    None when some store is not of that shape (the caller's TODO stands)."""
    apply: cst.FunctionDef = body[apply_at]
    statements = list(apply.body.body) if isinstance(apply.body, cst.IndentedBlock) else []
    stores = {i: s for i, stmt in enumerate(statements) if (s := _store(stmt)) is not None}
    names = {name for name, _ in stores.values()}
    if not names or len(names) != len(stores):
        return None
    params = {p.name.value for p in [*apply.params.params, *apply.params.kwonly_params]}
    rebound = reassigned_names(apply.body)  # (then the field is not what apply stored)
    dropped = {name for name, value in stores.values()
               if name in attrs - rebound and isinstance(value, cst.Name) and value.value == name}
    local = names - dropped
    methods = {s.name.value: s for s in body if isinstance(s, cst.FunctionDef)}
    # a local of that name already, an attribute or a method of it: the value would be another one
    if local & (attrs | params | names_in(apply.body, after_dots=False) | set(methods)):
        return None
    # where the others read them (each only from apply, with a plain signature to add to)
    hand: dict[str, list[str]] = {}
    for name, fn in methods.items():
        if fn is apply:
            continue
        if self_stores(fn):
            return None
        reads = _Reads(names)
        fn.visit(reads)
        wanted = sorted(reads.reads & local)  # (a dropped one is the field, read as before)
        if wanted:
            if fn.decorators or name in ("setup", "__call__") or fn.params.star_arg != cst.MaybeSentinel.DEFAULT \
                    or fn.params.star_kwarg is not None or fn.params.kwonly_params \
                    or set(wanted) & names_in(fn, after_dots=False):
                return None
            hand[name] = wanted
    # the methods reading them are called only from apply, after every store they need
    last_store = {name: i for i, (name, _) in stores.items()}
    everywhere = _Reads(names)
    cst.Module(body=[s for s in body if s is not apply]).visit(everywhere)
    if any(method in everywhere.calls or _referenced(apply, method) for method in hand):
        return None
    for i, stmt in enumerate(statements):
        reads = _Reads(names)
        stmt.visit(reads)
        needs = reads.reads | {n for method in reads.calls for n in hand.get(method, [])}
        if any(last_store[n] >= i for n in needs & local if i not in stores or stores[i][0] != n) \
                or (i not in stores and self_stores(stmt)):
            return None
    new_statements, carried = [], []
    for i, stmt in enumerate(statements):
        if i in stores:
            name, value = stores[i]
            if name in dropped:  # its comments go above the next statement
                carried += line_comments(stmt)
                continue
            stmt = stmt.with_changes(body=[cst.Assign([cst.AssignTarget(cst.Name(name))], value)])
        stmt = stmt.visit(_Rewrite(local, hand))
        new_statements.append(stmt.with_changes(leading_lines=[*carried, *stmt.leading_lines]))
        carried = []
    out = list(body)
    block = apply.body.with_changes(body=new_statements, footer=[*carried, *apply.body.footer])  # type: ignore
    out[apply_at] = apply.with_changes(body=block)
    for i, s in enumerate(out):
        if isinstance(s, cst.FunctionDef) and s.name.value in hand:
            extra = [cst.Param(cst.Name(n)) for n in hand[s.name.value]]
            ps = list(s.params.params)
            if ps:
                ps[-1] = ps[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            ps += extra
            ps[-1] = ps[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            out[i] = s.with_changes(params=s.params.with_changes(params=ps), body=s.body.visit(_Rewrite(local, {})))
    return out


def _referenced(apply: cst.FunctionDef, method: str) -> bool:
    """Is ``self.<method>`` used in apply other than called?"""
    uses, called = attribute_uses(apply, "self", (method,))
    return len(uses) != called
