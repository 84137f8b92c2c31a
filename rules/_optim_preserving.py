"""Functions of a file that hand one of their parameters back through calls that keep an optimizer's
value leaf-wise (``_optim_calls.PRESERVING``: ``jax_utils.replicate``, ``jax.tree_map``, ...):

    def broadcast(tree, n):
        replicated = jax_utils.replicate(tree)
        if n > 1:
            return jax.tree_map(reshard, replicated)
        return replicated

Such a function returns a legacy Optimizer when given one and a TrainState when given a TrainState,
the same leaves in the same places; given a dict of metrics, it returns that.  LU302
(``_train_state.Plan``) follows its calls one by one (``optimizer = broadcast(optimizer)``,
``metrics = broadcast({...})``) instead of calling its parameter an optimizer's name, which would make
every value the function is ever given an optimizer.
"""

from __future__ import annotations

from typing import Callable

import libcst as cst

from linen_upgrade.rule import FastVisitor

Preserved = Callable[[cst.Call], "cst.BaseExpression | None"]


class _Body(FastVisitor):
    """The returns and assignments of a function body (not of functions nested in it), and every name
    it reads or binds (nested functions too)."""

    def __init__(self) -> None:
        super().__init__()
        self.returns: list[cst.Return] = []
        self.assigns: list[cst.Assign] = []
        self.names: list[cst.Name] = []
        self.other = False  # yield, global, nonlocal: not a plain function of its arguments
        self._depth = 0

    def _enter(self, node: cst.CSTNode) -> None:
        self._depth += 1

    def _leave(self, node: cst.CSTNode) -> None:
        self._depth -= 1

    visit_FunctionDef = visit_ClassDef = visit_Lambda = _enter  # type: ignore[assignment]
    leave_FunctionDef = leave_ClassDef = leave_Lambda = _leave  # type: ignore[assignment]

    def visit_Return(self, node: cst.Return) -> None:
        if not self._depth:
            self.returns.append(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        if not self._depth:
            self.assigns.append(node)

    def visit_Name(self, node: cst.Name) -> None:
        self.names.append(node)

    def _other(self, node: cst.CSTNode) -> None:
        self.other = True

    visit_Yield = visit_Global = visit_Nonlocal = _other  # type: ignore[assignment]


def _root(expr: cst.BaseExpression, preserved: Preserved) -> cst.Name | None:
    """The name whose value ``expr`` is, through preserving calls (``jax.tree_map(f, x)`` -> ``x``)."""
    while isinstance(expr, cst.Call):
        inner = preserved(expr)
        if inner is None:
            return None
        expr = inner
    return expr if isinstance(expr, cst.Name) else None


def handed_back(fn: cst.FunctionDef, preserved: Preserved) -> int | None:
    """The position of the parameter that every ``return`` of ``fn`` gives back, directly or through
    locals bound to it by preserving calls, where the body reads that parameter and those locals
    nowhere else (``tree.target``, a closure over it, a second binding: None)."""
    params = [p.name.value for p in (*fn.params.posonly_params, *fn.params.params)]
    body = _Body()
    fn.body.visit(body)
    if body.other or not body.returns:
        return None
    held: dict[str, str] = {}  # a local (or the parameter itself) -> the parameter whose value it holds
    allowed: set[int] = set()  # ids of the Name nodes that only carry that value on

    def source(expr: cst.BaseExpression) -> str | None:
        root = _root(expr, preserved)
        if root is None or (root.value not in held and root.value not in params):
            return None
        allowed.add(id(root))
        return held.get(root.value, root.value)

    for assign in body.assigns:
        target = assign.targets[0].target if len(assign.targets) == 1 else None
        if isinstance(target, cst.Name) and (param := source(assign.value)) is not None:
            held[target.value] = param
            allowed.add(id(target))
    given = {source(r.value) if r.value is not None else None for r in body.returns}
    if len(given) != 1 or None in given or set(held.values()) - given:
        return None
    param = given.pop()
    carried = set(held) | {param}
    if any(n.value in carried and id(n) not in allowed for n in body.names):
        return None
    return params.index(param)  # type: ignore[arg-type]
