"""LU201 module_init: ``_, params = M.init(rng, x, **kw)`` -> ``params = M(**attrs).init(rng, x)['params']``.

What it does
    Outside module classes, ``M.init`` / ``M.init_by_shape`` of a legacy module (a class of the run, a built-in,
    ``M.partial(...)`` or a variable holding one) become ``M(attrs).init(rng,
    inputs)``: keyword arguments split into attributes and inputs as the
    module rules split ``apply`` (``CallSpec``); ``init_by_shape``'s specs
    become zero inputs, read as legacy ``flax.jax_utils`` read them (a
    ``(shape, dtype)`` pair, or a bare shape meaning float32):
    ``jnp.zeros(shape, dtype)`` where the written form decides, else a call
    of a small helper copied into the file (``_input_from_spec(spec)``;
    ``*[_input_from_spec(spec) for spec in specs]`` for a list known only at
    run time); the unpacking
    site is fixed (``_, params = ...`` -> ``params = ...['params']``; ``y,
    params = ...`` -> ``init_with_output`` then ``params = params['params']``;
    ``...[1]`` -> ``...['params']``; a dropped result, as in a test that
    expects the init to raise, stays dropped).  ``with nn.stateful() as state:``
    around it gives ``state = variables.get('batch_stats', {})`` (a model
    without state has no such collection in Linen; legacy gave it empty); ``with
    nn.stochastic(rng):`` gives ``rngs={'params': key, 'dropout': rng}``.
    A module-level ``d = M.partial(**kw)`` becomes ``functools.partial(M,
    **kw)``; another file's uses of it (``models.ResNet50.init_by_shape``,
    ``models.ResNet50.partial(num_classes=10)``) convert through it,
    ``models.ResNet50(num_classes=10).init(...)``, also a partial of such a
    partial.  A ``.partial`` fixing call inputs of a class of the run (the
    legacy self-attention idiom ``SelfAttention = Attention.partial(inputs_kv=None)``,
    or ``Loss.partial(hessian=h)`` in a function) -> ``_with_call_inputs(Attention,
    inputs_kv=None)``, a small helper copied into the file that makes a
    subclass whose call passes them unless the caller does (legacy merged them
    under the call's keywords), its submodules auto-named like the class's as
    legacy named them; attributes it fixes too go to a ``functools.partial``
    around it.  Its uses convert with it: calls in module bodies of any file
    of the run (LU102), ``init``/``apply`` through it.  ``M.partial(**config)``,
    keys known only at run time, of a class of the run ->
    ``_module_partial(M, **config)``, a small helper copied into the file
    that makes the ``functools.partial`` after checking
    that every key is a Linen attribute (a call input raises a TypeError
    that says so).  A definition chosen at run time (a factory returning partials
    of several classes, a parameter given them: ``create_model(key,
    module)``, a class picked by a conditional expression, an entry of a
    module-level registry ``MODELS[name]`` of this file or another: a dict
    literal, a dict comprehension, ``dict(...)`` of pairs) and held by one name
    (or by one name in each arm of an ``if``): ``module.init_by_shape(key, specs)`` ->
    ``module().init(key, zeros)``, as each of its partials is a
    ``functools.partial`` (see LU202); a ``.partial`` of such a choice whose
    keywords are attributes of every class it may be ->
    ``functools.partial(model_type, num_classes=10)``.  Legacy ``M.call`` taken as a
    function value (``jax.pmap(ResNet.call)``) -> ``_module_call(ResNet())``, a small helper
    copied into the file whose ``call(params, *inputs)`` applies the Linen module.
Why
    Linen's ``init`` returns the variables (``{'params': ..., 'batch_stats':
    ...}``), not ``(y, params)``; ``init_by_shape`` was not ported (the
    guide: pass concrete zeros).  ``M.create`` makes a Model: LU202 converts
    it the same way, with the Model's other uses.
    Legacy initializers ``init(key, shape)`` given to a built-in through a
    top-level ``.partial`` are wrapped for Linen's ``init(key, shape, dtype)``
    (see LU102).
Not converted (TODO)
    Results used other than by unpacking or ``[0]``/``[1]``; positional
    arguments after specs known only at run time; init inside
    ``nn.stateful(state)``; ``.partial`` of a class LU101 leaves legacy, or
    fixing call inputs of a built-in (Linen names them otherwise) or of a
    wrapper packing ``*args``/``**kwargs``, and their uses; a definition
    chosen at run time whose classes split the call differently; a class
    attribute or classmethod read through a partial (``block.expansion``: a
    ``functools.partial`` has none); ``M.call`` taken as a value where a call of it could
    pass an attribute by position; a registry entry used in place
    (``MODELS[name].partial(...)``) or of a registry its file changes.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.applicability import LEGACY_ONLY_METHODS
from linen_upgrade.rule import Context, Example, NoChange, RuleTransformer
from linen_upgrade.rules._cst import build_dotted, code, comma_list
from linen_upgrade.rules._fixed_inputs import left_legacy
from linen_upgrade.rules._modules import inputs_fixable
from linen_upgrade.rules._usage import CONFLICT, DEF, UsageRule
from linen_upgrade.rules._usage_sites import INPUTS_SOURCE, SiteCalls
from linen_upgrade.rules._usage_types import CALL_HELPER, CHANGED_REGISTRY, INPUTS_HELPER, PARTIAL_HELPER

_INPUTS_HELPER_SOURCE = INPUTS_SOURCE.format(name=INPUTS_HELPER)
# what a legacy definition answers that the init/apply rules convert where it is used
_DEFINITION_API = frozenset({"init", "init_by_shape", "create", "create_by_shape", "call", "partial", "shared"})


class ModuleInit(UsageRule):
    id = "LU201"
    summary = "M.init / M.init_by_shape (+ nn.stateful/nn.stochastic around them) -> M(...).init(rng, x)"
    examples = [
        Example(
            "import jax.numpy as jnp\nfrom flax import nn\n\n\nclass CNN(nn.Module):\n"
            "    def apply(self, x, classes=10):\n        return nn.Dense(x, classes)\n\n\n"
            "_, params = CNN.init_by_shape(key, [((1, 28, 28, 1), jnp.float32)], classes=3)\n",
            "import jax.numpy as jnp\nfrom flax import nn\n\n\nclass CNN(nn.Module):\n"
            "    def apply(self, x, classes=10):\n        return nn.Dense(x, classes)\n\n\n"
            "params = CNN(classes=3).init(key, jnp.zeros((1, 28, 28, 1), jnp.float32))['params']\n",
        ),
        Example(
            "from flax import nn\n\n\nclass Net(nn.Module):\n    def apply(self, x, train=True):\n"
            "        return nn.BatchNorm(x, use_running_average=not train)\n\n\n"
            "with nn.stateful() as state:\n    with nn.stochastic(drop_rng):\n"
            "        y, params = Net.init(rng, x)\n",
            "from flax import nn\n\n\nclass Net(nn.Module):\n    def apply(self, x, train=True):\n"
            "        return nn.BatchNorm(x, use_running_average=not train)\n\n\n"
            "y, variables = Net().init_with_output({'params': rng, 'dropout': drop_rng}, x)\n"
            "params = variables['params']\nstate = variables.get('batch_stats', {})\n",
            name="stateful and stochastic",
        ),
        Example(
            "from flax import nn\n\n\nclass Attention(nn.Module):\n"
            "    def apply(self, inputs_q, inputs_kv, heads):\n        return nn.Dense(inputs_kv, heads)\n\n\n"
            "SelfAttention = Attention.partial(inputs_kv=None)\n",
            "from flax import nn\n\n\n" + _INPUTS_HELPER_SOURCE + "\n\nclass Attention(nn.Module):\n"
            "    def apply(self, inputs_q, inputs_kv, heads):\n        return nn.Dense(inputs_kv, heads)\n\n\n"
            "SelfAttention = _with_call_inputs(Attention, inputs_kv=None)\n",
            name="a partial fixing call inputs",
        ),
        NoChange("import flax.linen as nn\n\nvariables = nn.Dense(3).init(rng, x)\n", name="linen"),
    ]

    def transformer(self, ctx: Context) -> RuleTransformer:
        return _Transformer(self, ctx)


class _Transformer(SiteCalls):
    owns = frozenset({"init"})

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if id(original) not in self.a.scope_of:
            return updated  # inside a class body: the module rules' business
        func = original.func
        if isinstance(func, cst.Attribute) and func.attr.value == "partial":
            return self._partial(original, updated)
        site = self.a.site(original)
        if site is None or site[0] != "init":
            return updated
        new = self.init_site(original, updated, site[1].ref)
        if new is not None:
            self.converted()
            return new
        return updated

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        """``block.expansion``, ``model.loss(params, x)`` where ``block = Block.partial(features=2)``:
        legacy's partial was a subclass with the class's attributes and classmethods; Linen's is a
        ``functools.partial``, which has none of them."""
        attr = original.attr.value
        if id(original) not in self.a.scope_of or attr.startswith("__"):
            return updated
        base = self.a.type_at(original.value)
        unheld = base is not None and base.kind == DEF and base.ref is not None and bool(base.ref.choices) \
            and base.ref.def_var is None  # (LU901 names the legacy-only methods of a name or attribute)
        if attr in _DEFINITION_API and base is not None and (
                base.kind == CONFLICT and CHANGED_REGISTRY in base.items
                or unheld and (isinstance(original.value, cst.Subscript) or attr not in LEGACY_ONLY_METHODS)):
            why = ("an entry of a registry that this file changes, whose entries are not all known here:"
                   if base.kind == CONFLICT else "a definition chosen at run time that no one name holds here (used "
                   "in place, or a name bound to different ones): bind it to a name once (chosen = MODELS[name]) "
                   "and run again, or")
            self.todo(f"{code(original)}: legacy Module.{attr} of {why} convert by hand")
            return updated
        if base is None or base.kind != DEF or base.ref is None:
            return updated
        if attr in _DEFINITION_API:
            parent = self.a.parent.get(id(original))
            if isinstance(parent, cst.Call) and parent.func is original:
                return updated
            new, why = self._call_value(original, base.ref) if attr == "call" else (None, None)
            if new is not None:
                return new
            if why is not None or not self.ctx.index.is_legacy_module(self.resolve(original.value)):  # (LU901's)
                self.todo(f"{code(original)}: a legacy method of a module definition taken as a value (Linen's "
                          f"are M(...).init and M(...).apply with {{'params': ...}}){': ' + why if why else ''}: "
                          "convert its uses by hand")
            return updated
        spec = self.a.spec(base.ref.qual)
        fixed = [k for k, _ in base.ref.kwargs if spec is None or k not in spec.inputs]
        if fixed or base.ref.choices:
            self.todo(f"{code(original)}: the legacy .partial of {base.ref.qual} becomes a functools.partial, which "
                      f"has no .{attr}: read it from the class")
        return updated

    def _call_value(self, original: cst.Attribute, ref) -> tuple[cst.BaseExpression | None, str | None]:
        """``fn = M.call`` (``jax.pmap(ResNet.call)``) -> ``_module_call(M())``, whose ``call(params,
        *inputs)`` applies the Linen module (``CALL_HELPER``): exact where every positional argument a
        call of ``fn`` may pass lands on the same parameter -- no attribute the definition leaves free
        comes before an input in the legacy order (after them, legacy's attributes are positional
        arguments Linen's ``__call__`` rejects, as it rejects an attribute by keyword).  A module with
        state or rngs then fails loudly without them (and its ``nn.stateful``/``nn.stochastic`` keeps
        its TODO).  (None, why) when it is not exact."""
        for choice in ref.choices or (ref,):
            legacy = self.ctx.index.legacy_module(choice.qual)
            spec = self.a.spec(choice.qual)
            if legacy is None or legacy.apply_params is None or spec is None or spec.problem:
                return None, f"{choice.qual.rpartition('.')[2]}'s apply signature is not known here"
            fixed = {k for k, _ in choice.kwargs} | {k for k, _ in ref.kwargs}
            params = [p for p in legacy.apply_params if p.kind == "pos"]
            last = max((i for i, p in enumerate(params) if p.name in spec.inputs), default=-1)
            free = [p.name for p in params[:last] if p.name not in spec.inputs and p.name not in fixed]
            if free or any(p.kind in ("varargs", "varkw") for p in legacy.apply_params):
                return None, (f"{', '.join(free) or 'a *args/**kwargs parameter'} may be passed by position, an "
                              "attribute in Linen")
        ctor, _, problem = self.constructor(ref, original, [])
        helper = self.call_helper() if ctor is not None else None
        if ctor is None or helper is None:
            return None, problem or f"the file binds {CALL_HELPER} to something else"
        self.fixed(f"{code(original)} (a function value) -> {helper}({code(ctor)})")
        return cst.Call(func=cst.Name(helper), args=[cst.Arg(ctor)]), None

    def _runtime_initializers(self, quals: list[str], call: cst.Call) -> None:
        """``M.partial(**model_kwargs)`` -> ``_module_partial(M, **model_kwargs)``: where a parameter of
        ``M`` reaches a built-in's initializer (``kernel_init``), a legacy ``init(key, shape)`` among the
        keywords, known only at run time, is not wrapped for Linen's ``init(key, shape, dtype)``."""
        slots = sorted({p for q in quals if (m := self.ctx.index.legacy_module(q)) is not None for p in m.init_params})
        given = {a.keyword.value for a in call.args if a.keyword is not None}
        if set(slots) - given:
            shown = ", ".join(s for s in slots if s not in given)
            self.todo(f"the keywords of {code(call.func)}(**...) are known at run time, and {shown} reaches an "
                      "initializer: Linen calls it init(key, shape, dtype), so a legacy init(key, shape) passed "
                      "there must be wrapped by hand (lambda key, shape, dtype=None: init(key, shape))")

    def _partial(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        """``d = M.partial(**kw)`` -> ``functools.partial(M, **kw)`` (receivers of
        ``.init``/``.call`` and ``nn.Model`` arguments are rebuilt by their rule)."""
        base = self.a.type_at(original.func.value)  # type: ignore[attr-defined]
        if base is None or base.kind != DEF or base.ref is None:
            return updated
        if isinstance(self.a.parent.get(id(original)), cst.Attribute):
            return updated
        if left_legacy(original, self.a.parent) is not None:
            return updated  # called in module context and passed on: legacy with its calls (LU103's TODO)
        if base.ref.choices:  # of a definition chosen at run time: when the analysis could follow it
            made = self.a.type_at(original)
            if made is None or made.kind != DEF or made.ref is None or not made.ref.choices:
                return updated
            args = [cst.Arg(value=updated.func.value), *updated.args]  # type: ignore[attr-defined]
            if any(a.star == "**" for a in updated.args):  # keys known at run time: checked there
                helper = self.partial_helper()
                if helper is None:
                    self.todo(f"a .partial(**...) of a definition chosen at run time: the file binds "
                              f"{PARTIAL_HELPER} to something else")
                    return updated
                self.fixed(f"a .partial(**...) of a definition chosen at run time -> {helper}(...), which checks "
                           "at run time that every keyword is a Linen attribute")
                self._runtime_initializers([c.qual for c in made.ref.choices], updated)
                return cst.Call(func=cst.Name(helper), args=args)
            self.fixed("a .partial of a definition chosen at run time -> functools.partial(...)")
            return cst.Call(func=build_dotted(self.spell_partial()), args=args)
        spec = self.a.spec(base.ref.qual)
        if spec is None:
            return updated
        if spec.problem:  # the class stays legacy (LU101): a functools.partial of it would not run
            self.todo(f"{base.ref.qual}.partial: {spec.problem}")
            return updated
        fixable = inputs_fixable(base.ref.qual, self.ctx.index)
        if any(k == "*" and not v.startswith("**") or k in spec.inputs and not fixable for k, v in base.ref.kwargs):
            return updated  # a partial of a partial that stays legacy (its TODO says why)
        args = []
        inputs = []  # call inputs it fixes: a subclass taking them (INPUTS_HELPER)
        runtime = False  # M.partial(**model_kwargs): which keys are attributes is known at run time
        for a in updated.args:
            key = a.keyword.value if a.keyword is not None else None
            if a.star == "**" and not runtime and self.ctx.index.is_legacy_module(base.ref.qual) \
                    and spec.forward is None:  # a class of the run: its Linen attributes keep their names
                runtime = True
                args.append(a)
                continue
            if a.star == "**":  # of a built-in (renamed keywords) or a wrapper packing **kwargs
                self.todo(f"{base.ref.qual}.partial fixes keywords known only at run time "
                          f"({cst.Module([]).code_for_node(a).strip(', ')}), which this rule cannot split into "
                          "Linen attributes and call inputs here: pass the attributes to the constructor and the "
                          "inputs where the module is applied")
                return updated
            if a.star or key is None or key in spec.inputs and not fixable:
                self.todo(f"{base.ref.qual}.partial fixes {key or 'a positional argument'}, which is not a "
                          "constructor attribute in Linen: pass it where the module is applied")
                return updated
            if key in spec.inputs:
                inputs.append(a.with_changes(whitespace_after_arg=cst.SimpleWhitespace("")))
                continue
            args.append(a.with_changes(keyword=cst.Name(spec.renames.get(key, key))))
        target = updated.func.value  # type: ignore[attr-defined]
        if inputs:
            helper = self.inputs_helper()
            if helper is None:
                self.todo(f"{base.ref.qual}.partial fixes call inputs and the file binds {INPUTS_HELPER} to "
                          "something else")
                return updated
            self.fixed(f"{base.ref.qual}.partial(...) fixing call inputs -> {helper}(...), a subclass taking them")
            target = cst.Call(func=cst.Name(helper), args=[cst.Arg(value=target), *comma_list(inputs)])
            if not args and not runtime:
                return target
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)  # it preceded an input
        if runtime:
            helper = self.partial_helper()
            if helper is None:
                self.todo(f"{base.ref.qual}.partial(**...): the file binds {PARTIAL_HELPER} to something else")
                return updated
            self.fixed(f"{base.ref.qual}.partial(**...) -> {helper}(...), which checks at run time that every "
                       "keyword is a Linen attribute")
            self._runtime_initializers([base.ref.qual], updated)
            return cst.Call(func=cst.Name(helper), args=[cst.Arg(value=target), *args])
        fn = build_dotted(self.spell_partial())
        args = self.adapt_initializers(args, base.ref.qual, spec.legacy, original)
        self.fixed(f"{base.ref.qual}.partial(...) -> functools.partial(...)")
        return cst.Call(func=fn, args=[cst.Arg(value=target), *args])
