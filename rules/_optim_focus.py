"""``d.create(target, focus=traversal)``: flax 0.3.6's ``OptimizerDef.create``
made that ``MultiOptimizer((focus, d))`` (``if focus: opt_def =
MultiOptimizer((focus, opt_def))``), so LU302 converts it as that
MultiOptimizer: ``optax.multi_transform`` with the traversal's parameters in
one group and the others frozen.  Legacy skipped a falsy focus, so only a
focus that is surely a traversal converts: a ``ModelParamTraversal(...)`` call,
written there or bound to a name by the file's one binding of that name, in
the create's function or around it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rules._cst import express
from linen_upgrade.rules._optim_defs import Scan
from linen_upgrade.tables.optimizers import TRAVERSAL, TRAVERSAL_TARGET


def focus_argument(create: cst.Call) -> tuple[cst.BaseExpression, cst.BaseExpression] | None:
    """(target, focus) of ``d.create(target, focus)`` / ``d.create(target, focus=f)``; None for other
    arguments."""
    args = list(create.args)
    if len(args) != 2 or any(a.star for a in args):
        return None
    target, focus = args
    if target.keyword is not None and target.keyword.value != "target":
        return None
    if (focus.keyword is None and target.keyword is not None) or (
            focus.keyword is not None and focus.keyword.value != "focus"):
        return None
    return target.value, focus.value


def traversal_problem(focus: cst.BaseExpression, enclosing: Sequence[str], module: cst.Module,
                      bound_to: Callable[[str], list[cst.BaseExpression]], scan: Scan) -> str | None:
    """Why ``focus`` may not be a traversal when the create runs, or None.  ``enclosing``: the
    functions around the create, outermost first; ``bound_to(name)``: the values the file's
    assignments give ``name``."""
    if _traversal(focus, scan):
        return None
    if not isinstance(focus, cst.Name):
        return "create(..., focus=...) with a focus that is not a ModelParamTraversal(...) or a name bound to one"
    values = bound_to(focus.value)
    chains = _bindings(ast.parse(module.code), focus.value)
    if not (len(values) == 1 and len(chains) == 1 and _traversal(values[0], scan)
            and tuple(enclosing[:len(chains[0])]) == chains[0]):
        return (f"create(..., focus={focus.value}): {focus.value} is not bound once, where the create "
                "runs, to a ModelParamTraversal(...) (legacy skipped a focus that is None)")
    return None


def _traversal(node: cst.BaseExpression, scan: Scan) -> bool:
    """A ``ModelParamTraversal(...)`` call, as written or as LU301 spelled ``optim.ModelParamTraversal``
    in this run (``flax.traverse_util``'s class, with an import the file's import map does not have yet)."""
    if not isinstance(node, cst.Call):
        return False
    qual = scan.qual(node.func)
    return qual in (TRAVERSAL, TRAVERSAL_TARGET) or (
        qual is None and dotted(node.func) == express(TRAVERSAL_TARGET, scan.ctx.facts.imports)[0])


def _bindings(tree: ast.Module, name: str) -> list[tuple[str, ...]]:
    """The functions around each binding of ``name`` in the file (any kind: assignment, parameter,
    loop or ``with`` target, import, definition, ``global``), outermost first."""
    found: list[tuple[str, ...]] = []

    def visit(node: ast.AST, chain: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = chain
            bound: str | None = None
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):  # LU302's plan names functions only
                bound, inner = child.name, chain + (child.name,)
            elif isinstance(child, ast.ClassDef):
                bound = child.name
            elif isinstance(child, ast.Lambda):
                inner = chain + ("<lambda>",)
            elif isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
                bound = child.id
            elif isinstance(child, ast.arg):
                bound = child.arg
            elif isinstance(child, ast.alias):
                bound = (child.asname or child.name).split(".")[0]
            elif isinstance(child, (ast.Global, ast.Nonlocal)) and name in child.names:
                bound = name
            elif isinstance(child, ast.ExceptHandler):
                bound = child.name
            elif isinstance(child, (ast.MatchAs, ast.MatchStar)):
                bound = child.name
            elif isinstance(child, ast.MatchMapping):
                bound = child.rest
            if bound == name:
                found.append(chain)
            visit(child, inner)

    visit(tree, ())
    return found
