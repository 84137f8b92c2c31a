"""Every node of a file's ``ast`` tree, listed once for all who walk it."""

from __future__ import annotations

import ast

# (tree, its nodes): the facts of one file walk its whole tree seven times (imports, names and
# classes, apply partials, module arguments, untraced arguments, call arguments, rebound imports,
# top-level bindings), and ``ast.walk`` costs more than the checks made on each node
_LAST: list = [None, ()]
# id(function or class) -> (it, its nodes), for the last tree: about ten of the facts' passes
# walk each function again (and a nested function within each function around it); the node is
# held, so its id is no other's
_SUBTREES: dict[int, tuple[ast.AST, tuple[ast.AST, ...]]] = {}


def nodes(tree: ast.AST) -> tuple[ast.AST, ...]:
    """``tuple(ast.walk(tree))`` (the same order); the last tree's list is kept, and a tree
    is never changed once parsed."""
    if _LAST[0] is not tree:
        _LAST[:] = [tree, tuple(ast.walk(tree))]
        _SUBTREES.clear()
    return _LAST[1]


def subtree(node: ast.AST) -> tuple[ast.AST, ...]:
    """``tuple(ast.walk(node))`` for a part of the tree (a function, a class), listed once."""
    found = _SUBTREES.get(id(node))
    if found is None:
        found = _SUBTREES[id(node)] = (node, tuple(ast.walk(node)))
    return found[1]
