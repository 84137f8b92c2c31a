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
    The rest of the optimizer API (``rules/_optim.py``): params and state
    kept apart -- ``d.init_state(p)`` -> ``d.init(p)``, ``p2, s2 =
    d.apply_gradient(d.hyper_params, p, s, g)`` -> ``updates, s2 =
    d.update(g, s, p)`` + ``p2 = optax.apply_updates(p, updates)`` (seed 000);
    ``loss[, aux], grad = opt.compute_gradient(f)`` and ``opt, loss[, aux] =
    opt.optimize(f, **hp)`` -> ``jax.value_and_grad(f[, has_aux=True])(
    opt.params)`` (+ ``apply_gradients``); legacy ``opt.replicate()`` /
    ``.unreplicate()`` -> ``jax_utils.replicate(opt)`` / ``unreplicate``, with
    the gradient mean its ``apply_gradient`` took (``jax.lax.pmean(g,
    'batch')`` in the pmapped step); per-step hyper-parameters under the
    optax names of the table's ``hyper`` column (``beta1`` -> ``b1``).
Left alone (with a TODO)
    A file where an optimizer value is used through any other API
    (``optimizer_def``, ``state.param_states``, a hyper-parameter optax does
    not expose with the same meaning, MultiOptimizer per-group
    hyper-parameters, ``hyper_params=``, the state of ``init_state`` read
    through its fields, an update outside a step pmapped over the replicated
    axis, ...), a ``create`` with a ``focus``, a definition the table cannot
    convert: nothing in it is converted, so no half-converted optimizer is
    left behind.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import TODO_PREFIX, Context, Example, FastTransformer, FastVisitor, Rule, RuleTransformer
from linen_upgrade.tables.optimizers import HELPERS, MULTI, TRANSFORMS, ConversionError, hyper_names
from linen_upgrade.rules import _optim
from linen_upgrade.rules._cst import add_import, express
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
        module.visit(scan)
        plan = _Plan(module, scan)
        if not plan.creates and not plan.explicit:
            return module
        t = _Transformer(self, ctx, plan)
        module = module.visit(t)
        if t.blocked:
            return module
        module = add_import(module, "optax")
        if plan.inject or t.uses_jax:
            module = add_import(module, "jax")
        if t.uses_jax_utils:
            module = add_import(module, "flax", "jax_utils")
        by_source = {h.source: h for h in HELPERS.values()}
        for src in plan.helpers:
            for name in sorted(by_source[src].imports if src in by_source else ()):
                module = add_import(module, name)
        if plan.creates:
            module = add_import(module, "flax.training", "train_state")
        if plan.helpers:
            module = _insert_helpers(module, plan.helpers)
        return _drop_unused_optim_imports(module, ctx)


class _Plan(FastVisitor):
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
        self.hyper_rename: dict[str, str] = {}  # legacy hyper-parameter -> optax's, for inject
        self.tx_qual: dict[str, str] = {}  # optax source -> the legacy definition it came from
        # d.init_state(p) / d.apply_gradient(d.hyper_params, p, s, g) on a definition name d
        self.explicit: dict[int, str] = {}
        self.state_names: set[str] = set()  # names bound to a legacy OptimizerState of d.init_state
        self.enclosing: dict[int, tuple[str, ...]] = {}  # id(call) -> enclosing functions
        self.pmapped = _optim.pmap_axes(module, self.qual)
        self.statements: dict[int, str] = {}  # id(call) -> method, rewritten with its statement (_Check)
        self.pmean: dict[int, str] = {}  # id(apply call) -> axis its gradients are averaged over (_Check)
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
        self.enclosing[id(node)] = tuple(self._fn)
        f = node.func
        if isinstance(f, cst.Attribute) and f.attr.value in ("init_state", "apply_gradient") \
                and isinstance(f.value, cst.Name):
            self.explicit[id(node)] = f.value.value  # kept where f.value is a definition (_solve)
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
        self.tx_qual[expr] = self.qual(ctor.func) or ""
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
            if isinstance(e.func, cst.Attribute) and e.func.attr.value in (
                    "apply_gradient", "replace", *_optim.REPLICATE_METHODS):
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
        self.explicit = {k: d for k, d in self.explicit.items() if d in self.defs}
        explicit_calls = {id(c): c for c in self.calls if id(c) in self.explicit}
        for target, value in self.assigns:
            if id(value) in explicit_calls:
                if value.func.attr.value == "init_state":  # type: ignore[attr-defined]
                    self.state_names.update(_names(target))
                elif isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2:
                    self.state_names.update(_names(target.elements[1].value))
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
                        and isinstance(value.func, cst.Attribute) and value.func.attr.value == "optimize" \
                        and self.is_opt(value.func.value) and isinstance(target.elements[0].value, cst.Name):
                    self.names.add(target.elements[0].value.value)  # (new optimizer, loss[, aux])
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
                break
        used = _optim.name_counts(self.module)
        for f in self.funcs:
            if used.get(f, 0) <= 1 and self._ret_items(f):  # only its own def: callers are elsewhere
                self.problems.append(f"{f}() returns the optimizer to code in other files, which this "
                                     "file's conversion cannot reach: convert them together")


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _function(tx: str) -> str:
    """``optax.inject_hyperparams(optax.adam)(...)`` / ``optax.adam(...)`` -> ``optax.adam``."""
    node = cst.parse_expression(tx)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Call) and node.func.args:
        return dotted(node.func.args[0].value) or tx
    return (dotted(node.func) if isinstance(node, cst.Call) else None) or tx


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
        self.uses_jax = self.uses_jax_utils = False
        self._taken: set[str] = set()

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
        check.finish()
        self._taken = _optim.names_in(node)
        if check.hyper:
            if check.plain:
                problems.append("apply_gradient with hyper-parameters at some calls and without at others "
                                "(legacy uses the definition's values where none are given)")
            self._inject_all(problems, check.hyper_keys)
        if problems:
            self.blocked = True
            self._problems = problems
        return True

    def _inject_all(self, problems: list[str], keys: set[str]) -> None:
        plan = self.plan
        txs = [*plan.ctor_expr.values(), *(tx for tx, _ in plan.creates.values() if tx not in plan.defs)]
        if any(plan.tx_qual.get(tx) == MULTI for tx in txs):
            problems.append("MultiOptimizer with per-step hyper-parameters (each group would need its own "
                            "optax.inject_hyperparams inside optax.multi_transform)")
            txs = [tx for tx in txs if plan.tx_qual.get(tx) != MULTI]
        if "hyper_params" in keys:
            problems.append("apply_gradient(..., hyper_params=...) replaces every hyper-parameter at once")
            return
        for key in sorted(keys):  # the optax name of each legacy hyper-parameter, the same for every tx
            names = {hyper_names(plan.tx_qual.get(tx, ""), _function(tx)).get(key) if plan.tx_qual.get(tx)
                     else None for tx in txs}
            if len(names) == 1 and None not in names:
                plan.hyper_rename[key] = names.pop()  # type: ignore[assignment]
            else:
                problems.append(f"apply_gradient(..., {key}=...): "
                                f"{' / '.join(sorted({_function(tx) for tx in txs}))} has no hyper-parameter of "
                                "that meaning for optax.inject_hyperparams")
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
        if id(original) in self.plan.explicit and original.func.attr.value == "init_state":  # type: ignore[attr-defined]
            self.fixed("opt_def.init_state(params) -> tx.init(params)")
            return updated.with_changes(func=f.with_changes(attr=cst.Name("init")))  # type: ignore[attr-defined]
        if isinstance(original.func, cst.Attribute) and self.plan.is_opt(original.func.value):
            method = original.func.attr.value
            if method in _optim.REPLICATE_METHODS:
                self.fixed(f"optimizer.{method}() -> jax_utils.{method}(optimizer)")
                args = _optim.replicate_axis(updated)[1] if method == "replicate" else []  # type: ignore[index]
                return cst.Call(func=self._jax_utils(method), args=[cst.Arg(f.value), *args],  # type: ignore[attr-defined]
                                lpar=updated.lpar, rpar=updated.rpar)
            if method == "apply_gradient":
                grads = updated.args[0].value
                if id(original) in self.plan.pmean:
                    grads = self._pmean(grads, self.plan.pmean[id(original)])
                if len(updated.args) > 1:
                    self.fixed("apply_gradient(..., learning_rate=...) -> _apply_gradients_with(...)")
                    return cst.parse_expression(self._apply(
                        _code(f.value), _code(grads), list(updated.args[1:]))).with_changes(  # type: ignore[attr-defined]
                            lpar=updated.lpar, rpar=updated.rpar)
                arg = updated.args[0].with_changes(keyword=cst.Name("grads"), value=grads,
                                                   equal=cst.AssignEqual(cst.SimpleWhitespace(""),
                                                                         cst.SimpleWhitespace("")))
                return updated.with_changes(func=f.with_changes(attr=cst.Name("apply_gradients")), args=[arg])
            if method == "replace":
                return updated.with_changes(args=[
                    a.with_changes(keyword=cst.Name("params")) if a.keyword and a.keyword.value == "target" else a
                    for a in updated.args])
        return updated

    def _jax_utils(self, function: str) -> cst.BaseExpression:
        spelling, missing = express(f"flax.jax_utils.{function}", self.ctx.facts.imports)
        if missing is not None:
            self.uses_jax_utils = True
            spelling = f"jax_utils.{function}"
        return cst.parse_expression(spelling)

    def _pmean(self, grads: cst.BaseExpression, axis: str) -> cst.BaseExpression:
        self.uses_jax = True
        return cst.parse_expression(f"jax.lax.pmean({_code(grads)}, {axis!r})")

    def _apply(self, receiver: str, grads: str, hyper: list[cst.Arg]) -> str:
        """``receiver.apply_gradients(grads=grads)``, with this step's hyper-parameters."""
        if not hyper:
            return f"{receiver}.apply_gradients(grads={grads})"
        kwargs = ", ".join(f"{self.plan.hyper_rename.get(a.keyword.value, a.keyword.value)}={_code(a.value)}"  # type: ignore[union-attr]
                           for a in hyper)
        return f"{_APPLY_WITH}({receiver}, {grads}, {kwargs})"

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        assign = _optim.single_assign(original)
        method = self.plan.statements.get(id(assign.value)) if assign is not None and not self.blocked else None
        if method is None:
            return updated
        new_assign = _optim.single_assign(updated)
        assert assign is not None and new_assign is not None and isinstance(new_assign.value, cst.Call)
        if method == "apply_gradient":
            self.fixed("opt_def.apply_gradient(hyper_params, params, state, grads) -> tx.update + "
                       "optax.apply_updates")
            lines = _optim.explicit_apply_statements(updated, new_assign, new_assign.value, self._taken)
        else:
            self.fixed(f"optimizer.{method}(loss_fn) -> jax.value_and_grad(loss_fn)(state.params)")
            self.uses_jax = True
            pmean = self.plan.pmean.get(id(assign.value))

            def apply(receiver: str, grads: str, hyper: list[cst.Arg]) -> str:
                return self._apply(receiver, _code(self._pmean(cst.Name(grads), pmean)) if pmean else grads, hyper)
            lines = _optim.gradient_statements(updated, new_assign, new_assign.value, self._taken, apply)
        return cst.FlattenSentinel(lines)

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

    class Find(FastVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            nonlocal found
            if id(node) in plan.ctor_expr or id(node) in plan.creates:
                found = True
    stmt.visit(Find())
    return found


class _Check(FastVisitor):
    """Every use of an optimizer value must be one this rule converts."""

    def __init__(self, plan: _Plan, problems: list[str]) -> None:
        super().__init__()
        self.plan, self.problems = plan, problems
        self.ok: set[int] = set()
        self.hyper = 0  # apply_gradient calls with hyper-parameters
        self.plain = 0  # and without
        self.hyper_keys: set[str] = set()
        self.applies: list[cst.Call] = []  # apply_gradient / optimize on optimizer values
        self.axes: set[str | None] = set()  # of legacy .replicate() calls

    def finish(self) -> None:
        """A legacy ``.replicate()`` averages the gradients over its axis inside
        ``apply_gradient``: every update must run in a function pmapped over that axis."""
        if not self.axes:
            return
        if len(self.axes) != 1 or None in self.axes:
            self.problems.append("optimizer.replicate(...) with an axis_name that is not one string literal")
            return
        axis = next(iter(self.axes))
        for call in self.applies:
            if any(self.plan.pmapped.get(fn, "") == axis for fn in self.plan.enclosing.get(id(call), ())):
                self.plan.pmean[id(call)] = axis
            else:
                self.problems.append(f"{call.func.attr.value} of a replicated optimizer outside a function "  # type: ignore[attr-defined]
                                     f"pmapped with axis_name={axis!r} (legacy averaged the gradients there)")

    def _hyper_args(self, args) -> None:
        if any(a.star or a.keyword is None for a in args):
            self.problems.append("apply_gradient with unusual arguments")
        elif args:
            self.hyper_keys.update(a.keyword.value for a in args)
            self.hyper += 1
        else:
            self.plain += 1

    def visit_Assign(self, node: cst.Assign) -> None:
        call = node.value
        if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)):
            return
        method, receiver = call.func.attr.value, call.func.value
        targets = _optim.tuple_names(node.targets[0].target) if len(node.targets) == 1 else None
        if method in _optim.GRADIENT_METHODS and self.plan.is_opt(receiver):
            problem = _optim.gradient_form(call, targets)
            if problem is None:
                self.plan.statements[id(call)] = method
                if method == "optimize":
                    self._hyper_args(call.args[1:])
                    self.applies.append(call)
            else:
                self.problems.append(problem)
            self.ok.add(id(call.func))
        elif id(call) in self.plan.explicit and method == "apply_gradient":
            problem = _optim.explicit_apply_problem(call, self.plan.explicit[id(call)], targets)
            if problem is None:
                self.plan.statements[id(call)] = method
                self.ok.add(id(_optim.bind_args(call, _optim.EXPLICIT_APPLY_PARAMS)["hyper_params"]))  # type: ignore[index]
            else:
                self.problems.append(problem)
            self.ok.add(id(call.func))

    def visit_Call(self, node: cst.Call) -> None:
        f = node.func
        if not isinstance(f, cst.Attribute):
            return
        method = f.attr.value
        if id(node) in self.plan.explicit:
            if method == "init_state" and not (len(node.args) == 1 and not node.args[0].star
                                                and node.args[0].keyword is None):
                self.problems.append(f"{f.value.value}.init_state with unusual arguments")  # type: ignore[attr-defined]
            elif method == "apply_gradient" and id(node) not in self.plan.statements and id(f) not in self.ok:
                self.problems.append(f"{f.value.value}.apply_gradient(...) outside an assignment of its "  # type: ignore[attr-defined]
                                     "(params, state) pair")
            self.ok.add(id(f))
        if not self.plan.is_opt(f.value):
            if method == "create" and isinstance(f.value, cst.Name) and f.value.value in self.plan.defs:
                self.ok.add(id(f))
            return
        if method == "apply_gradient":
            first, rest = (node.args[0], node.args[1:]) if node.args else (None, ())
            if first is None or first.star or (first.keyword is not None and first.keyword.value != "grads"):
                self.problems.append("apply_gradient with unusual arguments")
            else:
                self._hyper_args(rest)
            self.applies.append(node)
            self.ok.add(id(f))
        elif method == "replace":
            if any(a.keyword is None or a.keyword.value != "target" for a in node.args):
                self.problems.append("optimizer.replace(...) of fields other than target")
            self.ok.add(id(f))
        elif method in _optim.REPLICATE_METHODS:
            if method == "replicate":
                bound = _optim.replicate_axis(node)
                self.axes.add(bound[0] if bound else None)
            elif node.args:
                self.problems.append("optimizer.unreplicate(...) with arguments")
            self.ok.add(id(f))
        elif method in _optim.GRADIENT_METHODS and id(f) not in self.ok:
            self.problems.append(f"optimizer.{method}(...) outside an assignment to names")
            self.ok.add(id(f))

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
        if isinstance(node.value, cst.Name) and node.value.value in self.plan.defs:
            self.problems.append(f"{node.value.value}.{node.attr.value} on an optimizer definition")
        if isinstance(node.value, cst.Name) and node.value.value in self.plan.state_names:
            self.problems.append(f"{node.value.value}.{node.attr.value} on the state of init_state "
                                 "(an optax state has other fields)")


def _todo_on_first_create(module: cst.Module, plan: _Plan, rule_id: str, problems: list[str]) -> cst.Module:
    msg = (f"{TODO_PREFIX} {rule_id} flax.optim optimizer not converted to a TrainState: "
           f"{'; '.join(dict.fromkeys(problems))}")

    class Add(FastTransformer):
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
