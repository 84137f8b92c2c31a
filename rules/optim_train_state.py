"""LU302 optim_train_state: a ``flax.optim`` optimizer object becomes a ``flax.training.train_state.TrainState``.

What it does
    ``optimizer = optim.X(...).create(params)`` (also through a variable
    bound to the definition, and inside a helper function that returns the
    optimizer) becomes ``optimizer = train_state.TrainState.create(
    apply_fn=None, params=params, tx=<optax expression>)`` (the expression of
    ``linen_upgrade/tables/optimizers.py``, as LU301 writes it).  The variable
    keeps its name, so signatures, ``jax.jit``/``pmap`` and
    ``jax_utils.replicate``/``unreplicate`` keep working: a ``TrainState`` is a
    pytree.  On the values that hold the optimizer (followed by name through
    assignments, function parameters, return values, tuple results,
    ``jax.jit``/``pmap`` and ``replicate``/``unreplicate``):
    ``.target`` -> ``.params``; ``.apply_gradient(g)`` ->
    ``.apply_gradients(grads=g)``; ``.state.step`` -> ``.step``;
    ``.replace(target=p)`` -> ``.replace(params=p)``.
Why
    ``flax.optim`` is gone from current Flax; ``TrainState`` is the object the
    Flax guides thread through train steps.  Legacy ``state.step`` starts at 0
    and counts updates, like ``TrainState.step`` and the optax counters.
Left alone (with a TODO)
    A file where an optimizer value is used through any other API
    (``apply_gradient`` with hyper-parameters, ``optimizer_def``,
    ``compute_gradient``, ``optimize``, ``replicate()``, ``state.param_states``,
    ...), a ``create`` with a ``focus``, a definition the table cannot
    convert: nothing in it is converted, so no half-converted optimizer is
    left behind.
"""

from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, Example, Rule, RuleTransformer, TODO_PREFIX
from linen_upgrade.tables.optimizers import HELPERS, MULTI, TRANSFORMS, ConversionError
from linen_upgrade.rules._cst import add_import
from linen_upgrade.rules.optim_constructors import _convert, _drop_unused_optim_imports, _format, _insert_helpers, _Scan

_REPLICATE = frozenset({"flax.jax_utils.replicate", "flax.jax_utils.unreplicate"})
_WRAPPERS = frozenset({"jax.jit", "jax.pmap"})
_SUPPORTED = frozenset({"target", "apply_gradient", "state", "replace"})


_APPLY_WITH = "_apply_gradients_with"
_APPLY_WITH_SOURCE = '''def _apply_gradients_with(state, grads, **hyperparams):
    """``state.apply_gradients(grads=grads)`` with this step's hyper-parameters
    (legacy ``optimizer.apply_gradient(grads, learning_rate=...)``); ``state.tx``
    is wrapped in ``optax.inject_hyperparams``."""
    opt_state = state.opt_state
    values = dict(opt_state.hyperparams)
    for name, value in hyperparams.items():
        values[name] = jax.numpy.asarray(value, dtype=values[name].dtype)
    state = state.replace(opt_state=opt_state._replace(hyperparams=values))
    return state.apply_gradients(grads=grads)
'''
_HYPER = frozenset({"learning_rate"})  # legacy hyper-parameters whose optax name is the same


def _inject(expr: str) -> str | None:
    """``optax.f(args)`` -> ``optax.inject_hyperparams(optax.f)(args)``; None
    where the expression is not one plain optax call."""
    node = cst.parse_expression(expr)
    if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
            and dotted(node.func) and dotted(node.func).startswith("optax.")
            and dotted(node.func).count(".") == 1 and dotted(node.func) != "optax.chain"):
        return None
    wrapped = node.with_changes(func=cst.Call(
        func=cst.parse_expression("optax.inject_hyperparams"), args=[cst.Arg(node.func)]))
    return cst.Module([]).code_for_node(wrapped)


class OptimTrainState(Rule):
    id = "LU302"
    summary = "flax.optim Optimizer objects -> flax.training.train_state.TrainState with the optax transform"
    examples = [
        Example(
            "from flax import optim\n\n"
            "optimizer = optim.Momentum(0.1).create(params)\n"
            "optimizer = optimizer.apply_gradient(grads)\n"
            "print(optimizer.target, optimizer.state.step)\n",
            "import optax\nfrom flax.training import train_state\n\n"
            "optimizer = train_state.TrainState.create(\n"
            "    apply_fn=None,\n    params=params,\n    tx=optax.sgd(0.1, momentum=0.9),\n)\n"
            "optimizer = optimizer.apply_gradients(grads=grads)\n"
            "print(optimizer.params, optimizer.step)\n",
        ),
    ]

    def applies(self, ctx: Context) -> bool:
        return ctx.facts.references("flax.optim")

    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        scan = _Scan(ctx)
        MetadataWrapper(module, unsafe_skip_copy=True).visit(scan)
        plan = _Plan(module, scan)
        if not plan.creates:
            return module
        t = _Transformer(self, ctx, plan)
        module = module.visit(t)
        if t.blocked:
            return module
        module = add_import(module, "optax")
        if plan.inject:
            module = add_import(module, "jax")
        by_source = {h.source: h for h in HELPERS.values()}
        for src in plan.helpers:
            for name in sorted(by_source[src].imports if src in by_source else ()):
                module = add_import(module, name)
        module = add_import(module, "flax.training", "train_state")
        if plan.helpers:
            module = _insert_helpers(module, plan.helpers)
        return _drop_unused_optim_imports(module, ctx)


class _Plan(cst.CSTVisitor):
    """Which names hold an optimizer (by name, over the whole file), and the
    ``create`` calls with their optax expression."""

    def __init__(self, module: cst.Module, scan: _Scan) -> None:
        super().__init__()
        self.module = module
        self.scan = scan
        self.defs: dict[str, list[cst.Call]] = {}  # name -> constructor calls assigned to it
        self.def_names: set[str] = set()  # names bound to definitions
        self.creates: dict[int, tuple[str, cst.BaseExpression]] = {}  # id(create call) -> (tx source, target)
        self.ctor_expr: dict[int, str] = {}  # id(ctor call) -> optax source, for `d = optim.X(...)`
        self.helpers: list[str] = []
        self.problems: list[str] = []
        self.funcs: dict[str, cst.FunctionDef] = {}
        self.aliases: dict[str, str] = {}  # p = jax.pmap(f) -> p: f
        self.assigns: list[tuple[cst.BaseExpression, cst.BaseExpression]] = []
        self.calls: list[cst.Call] = []
        self.returns: dict[str, list[cst.BaseExpression]] = {}
        self._fn: list[str] = []
        self.inject = False  # apply_gradient(g, learning_rate=...): tx in inject_hyperparams
        self.names: set[str] = set()
        self.opt_funcs: set[str] = set()
        module.visit(self)
        self._solve()

    def qual(self, node: cst.BaseExpression) -> str | None:
        return self.scan.qual(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.funcs[node.name.value] = node
        self._fn.append(node.name.value)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._fn.pop()

    def visit_Return(self, node: cst.Return) -> None:
        if self._fn and node.value is not None:
            self.returns.setdefault(self._fn[-1], []).append(node.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self.assigns.append((t.target, node.value))
            if isinstance(t.target, cst.Name) and isinstance(node.value, cst.Call):
                if self.qual(node.value.func) in TRANSFORMS | {MULTI}:
                    self.defs.setdefault(t.target.value, []).append(node.value)
                if self.qual(node.value.func) in _WRAPPERS and node.value.args \
                        and isinstance(node.value.args[0].value, cst.Name):
                    self.aliases[t.target.value] = node.value.args[0].value.value

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)
        f = node.func
        if isinstance(f, cst.Attribute) and f.attr.value == "create":
            base = f.value
            if isinstance(base, cst.Call) and self.qual(base.func) in TRANSFORMS | {MULTI}:
                ctor = base
            elif isinstance(base, cst.Name) and base.value in self.defs:
                ctor = None
            else:
                return
            args = [a for a in node.args]
            if len(args) != 1 or args[0].star or (args[0].keyword and args[0].keyword.value != "target"):
                self.problems.append(f"{dotted(f) or 'create'}(...) with a focus or unusual arguments")
                return
            if ctor is None:
                self.creates[id(node)] = (base.value, args[0].value)  # type: ignore[union-attr]
                return
            tx = self._tx(ctor)
            if tx is not None:
                self.creates[id(node)] = (tx, args[0].value)

    def _tx(self, ctor: cst.Call) -> str | None:
        try:
            expr, helpers = _convert(ctor, self.scan, self.module)
        except ConversionError as e:
            self.problems.append(f"{dotted(ctor.func)}(...): {e}")
            return None
        for h in helpers:
            if h not in self.helpers:
                self.helpers.append(h)
        return expr

    # -- which names hold an optimizer -----------------------------------------
    def is_opt(self, e: cst.BaseExpression) -> bool:
        if isinstance(e, cst.Name):
            return e.value in self.names
        if isinstance(e, cst.Call):
            if id(e) in self.creates:
                return True
            q = self.qual(e.func)
            if q in _REPLICATE and e.args:
                return self.is_opt(e.args[0].value)
            if isinstance(e.func, cst.Attribute) and e.func.attr.value in ("apply_gradient", "replace"):
                return self.is_opt(e.func.value)
            if isinstance(e.func, cst.Name) and self._func(e.func.value) in self.opt_funcs:
                return True
        return False

    def _func(self, name: str) -> str:
        return self.aliases.get(name, name)

    def _ret_items(self, name: str) -> set[int | None]:
        """Positions (None: the whole value) at which function ``name`` returns an optimizer."""
        out: set[int | None] = set()
        for r in self.returns.get(name, []):
            if self.is_opt(r):
                out.add(None)
            elif isinstance(r, cst.Tuple):
                out.update(i for i, el in enumerate(r.elements) if self.is_opt(el.value))
        return out

    def _solve(self) -> None:
        params = {p.name.value for fn in self.funcs.values()
                  for p in (*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params)}
        bound: dict[str, int] = {}
        for target, _ in self.assigns:
            for n in _names(target):
                bound[n] = bound.get(n, 0) + 1
        for name in list(self.defs):
            if name in params or bound.get(name, 0) != 1:
                self.problems.append(f"{name} holds an optimizer definition in one place and other values "
                                     "in others")
                del self.defs[name]
        for call_id, (tx, _) in self.creates.items():
            if tx in bound and tx not in self.defs:
                self.problems.append(f"{tx}.create(...): the definition is not bound once in this file")
        handled = {id(c) for cs in self.defs.values() for c in cs}
        for c in self.scan.ctors:  # what LU301 converted is gone: these reach OptimizerDef API
            if id(c.node) in handled or any(id(a) in handled for a in c.ancestors):
                continue
            parent = c.ancestors[-1] if c.ancestors else None
            if isinstance(parent, cst.Attribute) and any(
                    isinstance(a, cst.Call) and id(a) in self.creates for a in c.ancestors):
                continue
            if any(isinstance(a, cst.Call) and id(a) in self.creates for a in c.ancestors):
                continue  # a slot of a converted definition (WeightNorm, MultiOptimizer)
            self.problems.append(f"{dotted(c.node.func)}(...) is used where this rule cannot follow it")
        for name, ctors in self.defs.items():
            for c in ctors:
                expr = self._tx(c)
                if expr is not None:
                    self.ctor_expr[id(c)] = expr
        while True:
            before = (len(self.names), len(self.opt_funcs))
            tuple_funcs: dict[str, set[int | None]] = {}
            for f in self.funcs:
                items = self._ret_items(f)
                if None in items:
                    self.opt_funcs.add(f)
                elif items:
                    tuple_funcs[f] = items
            for target, value in self.assigns:
                if isinstance(target, cst.Name) and self.is_opt(value):
                    self.names.add(target.value)
                elif isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, cst.Call) \
                        and isinstance(value.func, cst.Name):
                    for i in tuple_funcs.get(self._func(value.func.value), set()):
                        if i is not None and i < len(target.elements) \
                                and isinstance(target.elements[i].value, cst.Name):
                            self.names.add(target.elements[i].value.value)
            for call in self.calls:
                if not isinstance(call.func, cst.Name):
                    continue
                fn = self.funcs.get(self._func(call.func.value))
                if fn is None:
                    continue
                params = [p.name.value for p in (*fn.params.posonly_params, *fn.params.params)]
                for i, a in enumerate(call.args):
                    if a.star or not self.is_opt(a.value):
                        continue
                    if a.keyword is not None:
                        self.names.add(a.keyword.value)
                    elif i < len(params):
                        self.names.add(params[i])
            if before == (len(self.names), len(self.opt_funcs)):
                return


def _names(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _names(e.value)]
    return []


class _Transformer(RuleTransformer):
    def __init__(self, rule: Rule, ctx: Context, plan: _Plan) -> None:
        super().__init__(rule, ctx)
        self.plan = plan
        self.blocked = False
        self._indent: list[str] = []

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> bool:
        assert self._module is not None
        self._indent.append(node.indent if node.indent is not None else self._module.default_indent)
        return True

    def leave_IndentedBlock(self, original, updated):
        self._indent.pop()
        return updated

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        problems = list(self.plan.problems)
        check = _Check(self.plan, problems)
        node.visit(check)
        if check.hyper:
            if check.plain:
                problems.append("apply_gradient with hyper-parameters at some calls and without at others "
                                "(legacy uses the definition's values where none are given)")
            self._inject_all(problems)
        if problems:
            self.blocked = True
            self._problems = problems
        return True

    def _inject_all(self, problems: list[str]) -> None:
        plan = self.plan
        for key, expr in list(plan.ctor_expr.items()):
            new = _inject(expr)
            if new is None:
                problems.append(f"{expr} cannot be wrapped in optax.inject_hyperparams for apply_gradient's "
                                "hyper-parameters")
            else:
                plan.ctor_expr[key] = new
        for key, (tx, target) in list(plan.creates.items()):
            if tx in plan.defs:
                continue
            new = _inject(tx)
            if new is None:
                problems.append(f"{tx} cannot be wrapped in optax.inject_hyperparams for apply_gradient's "
                                "hyper-parameters")
            else:
                plan.creates[key] = (new, target)
        plan.inject = True
        if _APPLY_WITH_SOURCE not in plan.helpers:
            plan.helpers.append(_APPLY_WITH_SOURCE)

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if self.blocked:  # report once, on the first optimizer statement
            return _todo_on_first_create(original, self.plan, self.rule.id, self._problems)
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if self.blocked:
            return updated
        if id(original) in self.plan.creates:
            tx, target = self.plan.creates[id(original)]
            assert self._module is not None
            new = cst.parse_expression(
                f"train_state.TrainState.create(apply_fn=None, params={self._module.code_for_node(target)}, tx={tx})")
            self.fixed(f"{dotted(original.func) or '.create'}(...) -> train_state.TrainState.create(...)")
            indent = "".join(self._indent)
            return _format(new, indent, len(indent) + 12).with_changes(lpar=original.lpar, rpar=original.rpar)
        if id(original) in self.plan.ctor_expr:
            return cst.parse_expression(self.plan.ctor_expr[id(original)]).with_changes(
                lpar=original.lpar, rpar=original.rpar)
        f = updated.func
        if isinstance(original.func, cst.Attribute) and self.plan.is_opt(original.func.value):
            method = original.func.attr.value
            if method == "apply_gradient" and len(updated.args) > 1:
                self.fixed("apply_gradient(..., learning_rate=...) -> _apply_gradients_with(...)")
                first = updated.args[0].with_changes(keyword=None, equal=cst.MaybeSentinel.DEFAULT)
                return cst.Call(func=cst.Name(_APPLY_WITH),
                                args=[cst.Arg(f.value, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
                                      first, *updated.args[1:]],
                                lpar=updated.lpar, rpar=updated.rpar)
            if method == "apply_gradient" and isinstance(f, cst.Attribute):
                arg = updated.args[0].with_changes(keyword=cst.Name("grads"),
                                                   equal=cst.AssignEqual(cst.SimpleWhitespace(""),
                                                                         cst.SimpleWhitespace("")))
                return updated.with_changes(func=f.with_changes(attr=cst.Name("apply_gradients")), args=[arg])
            if method == "replace":
                return updated.with_changes(args=[
                    a.with_changes(keyword=cst.Name("params")) if a.keyword and a.keyword.value == "target" else a
                    for a in updated.args])
        return updated

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if self.blocked:
            return updated
        if original.attr.value == "target" and self.plan.is_opt(original.value):
            return updated.with_changes(attr=cst.Name("params"))
        if original.attr.value == "step" and isinstance(original.value, cst.Attribute) \
                and original.value.attr.value == "state" and self.plan.is_opt(original.value.value):
            assert isinstance(updated.value, cst.Attribute)
            return updated.with_changes(value=updated.value.value)
        return updated

    def on_leave(self, original_node, updated_node):
        result = super().on_leave(original_node, updated_node)
        if not self.blocked and isinstance(result, cst.SimpleStatementLine):
            lines = [ln for ln in result.leading_lines
                     if not (ln.comment and ln.comment.value.startswith(f"{TODO_PREFIX} LU301")
                             and "feeds flax.optim code" in ln.comment.value
                             and _has_converted(original_node, self.plan))]
            if len(lines) != len(result.leading_lines):
                result = result.with_changes(leading_lines=lines)
        return result


def _has_converted(stmt: cst.CSTNode, plan: _Plan) -> bool:
    found = False

    class Find(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            nonlocal found
            if id(node) in plan.ctor_expr or id(node) in plan.creates:
                found = True
    stmt.visit(Find())
    return found


class _Check(cst.CSTVisitor):
    """Every use of an optimizer value must be one this rule converts."""

    def __init__(self, plan: _Plan, problems: list[str]) -> None:
        super().__init__()
        self.plan, self.problems = plan, problems
        self.ok: set[int] = set()
        self.hyper = 0  # apply_gradient calls with hyper-parameters
        self.plain = 0  # and without

    def visit_Call(self, node: cst.Call) -> None:
        f = node.func
        if isinstance(f, cst.Attribute) and f.attr.value == "apply_gradient" and self.plan.is_opt(f.value):
            first, rest = (node.args[0], node.args[1:]) if node.args else (None, ())
            if first is None or first.star or (first.keyword is not None and first.keyword.value != "grads") \
                    or any(a.star or a.keyword is None for a in rest):
                self.problems.append("apply_gradient with unusual arguments")
            elif rest:
                unknown = sorted({a.keyword.value for a in rest} - _HYPER)  # type: ignore[union-attr]
                if unknown:
                    self.problems.append(f"apply_gradient with hyper-parameters {', '.join(unknown)} "
                                         "(only learning_rate is converted)")
                self.hyper += 1
            else:
                self.plain += 1
            self.ok.add(id(f))
        if isinstance(f, cst.Attribute) and f.attr.value == "replace" and self.plan.is_opt(f.value):
            if any(a.keyword is None or a.keyword.value != "target" for a in node.args):
                self.problems.append("optimizer.replace(...) of fields other than target")
            self.ok.add(id(f))
        if isinstance(f, cst.Attribute) and f.attr.value == "create" and isinstance(f.value, cst.Name) \
                and f.value.value in self.plan.defs:
            self.ok.add(id(f))

    def visit_Name(self, node: cst.Name) -> None:
        pass

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if id(node) in self.ok:
            return
        if isinstance(node.value, cst.Attribute) and node.value.attr.value == "state" \
                and self.plan.is_opt(node.value.value):
            if node.attr.value == "step":
                self.ok.add(id(node.value))
            else:
                self.problems.append(f"optimizer.state.{node.attr.value}")
                self.ok.add(id(node.value))
        if self.plan.is_opt(node.value) and node.attr.value != "target":
            self.problems.append(f"optimizer.{node.attr.value}")
        if isinstance(node.value, cst.Name) and node.value.value in self.plan.defs and id(node) not in self.ok:
            self.problems.append(f"{node.value.value}.{node.attr.value} on an optimizer definition")


def _todo_on_first_create(module: cst.Module, plan: _Plan, rule_id: str, problems: list[str]) -> cst.Module:
    msg = (f"{TODO_PREFIX} {rule_id} flax.optim optimizer not converted to a TrainState: "
           f"{'; '.join(dict.fromkeys(problems))}")

    class Add(cst.CSTTransformer):
        done = False

        def leave_SimpleStatementLine(self, original, updated):
            if not Add.done and _has_converted(original, plan):
                Add.done = True
                indent_lines = list(updated.leading_lines)
                if not any(ln.comment and ln.comment.value == msg for ln in indent_lines):
                    indent_lines.append(cst.EmptyLine(comment=cst.Comment(msg)))
                return updated.with_changes(leading_lines=indent_lines)
            return updated
    return module.visit(Add())
