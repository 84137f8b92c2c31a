"""A name resolves through the scope it is used in: in ``def g(jax):
return jax.tree_multimap(f, a)`` the ``jax`` is a parameter, not the module.

LibCST's full scope metadata costs about six times a parse (DESIGN.md), so
this is the light version the rewrite can afford: the facts pass lists the
imported names that some function, lambda or comprehension binds again
(``shadowed_imports``, one ``ast`` walk); only in files where that list is
not empty do rule transformers keep a stack of the names each enclosing
scope binds (``transformer.bound_names``) and stop resolving those.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from linen_upgrade.analysis.walk import nodes

# names the rewrite writes into files: a file binding one itself (``partial = Net.partial()``)
# makes it spell that name through its module instead (``functools.partial``), or, where that
# module's own name is bound too (``flax``), leave the code with a TODO
WRITTEN_NAMES = frozenset({"partial", "train_state", "flax"})


def shadowed_imports(tree: ast.AST, imported: Iterable[str]) -> frozenset[str]:
    """Imported names that are bound again below module level (parameters,
    assignments, loop and ``with``/``except`` targets, nested definitions).
    Module-level rebinding already drops the import (``resolve.import_map``)."""
    names = set(imported)
    if not names:
        return frozenset()
    found: set[str] = set()
    for node in nodes(tree):
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
