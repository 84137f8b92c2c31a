"""LU302 optim_train_state: a ``flax.optim`` optimizer object becomes a ``flax.training.train_state.TrainState``.

What it does
    ``optimizer = optim.X(...).create(params)`` (also through a variable
    bound to the definition -- or only to definitions, chosen by ``if``/``elif``
    or a conditional expression (each branch gets its transform) -- and inside a helper function that
    returns the optimizer) becomes ``optimizer = train_state.TrainState.create(
    apply_fn=None, params=params, tx=<optax expression>)`` (spelled
    ``flax.training.train_state.TrainState`` in a file that binds the name
    ``train_state`` itself, in any scope) (the expression of
    ``linen_upgrade/tables/optimizers.py``, as LU301 writes it; ``apply_fn=
    module().apply`` where LU202 applies the Model through it: a definition
    chosen at run time, held by ``module`` there).  The variable
    keeps its name, so signatures, ``jax.jit``/``pmap`` and
    ``jax_utils.replicate``/``unreplicate`` keep working: a ``TrainState`` is a
    pytree.  On the values that hold the optimizer (followed by name through
    assignments, function parameters, return values, tuple results,
    ``jax.jit``/``pmap``/``sharded_jit`` -- also a local name bound only to ``jax.pmap`` or a
    ``functools.partial`` of it with keywords, and a name whose every binding to a function gives the
    same one (``s = step`` in one branch, ``s = jax.jit(step)`` in the other) --
    ``replicate``/``unreplicate``, and ``a if c else b`` where both are optimizers; a parameter no
    call passes anything holds one where its function steps it or hands it on to a function of
    the file that does, ``ptrain_step(optimizer, batch)``):
    ``.target`` -> ``.params``; ``.apply_gradient(g)`` ->
    ``.apply_gradients(grads=g)``; ``.state.step`` -> ``.step`` (and, in a
    file making MultiOptimizers only, ``.state[0].step`` -- code for older
    flax releases, where a MultiOptimizer's state was a tuple of its
    sub-optimizers' states, each counting every update -- with a TODO to check
    that release);
    ``.replace(target=p)`` -> ``.replace(params=p)``.  An optimizer passed to
    a function of another file of the run (``steps.train_step(optimizer,
    batch)``, also through ``jit``/``pmap``/``functools.partial``; that file
    need not import flax) is followed there, and so is one that a function of
    the run returns to other files (``opt = models.create_optimizer(...)``):
    the files convert together, or all get the TODO (``rules/_optim_cross.py``).
    An optimizer kept in ``self.optimizer`` of a class of the file, stepped in
    its methods and read through an instance (``trainer.optimizer.target``),
    converts when nothing else may reach that attribute
    (``rules/_optim_attributes.py``); definitions returned by a function
    (``make_optimizer(flag).create(p)``) convert in place.  ``checkpoints.save_checkpoint
    (dir, optimizer, step)`` / ``restore_checkpoint(dir, optimizer)`` keep
    working on the TrainState; a TODO where old checkpoints are read says that
    those need ``linen-upgrade convert-checkpoint`` (the layout changes).
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
    opt.params)`` (+ ``apply_gradients``); ``result = opt.compute_gradient(f)``
    kept whole -> ``legacy_compute_gradient(f, opt.params)``, a copied-in helper
    returning legacy's ``(loss, grad)`` or ``(loss, aux, grad)`` by what ``f``
    returns; ``d.create(p, focus=t)`` -> the
    ``MultiOptimizer((t, d))`` legacy made of it (``optax.multi_transform``,
    the parameters ``t`` does not select frozen) where ``t`` is surely a
    traversal (``rules/_optim_focus.py``); legacy ``opt.replicate()`` /
    ``.unreplicate()`` -> ``jax_utils.replicate(opt)`` / ``unreplicate``, with
    the gradient mean its ``apply_gradient`` took (``jax.lax.pmean(g,
    'batch')`` in the pmapped step); per-step hyper-parameters under the
    optax names of the table's ``hyper`` column (``beta1`` -> ``b1``), also
    where the definition is in one file and the step in another (the creating
    file wraps the transform in ``optax.inject_hyperparams``); a learning rate
    per step also reaches the link of a chain that takes it (Momentum or
    LAMB with weight decay) and every group of a MultiOptimizer, and a former
    ``OptimizerDef`` keeps them in its state for its ``hyper_params.replace``
    (``optax_from_optimizer_def(d, per_step=('learning_rate',))``); a definition
    made without a learning rate that every step of the file (or of the files
    sharing the optimizer) gives one (``apply_gradient(g, learning_rate=lr)``)
    gets a 0.0 placeholder that each step replaces before the update.
Left alone (with a TODO)
    A file where an optimizer value is used through any other API
    (``optimizer_def``, ``state.param_states``, a hyper-parameter optax does
    not expose with the same meaning, per-step hyper-parameters other than the
    learning rate on a chain or MultiOptimizer, ``hyper_params=``, the state of ``init_state`` read
    through its fields, an update outside a step pmapped over the replicated
    axis, ...), a ``create`` with a ``focus`` that may be None (a parameter, a
    name bound more than once), a definition the table cannot
    convert, an optimizer turned into a state dict or bytes with
    ``flax.serialization`` (code reads the layout, which changes: ``linen-upgrade
    convert-checkpoint``) or passed to a callee outside the run that is not
    a known wrapper (``jit``, ``pmap``, ``replicate``, ``device_get``,
    ``tree_map``, ``print``; a name of the file bound once to one of them or a
    function whose every ``return`` gives its parameter back through them and through locals bound
    by them, and that reads it nowhere else, ``def unbroadcast(tree): return jax.tree_map(f,
    tree)``, hands back the optimizer only where it is given one: a dict of metrics given to it
    stays a dict), or read through a ``@property``,
    or a file that binds both ``train_state`` and ``flax`` itself: nothing
    in it is converted, so no
    half-converted optimizer is left behind -- nor in the files it shares
    the optimizer with.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, Example, FastTransformer, Rule, RuleTransformer
from linen_upgrade.tables.optimizers import helper_imports
from linen_upgrade.rules import _optim
from linen_upgrade.rules._cst import add_import, express
from linen_upgrade.rules._optim_calls import SAVE_RESTORE_NOTE
from linen_upgrade.rules._optim_cross import Shared, given_todos, shared
from linen_upgrade.rules._optim_defs import Scan
from linen_upgrade.rules._optim_plan import FEEDS_OPTIM
from linen_upgrade.rules._optim_edit import drop_unused_optim_imports, format_expression, insert_helpers
from linen_upgrade.rules._train_state import (TRAIN_STATE_BOUND, Plan, has_converted, todo_on_first_create,
                                             train_state_module)
from linen_upgrade.rules._train_state_check import APPLY_WITH, SUB_STATE_STEP, check_uses

OPTIMIZER = "flax.optim.Optimizer"


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


    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        scan = Scan(ctx)
        module.visit(scan)
        plan = Plan(module, scan)
        group = shared(ctx, plan)
        if group.seeds or group.external or group.exported:
            plan = Plan(module, scan, group.seeds, group.external, group.exported)
        if group.given:
            module = given_todos(module, ctx, self.id, group.given)
        # plan.names without creates: optimizers another file's function returns here
        if not plan.creates and not plan.explicit and not group.seeds and not plan.names:
            return module
        t = _Transformer(self, ctx, plan, group, train_state_module(ctx))
        module = module.visit(t)
        if t.blocked:
            return module
        if plan.creates or plan.explicit:
            module = add_import(module, "optax")
        if plan.inject or t.uses_jax:
            module = add_import(module, "jax")
        if t.uses_jax_utils:
            module = add_import(module, "flax", "jax_utils")
        for name in sorted(helper_imports(plan.helpers)):
            module = add_import(module, name)
        if plan.creates or t.uses_train_state:
            module = add_import(module, *t.train_state[1])  # type: ignore[index]
        if plan.helpers:
            module = insert_helpers(module, plan.helpers)
        return drop_unused_optim_imports(module, ctx)


class _Transformer(RuleTransformer):
    def __init__(self, rule: Rule, ctx: Context, plan: Plan, group: Shared,
                 train_state: tuple[str, tuple[str, str | None]] | None) -> None:
        super().__init__(rule, ctx)
        self.plan, self._group = plan, group
        self.train_state = train_state
        self.blocked = False
        self._indent: list[str] = []
        self.uses_jax = self.uses_jax_utils = self.uses_train_state = False
        self._taken: set[str] = set()
        self._around: list[str] = []  # the functions and classes being visited (LU202's apply_fns keys)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._around.append(node.name.value)
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self._around.pop()
        if isinstance(original, cst.FunctionDef) and self.plan._ret_items(original.name.value):
            return updated.with_changes(returns=self._as_train_state(updated.returns))
        return updated

    visit_ClassDef = visit_FunctionDef  # type: ignore[assignment]
    leave_ClassDef = leave_FunctionDef  # type: ignore[assignment]

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> bool:
        assert self._module is not None
        self._indent.append(node.indent if node.indent is not None else self._module.default_indent)
        return True

    def leave_IndentedBlock(self, original, updated):
        self._indent.pop()
        return updated

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        carried = any(self.ctx.apply_fns.values())  # LU202 applies Models through optimizer.apply_fn
        problems = check_uses(self.plan, node, carried, self._group.steps) + list(self._group.problems)
        if self.train_state is None:
            problems.append(TRAIN_STATE_BOUND)
        self._taken = _optim.names_in(node)
        if problems:
            self.blocked = True
            self._problems = problems
        return True

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if self.blocked:  # report once, on the first optimizer statement
            return todo_on_first_create(original, self.plan, self.rule.id, self._problems, self._group.functions)
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if self.blocked:
            return updated
        if id(original) in self.plan.creates:
            tx, target = self.plan.creates[id(original)]
            assert self._module is not None
            # the module of a target made from a definition chosen at run time, as LU202 found it
            apply_fn = self.ctx.apply_fns.get((tuple(self._around), self._module.code_for_node(target))) \
                if isinstance(target, cst.Name) else None
            new = cst.parse_expression(f"{self.train_state[0]}.TrainState.create(apply_fn={apply_fn}, "  # type: ignore[index]
                                       f"params={self._module.code_for_node(target)}, tx={tx})")
            self.fixed(f"{dotted(original.func) or '.create'}(...) -> train_state.TrainState.create(...)")
            indent = "".join(self._indent)
            return format_expression(new, indent, len(indent) + 12).with_changes(lpar=original.lpar, rpar=original.rpar)
        # the layout note goes where old checkpoints are read (on a save only in a file that never restores)
        restores = self.plan.saved.get(id(original))
        if restores or (restores is not None and not any(self.plan.saved.values())):
            self.todo(SAVE_RESTORE_NOTE)
        if id(original) in self.plan.ctor_expr:
            return cst.parse_expression(self.plan.ctor_expr[id(original)]).with_changes(
                lpar=original.lpar, rpar=original.rpar)
        f = updated.func
        if isinstance(f, cst.Name) and f.value == "isinstance" and len(updated.args) == 2 \
                and self.plan.is_opt(original.args[0].value):
            return updated.with_changes(args=[updated.args[0], updated.args[1].with_changes(
                value=self._as_train_state(updated.args[1].value))])
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
                        _optim.code(f.value), _optim.code(grads), list(updated.args[1:]))).with_changes(  # type: ignore[attr-defined]
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

    # the legacy class named where the value is an optimizer of the plan: an annotation of a
    # parameter, variable or return holding one, or isinstance's class for one (True either way)
    def leave_Param(self, original: cst.Param, updated: cst.Param) -> cst.Param:
        if original.name.value in self.plan.names:
            return updated.with_changes(annotation=self._as_train_state(updated.annotation))
        return updated

    def leave_AnnAssign(self, original: cst.AnnAssign, updated: cst.AnnAssign) -> cst.AnnAssign:
        if isinstance(original.target, cst.Name) and original.target.value in self.plan.names:
            return updated.with_changes(annotation=self._as_train_state(updated.annotation))
        return updated

    def _as_train_state(self, node: cst.CSTNodeT | None) -> cst.CSTNodeT | None:
        if node is None or self.blocked:
            return node
        qual, transformer = self.plan.qual, self

        class Rename(FastTransformer):
            def on_leave(self, original, updated):
                if isinstance(original, (cst.Name, cst.Attribute)) and qual(original) == OPTIMIZER:
                    transformer.uses_train_state = True
                    transformer.fixed(f"{dotted(original)} -> train_state.TrainState")
                    return cst.parse_expression(f"{transformer.train_state[0]}.TrainState")  # type: ignore[index]
                return updated
        return node.visit(Rename())  # type: ignore[return-value]

    def _jax_utils(self, function: str) -> cst.BaseExpression:
        spelling, missing = express(f"flax.jax_utils.{function}", self.ctx.facts.imports)
        if missing is not None:
            self.uses_jax_utils = True
            spelling = f"jax_utils.{function}"
        return cst.parse_expression(spelling)

    def _pmean(self, grads: cst.BaseExpression, axis: str) -> cst.BaseExpression:
        self.uses_jax = True
        return cst.parse_expression(f"jax.lax.pmean({_optim.code(grads)}, {axis!r})")

    def _apply(self, receiver: str, grads: str, hyper: list[cst.Arg]) -> str:
        """``receiver.apply_gradients(grads=grads)``, with this step's hyper-parameters."""
        if not hyper:
            return f"{receiver}.apply_gradients(grads={grads})"
        kwargs = ", ".join(f"{self.plan.hyper_rename.get(a.keyword.value, a.keyword.value)}={_optim.code(a.value)}"  # type: ignore[union-attr]
                           for a in hyper)
        return f"{APPLY_WITH}({receiver}, {grads}, {kwargs})"

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
                return self._apply(receiver, _optim.code(self._pmean(cst.Name(grads), pmean)) if pmean else grads, hyper)
            lines = _optim.gradient_statements(updated, new_assign, new_assign.value, self._taken, apply)
        return cst.FlattenSentinel(lines)

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if self.blocked:
            return updated
        if original.attr.value == "target" and self.plan.is_opt(original.value):
            return updated.with_changes(attr=cst.Name("params"))
        if id(original) in self.plan.sub_state_steps:
            self.todo(SUB_STATE_STEP)
            self.fixed("optimizer.state[i].step -> optimizer.step")
            return updated.with_changes(value=updated.value.value.value)  # type: ignore[attr-defined]
        if original.attr.value == "step" and isinstance(original.value, cst.Attribute) \
                and original.value.attr.value == "state" and self.plan.is_opt(original.value.value):
            assert isinstance(updated.value, cst.Attribute)
            return updated.with_changes(value=updated.value.value)
        return updated

    def on_leave(self, original_node, updated_node):
        result = super().on_leave(original_node, updated_node)
        if not self.blocked and isinstance(result, cst.SimpleStatementLine):
            withdrawable = self.ctx.withdrawable.get(FEEDS_OPTIM, set())
            lines = [ln for ln in result.leading_lines
                     if not (ln.comment and ln.comment.value in withdrawable
                             and has_converted(original_node, self.plan))]
            if len(lines) != len(result.leading_lines):
                result = result.with_changes(leading_lines=lines)
        return result
