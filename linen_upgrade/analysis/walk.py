"""Every node of a file's ``ast`` tree, listed once for all who walk it."""

from __future__ import annotations

import ast

# (tree, its nodes): the facts of one file walk its whole tree seven times (imports, names and
# classes, apply partials, module arguments, untraced arguments, call arguments, rebound imports,
# top-level bindings), and ``ast.walk`` costs more than the checks made on each node
_LAST: list = [None, ()]


def nodes(tree: ast.AST) -> tuple[ast.AST, ...]:
    """``tuple(ast.walk(tree))`` (the same order); the last tree's list is kept, and a tree
    is never changed once parsed."""
    if _LAST[0] is not tree:
        _LAST[:] = [tree, tuple(ast.walk(tree))]
    return _LAST[1]
