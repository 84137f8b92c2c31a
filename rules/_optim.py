"""Helpers of LU302 (optim_train_state) for the optimizer API beyond
``create``/``target``/``apply_gradient``: the explicit ``OptimizerDef`` API
(``init_state``/``apply_gradient(hyper_params, params, state, grads)`` ->
``tx.init``/``tx.update`` + ``optax.apply_updates``), ``compute_gradient`` /
``optimize`` (-> ``jax.value_and_grad`` + ``apply_gradients``) and the
legacy ``replicate()``/``unreplicate()`` methods (-> ``flax.jax_utils``, with
the gradient mean the legacy ``ReplicatedOptimizer`` took inside
``apply_gradient``).

Each form is checked by ``tests/test_optim_train_state.py`` against flax
0.3.6 (``flax/optim/base.py``: ``compute_gradient`` returns ``(loss, grad)``
when the loss function returns an array and ``(loss, aux, grad)`` when it
returns a pair, so the number of names it is unpacked into says which;
``optimize`` returns ``(optimizer, *that without grad)``).
"""

from __future__ import annotations

from typing import Callable

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import FastVisitor
from linen_upgrade.rules._cst import code, names_in  # noqa: F401 - the optimizer rules' spelling
from linen_upgrade.rules._optim_calls import PARTIAL, current

# legacy Optimizer methods converted here, by the statement they are in
GRADIENT_METHODS = frozenset({"compute_gradient", "compute_gradients", "optimize"})
REPLICATE_METHODS = frozenset({"replicate", "unreplicate"})
# OptimizerDef.apply_gradient(hyper_params, params, state, grads)
EXPLICIT_APPLY_PARAMS = ("hyper_params", "params", "state", "grads")
LEGACY_AXIS = "batch"  # Optimizer.replicate(devices=None, axis_name='batch')


def bind_args(call: cst.Call, names: tuple[str, ...]) -> dict[str, cst.BaseExpression] | None:
    """The call's arguments by parameter name; None where they are unusual."""
    out: dict[str, cst.BaseExpression] = {}
    for i, a in enumerate(call.args):
        if a.star:
            return None
        name = a.keyword.value if a.keyword is not None else (names[i] if i < len(names) else None)
        if name is None or name not in names or name in out:
            return None
        out[name] = a.value
    return out if len(out) == len(names) else None


def tuple_names(target: cst.BaseExpression) -> list[str] | None:
    """``a, b`` / ``(a, b)`` / ``[a, b]`` of plain names."""
    if not isinstance(target, (cst.Tuple, cst.List)):
        return None
    names = [e.value.value for e in target.elements
             if isinstance(e, cst.Element) and isinstance(e.value, cst.Name)]
    return names if len(names) == len(target.elements) else None


def assigned_names(target: cst.BaseExpression) -> list[str]:
    """The names an assignment target binds (``a``, ``a, (b, *c)``)."""
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in assigned_names(e.value)]
    return []


def tuple_targets(target: cst.BaseExpression) -> list[str] | None:
    """The code of each element of ``a, _, (b, c)`` (any unstarred targets)."""
    if not isinstance(target, (cst.Tuple, cst.List)) \
            or not all(isinstance(e, cst.Element) for e in target.elements):
        return None
    return [code(e.value) for e in target.elements]


def single_assign(stmt: cst.CSTNode) -> cst.Assign | None:
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 \
            and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1:
        return stmt.body[0]
    return None




# (node, its name counts): LU302's plan asks twice of the same module
_LAST_COUNTS: list = [None, {}]


def name_counts(node: cst.CSTNode) -> dict[str, int]:
    """How many times each name is written in ``node``."""
    if _LAST_COUNTS[0] is not node:
        _LAST_COUNTS[:] = [node, _name_counts(node)]
    return dict(_LAST_COUNTS[1])


def _name_counts(node: cst.CSTNode) -> dict[str, int]:
    counts: dict[str, int] = {}

    class Count(FastVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            counts[n.value] = counts.get(n.value, 0) + 1
    node.visit(Count())
    return counts


def fresh_name(taken: set[str], base: str) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def gradient_form(call: cst.Call, targets: list[str] | None, whole: bool = False) -> str | None:
    """Why ``targets = opt.compute_gradient(f)`` / ``opt.optimize(f)`` cannot
    be converted, or None; ``whole``: the result is assigned to one name."""
    method = call.func.attr.value  # type: ignore[attr-defined]
    if targets is None and not whole:
        return f"{method}(...) whose result is not unpacked into names"
    if not call.args or call.args[0].star or call.args[0].keyword is not None:
        return f"{method}(...) without a positional loss function"
    if method != "optimize" and len(call.args) != 1:
        return f"{method}(...) with unusual arguments"
    if whole:  # ``result = opt.compute_gradient(f)``: legacy_compute_gradient
        return None if method == "compute_gradient" else f"{method}(...) whose result is not unpacked into names"
    if len(targets) not in (2, 3):  # (loss, grad) / (loss, aux, grad); optimize: (new, loss[, aux])
        return f"{method}(...) unpacked into {len(targets)} names"
    if method == "optimize" and not isinstance(call.func.value, cst.Name):  # type: ignore[attr-defined]
        return "optimize(...) on an expression (it is read twice)"
    if method == "optimize" and not targets[0].isidentifier():
        return "optimize(...) whose new optimizer is not assigned to a name"
    return None




def gradient_statements(stmt: cst.SimpleStatementLine, assign: cst.Assign, call: cst.Call,
                        taken: set[str], apply: Callable[[str, str, list[cst.Arg]], str]
                        ) -> list[cst.SimpleStatementLine]:
    """``loss, grad = opt.compute_gradient(f)`` -> ``loss, grad =
    jax.value_and_grad(f)(opt.params)``; three names -> ``has_aux=True``; one
    name -> ``legacy_compute_gradient(f, opt.params)`` (which the caller copies in);
    ``new, loss[, aux] = opt.optimize(f, **hp)`` -> the gradient, then
    ``new = <apply(receiver, grads, hp)>``.  ``call`` is the updated node."""
    method = call.func.attr.value  # type: ignore[attr-defined]
    receiver = code(call.func.value)  # type: ignore[attr-defined]
    if isinstance(assign.targets[0].target, cst.Name):  # ``result = opt.compute_gradient(f)``: either length
        whole = f"legacy_compute_gradient({code(call.args[0].value)}, {receiver}.params)"
        return [stmt.with_changes(body=[assign.with_changes(value=cst.parse_expression(whole))])]
    targets = tuple_targets(assign.targets[0].target) or []
    if method == "optimize":
        new, outputs, grads = targets[0], targets[1:], fresh_name(taken, "grads")
    else:
        new, outputs, grads = None, targets[:-1], targets[-1]
    loss_fn = code(call.args[0].value)
    if len(outputs) == 2:
        head = f"({outputs[0]}, {outputs[1]}), {grads} = jax.value_and_grad({loss_fn}, has_aux=True)"
    else:
        head = f"{outputs[0]}, {grads} = jax.value_and_grad({loss_fn})"
    lines = [stmt.with_changes(body=[cst.parse_statement(f"{head}({receiver}.params)\n").body[0]])]
    if new is not None:
        update = apply(receiver, grads, list(call.args[1:]))
        lines.append(cst.parse_statement(f"{new} = {update}\n"))  # type: ignore[arg-type]
    return lines


def explicit_apply_problem(call: cst.Call, definition: str, targets: list[str] | None) -> str | None:
    """Why ``new_params, new_state = d.apply_gradient(d.hyper_params, params,
    state, grads)`` cannot be converted, or None."""
    args = bind_args(call, EXPLICIT_APPLY_PARAMS)
    if args is None:
        return f"{definition}.apply_gradient(...) with unusual arguments"
    if dotted(args["hyper_params"]) != f"{definition}.hyper_params":
        return (f"{definition}.apply_gradient with hyper-parameters other than {definition}.hyper_params "
                "(give them to the optax transform)")
    if targets is None or len(targets) != 2:
        return f"{definition}.apply_gradient(...) whose result is not unpacked into two names"
    if targets[1] in names_in(args["params"]):
        return f"{definition}.apply_gradient(...) assigns its state to a name its params read"
    return None


def explicit_apply_statements(stmt: cst.SimpleStatementLine, assign: cst.Assign, call: cst.Call,
                              taken: set[str]) -> list[cst.SimpleStatementLine]:
    """``p2, s2 = d.apply_gradient(d.hyper_params, p, s, g)`` ->
    ``updates, s2 = d.update(g, s, p)`` + ``p2 = optax.apply_updates(p, updates)``
    (seed 000's explicit form).  ``call`` is the updated node."""
    args = bind_args(call, EXPLICIT_APPLY_PARAMS)
    assert args is not None
    new_params, new_state = tuple_names(assign.targets[0].target) or []
    updates = fresh_name(taken, "updates")
    tx = code(call.func.value)  # type: ignore[attr-defined]
    params = code(args["params"])
    first = cst.parse_statement(
        f"{updates}, {new_state} = {tx}.update({code(args['grads'])}, {code(args['state'])}, {params})\n")
    second = cst.parse_statement(f"{new_params} = optax.apply_updates({params}, {updates})\n")
    return [stmt.with_changes(body=first.body), second]  # type: ignore[attr-defined, list-item]


def pmap_axes(module: cst.Module, qual: Callable[[cst.BaseExpression], str | None]) -> dict[str, str | None]:
    """Functions of the file run under ``jax.pmap``: name -> ``axis_name``
    (a string literal; None where there is none or it is not a literal)."""
    out: dict[str, str | None] = {}

    def axis(call: cst.Call) -> str | None:
        for a in call.args:
            if a.keyword is not None and a.keyword.value == "axis_name":
                return a.value.evaluated_value if isinstance(a.value, cst.SimpleString) else None  # type: ignore[return-value]
        return None

    class Find(FastVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            for d in node.decorators:
                dec = d.decorator
                if qual(dec) == "jax.pmap":
                    out[node.name.value] = None
                elif isinstance(dec, cst.Call) and qual(dec.func) == "jax.pmap":
                    out[node.name.value] = axis(dec)
                elif isinstance(dec, cst.Call) and current(qual(dec.func)) == PARTIAL and dec.args \
                        and qual(dec.args[0].value) == "jax.pmap":
                    out[node.name.value] = axis(dec)

        def visit_Call(self, node: cst.Call) -> None:
            if qual(node.func) != "jax.pmap" or not node.args:
                return
            fn = node.args[0].value
            if isinstance(fn, cst.Call) and current(qual(fn.func)) == PARTIAL and fn.args:
                fn = fn.args[0].value  # jax.pmap(functools.partial(step, lr=...), axis_name='batch')
            if isinstance(fn, cst.Name):
                out[fn.value] = axis(node)
    module.visit(Find())
    return out


def pmap_aliases(module: cst.Module, qual: Callable[[cst.BaseExpression], str | None]) -> frozenset[str]:
    """Names the file binds only by ``=`` to ``jax.pmap`` or to a ``functools.partial`` of it
    (or of such a name) with keywords (``pmap_fn = jax.pmap``, then ``if donate: pmap_fn =
    functools.partial(pmap_fn, donate_argnums=(0,))``): calling one pmaps its first argument,
    as ``jax.pmap(f, ...)`` does, whichever binding ran."""
    values: dict[str, list[cst.BaseExpression]] = {}
    other: set[str] = set()  # bound otherwise somewhere: never an alias

    class Find(FastVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            for t in node.targets:
                if isinstance(t.target, cst.Name):
                    values.setdefault(t.target.value, []).append(node.value)
                else:
                    other.update(assigned_names(t.target))

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            other.update(assigned_names(node.target))

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            other.update(assigned_names(node.target))

        def visit_For(self, node: cst.For) -> None:
            other.update(assigned_names(node.target))

        def visit_CompFor(self, node: cst.CompFor) -> None:
            other.update(assigned_names(node.target))

        def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
            other.update(assigned_names(node.target))

        def visit_AsName(self, node: cst.AsName) -> None:
            other.update(assigned_names(node.name))  # with/except/import ... as

        def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
            other.add((dotted(node.name) or "").split(".")[0])

        def visit_Param(self, node: cst.Param) -> None:
            other.add(node.name.value)

        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            other.add(node.name.value)

        def visit_ClassDef(self, node: cst.ClassDef) -> None:
            other.add(node.name.value)
    module.visit(Find())

    def wrapped(value: cst.BaseExpression) -> cst.BaseExpression | None:
        """What ``value`` wraps: itself for a reference, the partial's function; None otherwise."""
        if isinstance(value, (cst.Name, cst.Attribute)):
            return value
        if not (isinstance(value, cst.Call) and current(qual(value.func)) == PARTIAL and value.args):
            return None
        first, rest = value.args[0], value.args[1:]
        if first.star or first.keyword is not None or any(a.star or a.keyword is None for a in rest):
            return None
        return first.value

    def pmap(node: cst.BaseExpression | None, names: set[str], exclude: str | None = None) -> bool:
        return node is not None and (qual(node) == "jax.pmap" or isinstance(node, cst.Name)
                                     and node.value in names and node.value != exclude)
    names = {n for n in values if n not in other}
    changed = True
    while changed:  # every binding a pmap, names assumed aliases until one is not
        changed = False
        for n in sorted(names):
            if not all(pmap(wrapped(v), names) for v in values[n]):
                names.discard(n)
                changed = True
    grounded: set[str] = set()
    changed = True
    while changed:  # ... and some binding of each reaches jax.pmap itself
        changed = False
        for n in sorted(names - grounded):
            if any(pmap(wrapped(v), grounded, n) for v in values[n]):
                grounded.add(n)
                changed = True
    return frozenset(grounded)


def replicate_axis(call: cst.Call) -> tuple[str | None, list[cst.Arg]] | None:
    """``opt.replicate(devices=None, axis_name='batch')``: the axis and the
    arguments ``jax_utils.replicate`` takes; None where unusual."""
    axis: str | None = LEGACY_AXIS
    rest = []
    for i, a in enumerate(call.args):
        name = a.keyword.value if a.keyword is not None else ("devices", "axis_name")[i] if i < 2 else None
        if a.star or name is None:
            return None
        if name == "axis_name":
            axis = a.value.evaluated_value if isinstance(a.value, cst.SimpleString) else None  # type: ignore[assignment]
        else:
            rest.append(a.with_changes(keyword=cst.Name("devices"),
                                       equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
    return axis, rest
