"""A name resolves through the scope it is used in: in ``def g(jax):
return jax.tree_multimap(f, a)`` the ``jax`` is a parameter, not the module.

LibCST's full scope metadata costs about six times a parse (DESIGN.md), so
this is the light version the rewrite can afford: the facts pass lists the
imported names that some function, lambda or comprehension binds again
(``shadowed_imports``, one ``ast`` walk); only in files where that list is
not empty do rule transformers keep a stack of the names each enclosing
scope binds (``bound_names``) and stop resolving those.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

import libcst as cst

# the CST nodes that open a function scope (class bodies do not reach into their methods)
SCOPES = (cst.FunctionDef, cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)


def shadowed_imports(tree: ast.AST, imported: Iterable[str]) -> frozenset[str]:
    """Imported names that are bound again below module level (parameters,
    assignments, loop and ``with``/``except`` targets, nested definitions).
    Module-level rebinding already drops the import (``resolve.import_map``)."""
    names = set(imported)
    if not names:
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            name = node.arg
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            name = node.id
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = node.name
        elif isinstance(node, ast.ExceptHandler):
            name = node.name or ""
        else:
            continue
        if name in names:
            found.add(name)
    return frozenset(found)


class _Bindings(cst.CSTVisitor):
    """The names one scope binds, not looking into the scopes inside it."""

    def __init__(self, scope: cst.CSTNode, among: frozenset[str]) -> None:
        super().__init__()
        self.scope, self.among, self.found = scope, among, set()

    def _add(self, target: cst.CSTNode | None) -> None:
        if isinstance(target, cst.Name):
            if target.value in self.among:
                self.found.add(target.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._add(element.value)
        elif isinstance(target, cst.StarredElement):
            self._add(target.value)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if node is not self.scope and isinstance(node, (*SCOPES, cst.ClassDef)):
            if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
                self._add(node.name)
            # a comprehension's first iterable is evaluated in the enclosing scope
            return False
        if isinstance(node, (cst.Import, cst.ImportFrom)):
            return False  # a local import binds the imported object: the alias map has it
        if isinstance(node, cst.Param):
            self._add(node.name)
        elif isinstance(node, cst.AssignTarget):
            self._add(node.target)
        elif isinstance(node, (cst.AnnAssign, cst.AugAssign)):
            self._add(node.target)
        elif isinstance(node, (cst.For, cst.CompFor)):
            self._add(node.target)
        elif isinstance(node, cst.AsName):
            self._add(node.name)
        elif isinstance(node, cst.NamedExpr):
            self._add(node.target)
        return True


def bound_names(scope: cst.CSTNode, among: frozenset[str]) -> frozenset[str]:
    """Which of ``among`` the function, lambda or comprehension ``scope`` binds."""
    visitor = _Bindings(scope, among)
    scope.visit(visitor)
    return frozenset(visitor.found)
