"""LU202 model_apply: ``nn.Model(M, params)`` and its uses -> params and ``M(...).apply({'params': params}, x)``.

What it does
    The Model object disappears: ``nn.Model(M, params)`` -> ``params``, so a
    name that held a Model now holds its params pytree, wherever it flows
    (helper functions, ``jax.jit``/``pmap``, ``grad``/``value_and_grad``,
    ``jax_utils.replicate``, an optimizer's ``target``).  Each use changes
    with it: ``model(x, train=False)`` -> ``M().apply({'params': model}, x,
    train=False)``; ``model.params`` -> ``model``; ``model.generate(z)`` ->
    ``M().apply({'params': model}, z, method=M.generate)``;
    ``model.replace(params=p)`` -> ``p``; ``M.call(params, x)`` ->
    ``M().apply({'params': params}, x)``; ``y, model = M.create(rng, x)`` ->
    ``y, model = M().init_with_output(rng, x)`` + ``model = model['params']``
    (as LU201 does for ``init``).  Around a call, ``with
    nn.stateful(state) as new_state:`` -> ``{'params': ..., 'batch_stats':
    state}`` with ``mutable=['batch_stats']`` and ``new_state =
    new_state['batch_stats']``; ``nn.stateful(state, mutable=False)`` -> the
    state passed read-only; ``with nn.stochastic(rng):`` -> ``rngs={'dropout':
    rng}`` (``rng-kind``).  The constructor arguments split as the module
    rules split ``apply`` (``CallSpec``).
Why
    Linen modules hold no parameters: the guide passes params explicitly
    and ``apply`` reads the variables; a gradient with respect to params is
    a params pytree, as a gradient with respect to a Model was a Model.
Not converted (TODO)
    Values that hold different models at different call sites; ``.module``;
    ``truncate_at`` (use ``capture_intermediates``); several calls in one
    mutable ``nn.stateful`` block; context blocks whose calls happen in
    another function.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rule import Context, Example, NoChange, Rule, RuleTransformer
from linen_upgrade.rules._usage import (COLLECTION_METHODS, CONFLICT, FUNC, MODEL, STATE, UsageTransformer,
                                        applies, conflict_message, external_param, parens, usage_transform)


class ModelApply(Rule):
    id = "LU202"
    summary = "nn.Model(M, params) -> params; model(x) -> M().apply({'params': model}, x); nn.stateful/stochastic"
    examples = [
        Example(
            "import jax\nfrom flax import nn\n\n\nclass CNN(nn.Module):\n"
            "    def apply(self, x, classes=10):\n        return nn.Dense(x, classes)\n\n\n"
            "def loss_fn(model, x):\n    return jnp.sum(model(x))\n\n\n"
            "model = nn.Model(CNN.partial(classes=3), params)\n"
            "grads = jax.grad(loss_fn)(model, x)\nprint(model.params, grads.params)\n",
            "import jax\nfrom flax import nn\n\n\nclass CNN(nn.Module):\n"
            "    def apply(self, x, classes=10):\n        return nn.Dense(x, classes)\n\n\n"
            "def loss_fn(model, x):\n    return jnp.sum(CNN(classes=3).apply({'params': model}, x))\n\n\n"
            "model = params\n"
            "grads = jax.grad(loss_fn)(model, x)\nprint(model, grads)\n",
        ),
        Example(
            "import jax\nfrom flax import nn\n\n\nclass Net(nn.Module):\n"
            "    def apply(self, x, train=True):\n"
            "        return nn.BatchNorm(x, use_running_average=not train)\n\n\n"
            "def loss_fn(model, state, rng):\n"
            "    with nn.stateful(state) as new_state, nn.stochastic(rng):\n        y = model(x)\n"
            "    return jnp.sum(y), new_state\n\n\n"
            "def evaluate(model, state):\n    with nn.stateful(state, mutable=False):\n"
            "        return model(x, train=False)\n\n\n"
            "model = nn.Model(Net, params)\n"
            "grads, state = jax.grad(loss_fn, has_aux=True)(model, state, rng)\n"
            "print(evaluate(model, state))\n",
            "import jax\nfrom flax import nn\n\n\nclass Net(nn.Module):\n"
            "    def apply(self, x, train=True):\n"
            "        return nn.BatchNorm(x, use_running_average=not train)\n\n\n"
            "def loss_fn(model, state, rng):\n"
            "    y, new_state = Net().apply({'params': model, 'batch_stats': state}, x, rngs={'dropout': rng}, "
            "mutable=['batch_stats'])\n    new_state = new_state['batch_stats']\n"
            "    return jnp.sum(y), new_state\n\n\n"
            "def evaluate(model, state):\n"
            "    return Net().apply({'params': model, 'batch_stats': state}, x, train=False)\n\n\n"
            "model = params\n"
            "grads, state = jax.grad(loss_fn, has_aux=True)(model, state, rng)\n"
            "print(evaluate(model, state))\n",
            name="stateful and stochastic",
        ),
        NoChange("import flax.linen as nn\n\ny = nn.Dense(3).apply({'params': params}, x)\n", name="linen"),
    ]

    def applies(self, ctx: Context) -> bool:
        return applies(ctx)

    def transformer(self, ctx: Context) -> RuleTransformer:
        return _Transformer(self, ctx)

    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        return usage_transform(self, module, ctx, _Transformer)


def _model_conflict(t) -> bool:
    return t is not None and t.kind == CONFLICT and MODEL in t.items


class _Transformer(UsageTransformer):
    owns = frozenset({"model", "method", "call", "create"})

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if id(original) not in self.a.scope_of:
            return updated
        attr = original.attr.value
        base = self.a.type_at(original.value)
        if _model_conflict(base) and attr in ("params", "module", "truncate_at"):
            self.todo(f".{attr} of {conflict_message(base)}: convert by hand")
            return updated
        if base is None or base.kind != MODEL:
            return updated
        if attr == "params":
            self.fixed("model.params -> params")
            return parens(updated.value)
        if attr == "module":
            self.todo("model.module: the Linen module is the constructor used at the apply sites")
        elif attr == "truncate_at":
            self.todo("model.truncate_at(path): apply(..., capture_intermediates=True, mutable=['intermediates']) "
                      "and read vars['intermediates'][...]['__call__'][0]")
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if id(original) not in self.a.scope_of:
            return updated
        func = original.func
        if isinstance(func, (cst.Name, cst.Attribute)) and self.a.qual(
                func, self.a.scope_of[id(original)]) == "flax.nn.Model":
            return self._model(original, updated)
        if isinstance(func, cst.Attribute) and func.attr.value == "replace":
            base = self.a.type_at(func.value)
            if base is not None and base.kind == MODEL and len(updated.args) == 1 \
                    and updated.args[0].keyword is not None and updated.args[0].keyword.value == "params":
                self.fixed("model.replace(params=p) -> p")
                return parens(updated.args[0].value)
        if isinstance(func, cst.Attribute) and func.attr.value in COLLECTION_METHODS:
            base = self.a.type_at(func.value)
            if base is not None and base.kind == STATE:
                self.todo(f"nn.Collection.{func.attr.value}: the state is a Linen variable collection now, "
                          "nested {'Block_0': {'BatchNorm_0': ...}} with per-class numbering, not flat "
                          "'/Block_4/BatchNorm_1' keys (flax.traverse_util.flatten_dict(state, sep='/'))")
                return updated
        self._check_escapes(original)
        called = self.a.type_at(func)
        if _model_conflict(called):
            self.todo(f"a call of {conflict_message(called)}: convert by hand")
            return updated
        site = self.a.site(original)
        if site is None or site[0] not in self.owns:
            return updated
        kind, t = site
        ref = t.ref
        if ref is None:
            return updated
        if kind == "create":  # (y, Model): the Model is its params, as everywhere
            new_init = self.init_site(original, updated, ref)
            if new_init is None:
                return updated
            self.converted()
            return new_init
        args = list(updated.args)
        method = None
        if kind == "model":
            params = updated.func
        elif kind == "method":
            params = updated.func.value  # type: ignore[attr-defined]
            method = original.func.attr.value  # type: ignore[attr-defined]
        else:  # M.call(params, *args)
            if not args or args[0].keyword is not None or args[0].star:
                self.todo("M.call: pass the params first")
                return updated
            params, args = args[0].value, args[1:]
        new, mutable, problem = self.apply_call(ref, original, params, args, method)
        if new is None:
            if problem:
                self.todo(problem)
            return updated
        result: cst.BaseExpression | None = new.with_changes(lpar=updated.lpar, rpar=updated.rpar)
        if mutable:
            stateful, _, _ = self.context()
            assert stateful is not None and result is not None
            result, problem = self.mutable_result(original, stateful, new)
            if result is None:
                self.todo(problem or "")
                return updated
        self.converted()
        self.fixed(f"{kind} call -> apply")
        return result

    def _check_escapes(self, call: cst.Call) -> None:
        """A Model handed to code this tool does not follow is a params pytree there too: say so."""
        positions = [a for a in call.args if a.keyword is None]
        for a in call.args:
            t = self.a.type_at(a.value)
            if t is None or t.kind != MODEL:
                continue
            scope = self.a.scope_of[id(call)]
            qual = self.a.qual(call.func, scope) if isinstance(call.func, (cst.Name, cst.Attribute)) else None
            callee = self.a.type_at(call.func)
            where = None
            if callee is not None and callee.kind == FUNC and callee.func[0] == "external":
                position = next((i for i, p in enumerate(positions) if p is a), None)
                got = external_param(self.a, callee.func[1], position,
                                     a.keyword.value if a.keyword is not None else None)
                if got is None or got.kind != MODEL:
                    where = f"{callee.func[1]} (another file, where no call passes it a Model)"
            elif qual is not None and any(qual == self.a.class_qual(c.name) for c in self.ctx.facts.classes):
                where = f"the class {qual.rpartition('.')[2]}"
            if where:
                self.todo(f"a Model (now its params) is passed to {where}: apply the Linen module there "
                          "with {'params': ...}")

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        t = self.a.type_at(original.value) if id(original) in self.a.scope_of else None
        if t is not None and t.kind == MODEL and any(
                isinstance(target.target, (cst.Attribute, cst.Subscript)) for target in original.targets):
            self.todo("a Model (now its params) is stored in an attribute or container: "
                      "apply the Linen module where it is read, with {'params': ...}")
        return super().leave_Assign(original, updated)

    def _model(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        t = self.a.type_at(original)
        params = self.a.arg(updated, 1, "params")
        if t is None or t.kind != MODEL or t.ref is None or params is None:
            return updated  # not a module of the run: LU901 reports it
        self.fixed("nn.Model(M, params) -> params")
        return parens(params)
