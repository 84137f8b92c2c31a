"""LU303 train_state_batch_stats: an optimizer and ``batch_stats`` threaded together -> one ``TrainState`` with a ``batch_stats`` field.

What it does
    Runs on what LU302 and the usage rules (LU201/LU202) make of a stateful
    training loop: ``optimizer = train_state.TrainState.create(...)`` and a
    separate ``batch_stats`` value ``s`` passed into and returned from the
    same functions (``optimizer, s, loss = train_step(optimizer, s, batch)``).
    It adds ``class TrainState(train_state.TrainState): batch_stats: Any``
    once, creates it with ``batch_stats=s``, drops the state parameter and
    result from those functions and from their call sites, reads
    ``optimizer.batch_stats`` where ``s`` was read (or binds ``s`` to it
    first thing in the function where names are rebound), and returns
    ``optimizer.replace(batch_stats=...)`` where the new state was returned —
    the form of Flax's batch-norm guide.  ``jax.jit``/``jax.pmap`` around
    those functions (decorators, ``partial`` or a wrapped name) get their
    ``static_argnums``/``donate_argnums``/``in_axes``/``out_axes`` renumbered.
    Names are kept: the optimizer variable keeps its name.
Why
    ``TrainState`` is the object the Flax guides thread through train steps;
    with ``batch_stats`` in it, train steps take and return one value.
Left alone (the separate value is correct code, so no TODO)
    Anything not provably the same: the state used as a ``'batch_stats'``
    collection nowhere in the function; a call site that does not unpack
    both (``opt, s, ... = f(opt, s, ...)``), or a threaded function called,
    passed or wrapped any other way in the file; the state or optimizer
    rebound elsewhere after the optimizer is created (``replicate`` too);
    a create inside a loop, branch or helper; results of other lengths,
    ``yield``; wrapper keywords that treat state and optimizer differently
    (``static_argnums`` of the state, donating one and not the other,
    different ``in_axes``); reads of the state in nested functions of the
    loop's scope; a ``TrainState`` or ``Any`` name already taken.  Callers in
    other files are not seen: a threaded function imported elsewhere
    changes its signature there too.
"""

from __future__ import annotations

import ast

import libcst as cst

from linen_upgrade.analysis import identity
from linen_upgrade.resolve import import_map
from linen_upgrade.rule import Context, Example, FastTransformer, NoChange, Rule
from linen_upgrade.rules._batch_stats_plan import CLASS_NAME, Plan, Planner, creates, may_thread
from linen_upgrade.rules._cst import add_import, is_docstring, kwarg, needs_parens
from linen_upgrade.rules._optim_edit import insert_helpers
from linen_upgrade.rules._threading import drop_item

_BEFORE = '''import jax
from flax import nn
from flax.training import train_state
import optax


@jax.jit
def train_step(optimizer, model_state, batch):
    def loss_fn(params):
        logits, new_state = CNN().apply({'params': params, 'batch_stats': model_state}, batch['x'],
                                        mutable=['batch_stats'])
        return logits.sum(), new_state['batch_stats']
    (loss, new_state), grad = jax.value_and_grad(loss_fn, has_aux=True)(optimizer.params)
    return optimizer.apply_gradients(grads=grad), new_state, loss


variables = CNN().init(key, x)
params, model_state = variables['params'], variables['batch_stats']
optimizer = train_state.TrainState.create(apply_fn=None, params=params, tx=optax.sgd(0.1))
for batch in batches:
    optimizer, model_state, loss = train_step(optimizer, model_state, batch)
print(model_state)
'''
_AFTER = '''import jax
from flax import nn
from flax.training import train_state
import optax
from typing import Any


class TrainState(train_state.TrainState):
    batch_stats: Any


@jax.jit
def train_step(optimizer, batch):
    def loss_fn(params):
        logits, new_state = CNN().apply({'params': params, 'batch_stats': optimizer.batch_stats}, batch['x'],
                                        mutable=['batch_stats'])
        return logits.sum(), new_state['batch_stats']
    (loss, new_state), grad = jax.value_and_grad(loss_fn, has_aux=True)(optimizer.params)
    return optimizer.apply_gradients(grads=grad).replace(batch_stats=new_state), loss


variables = CNN().init(key, x)
params, model_state = variables['params'], variables['batch_stats']
optimizer = TrainState.create(apply_fn=None, params=params, batch_stats=model_state, tx=optax.sgd(0.1))
for batch in batches:
    optimizer, loss = train_step(optimizer, batch)
print(optimizer.batch_stats)
'''

_CLASS_SOURCE = "class TrainState({base}):\n    batch_stats: Any\n"


class TrainStateBatchStats(Rule):
    id = "LU303"
    summary = "Optimizer and batch_stats threaded together -> a TrainState subclass with a batch_stats field"
    examples = [
        Example(_BEFORE, _AFTER, name="jit train step"),
        NoChange("from flax.training import train_state\n\n"
                 "state = train_state.TrainState.create(apply_fn=None, params=p, tx=tx)\n"
                 "state, stats = step(state, stats)\n", name="modern code"),
    ]


    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        if not may_thread(module):
            return module  # LibCST scopes cost several parses: only where the pattern may be
        code = module.code  # (made only here: most files fail the test above)
        if "TrainState" not in code or "batch_stats" not in code:
            return module
        tree = ast.parse(code)
        imports = import_map(tree, identity.package(ctx.facts.module_name, ctx.path),
                             identity.resolver_for(ctx.path))
        if not creates(tree, imports):
            return module
        found = Planner(module, imports).plans()
        if not found:
            return module
        t = _Transformer(found)
        module = module.visit(t)
        for plan in found:
            ctx.fixed.append((self.id, f"{plan.opt} and {plan.state} -> one TrainState with batch_stats"))
        module = add_import(module, "typing", "Any")
        return insert_helpers(module, [_CLASS_SOURCE.format(base=found[0].base)])


class _Transformer(FastTransformer):
    def __init__(self, found: list[Plan]) -> None:
        super().__init__()
        self.creates = {id(p.create): p for p in found}
        self.sites = {k: v for p in found for k, v in p.sites.items()}
        self.reads = {k: v for p in found for k, v in p.reads.items()}
        self.fns = {k: f for p in found for k, f in p.fns.items()}
        self.returns = {id(r): f for f in self.fns.values() for r in f.returns}
        self.wrappers = {k: v for f in self.fns.values() for k, v in f.wrappers.items()}
        self.site_calls: dict[int, int] = {}  # id(Call) -> id(Arg) to drop

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if id(original) in self.reads:
            return cst.Attribute(value=cst.Name(self.reads[id(original)]), attr=cst.Name("batch_stats"),
                                 lpar=updated.lpar, rpar=updated.rpar)
        return updated

    def visit_Assign(self, node: cst.Assign) -> None:
        if id(node) in self.sites:
            self.site_calls[id(node.value)] = self.sites[id(node)][1]

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if id(original) in self.creates:
            plan = self.creates[id(original)]
            args = list(updated.args)
            at = next((k + 1 for k, a in enumerate(args) if a.keyword and a.keyword.value == "params"), len(args))
            comma = args[at - 1].comma if at < len(args) else cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            if at == len(args):
                args[-1] = args[-1].with_changes(comma=comma)
            new = kwarg("batch_stats", cst.Name(plan.state)).with_changes(
                comma=comma if at < len(args) else cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(func=cst.Attribute(value=cst.Name(CLASS_NAME), attr=cst.Name("create")),
                                        args=[*args[:at], new, *args[at:]])
        if id(original) in self.wrappers:
            return updated.with_changes(args=self.wrappers[id(original)])
        if id(original) in self.site_calls:
            drop = self.site_calls[id(original)]
            k = [id(a) for a in original.args].index(drop)
            return updated.with_changes(args=drop_item(updated.args, k))
        return updated

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        if id(original) not in self.sites:
            return updated
        b = self.sites[id(original)][0]
        target = updated.targets[0].target
        assert isinstance(target, (cst.Tuple, cst.List))
        rest = drop_item(target.elements, b)
        new: cst.BaseAssignTargetExpression = target.with_changes(elements=rest)
        if len(rest) == 1:  # ``opt, s = f(opt, s)`` -> ``opt = f(opt)``
            new = rest[0].value  # type: ignore[assignment]
        return updated.with_changes(targets=[updated.targets[0].with_changes(target=new)])

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        fn = self.returns.get(id(original))
        if fn is None:
            return updated
        a, b, _ = fn.out
        value = updated.value
        assert isinstance(value, cst.Tuple)
        elements = list(value.elements)
        opt, state = elements[a].value, elements[b].value
        if needs_parens(opt):
            opt = opt.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        merged = cst.Call(func=cst.Attribute(value=opt, attr=cst.Name("replace")),
                          args=[kwarg("batch_stats", state)])
        elements[a] = elements[a].with_changes(value=merged)
        rest = drop_item(elements, b)
        if len(rest) == 1:
            return updated.with_changes(value=merged)
        return updated.with_changes(value=value.with_changes(elements=rest))

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        fn = self.fns.get(id(original))
        if fn is None:
            return updated
        params = updated.params
        names = [p.name.value for p in params.params]
        if fn.state in names:
            params = params.with_changes(params=drop_item(params.params, names.index(fn.state)))
        else:
            names = [p.name.value for p in params.posonly_params]
            params = params.with_changes(posonly_params=drop_item(params.posonly_params, names.index(fn.state)))
        updated = updated.with_changes(params=params)
        if fn.bind and isinstance(updated.body, cst.IndentedBlock):
            body = list(updated.body.body)
            at = 1 if body and is_docstring(body[0]) else 0
            body.insert(at, cst.parse_statement(f"{fn.state} = {fn.opt}.batch_stats\n"))
            updated = updated.with_changes(body=updated.body.with_changes(body=body))
        return updated

