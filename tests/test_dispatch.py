"""The shortcuts rule passes take (issue 15): they must change nothing a rule sees or writes.

``transformer._Dispatch`` leaves whitespace, punctuation and nodes holding only those as they are
in a pass with no hook for them; ``analysis.walk.nodes`` lists a file's ``ast`` tree once for the
facts' passes.  No timing here: the figures are in docs/performance.md."""
from __future__ import annotations

import ast

import libcst as cst

from linen_upgrade.analysis.walk import nodes
from linen_upgrade.transformer import FastTransformer, FastVisitor

SOURCE = """\
import jax.numpy as jnp  # comment


def f(x, *, scale=(1.5)):
    if x is None:
        pass
    for i in range(3):  # loop
        if i:
            continue
        break
    y = jnp.sum((x), axis=(0)) * scale + 2j + ...
    return g(y, 'tag', name=("n"))
"""


class _Calls(FastTransformer):
    """A pass with one hook: each call gets a marker keyword, so the pass does change the tree."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[cst.Name] = []

    def visit_Name(self, node: cst.Name) -> None:
        self.names.append(node)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        return updated.with_changes(args=[*updated.args, cst.Arg(cst.Integer("0"), keyword=cst.Name("k"))])


class _PlainCalls(cst.CSTTransformer):
    """The same pass through LibCST's own dispatch, every node visited and rebuilt."""

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        return updated.with_changes(args=[*updated.args, cst.Arg(cst.Integer("0"), keyword=cst.Name("k"))])


def test_a_pass_skipping_tokens_and_leaves_writes_what_libcst_writes():
    module = cst.parse_module(SOURCE)
    fast = _Calls()
    new = module.visit(fast)
    assert new.code == module.visit(_PlainCalls()).code
    assert new.code.count(", k = 0)") == 3  # the hook ran: range(...), jnp.sum(...), g(...)
    # every name was still shown to visit_Name, the parenthesized (x) included
    assert [n.value for n in fast.names] == [n.value for n in _names(module)]
    assert any(n.lpar for n in fast.names if n.value == "x")


def _names(module: cst.Module) -> list[cst.Name]:
    found: list[cst.Name] = []

    class Names(cst.CSTVisitor):  # LibCST's own dispatch
        def visit_Name(self, node: cst.Name) -> None:
            found.append(node)

    module.visit(Names())
    return found


def test_a_visitor_with_a_hook_on_parentheses_still_sees_them():
    seen: list[str] = []

    class Parens(FastVisitor):
        def visit_LeftParen(self, node: cst.LeftParen) -> None:
            seen.append("(")

    cst.parse_module(SOURCE).visit(Parens())
    # the parentheses around 1.5, x, 0 and "n" (a call's and a definition's are not nodes)
    assert len(seen) == 4


def test_nodes_is_ast_walk_listed_once_per_tree():
    tree = ast.parse(SOURCE)
    listed = nodes(tree)
    assert len(listed) == len(list(ast.walk(tree)))
    assert all(a is b for a, b in zip(listed, ast.walk(tree)))
    assert nodes(tree) is listed  # the same tree again: not walked again
    other = ast.parse(SOURCE)
    assert nodes(other) is not listed and nodes(other)[0] is other
