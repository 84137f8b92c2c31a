"""LU202 model_apply: ``nn.Model(M, params)`` and its uses -> params and ``M(...).apply({'params': params}, x)``.

What it does
    The Model object disappears: ``nn.Model(M, params)`` -> ``params``, so a
    name that held a Model now holds its params pytree, wherever it flows
    (helper functions, ``jax.jit``/``pmap``/``vmap``, ``grad``/``value_and_grad``/``jacrev``,
    ``jax_utils.replicate``, an optimizer's ``target``, the carry of
    ``lax.while_loop``/``fori_loop``/``scan`` into the functions of the file they run).  Each use changes
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
    state passed read-only; a module that keeps state applied with no
    ``nn.stateful`` around (legacy BatchNorm then normalised with the batch's
    statistics and kept nothing) -> ``M().apply({'params': model}, x,
    mutable=['batch_stats'])[0]``; ``with nn.stochastic(rng):`` -> ``rngs={'dropout':
    rng}`` (``rng-kind``).  A ``with nn.stochastic(key):`` outside modules whose
    simple statements only draw keys (``rng = nn.make_rng()``, beside jax and
    numpy calls) -> its body, the n-th draw ``jax.random.fold_in(key, n)``, as
    legacy's stochastic frame made it.  The constructor arguments split as the module
    rules split ``apply`` (``CallSpec``).  ``model.truncate_at('/Block_1/Dense_0')``
    -> ``model``, whose calls become ``list(M().apply(..., capture_intermediates=True,
    mutable=['intermediates'])[1]['intermediates']['Block_0']['Dense_0']['__call__'])``
    (legacy returned a list; ``[i]`` reads the tuple directly); ``with
    nn.capture_module_outputs() as outputs:`` around one call -> the same
    capture, ``outputs = outputs['intermediates']``, and ``outputs['/Dense_2']``
    / ``outputs.as_dict()['/Dense_2']`` -> ``list(outputs['Dense_1']['__call__'])``.
    Legacy paths number submodules with one counter per parent, Linen per
    class: they are renamed as checkpoint keys are (``keys.linen_module_path``)
    from the order in which ``apply`` creates its submodules.  Collection keys
    ``state['/Block_1/BatchNorm_1']`` (also through ``.as_dict()``) -> ``state['Block_0']['BatchNorm_0']``,
    and params keys ``model.params['Block_1']['Dense_2']`` -> ``model['Block_0']['Dense_1']``;
    ``state.as_dict()`` passed to a leaf reader (``jax.tree_util.tree_leaves``,
    ``flax.serialization.to_bytes``, ``LEAF_READERS``) -> ``state``.  A Model
    kept in an attribute of a plain class (``self.model = nn.Model(...)``,
    ``trainer.model``) is followed like a variable, through ``__init__`` and
    the methods' parameters (a class deriving from another class of the file, or
    one derived from, gets a TODO: its bases' methods are not followed as its own;
    a ``@property`` reads what its getter returns; static and class methods are
    followed like functions; a ``global`` binding is the module's name).  Across files: a Model (a tuple holding one, an
    instance keeping one in a field) passed to a function of another file of
    the run (``models.predict(model, x)``, also through ``jit``/``grad``) is
    applied there with the module the caller knows, and the caller passes the
    params; both files read the same facts (``ProjectIndex.referrers``).  Where
    that file cannot name the module (no import of the class, or a ``.partial``
    whose keywords only the caller knows), the Model's params, ``.replace(params=...)``
    and keys still convert there (a helper reading ``model.params``); only an
    apply of it is left (a TODO), as where the caller hands over a parameter
    annotated ``nn.Model`` that the run follows no Model into (``def
    get_experience(model: nn.Model)`` calling ``agent.policy_action(model, x)``).
    Loops over a tuple/list of Models of one module are followed (also
    through ``enumerate``, ``zip``, ``reversed``, ``list``, ``tuple``), and so
    is one of them picked by ``models[-1]``, ``models[i]``, ``b if flag else a``
    or ``a or b`` (with a value not known as a Model: a TODO at its uses).  Type
    annotations naming ``nn.Model``/``nn.Collection`` (``-> Tuple[nn.Model,
    nn.Collection]``) and type aliases naming them (``MaskFn =
    Callable[[nn.Model], Mask]``) become ``Any``, also in a file with nothing
    else for this rule; a parameter so annotated that the rules follow no
    Model into gets a TODO (``_model_annotations.py``), and so does one
    annotated ``flax.optim.Optimizer`` that the rules follow no optimizer
    into, where its function calls the Model of its ``.target`` (directly, or
    in a function it defines and hands ``.target`` to).  Keywords a
    wrapper forwards through ``**kwargs`` are packed as the module rules pack
    them (``W().apply(..., train=t)`` with ``W(kwargs={'features': 3})``).
    A module definition chosen at run time (a factory returning partials of
    several classes by a flag; a parameter given them, as in
    ``create_model(key, module)``) is known by the one name holding it: a
    Model made from it records that name, also across a call
    (``model, state = create_model(key, module)`` in the caller names the
    caller's ``module``, in the same file or another), and its calls
    where that name is visible (the function itself, closures such as a
    jitted ``train_step`` defined there) become ``module().apply(...)``:
    each partial is a ``functools.partial`` (LU201), so ``module()`` is the
    Linen instance.  An optimizer made of such a Model where that name is
    visible becomes a TrainState carrying it (``apply_fn=module().apply``,
    LU302), and a step that only gets the optimizer applies it through
    ``optimizer.apply_fn(...)`` -- when every such optimizer of the file is
    made so.  One made where the name is not visible, in a function that
    returns it and that only this file calls, directly
    (``create_optimizer(model, ...)``), is given its module by each caller
    holding the definition: ``create_optimizer(model, lr).replace(
    apply_fn=module().apply)``; a definition made unnamed earlier in the
    caller's body (``create_model(key, make_module())``) is bound there,
    ``(module := make_module())``.  Steps reached through
    ``functools.partial`` (``jax.pmap(functools.partial(train_step,
    learning_rate_fn=f))``) are followed like direct calls.  A top-level
    step handed ``optimizer.target`` of such a TrainState and nothing that
    names the module (``eval_step(model, state, batch)`` in flax's cifar10
    example) gets its ``apply_fn`` as a keyword-only parameter: a direct call
    passes ``apply_fn=optimizer.apply_fn``, and ``jax.pmap(eval_step)`` after
    the optimizer is bound becomes ``jax.pmap(partial(eval_step,
    apply_fn=optimizer.apply_fn))`` -- when every call passes the target of
    one optimizer and the step is not decorated; a direct call handing it a
    Model whose definition a name holds there passes ``apply_fn=module().apply``
    (the module next to the params).  A factory that binds the definition to
    a local only it can name (``module = MLP.partial(**kwargs)``, ``cls = A if
    flag else B``) and returns the Model hands the definition out too
    (``return params, module``; its callers ``model, module =
    create_model(...)``), when every use of it is such an assignment in its
    own file and a caller applies the Model, makes an optimizer of it or hands
    it to a function of the file (``_model_carry``).  A parameter defaulting
    to a Model is typed by it.
Why
    Linen modules hold no parameters: the guide passes params explicitly
    and ``apply`` reads the variables; a gradient with respect to params is
    a params pytree, as a gradient with respect to a Model was a Model.
Not converted (TODO)
    Values that hold different models at different call sites; ``.module``;
    ``model.replace(module=...)``;
    ``truncate_at`` with a path that is not a literal string, or whose Linen
    name depends on run time (loops, conditions, ``.partial``/``.shared``,
    helper methods in ``apply``), or inside a mutable ``nn.stateful`` block;
    captured outputs used other than by a literal key; other ``nn.Collection``
    uses (``as_dict()`` printed or kept, its ``.state`` dict: the key format
    changed); other keys
    of legacy auto-names (``params['Dense_2']``, ``params[f'Conv_{i}']``,
    ``params.get('Dense_2')``, ``'Dense_2' in params``, a path ``('Dense_2', 'kernel')``) where
    a module class of the file creates submodules of several classes unnamed
    (legacy's ``_0`` is the first of its class too, and stays), or a bare
    number (``params['0']``, a ``.shared()`` module made without a name), also in a
    file without flax that reads them (a helper handed a Model's params: any
    legacy module class of the run, where it imports none); several
    calls (or one in a loop) in one mutable ``nn.stateful``, ``nn.stochastic``
    (legacy drew a fresh rng for each) or ``capture_module_outputs`` block;
    context blocks whose calls happen in another function; an apply of a Model
    handed in by another file whose module this file cannot name (no import of the
    class, or a ``.partial`` with keywords known only in the caller); a Model put into a dict, set or list (``.append``), or read by
    ``getattr``/``hasattr``, or handed to JAX control flow other than as a loop's carry
    into functions of the file (a ``lax.cond`` operand, a scan's ``xs`` or a Model among its
    ``ys``, ``sorted(models, key=f)``, ``map``, ``functools.reduce``), a
    namedtuple or a function the analysis does not follow, a method of an
    instance of another file's class, or of a value the analysis gives no
    type where a class of this file or of a file it imports defines that
    method (``actor.act(model, x)``: the method that runs is not followed),
    or a function kept in a field that it gives no type (``self.policy_fn(model, x)``), or
    unpacked into a call (``f(*args)``), or a loop
    over Models mixed with other values; a Model's state dict read by key
    (``to_state_dict(model)``, ``msgpack_restore(to_bytes(model))``: it held ``{'params': ...}``),
    and a Model's checkpoints (``restore_checkpoint(dir, model)``: old ones need
    ``linen-upgrade convert-checkpoint``; one without a target, in a file that
    saves a Model, reads the params themselves);
    the calls of a module whose ``apply``
    needs a person (``CallSpec.problem``); a Model of a definition chosen
    at run time applied where no name bound once to that definition is
    visible, nor an optimizer carrying it (a factory that is jitted, returns
    before binding it, or is passed on; a top-level train step given
    ``optimizer.target`` of an optimizer made in ``create_optimizer(model)``:
    hand the step the module, or carry it in the TrainState's ``apply_fn``;
    a Model kept from an earlier iteration of the loop binding its
    definition, ``prev = model``, ``_usage_loops``), or of an optimizer
    given a Model of another definition (``optimizer.replace(target=other)``:
    the TrainState keeps the module it was made with),
    or whose classes split the call's arguments differently; a call of the
    target of a flax.optim optimizer made from a Model it cannot trace (a
    registry entry, a factory's result): the optimizer becomes a TrainState
    (LU302), so its target is params there, and the call says so.
"""

from __future__ import annotations

from dataclasses import replace

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, Example, NoChange, RuleTransformer
from linen_upgrade.rules._cst import appended, comma_list
from linen_upgrade.rules._model_annotations import Annotations, names_legacy_type
from linen_upgrade.rules._model_collections import Collections, outputs, renumbered_keys
from linen_upgrade.rules._model_escapes import Escapes
from linen_upgrade.rules._model_values import Values
from linen_upgrade.rules._optim_calls import SAVE_RESTORE
from linen_upgrade.rules._usage import (CAPTURE, CONFLICT, MODEL, OPTIM, STATE, TRUNC, Analysis, UsageRule,
                                        conflict_message, kwarg, parens)
from linen_upgrade.rules._usage_calls import subscript
from linen_upgrade.rules._usage_paths import linen_path
from linen_upgrade.rules._usage_sites import SiteCalls


class ModelApply(UsageRule):
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

    def relevant(self, module: cst.Module, a: Analysis) -> bool:
        # params['Dense_2'] is read where no Model is left (init_by_shape's params, LU201's by now)
        return super().relevant(module, a) or renumbered_keys(module, a) or names_legacy_type(module, a)

    def transformer(self, ctx: Context) -> RuleTransformer:
        return _Transformer(self, ctx)


def _model_conflict(t) -> bool:
    return t is not None and t.kind == CONFLICT and bool({MODEL, TRUNC} & set(t.items))


class _Transformer(Annotations, Collections, Escapes, Values, SiteCalls):
    owns = frozenset({"model", "method", "call", "create", "truncated"})

    def visit_Module(self, node: cst.Module) -> bool:
        result = super().visit_Module(node)
        # the TrainStates LU302 makes of Models of definitions chosen at run time carry their module
        self.ctx.apply_fns.update(self.carried_apply_fns() or {})  # type: ignore[arg-type]
        # functions handing out the definition their Models are made of, and their callers (_model_carry)
        self.carry_returns = {id(r): c.local for c in self.a.carries.values() for r in c.returns}
        for carry in self.a.carries.values():
            for _, assign, _, name in carry.callers:
                target = assign.targets[0].target
                if isinstance(target, cst.Tuple) and not target.lpar:
                    target = target.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
                self.retarget[id(assign)] = cst.Tuple([cst.Element(target), cst.Element(cst.Name(name))], lpar=[], rpar=[])
        return result

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        local = self.carry_returns.get(id(original))
        if local is None or updated.value is None:
            return updated
        self.fixed(f"return the module definition {local} with the Model: its callers apply it")
        value = updated.value
        if isinstance(value, cst.Tuple) and not value.lpar:
            value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        return updated.with_changes(value=cst.Tuple([cst.Element(value), cst.Element(cst.Name(local))], lpar=[], rpar=[]))

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if id(original) not in self.a.scope_of:
            return updated
        attr = original.attr.value
        base = self.a.type_at(original.value)
        if _model_conflict(base) and attr in ("params", "module", "truncate_at"):
            self.todo(f".{attr} of {conflict_message(base)}: convert by hand")
            return updated
        if base is not None and base.kind in (STATE, CAPTURE) and attr == "state":
            self.todo("nn.Collection.state (its flat {'/Block_4/BatchNorm_1': ...} dict): the state is a Linen "
                      "variable collection now, nested {'Block_0': {'BatchNorm_0': ...}} with per-class numbering; "
                      "read it directly (flax.traverse_util.flatten_dict(state, sep='/') for flat keys)")
            return updated
        if base is None or base.kind != MODEL:
            return updated
        if attr == "params":
            self.fixed("model.params -> params")
            return parens(updated.value)
        if attr == "module":
            self.todo("model.module: the Linen module is the constructor used at the apply sites")
        elif attr == "truncate_at" and not self._called(original):
            self.todo("model.truncate_at: apply(..., capture_intermediates=True, mutable=['intermediates']) "
                      "and read vars['intermediates'][...]['__call__'][0]")
        elif attr != "replace" and not self._called(original):
            # jax.jit(model.sample): the Model is its params now, which have no methods
            self.todo(f"model.{attr}: a method of the Model taken as a value; Linen runs it as "
                      f"M().apply({{'params': params}}, ..., method=M.{attr}) where it is called")
        elif attr not in ("replace", "truncate_at") and self.a.site(self.a.parent[id(original)]) is None:
            # legacy Models forwarded any other attribute to the module: a method this rule does not know
            self.todo(f"model.{attr}(...): not known as a module method of the Model's class (of every class it "
                      f"may be): apply it by hand, M().apply({{'params': params}}, ..., method=M.{attr})")
        return updated

    def _called(self, node: cst.CSTNode) -> bool:
        parent = self.a.parent.get(id(node))
        return isinstance(parent, cst.Call) and parent.func is node

    def _serialization(self, call: cst.CSTNode | None) -> str | None:
        """The qualified name ``call`` calls, when it is one of flax.serialization's."""
        if not (isinstance(call, cst.Call) and isinstance(call.func, (cst.Name, cst.Attribute))
                and id(call) in self.a.scope_of):
            return None
        qual = self.a.qual(call.func, self.a.scope_of[id(call)])
        return qual if qual is not None and qual.startswith("flax.serialization.") else None

    def _restored(self, call: cst.Call) -> bool:
        """``from_state_dict(target, to_state_dict(model))``: the state dict goes straight back into
        a target of the same kind, whatever its layout."""
        arg = self.a.parent.get(id(call))
        return isinstance(arg, cst.Arg) and self._serialization(self.a.parent.get(id(arg))) \
            == "flax.serialization.from_state_dict"

    def _checkpoint(self, call: cst.CSTNode) -> str | None:
        """``checkpoints.save_checkpoint(dir, model, step)`` / ``restore_checkpoint(dir, model)``:
        "save" / "restore" where the target holds a Model; "raw": a restore without a target."""
        if not (isinstance(call, cst.Call) and isinstance(call.func, (cst.Name, cst.Attribute))
                and id(call) in self.a.scope_of):
            return None
        qual = self.a.qual(call.func, self.a.scope_of[id(call)])
        if qual not in SAVE_RESTORE:
            return None
        restore = qual.endswith("restore_checkpoint")
        target = self.a.arg(call, SAVE_RESTORE[qual], "target")
        if restore and (target is None or isinstance(target, cst.Name) and target.value == "None"):
            return "raw"
        t = self.a.type_at(target) if target is not None else None
        if t is None or t.kind == CONFLICT or not self.a.carries_model(t):
            return None
        return "restore" if restore else "save"

    def _checkpoints(self, kind: str) -> bool:
        return any(self._checkpoint(call) == kind for _, call in self.a.calls)

    def _model_bytes(self, expr: cst.BaseExpression) -> bool:
        """``to_bytes(model)``, or a name bound to it in its scope: a Model's bytes."""
        if isinstance(expr, cst.Name) and id(expr) in self.a.scope_of:
            found = self.a.scope_of[id(expr)].lookup(expr.value)
            return any(self._model_bytes(source[1]) for scope, name, source, _ in self.a.bindings
                       if scope is found and name == expr.value and source[0] == "expr")
        return self._serialization(expr) == "flax.serialization.to_bytes" and bool(expr.args) \
            and self.a.carries_model(self.a.type_at(expr.args[0].value))  # type: ignore[attr-defined]

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if id(original) not in self.a.scope_of:
            return updated
        self.threaded_apply_fns()
        if id(original) in self.apply_sites:  # a call of a function applying the target it is handed
            how, value, keyword = self.apply_sites[id(original)]
            given = kwarg(keyword, cst.parse_expression(value))
            self.fixed(f"{dotted(original.func) or 'a call'}(...) hands over {value}")
            if how == "keyword":
                return updated.with_changes(args=appended(updated.args, given))
            bound = cst.Call(cst.parse_expression(self.spell_partial()),
                             comma_list([updated.args[0].with_changes(comma=cst.MaybeSentinel.DEFAULT), given]))
            return updated.with_changes(args=[updated.args[0].with_changes(value=bound), *updated.args[1:]])
        if id(original) in self.inline_names:  # a definition chosen at run time, handed over unnamed
            name = self.inline_names[id(original)]
            self.fixed(f"the module definition made here is bound to {name}: the TrainState made of it carries it")
            return cst.NamedExpr(cst.Name(name), updated, lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        if id(original) in self.threads:  # the TrainState the function made without the module
            holder = self.threads[id(original)]
            self.fixed(f"{dotted(original.func)}(...) -> its TrainState given apply_fn={holder}().apply")
            return cst.Call(cst.Attribute(updated, cst.Name("replace")),
                            [kwarg("apply_fn", cst.parse_expression(f"{holder}().apply"))])
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
            if base is not None and base.kind == MODEL:  # module=: its calls would apply the old module
                self.todo("model.replace(...) other than params=p: the Model is its params now, and the "
                          "module is what its calls apply: convert by hand")
                return updated
            target = next((a.value for a in original.args if a.keyword is not None and a.keyword.value == "target"),
                          None)
            t = self.a.type_at(target) if target is not None else None
            if base is not None and t is not None and t.kind == MODEL and t.ref is not None and (
                    base.kind == CONFLICT or base.kind == OPTIM and base.ref != replace(t.ref, opt_var=None)):
                # the TrainState keeps the module (apply_fn) it was made with; the analysis is flow-insensitive
                self.todo("optimizer.replace(target=...) with a Model of another definition: the TrainState keeps "
                          "the module (apply_fn) it was made with: make a new TrainState for it")
        collection = self._collection(original, updated)
        if collection is not None:
            return collection
        if self._serialization(original) == "flax.serialization.to_state_dict" and original.args \
                and self.a.carries_model(self.a.type_at(original.args[0].value)) and not self._restored(original):
            self.todo("serialization.to_state_dict(model): a legacy Model's state dict was {'params': ...}; "
                      "the Model is its params now, whose state dict is the params themselves: drop the "
                      "['params'] where it is read (checkpoints: linen-upgrade convert-checkpoint)")
        saved = self._checkpoint(original)
        if saved == "restore" or saved == "save" and not self._checkpoints("restore"):
            # (the note goes where old checkpoints are read; on a save only in a file that never restores)
            self.todo("the Model is its params now, saved as the params themselves; checkpoints written by the "
                      "legacy code ({'params': ...}) restore into it only after `linen-upgrade convert-checkpoint`")
        elif saved == "raw" and self._checkpoints("save"):
            self.todo("restore_checkpoint without a target gives the state dict this file saved a Model as: the "
                      "params themselves now, not {'params': ...}: drop the ['params'] where it is read")
        if self._serialization(original) == "flax.serialization.msgpack_restore" and original.args \
                and self._model_bytes(original.args[0].value):
            self.todo("serialization.msgpack_restore(to_bytes(model)): a legacy Model's bytes held {'params': ...}; "
                      "the Model is its params now, whose bytes hold the params themselves: drop the ['params'] "
                      "where it is read (checkpoints: linen-upgrade convert-checkpoint)")
        if isinstance(func, cst.Attribute) and func.attr.value == "truncate_at":
            base = self.a.type_at(func.value)
            if base is not None and base.kind == MODEL:
                return self._truncate(original, updated)
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
            if kind == "model":  # an optimizer's target whose Model this rule cannot trace
                self.todo(f"{dotted(original.func) or 'a call'}(...) applies the target of an optimizer made from a Model this "
                          "rule cannot trace to a module definition (a registry, a factory's result): apply its "
                          "Linen module with {'params': ...} by hand")
            return updated
        if kind == "create":  # (y, Model): the Model is its params, as everywhere
            new_init = self.init_site(original, updated, ref)
            if new_init is None:
                return updated
            self.converted()
            return new_init
        args = list(updated.args)
        method = None
        path = None
        if kind == "truncated":
            path = linen_path(self.a, ref, t.items[0]) if t.items[0] is not None else None
            if path is None:
                return updated  # the TODO is on truncate_at
            params = updated.func
        elif kind == "model":
            params = updated.func
        elif kind == "method":
            params = updated.func.value  # type: ignore[attr-defined]
            method = original.func.attr.value  # type: ignore[attr-defined]
        else:  # M.call(params, *args)
            if not args or args[0].keyword is not None or args[0].star:
                self.todo("M.call: pass the params first")
                return updated
            params, args = args[0].value, args[1:]
        new, mutable, problem = self.apply_call(ref, original, params, args, method, truncated=path is not None)
        if new is None:
            if problem:
                self.todo(problem)
            if path is not None and isinstance(original.func, cst.Call):
                return updated.with_changes(func=original.func)  # keep model.truncate_at(path) for the person
            return updated
        result: cst.BaseExpression | None = new.with_changes(lpar=updated.lpar, rpar=updated.rpar)
        if path is not None:  # legacy returned that module's outputs (a list), Linen (y, {'intermediates': ...})
            updates = cst.Subscript(new, [cst.SubscriptElement(cst.Index(cst.Integer("1")))])
            result = outputs(subscript(updates, "intermediates"), path, not self._indexed(original))
        elif mutable:
            result, problem = self.mutable_result(original, new)
            if result is None:
                self.todo(problem or "")
                return updated
        self.converted()
        self.fixed(f"{kind} call -> apply")
        return result
    def _model(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        t = self.a.type_at(original)
        params = self.a.arg(updated, 1, "params")
        if t is None or t.kind != MODEL or t.ref is None or params is None:
            return updated  # not a module of the run: LU901 reports it
        self.fixed("nn.Model(M, params) -> params")
        return parens(params)
