"""LU102 submodule_calls: ``nn.Dense(x, 500, name='z')`` -> ``nn.Dense(500, name='z')(x)``.

What it does
    Inside legacy module classes, splits every call of a legacy module into
    construction (attributes) and call (inputs): built-ins by the table
    ``linen_upgrade/tables/nn_modules.py`` (renamed arguments such as
    ``bias`` -> ``use_bias``, ``nn.dropout`` -> ``nn.Dropout``, legacy
    defaults that became ``None`` in Linen passed explicitly; in the files of a
    program that turns jax's x64 on, ``param_dtype=float`` and legacy's float32
    ``dtype``, ``linen_upgrade/tables/x64.py``), user modules
    of the run by their own ``apply`` signatures (the same split LU101 makes),
    calls through an apply parameter that call sites give a module class
    (``block_cls(x, filters)``; also several classes, ResNet18's and
    ResNet50's blocks, when all split a call alike: the same parameters in
    the same order, kinds and required-ness), calls through a local read
    from a module-level dict of module classes (``block = BLOCKS[depth]``,
    read only by key in its file) when all its classes split a call alike
    (else, or when the dict is changed or holds other values, a TODO),
    calls through a module-level ``.partial`` of the run, this file's or
    another's (``attention.SelfAttention(x, num_heads=8)`` ->
    ``attention.SelfAttention(num_heads=8)(x)``, LU201 makes the alias Linen;
    one that stays legacy in its file gets a TODO at each call),
    and calls through a local ``conv = nn.Conv.partial(...)``; the call
    inputs such a local (or a ``.shared()`` one) fixes are passed at each of
    its calls when that is exact, ``enc(x)`` -> ``enc(x, mask=m)`` (LU103
    drops them from the definition).  A user
    initializer written for legacy's ``init(key, shape)`` (a function of a
    file of the run, or one such a function returns, that cannot take the
    dtype third; or a ``functools.partial`` fixing ``dtype=``) passed to a
    built-in's initializer, or to a module of the run that passes it on to
    one, is wrapped, ``kernel_init=lambda key, shape, dtype=None: f(key,
    shape)``, as Linen built-ins call ``init(key, shape, dtype)``
    (``self.param`` needs nothing: Linen calls that ``init(key, shape)``).  Also:
    ``Cell.initialize_carry(rng, batch_dims, size)`` -> the Linen cell's
    ``initialize_carry(rng, input_shape)`` (ConvLSTM included); attention
    ``attention_axis=(1, ..., k)`` -> attention over the flattened axes
    (``ATTENTION_AXES``); an ``apply(..., cache=None)`` that only passes the
    cache on to causal attention or to a module taking one (a ``.partial``
    alias included), tests it (``if cache:``, ``not cache``: a legacy Cache is
    always true) or keeps the decoding position in it (the position-embedding
    idiom of Flax's legacy lm1b/wmt) -> a ``decode: bool = False`` attribute,
    ``decode=self.decode``, ``self.decode`` and the position in the 'cache'
    collection, ``self.variable('cache', 'cache_index', ...)``, as Flax's Linen
    examples keep it.  Attention masks become one ``mask=``; a padding mask or
    segmentation that may be None (a parameter defaulting to None, a local
    bound to None somewhere) counts only when given (``... if padding_mask is
    not None else None``), as legacy skipped it, and a missing one of two
    padding masks takes legacy's place-holder (the other mask in
    self-attention, all True in cross-attention); while decoding the padding
    masks drop out and segmentations stay, as in legacy.
    ``nn.SelfAttention(y, inputs_kv=encoded)`` (a call keyword overrides what the
    legacy partial fixed) is cross-attention, ``inputs_kv=y`` self-attention.
    BatchNorm's explicit ``batch_stats=`` collection goes when it is None, or
    an apply parameter defaulting to None that is only ever passed there (or
    handed on to such a parameter of another module, LU104) and that no call
    gives (legacy's FakeResNet): the statistics then lived in the
    ``nn.stateful`` collection, as in Linen's 'batch_stats' (the parameter
    goes from the class; a call giving it gets a TODO).
    The same in plain functions an apply calls (``def features(x, train):
    ...`` at any depth): a legacy module call runs only under a parent's
    apply, and the Linen submodule made in a function called from
    ``@nn.compact`` binds to that parent, named in its call order (a function
    with only ``nn.dropout``, which legacy ran anywhere under
    ``nn.stochastic``, is left to LU901).  The result of a function of the run
    that returns one module definition in every branch (``norm =
    layers.batch_norm(train)``, this file's or another's) is called like it:
    ``norm(x, name='bn')`` -> ``norm(name='bn')(x)``.  So is the result of
    one that returns module definitions of several classes, or a plain
    function in some branches (init2winit's ``get_normalizer``: BatchNorm,
    LayerNorm or ``identity``), where every branch splits the call alike (the
    same attributes and inputs; a plain function gets the same arguments):
    the returned plain function ``f`` becomes ``partial(partial, f)``, so
    that ``norm(name='bn')(x)`` runs ``f(x, name='bn')``.  A local bound to
    such results in several branches (pre- or post-normalization) splits too.
    One bound once and handed, whole, to a module-level function of this file
    that never rebinds the parameter and only calls it on one positional input
    (``mlp(dims, norm=norm)``, ``norm(x)`` in a closure it returns: a graph
    network's update function) is handed ``lambda inputs: norm()(inputs)``:
    legacy's call in its Linen form, a new submodule per call.
    A call of a module whose apply initialises and applies the module
    definition it is given itself (``_, p = wrapped.init(rng, *args,
    **kwargs)`` in a ``self.param`` initializer, ``wrapped.call(p, *args,
    **kwargs)``: pruning code's masking wrapper; LU101 makes the body run an
    unbound instance, ``self.wrapped(parent=None)``) splits with the module
    given: ``Masked(x, features=3, wrapped=nn.Dense, mask=m)`` ->
    ``Masked(wrapped=partial(nn.Dense, features=3))(x, mask=m)``; the
    parameters keep their paths (``Masked_0/<param>/kernel``).  A function
    handing out such a wrapper's ``.partial`` with its parameter as the
    module (``def masked(module, mask): return Masked.partial(wrapped=module,
    mask=mask)``), which the run names only in calls in module bodies whose
    result is called at once, returns ``partial(Masked(wrapped=module), mask=mask)``, and its calls
    give the module with its attributes: ``masked(nn.Dense, m)(x,
    features=3)`` -> ``masked(partial(nn.Dense, features=3), m)(x)``.
    A module class defined in another class's body, called as ``self.Inner(x, f=3)`` or
    ``Outer.Inner(x, f=3)``, splits like any module of the run (-> ``self.Inner(f=3)(x)``) when it
    is the file's only class of that name (else a TODO).  ``M.call(params, x, ...)`` in a module
    body, and ``M.call(params, x, ..., name='n')`` in a function an apply calls (a module applied
    to parameters built by hand, BERT-style) -> ``M(<attributes>, parent=None).apply({'params':
    params}, x)``: legacy's name keyed only state and collections, and ``parent=None`` keeps
    Linen from adopting the instance (an auto-name that would shift its siblings'); a module
    keeping state or drawing rngs keeps a TODO (LU202 converts the calls without ``name=``
    outside module bodies).
Why
    Linen constructors return a module instance; the inputs go to its call.
    A positional argument stays positional only while the legacy and Linen
    orders agree; otherwise it becomes a keyword.
Not converted (TODO)
    Attention masks it cannot build, multi-axis attention with masks, a cache
    read in the module otherwise (its entries, a custom attention's own
    key/value caching) or decoding over several attention axes, code outside
    modules
    that passes a legacy ``Cache`` (init with ``decode=True`` and apply with
    ``mutable=['cache']`` by hand), ``*args``/``**kwargs`` calls, RNN cells
    whose ``features`` cannot be recovered from an ``initialize_carry`` call;
    calls of what a function returns when it returns a module definition in
    some branches and something else than a plain function of its own in
    others, or one of a class that stays legacy (the modules passed to it are
    renamed: the TODO says so where it is called), or when its branches split
    the call differently (``use_bias=`` for BatchNorm, none for a plain
    function; ``use_running_average=False`` for BatchNorm only); such a
    result passed on otherwise or returned from a module body (one with a plain
    function wrapped: anywhere, at the top level too), and a module definition
    handed to a function of the run (``features(x, conv)``): their calls
    elsewhere are not followed; an apply parameter given modules whose calls
    split differently (or a module and a function); a plain function's parameter
    it rebinds to a module (``if big: norm = nn.BatchNorm``: a call may call what
    its caller gave); a module given to a wrapper
    that runs it itself when this run cannot trace it, or when it keeps state
    (``nn.BatchNorm``, ``self.state``: legacy kept it in ``nn.stateful``'s
    collection, the inner Linen apply gets none), itself or through the modules
    and functions it runs, or draws rngs (``nn.dropout``, ``nn.make_rng``) where
    the run gives the wrapper no such module in a direct call (there LU101
    makes its apply hand the wrapper's ``'dropout'`` rng on), and such a
    wrapper's ``.partial`` handed out by a function that the run also names
    elsewhere (held, passed on), or called with ``name=``.
"""

from __future__ import annotations

import dataclasses

import libcst as cst

from linen_upgrade.applicability import classes_or_cells
from linen_upgrade.facts import DefinitionFactory, joined
from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, Example, FastVisitor, NoChange, Rule
from linen_upgrade.rules._attention import AttentionCalls, attention_result, cache_to_decode
from linen_upgrade.rules._cells import CellCalls, carry_arg
from linen_upgrade.rules._cst import add_import, build_dotted, code, express, kwarg, named_params, spell_partial
from linen_upgrade.rules._factories import Factories, Returned, spec_of
from linen_upgrade.rules._factory_branches import (Branches, assignments, read_branches, split_alike,
                                                   union, wrap_plain)
from linen_upgrade.rules._fixed_inputs import FunctionScan, append_keywords, module_scan, only_called_on_one
from linen_upgrade.rules._initializers import Hidden, Initializers, initializer_slots, local_names, merged
from linen_upgrade.rules._explicit_params import explicit_params_call, named_call
from linen_upgrade.rules._nested_classes import nested_class
from linen_upgrade.rules._modules import (CallSpec, defines_apply, dropped_collection, drops_collection,
                                          forwarded_by_definition, inputs_fixable,
                                          is_function_module, rejected, spec_for_qual, split_call)
from linen_upgrade.rules._usage_external import analysis_of
from linen_upgrade.rules._wrapped_definitions import (definition_given, factory_call, factory_return, given_attributes,
                                                     runs_with_collections, split_definition_call)
from linen_upgrade.rules._usage_types import DEF
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES


class SubmoduleCalls(Rule):
    id = "LU102"
    summary = "Submodule calls in legacy modules: nn.Dense(x, 500) -> nn.Dense(500)(x), bias= -> use_bias=, ..."
    examples = [
        Example(
            "from flax import nn\n\n\nclass Encoder(nn.Module):\n    def apply(self, x):\n"
            "        x = nn.Dense(x, 500)\n        x = nn.relu(x)\n"
            "        z = nn.Dense(x, 500, name='latents', bias=False)\n        return z\n",
            "from flax import nn\n\n\nclass Encoder(nn.Module):\n    def apply(self, x):\n"
            "        x = nn.Dense(500)(x)\n        x = nn.relu(x)\n"
            "        z = nn.Dense(500, use_bias=False, name='latents')(x)\n        return z\n",
        ),
        Example(
            "from flax import nn\n\n\nclass Block(nn.Module):\n    def apply(self, x, train=True):\n"
            "        x = nn.BatchNorm(x, momentum=0.9)\n        return nn.dropout(x, 0.5, deterministic=not train)\n",
            "from flax import nn\n\n\nclass Block(nn.Module):\n    def apply(self, x, train=True):\n"
            "        x = nn.BatchNorm(momentum=0.9, use_running_average=False)(x)\n"
            "        return nn.Dropout(0.5, deterministic=not train)(x)\n",
            name="changed defaults made explicit",
        ),
        Example(
            "from flax import nn\n\n\nclass RNN(nn.Module):\n    def apply(self, carry, x):\n"
            "        return nn.LSTMCell(carry, x)\n\n\n"
            "carry = nn.LSTMCell.initialize_carry(rng, (8,), 16)\n",
            "from flax import nn\n\n\nclass RNN(nn.Module):\n    def apply(self, carry, x):\n"
            "        return nn.LSTMCell(features=carry[0].shape[-1])(carry, x)\n\n\n"
            "carry = nn.LSTMCell(features=16).initialize_carry(rng, (8, 1))\n",
            name="recurrent cells",
        ),
        NoChange("from flax import linen as nn\n\n\nclass M(nn.Module):\n    @nn.compact\n"
                 "    def __call__(self, x):\n        return nn.Dense(3)(x)\n", name="linen"),
    ]


    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        t = _Transformer(self, ctx)
        module = module.visit(t)
        for name, obj in sorted(t.imports, key=lambda i: (i[0], i[1] or "")):
            module = add_import(module, name, obj)
        return module


def _named_parts(expr: cst.BaseExpression) -> list[cst.Name | cst.Attribute]:
    """The names and dotted attribute chains in ``expr`` (``BLOCKS``, ``nn.Dense``; in ``BLOCKS.values()``
    both ``BLOCKS.values`` and ``BLOCKS``), lambdas' and comprehensions' own names included."""
    found: list[cst.Name | cst.Attribute] = []

    class _Parts(cst.CSTVisitor):
        def visit_Attribute(self, node: cst.Attribute) -> bool:
            if dotted(node) is not None:
                found.append(node)
            node.value.visit(self)  # not node.attr: in cfg.Plain, Plain is no name of the file
            return False

        def visit_Name(self, node: cst.Name) -> None:
            found.append(node)

    expr.visit(_Parts())
    return found


def _module_value(module: cst.Module, name: str) -> cst.BaseExpression | None:
    """The value of the one module-level ``NAME = ...`` of ``module``."""
    found = [s.value for stmt in module.body if isinstance(stmt, cst.SimpleStatementLine)
             for s in stmt.body if isinstance(s, cst.Assign) and len(s.targets) == 1
             and isinstance(s.targets[0].target, cst.Name) and s.targets[0].target.value == name]
    return found[0] if len(found) == 1 else None


def _untraced_partial(node: cst.BaseExpression) -> bool:
    """``BLOCKS[kind].partial(...)``, ``get_block(kind).partial(...)``: a legacy ``.partial`` (or
    ``.shared``) of a value no rule traces to a class, which stays in the legacy form."""
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
        and node.func.attr.value in ("partial", "shared") and isinstance(node.func.value, (cst.Subscript, cst.Call))


class _Transformer(AttentionCalls, CellCalls):
    """Splits the calls; attention (``_attention.py``) and ``initialize_carry``
    (``_cells.py``) are converted by the two classes it extends."""

    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__(rule, ctx)
        self.imports: set[tuple[str, str | None]] = set()  # (module, name): import module / from module import name
        self._module: cst.Module | None = None
        self._registries: dict[str, frozenset[str] | None] = {}  # module-level dicts of module classes
        self._legacy_class_depth: list[bool] = []
        # per function: local name -> (spec, keywords it fixed, "partial"|"shared", inputs its calls take)
        self._partials: list[dict[str, tuple[CallSpec, frozenset[str], str, tuple[cst.Arg, ...]]]] = []
        self._functions: list[cst.FunctionDef] = []
        self._scans: dict[int, FunctionScan] = {}
        self._assigned: dict[int, dict[str, list[cst.Assign]]] = {}  # per function: name -> its ``name = ...``
        self._loops: dict[int, dict[str, list[cst.BaseExpression]]] = {}  # per function: loop target -> iterables
        self._split: set[int] = set()
        self._class_quals: list[str | None] = []
        self._classes: list[tuple[cst.ClassDef, int]] = []  # (class, the depth of functions around it)
        self._initializers: Initializers | None = None
        self._hidden: list[Hidden] = []  # per enclosing function: the names it binds
        self._factories: Factories | None = None
        self._module_callers: dict[int, bool] = {}  # outermost plain function -> _calls_modules()
        # code outside modules read for a legacy Cache too (not in a file read for its plain functions only)
        self._outside_modules = classes_or_cells(ctx)
        # (function, local) -> what a function of the run returned into it, when its calls get a TODO
        self._returned: dict[tuple[int, str], Returned] = {}
        # (function, local) -> the branches of the functions that returned into it (a module definition
        # in some, a plain function in others), and why its calls are not split (None: split alike)
        self._choices: dict[tuple[int, str], tuple[Branches, str | None]] = {}
        # ``return f`` of a plain function in such a function of this file -> its branches
        self._wrapped: dict[int, Branches] = {}
        self._top: FunctionScan | None = None  # the module's top level (``module_scan``), when asked
        self._hand_over_adapters: dict[int, dict[int, cst.Lambda]] = {}  # call -> argument index -> adapter
        self._followed: set[int] = set()  # f(...) whose result _choice_result follows to its calls

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        # only classes still in legacy form (LU101 renames apply after this rule)
        legacy = any(self.is_legacy_class(b.value) for b in node.bases) and defines_apply(node)
        self._legacy_class_depth.append(legacy)
        self._classes.append((node, len(self._functions)))
        self._class_quals.append(self.resolve_class(node.name) if legacy else None)
        self._decode.append(legacy and self._cache_becomes_decode(node))
        return True

    def resolve_class(self, node: cst.CSTNode) -> str | None:
        """Also ``self.Inner`` and ``Outer.Inner``, a module class defined in a class's body."""
        qual = super().resolve_class(node)
        return self._nested(node)[0] if qual is None and isinstance(node, cst.Attribute) else qual

    def _nested(self, node: cst.BaseExpression) -> tuple[str | None, bool]:
        """``nested_class`` for ``node`` here: the class around, the first parameter of its method."""
        owner, depth = self._classes[-1] if self._classes else (None, 0)
        method = self._functions[depth] if owner is not None and len(self._functions) > depth else None
        first = [*method.params.posonly_params, *method.params.params] if method is not None else []
        return nested_class(node, owner, first[0].name.value if first else None, self._module, self.ctx.facts)

    def visit_Call(self, node: cst.Call) -> bool:
        if isinstance(node.func, cst.Call):  # M(...)(x): already split
            self._split.add(id(node.func))
        return True

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self._legacy_class_depth.pop()
        self._classes.pop()
        self._class_quals.pop()
        if self._decode.pop():
            jnp, needed = express("jax.numpy", self.ctx.facts.imports)
            updated, positions = cache_to_decode(updated, jnp)
            self.fixed(f"class {original.name.value}: apply(cache=) -> decode attribute")
            if positions:
                self.imports.update([(needed, None)] if needed else [])
                self.fixed(f"class {original.name.value}: the decoding position -> the 'cache' collection")
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        if not (self._functions or self._legacy_class_depth):  # a top-level function
            branches = read_branches(node, self.ctx.facts, self.ctx.index, node.name.value)
            self._wrapped.update(dict.fromkeys(branches.plain, branches) if branches is not None else {})
        self._partials.append(self._handed_partials(node))
        self._functions.append(node)
        self._hidden.append(local_names(node))
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self._partials.pop()
        self._functions.pop()
        self._hidden.pop()
        factory = self._definition_factory(original.name) if not (self._functions or self._legacy_class_depth) \
            else None
        if factory is not None:
            spec = spec_for_qual(factory.wrapper, self.ctx.index)
            made = factory_return(updated, spec, self._spell_partial) if spec is not None else None
            if made is not None:
                self.fixed(f"{original.name.value} returns {factory.wrapper}.partial(...) -> a partial of the "
                           "Linen instance, its calls give the module with its attributes")
                return made
        return updated

    def _definition_factory(self, func: cst.BaseExpression) -> DefinitionFactory | None:
        """The factory of a wrapper running the definition it is given that ``func`` names
        (``index.definition_factories``)."""
        qual = self.resolve(func)
        if qual is None and isinstance(func, cst.Name) and func.value not in self.hidden_names():
            qual = joined(self.ctx.facts.module_name, func.value)
        return self.ctx.index.definition_factories.get(self.ctx.index.canonical(qual)) if qual else None

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        """``return identity`` in a function returning module definitions in other branches:
        called the Linen way like them (``_factory_branches``)."""
        branches = self._wrapped.get(id(original))
        if branches is None or updated.value is None:
            return updated
        self.fixed(f"{branches.name} returns a plain function in some branches: wrapped to be called "
                   "like the module definitions it returns in others")
        return updated.with_changes(value=wrap_plain(updated.value, self._spell_partial()))

    def _spell_partial(self) -> str:
        """``functools.partial`` as this file can write it (LU103 and LU201 write the partials
        of the other branches alike)."""
        spelled, needed = spell_partial(self.ctx.facts.imports, self._module)  # type: ignore[arg-type]
        if needed is not None:
            self.imports.add(needed)
        return spelled

    def _in_legacy_module(self) -> bool:
        return bool(self._legacy_class_depth and self._legacy_class_depth[-1])

    def _in_plain_function(self) -> bool:
        """A function outside legacy module bodies (``def features(x, train): ...`` called
        from an apply): a legacy module call there runs only under a parent module's apply,
        and its Linen form, made in a function called from ``@nn.compact``, binds to that
        parent the same way (Linen's module stack)."""
        return bool(self._functions) and not self._in_legacy_module() and not any(
            is_function_module(self, f) for f in self._functions)

    def _calls_modules(self) -> bool:
        """Does the outermost enclosing function call a legacy module class in the legacy form?
        ``nn.dropout`` alone says nothing: a plain function in legacy flax, it ran under
        ``nn.stochastic`` anywhere (functional code around ``Module.call``), where Linen's
        ``nn.Dropout`` cannot."""
        fn = self._functions[0]
        if id(fn) not in self._module_callers:
            outer, partials, found = self, set(), []

            class _Calls(FastVisitor):
                def visit_Assign(self, node: cst.Assign) -> None:
                    v = node.value
                    if isinstance(v, cst.Call) and isinstance(v.func, cst.Attribute) \
                            and v.func.attr.value in ("partial", "shared") and outer._spec(v.func.value):
                        partials.update(t.target.value for t in node.targets if isinstance(t.target, cst.Name))

                def visit_Call(self, node: cst.Call) -> None:
                    spec = outer._spec(node.func) if outer.resolve(node.func) != "flax.nn.dropout" else None
                    if (spec is not None and spec[0].is_legacy_call(node)) or (
                            isinstance(node.func, cst.Name) and node.func.value in partials):
                        found.append(node)

            fn.visit(_Calls())
            self._module_callers[id(fn)] = bool(found)
        return self._module_callers[id(fn)]

    def _scan(self) -> FunctionScan:
        fn = self._functions[-1]
        if id(fn) not in self._scans:
            self._scans[id(fn)] = FunctionScan(fn)
        return self._scans[id(fn)]

    def visit_Assign(self, node: cst.Assign) -> bool:
        # conv = nn.Conv.partial(bias=False): later calls of ``conv`` split like nn.Conv;
        # dense = nn.Dense.shared(features=3): later calls of ``dense`` pass inputs only
        # norm = GroupNorm: a plain alias, its calls split like the class's own
        value = node.value
        if not (self._partials and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name)):
            return True
        if isinstance(value, cst.Call) and isinstance(value.func, (cst.Name, cst.Attribute)) \
                and (self._in_legacy_module() or self._in_plain_function()):
            self._factory_result(node)
        if self._in_plain_function() and node.targets[0].target.value in self._scan().params:
            return True  # a plain function's parameter rebound (in a branch?): its calls may call what was given
        if isinstance(value, (cst.Name, cst.Attribute)):
            spec = self._spec(value)
            if spec is not None:
                self._partials[-1][node.targets[0].target.value] = (spec[0], frozenset(), "partial", ())
            return True
        entry = self._partial_entry(node)
        if entry is not None:
            self._partials[-1][node.targets[0].target.value] = entry
        return True

    def _partial_entry(self, node: cst.Assign) -> tuple[CallSpec, frozenset[str], str, tuple[cst.Arg, ...]] | None:
        """How calls of the local ``x = M.partial(...)`` / ``M.shared(...)`` (of the innermost function)
        split: (spec, keywords it fixed, "partial"|"shared", the inputs moved to its calls)."""
        value = node.value
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
                and value.func.attr.value in ("partial", "shared")):
            return None
        spec = self._spec(value.func.value)
        if spec is None or self._in_plain_function() and self._scan().only_called(
                node, node.targets[0].target.value):  # type: ignore[attr-defined]
            return None  # passed on or returned: LU103 leaves it legacy, LU201/LU901 see to its uses
        kept = self._kept(value, spec[0])
        bound = frozenset(a.keyword.value for a in kept if a.keyword is not None)
        return spec[0], bound, value.func.attr.value, self._carried(node, spec[0])

    def _kept(self, value: cst.Call, spec: CallSpec) -> list[cst.Arg]:
        """The arguments of ``M.partial(...)`` that stay: an explicit state collection LU103 drops goes."""
        enclosing = self._class_quals[-1] if self._class_quals else None
        qual = self.resolve_class(value.func.value)  # type: ignore[attr-defined]
        return [a for a in value.args if not drops_collection(a, spec, qual, enclosing, self.ctx.index)]

    def _handed_partials(self, fn: cst.FunctionDef) -> dict:
        """``def stack(y, block): ... block(y, 4)`` defined in a function whose local
        ``block = Block.partial(...)`` each call of ``stack`` hands it (and that ``stack`` only
        calls): the parameter's calls split like the local's (``FunctionScan.hand_overs``)."""
        if not self._partials or not self._functions:
            return {}
        scan, frame = self._scan(), {}
        for name, assign in scan.assigned.items():
            handed = [param for inner, param in scan.hand_overs(name) or () if inner.fn is fn] \
                if fn.name.value in scan.nested else []
            entry = self._partial_entry(assign) if handed else None
            if entry is not None:
                frame.update(dict.fromkeys(handed, entry))
        return frame

    def _returned_by(self, call: cst.Call) -> Returned | None:
        """What ``f(...)`` returns when ``f`` is a function of the run returning module definitions."""
        assert self._factories is not None
        return self._factories.returned(call.func, self.resolve(call.func), self.hidden_names())

    def _factory_result(self, node: cst.Assign) -> None:
        """``norm = make_norm(train)``, then ``norm(x)``: split like the definition the function
        returns (LU201 makes its ``.partial`` Linen); when it returns several, or one of a class
        that stays legacy, each call gets a TODO naming the function.  Passed on or returned from
        a module body (or from a plain function that calls it too: a module call), its calls
        elsewhere are not followed: a TODO here."""
        name = node.targets[0].target.value  # type: ignore[attr-defined]
        called = name in self._scan().called
        if not (called or self._in_legacy_module()):
            return  # maybe a definition for top-level code (LU201/LU202)
        branches = self._branches_by(node.value)  # type: ignore[arg-type]
        if branches is not None:
            self._choice_result(node, name, branches)
            return
        returned = self._returned_by(node.value)  # type: ignore[arg-type]
        if returned is None:
            return
        spec = spec_of(returned, self.ctx.index)
        converts = spec is not None and not spec.problem
        scan = self._scan()
        if converts and len(scan.bindings.get(name, [])) == 1:
            bound = frozenset(k for k, _ in returned.ty.ref.kwargs)  # type: ignore[union-attr]
            self._partials[-1][name] = (spec, bound, "partial", ())
        elif called:  # bound again elsewhere, maybe to something else: its calls get a TODO
            self._returned[(id(self._functions[-1]), name)] = returned
        if any(c is None for _, c in scan.reads.get(name, [])):
            self.todo(f"{name} holds what {returned.name}(...) returns (a module definition"
                      f"{'' if returned.single else ' in some branches'}) and is passed on or returned: calls of it "
                      f"elsewhere keep the legacy form {name}(<inputs>, <attributes>); convert them by hand to "
                      f"{name}(<attributes>)(<inputs>)")
        elif not converts and returned.single:  # where modules are passed to it
            self.todo(self._factory_todo(name, returned, assigned=True))

    def _branches_by(self, call: cst.Call) -> Branches | None:
        """The branches of ``f`` in ``f(...)`` when it returns module definitions in some."""
        assert self._factories is not None
        return self._factories.branches(call.func, self.resolve(call.func), self.hidden_names())

    def _choice_result(self, node: cst.Assign, name: str, branches: Branches) -> None:
        """``norm = get_normalizer(kind, train)``: a module definition or a plain function, all
        called the Linen way after this run.  Its calls split alike when every binding of
        ``norm`` in the function is such a result; passed on or returned, it gets a TODO."""
        scan = self._scan()
        key = (id(self._functions[-1]), name)
        self._followed.add(id(node.value))
        if any(c is None for _, c in scan.reads.get(name, [])) and not self._adapt_hand_overs(scan, name, branches):
            self.todo(f"{name} holds what {branches.name}(...) returns (a module definition in some branches, "
                      f"Linen after this run) and is passed on or returned: calls of it elsewhere keep the legacy "
                      f"form {name}(<inputs>, <attributes>); convert them by hand to {name}(<attributes>)(<inputs>)")
        bound = self._assignments(name)
        found = [b for a in bound if isinstance(a.value, cst.Call) and (b := self._branches_by(a.value))]
        if name in scan.params or name in scan.unstable or not (
                len(found) == len(bound) == len(scan.bindings.get(name, []))):
            self._choices[key] = (branches, f"{name} is also bound to something else")
        else:
            self._choices[key] = (union(found), None)

    def _adapt_hand_overs(self, scan: FunctionScan, name: str, branches: Branches) -> bool:
        """``mlp(dims, norm=norm)`` with ``norm = get_normalizer(kind, train)`` bound once, ``mlp`` a
        module-level function of this file (not decorated, its name bound once) whose parameter
        is never rebound (nor shadowed) and only ever called on one positional input, nested
        functions included: hand it ``lambda inputs: norm()(inputs)``, the legacy call ``norm(x)``
        in its Linen form (a new submodule per call, bound to the module whose apply runs it, as
        legacy's), whatever other callers of ``mlp`` hand it.  True when every read of ``norm``
        other than its calls is such a hand-over (recorded for ``leave_Call``)."""
        bindings = scan.bindings.get(name, [])
        if name in scan.params or name in scan.unstable or len(bindings) != 1 or bindings[0][1]:
            return False  # (bound in a loop: a lambda called later would read a later value)
        param_name = "x" if name == "inputs" else "inputs"
        body, _ = split_alike(cst.Call(func=cst.Name(name), args=[cst.Arg(cst.Name(param_name))]), branches,
                              self.ctx.index, lambda new, spec, qual: self._adapted(new, spec, qual)[0])
        if body is None:
            return False
        adapter = cst.Lambda(params=cst.Parameters(params=[cst.Param(cst.Name(param_name))]), body=body)
        found: dict[int, dict[int, cst.Lambda]] = {}
        for order, call in scan.reads.get(name, []):
            passed = scan.passed(name, order) if call is None else None
            if call is not None:
                continue
            if passed is None or not self._only_calls_one_input(*passed):
                return False
            call, arg = passed
            found.setdefault(id(call), {})[call.args.index(arg)] = adapter
        for key, slots in found.items():
            self._hand_over_adapters[key] = slots
        self.fixed(f"{name}, handed to functions that call it on one input: handed as lambda inputs: "
                   f"{name}()(inputs)")
        return True

    def _only_calls_one_input(self, call: cst.Call, arg: cst.Arg) -> bool:
        """Does ``call`` call a module-level function of this file that binds ``arg`` to a
        parameter it only calls on one positional input (``_adapt_hand_overs``)?"""
        func = call.func
        if not isinstance(func, cst.Name) or func.value in self.hidden_names() or self._module is None \
                or any(a.star for a in call.args):
            return False
        if self._top is None:
            self._top = module_scan(self._module)
        defs = [s for s in self._module.body if isinstance(s, cst.FunctionDef) and s.name.value == func.value]
        if len(defs) != 1 or defs[0].decorators or len(self._top.bindings.get(func.value, [])) != 1 \
                or func.value in self._top.unstable:
            return False
        fn = defs[0]
        if arg.keyword is not None:
            names = {p.name.value for p in named_params(fn.params)}
            param = arg.keyword.value if arg.keyword.value in names else None
        else:
            positional = [*fn.params.posonly_params, *fn.params.params]
            index = [a for a in call.args if a.keyword is None].index(arg)
            param = positional[index].name.value if index < len(positional) else None
        if param is None:
            return False
        inner = FunctionScan(fn)
        return param not in inner.bindings and param not in inner.unstable and only_called_on_one(fn.body, param)

    def _unfollowed(self, call: cst.Call) -> None:
        """``f(...)``, or ``f(...)(x)`` outside modules, where ``f`` returns a plain function this
        run wraps (``leave_Return``) and its result is not followed (a top-level or a tuple
        assignment, passed on, returned, held but not called): a TODO."""
        made = call.func if isinstance(call.func, cst.Call) else call
        if id(made) in self._followed or not isinstance(made.func, (cst.Name, cst.Attribute)):
            return
        branches = self._branches_by(made)
        if branches is not None and branches.plain:
            self.todo(f"{branches.name}(...) returns module definitions in some branches and, in others, a plain "
                      "function that this run wraps to be called like them, <result>(<attributes>)(<inputs>): "
                      "its result is not followed from here: call it that way by hand")

    def _choice_call(self, updated: cst.Call, branches: Branches, why: str | None) -> cst.BaseExpression:
        """``norm(x, name='bn1')`` -> ``norm(name='bn1')(x)`` when every branch splits it alike."""
        func = updated.func
        shown = _name(func) if not isinstance(func, cst.Call) else f"{branches.name}(...)(...)"
        wrapped: list[str] = []

        def adapt(new: cst.Call, spec: CallSpec, qual: str) -> cst.Call:
            new, done = self._adapted(new, spec, qual)
            wrapped.extend(w for w in done if w not in wrapped)
            return new

        new = None
        if why is None:
            new, why = split_alike(updated, branches, self.ctx.index, adapt)
        if new is None:
            self.todo(f"{shown} calls what {branches.name}(...) returns: a module definition in some branches, "
                      f"all called the Linen way after this run ({shown}(<attributes>)(<inputs>)), but {why}: "
                      "convert this call by hand")
            return updated
        for w in wrapped:
            self.fixed(f"legacy initializer {w} wrapped for Linen's init(key, shape, dtype)")
        self.fixed(f"{shown}(x, ...) -> {shown}(...)(x): every branch of {branches.name} splits it alike")
        return new

    def _check_handed_over(self, call: cst.Call) -> None:
        """``features(x, conv)`` with ``conv`` a module definition (a class, a ``.partial``, a local
        holding one), ``features`` a function of the run: converted here, it is still called
        in the legacy form there (this rule splits the calls of what it can trace, not of a
        function's parameters)."""
        if not isinstance(call.func, (cst.Name, cst.Attribute)) or self._spec(call.func) is not None or (
                self._in_plain_function() and not self._calls_modules()):
            return  # a module call, or maybe top-level code (LU201/LU202 follow definitions there)
        assert self._factories is not None
        for a in call.args:
            v = a.value
            if isinstance(v, cst.Call) and isinstance(v.func, cst.Attribute) and v.func.attr.value in (
                    "partial", "shared"):
                v = v.func.value
            local = isinstance(v, cst.Name) and v.value in self._partials[-1] and self._becomes_linen(v.value)
            if local and any(inner.fn.name.value == _name(call.func)
                             for inner, _ in self._scan().hand_overs(v.value) or ()):
                continue  # its calls there split like the local's (``_handed_partials``)
            definition = local or self._spec(v) is not None or self._alias(v) is not None
            if definition and self._factories.is_function(call.func, self.resolve(call.func)) \
                    and self._returned_by(call) is None:  # a function returning definitions: its calls' TODO
                shown = _name(a.value) if not isinstance(a.value, cst.Call) else f"{_name(v)}.partial(...)"
                self.todo(f"{shown} is handed to {_name(call.func)}(...), whose calls of it keep the legacy form "
                          f"(inputs first) while it becomes a Linen definition here: convert them by hand to "
                          "<module>(<attributes>)(<inputs>)")

    def _becomes_linen(self, name: str) -> bool:
        """Is the local ``name`` a definition LU103 makes a Linen one?  Not a ``.shared()``
        instance (called with inputs only, as in legacy), nor a partial fixing call inputs
        that cannot move to its calls (LU103 leaves it legacy with a TODO)."""
        spec, bound, kind, carried = self._partials[-1][name]
        return kind != "shared" and not (bound & spec.inputs and not carried or given_attributes(spec, bound))

    def _factory_todo(self, shown: str, returned: Returned, assigned: bool = False) -> str:
        spec = spec_of(returned, self.ctx.index)
        if spec is not None and not spec.problem:
            return (f"{shown} calls the definition that {returned.name}(...) returns (Linen after this run: "
                    f"{shown}(<attributes>)(<inputs>)), and {shown} is bound more than once: convert its calls by hand")
        if returned.single:
            qual = returned.ty.ref.qual.rpartition(".")[2]  # type: ignore[union-attr]
            why = f" ({spec.problem})" if spec is not None and spec.problem else ""
            what = f"{shown} holds" if assigned else f"{shown} calls"
            if spec is not None and spec.definition:  # the class converts; the factory's partial cannot
                return (f"{what} the definition of {qual} that {returned.name}(...) returns; {qual} runs the module "
                        f"given as {spec.definition} itself, so in Linen that module carries its attributes: make "
                        f"{returned.name} return functools.partial({qual}, {spec.definition}=...) (call inputs "
                        f"it fixed move to the call) and write {returned.name}(partial(<module>, <attributes>), "
                        "...)()(<inputs>) here by hand")
            return (f"{what} the definition of {qual} that {returned.name}(...) returns, and {qual} stays "
                    f"legacy{why}: its calls stay legacy while modules passed to {returned.name} are renamed to "
                    "Linen; convert them together by hand")
        if returned.ty.kind == DEF:  # definitions only, chosen at run time (a registry's entry, say)
            return (f"{shown} calls what {returned.name}(...) returns: one of several module definitions, chosen at "
                    f"run time (Linen after this run: {shown}(<attributes>)(<inputs>)): convert {returned.name} and "
                    "its calls together by hand")
        return (f"{shown} calls what {returned.name}(...) returns: a module definition in some branches (Linen "
                f"after this run: {shown}(<attributes>)(<inputs>)), something else in others; convert "
                f"{returned.name} and its calls together by hand")

    def _carried(self, node: cst.Assign, spec: CallSpec) -> tuple[cst.Arg, ...]:
        """The call inputs ``x = M.shared(mask=m, ...)`` fixes, when each call of ``x`` can
        take them with the same value (``_fixed_inputs.py``); LU103 then drops them."""
        args = self._kept(node.value, spec)  # type: ignore[arg-type]
        fixed = [a for a in args if a.keyword is not None and a.keyword.value in spec.inputs]
        if not fixed or spec.problem or any(a.keyword is None or a.keyword.value in spec.manual for a in args) \
                or given_attributes(spec, [a.keyword.value for a in args]):
            return ()  # LU103 leaves such a definition with its TODO
        name = node.targets[0].target.value  # type: ignore[attr-defined]
        return () if self._scan().problem(node, name, [a.value for a in fixed]) else tuple(fixed)

    def _with_carried(self, call: cst.Call, carried: tuple[cst.Arg, ...], slots: tuple[str, ...],
                      renames: dict) -> cst.Call:
        """``enc(x)`` -> ``enc(x, mask=m)``; a keyword the call passes itself wins, as legacy's
        partial let it; one the call fills by position: left (LU103 keeps its TODO)."""
        taken = set(slots[:sum(a.keyword is None for a in call.args)])
        given = {a.keyword.value for a in call.args if a.keyword is not None}
        added = [a.with_changes(keyword=cst.Name(renames.get(a.keyword.value, a.keyword.value)))
                 for a in carried]  # type: ignore[union-attr]
        if not added or any(a.keyword.value in taken for a in added):  # type: ignore[union-attr]
            return call
        added = [a for a in added if a.keyword.value not in given]  # type: ignore[union-attr]
        if added:
            self.fixed(f"{_name(call.func)}(...): the inputs its definition fixed passed at the call")
        return append_keywords(call, added) if added else call

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self._initializers = Initializers(self.ctx)
        self._factories = Factories(node, self.ctx)
        self._module = node
        return True

    def hidden_names(self) -> Hidden:
        return merged(self._hidden)

    def _wrap_two_arg_initializers(self, call: cst.Call, spec: CallSpec, qual: str | None) -> cst.Call:
        """Linen built-ins call ``init(key, shape, dtype)``; a legacy ``f(key, shape)`` passed to one,
        or to a parameter of the module ``qual`` that reaches one, is wrapped."""
        call, wrapped = self._adapted(call, spec, qual)
        for w in wrapped:
            self.fixed(f"legacy initializer {w} wrapped for Linen's init(key, shape, dtype)")
        return call

    def _adapted(self, call: cst.Call, spec: CallSpec, qual: str | None) -> tuple[cst.Call, list[str]]:
        inner = call.func
        if not isinstance(inner, cst.Call) or self._initializers is None:
            return call, []
        slots = initializer_slots(spec.legacy, self.ctx.index.legacy_module(qual))
        args, wrapped = self._initializers.adapt(inner.args, slots, self.hidden_names())
        return call.with_changes(func=inner.with_changes(args=args)), wrapped

    def _called_at_once(self, call: cst.Call) -> cst.Call | None:
        """``Layer.partial(width=3)(x, scale=2.0)``, ``Embed.shared(n=v, features=8)()``: a
        definition called where it is made is legacy's one call ``Layer(x, width=3, scale=2.0)``
        (the call's keywords win, as legacy's partial let them; an unnamed ``.shared()`` is
        stored under a bare number, which ``keys.py`` maps as it does for any such module)."""
        inner = call.func
        if not (isinstance(inner, cst.Call) and isinstance(inner.func, cst.Attribute)
                and inner.func.attr.value in ("partial", "shared") and self._spec(inner.func.value) is not None):
            return None
        if any(a.keyword is None for a in inner.args) or any(a.star == "**" for a in call.args):
            return None  # **config: which keywords win is known only at run time (LU103 says so)
        given = {a.keyword.value for a in call.args if a.keyword is not None}
        if inner.func.attr.value == "shared" and "name" in given:
            return None  # legacy refuses to rename a shared module: left as it is
        fixed = [a for a in inner.args if a.keyword.value not in given]  # type: ignore[union-attr]
        args = [a for a in call.args if a.keyword is None] + fixed + [a for a in call.args if a.keyword is not None]
        return call.with_changes(func=inner.func.value, args=[
            a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in args])

    def _spec(self, func: cst.BaseExpression, call: cst.Call | None = None
              ) -> tuple[CallSpec, cst.BaseExpression] | None:
        """The call spec of a legacy module expression and its Linen constructor (for ``call``: a
        built-in ``.partial`` given a keyword it fixed calls the built-in it partials, when no
        other argument is positional than the first)."""
        qual = self.resolve_class(func)
        row = BUILTIN_MODULES.get(qual or "")
        given = [a.keyword.value for a in call.args if a.keyword is not None and a.keyword.value in row.unfixed] \
            if row is not None and call is not None else []
        if given:
            target = BUILTIN_MODULES[row.unfixed[given[0]]]  # type: ignore[union-attr]
            if sum(a.keyword is None and not a.star for a in call.args) > 1:  # type: ignore[union-attr]
                self.todo(f"{_name(func)}: {given[0]}= overrides what the legacy partial fixed, so this calls "
                          f"{target.linen}, whose parameters come in another order: pass its configuration by keyword")
                return None
            row = target
        if row is not None:
            return CallSpec.builtin(row, self.ctx.index.x64), self._linen_ctor(func, qual, row.linen)  # type: ignore[arg-type]
        spec = spec_for_qual(qual, self.ctx.index)  # a module of the run, StdConv(nn.Conv) wrapping param
        return (spec, func) if spec is not None else None

    def _alias(self, func: cst.BaseExpression) -> tuple[str, frozenset[str]] | None:
        """(the module, the keywords fixed) when ``func`` names a module-level ``.partial`` of the
        run (``SelfAttn = Attn.partial(inputs_kv=None)``, this file's or another's): LU201 makes it
        a Linen definition, so its calls split like the module's, without what it fixed."""
        if isinstance(func, cst.Name):
            if func.value not in self.ctx.facts.partial_aliases or func.value in self.hidden_names():
                return None
            module = self.ctx.facts.module_name
            qual: str | None = f"{module}.{func.value}" if module else func.value
        else:
            qual = self.resolve(func)
        alias = self.ctx.index.partial_alias(qual) if qual else None
        return (alias[0], frozenset(k for k, _ in alias[1])) if alias is not None else None

    def _split_alike(self, given: frozenset[tuple[str, frozenset[str]]]) -> tuple[CallSpec, frozenset[str]] | None:
        """The one call spec of the modules call sites give a parameter (``block_cls``: ResNetBlock
        for ResNet18, BottleneckResNetBlock for ResNet50), when every one splits a call alike: the
        same legacy parameters in the same order, kinds and required-ness, so the same attributes
        and inputs in the same Linen places, and the same keywords fixed; else None."""
        found = []
        for target, bound in given:
            legacy = self.ctx.index.legacy_module(target)
            spec = spec_for_qual(target, self.ctx.index)
            if legacy is None or legacy.apply_params is None or spec is None or spec.problem:
                return None  # a built-in next to a user module, or one that stays legacy
            shape = tuple((p.name, p.kind, p.default is None, p.role) for p in legacy.apply_params)
            found.append((spec, bound, shape))
        if any(f != found[0] for f in found):
            return None
        return found[0][0], found[0][1]

    def _linen_ctor(self, func: cst.BaseExpression, qual: str, linen: str) -> cst.BaseExpression:
        if qual.rsplit(".", 1)[-1] == linen:
            return func
        if isinstance(func, cst.Attribute):
            return func.with_changes(attr=cst.Name(linen))
        spelled, needed = express(f"flax.nn.{linen}", self.ctx.facts.imports)
        if needed:
            self.imports.add((needed, None))
        return build_dotted(spelled)

    def _assignments(self, name: str) -> list[cst.Assign]:
        """The plain ``name = ...`` statements of the innermost function (``assignments``, read once)."""
        fn = self._functions[-1]
        if id(fn) not in self._assigned:
            self._assigned[id(fn)] = assignments(fn)
        return self._assigned[id(fn)].get(name, [])

    def _registry_entry(self, func: cst.BaseExpression) -> frozenset[tuple[str, frozenset[str]]] | None:
        """``block = BLOCKS[depth]`` (every binding of the local in the function), then ``block(x, f)``:
        the module classes of the run in that module-level dict literal (``_registry``), for
        ``_split_alike``; None when the local or the dict is anything else."""
        if isinstance(func, cst.Subscript) and isinstance(func.value, cst.Name) and self._module is not None \
                and func.value.value not in self.hidden_names():  # BLOCKS[kind](x, f): the entry called at once
            found = self._registry(func.value.value)
            return frozenset((qual, frozenset()) for qual in found) if found is not None else None
        if not (isinstance(func, cst.Name) and self._functions and self._module is not None):
            return None
        fn = self._functions[-1]
        values = [a.value for a in self._assignments(func.value)]
        if not values or func.value in {p.name.value for p in named_params(fn.params)} or not all(
                isinstance(v, cst.Subscript) and isinstance(v.value, cst.Name) for v in values):
            return None
        classes: set[str] = set()
        for name in {v.value.value for v in values}:  # type: ignore[attr-defined]
            found = self._registry(name)
            if found is None:
                return None
            classes |= found
        return frozenset((qual, frozenset()) for qual in classes)

    def _registry(self, name: str) -> frozenset[str] | None:
        """The module classes of the run a module-level ``NAME = {key: Class, ...}`` holds, when every value
        is one, the file reads it only as ``NAME[key]`` (never stores into it) and no other file names it."""
        if name in self._registries:
            return self._registries[name]
        self._registries[name] = None
        module = self.ctx.facts.module_name
        found = self._module_dict(name)
        if found is None or self.ctx.index.referrers.get(f"{module}.{name}" if module else name):
            return None
        reads = _Reads(name)
        self._module.visit(reads)  # type: ignore[union-attr]
        if reads.names != 1 + reads.subscripts or reads.stored:
            return None
        quals = set()
        for element in found.elements:
            qual = self.resolve_class(element.value) if isinstance(element, cst.DictElement) else None
            if qual is None or self.ctx.index.legacy_module(qual) is None:
                return None
            quals.add(qual)
        self._registries[name] = frozenset(quals)
        return self._registries[name]

    def _module_dict(self, name: str) -> cst.Dict | None:
        """The dict literal of the one module-level ``NAME = {...}`` of the file."""
        found = _module_value(self._module, name)  # type: ignore[arg-type]
        return found if isinstance(found, cst.Dict) else None

    def _mentions_modules(self, expr: cst.BaseExpression, depth: int = 0) -> bool:
        """Does ``expr`` (what a module body indexes, reads with ``.get`` or loops over: ``BLOCKS``,
        ``(Plain, Wide)``, ``LIST``) name a legacy module class (of the run or built in), itself or
        through a module-level name of this file (a dict, a list, ``dict(...)``, a comprehension) or
        of another file of the run?"""
        hidden = self.hidden_names()
        for node in _named_parts(expr):
            head = dotted(node).partition(".")[0]  # type: ignore[union-attr]
            if head in hidden:
                continue
            qual = self.resolve_class(node)
            if qual and (self.ctx.index.legacy_module(qual) or qual in BUILTIN_MODULES):
                return True
            value = _module_value(self._module, node.value) if isinstance(node, cst.Name) else None  # type: ignore
            if value is not None:
                if depth < 3 and self._mentions_modules(value, depth + 1):
                    return True
            elif qual and self._imported_holds_modules(node):
                return True
        return False

    def _imported_holds_modules(self, table: cst.BaseExpression) -> bool:
        """Is ``table`` (``BLOCKS`` from ``from blocks import BLOCKS``, ``blocks.BLOCKS``) a module-level
        name of another file of the run bound to a value naming a legacy module class (of the run or
        built in): a dict of them, a list, a partial?"""
        if not isinstance(table, (cst.Name, cst.Attribute)) or dotted(table) is None \
                or dotted(table).partition(".")[0] in self.hidden_names():
            return False
        qual = self.resolve(table)
        module, _, name = (qual or "").rpartition(".")
        if not module or module == self.ctx.facts.module_name:
            return False
        other = analysis_of(self.ctx.path, self.ctx.facts.module_name, self.ctx.index, qual)  # type: ignore
        if other is None:
            return False
        if other.registry(name) is not None:
            return True
        found = _module_value(other.module_scope.node, name)
        return found is not None and any(other.is_module_class(other.qual(node, other.module_scope))
                                         for node in _named_parts(found))

    def _loop_iterables(self, name: str) -> list[cst.BaseExpression]:
        """What the ``for`` loops of the current function that bind ``name`` iterate over (one walk
        per function, kept for its other calls)."""
        fn = self._functions[-1]
        loops = self._loops.get(id(fn))
        if loops is None:
            walk = _Loops()
            fn.body.visit(walk)
            loops = self._loops[id(fn)] = walk.found
        return loops.get(name, [])

    def _untraced_module_call(self, call: cst.Call) -> bool:
        """``norm(x, name='norm')`` in a module body, ``norm`` a local bound to a call or a subscript
        (``get_norm(kind)``, ``NORMS[kind]``) that no rule traced: ``name=`` says it is a module call,
        which stays in the legacy form (its class may well be a Linen one now).  Also, in a module body
        or a function one may call, a call of what a container of module classes holds
        (``NORMS[kind](x)``, ``BLOCKS.get(kind)(x)``, ``LIST[i](x)``, another file's ``blocks.BLOCKS[kind]``,
        a loop's ``for block in (Plain, Wide): block(x, 3)``) or of a legacy ``.partial`` of an untraced
        value (``BLOCKS[kind].partial(f=4)(x)``)."""
        func = call.func
        if not (self._in_legacy_module() or self._in_plain_function()):
            return False
        if isinstance(func, cst.Subscript) and self._mentions_modules(func.value):
            return True  # an entry of a container of module classes that _registry cannot follow
        if isinstance(func, cst.Call) and isinstance(func.func, cst.Attribute) and func.func.attr.value == "get" \
                and self._mentions_modules(func.func.value):
            return True
        if _untraced_partial(func):
            return True
        if not (self._functions and isinstance(func, cst.Name)):
            return False
        values = [stmt.value for stmt in self._assignments(func.value)]
        if values and all(isinstance(v, cst.Subscript) and self._mentions_modules(v.value) for v in values):
            return True  # block = BLOCKS[kind]: an entry of a container of module classes
        if values and all(_untraced_partial(v) for v in values):
            return True  # block = BLOCKS[kind].partial(filters=4); block(x)
        if func.value not in {p.name.value for p in named_params(self._functions[-1].params)} and any(
                self._mentions_modules(it) for it in self._loop_iterables(func.value)):
            return True  # for block in (Plain, Wide): block(x, 3)
        if not self._in_legacy_module() or not any(a.keyword is not None and a.keyword.value == "name"
                                                   for a in call.args):
            return False
        # what a function of this file returns (get_norm(kind)), or a registry entry (NORMS[kind]); not
        # a partial of a plain function (conv2d_fixed_padding(x, f, name=...) is a function call)
        functions = {s.name.value for s in self._module.body if isinstance(s, cst.FunctionDef)} \
            if self._module is not None else set()
        return bool(values) and all(isinstance(v, cst.Subscript) or isinstance(v, cst.Call) and isinstance(
            v.func, cst.Name) and v.func.value in functions for v in values)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if isinstance(original.func, cst.Attribute) and original.func.attr.value == "initialize_carry":
            return self._initialize_carry(original, updated)
        if not self._in_legacy_module() and self._outside_modules:
            self._cache_usage(original)
        adapters = self._hand_over_adapters.get(id(original))
        if adapters:  # (_adapt_hand_overs)
            updated = updated.with_changes(args=[a.with_changes(value=adapters[i]) if i in adapters else a
                                                 for i, a in enumerate(updated.args)])
        if id(original) in self._split:
            return updated  # f(...) of f(...)(x): its outer call is the one converted
        if self._in_legacy_module() and named_call(updated, named=False) \
                or self._in_plain_function() and named_call(updated):
            return self._explicit_params(updated)
        if not (self._in_legacy_module() or self._in_plain_function()):
            self._unfollowed(original)
            return updated
        shared = self._shared_definition(updated)
        if shared is not None:
            return shared
        direct = self._called_at_once(updated)
        if direct is None:
            return self._split_module_call(original, updated)
        new = self._split_module_call(direct, direct)  # like the class's own call
        if new is direct:
            return updated  # not split (a TODO says why): left as written
        self.keep_comments(updated, new)
        return new

    def _explicit_params(self, call: cst.Call) -> cst.BaseExpression:
        """``M.call(params, x)`` in a module body, or ``M.call(params, x, name='n')`` in a function
        (``_explicit_params``); LU202 converts the calls without a name outside module bodies."""
        func = call.func.value  # type: ignore[attr-defined]
        spec = self._spec(func)
        qual = self.resolve_class(func)
        if spec is None or qual is None:
            return call  # not a module this run knows: LU202/LU901 say so
        new, problem = explicit_params_call(call, spec[0], spec[1], self.ctx.index.needs(qual), self.ctx.facts,
                                            lambda split: self._wrap_two_arg_initializers(split, spec[0], qual))
        if new is None:
            self.todo(f"{_name(func)}.call(..., name=...): {problem}")
            return call
        self.keep_comments(call, new)
        self.fixed(f"{_name(func)}.call(params, x, name=...) -> {_name(func)}(..., parent=None).apply(...)")
        return new

    def _shared_definition(self, call: cst.Call) -> cst.BaseExpression | None:
        """``Masked.shared(wrapped=nn.Dense, features=4, name='tied')`` ->
        ``Masked(wrapped=partial(nn.Dense, features=4), name='tied')``: a .shared() of a wrapper running
        the definition it is given itself (``_wrapped_definitions``) that fixes that definition's
        attributes, split as its call would be; None where it fixes none (LU103 converts it) or the split
        fails or leaves call inputs (LU103 keeps its TODO; its calls stay as written either way)."""
        func = call.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "shared" and self._in_legacy_module()):
            return None
        spec = self._spec(func.value)
        if spec is None or not given_attributes(spec[0], [a.keyword.value for a in call.args if a.keyword]):
            return None
        new, _ = self._definition_call(call.with_changes(func=func.value), spec[0], func.value)
        if not isinstance(new, cst.Call) or new.args:
            return None
        self.fixed(f"{_name(func.value)}.shared(..., <attributes of {spec[0].definition}>) -> "
                   f"{_name(func.value)}({spec[0].definition}=partial(<module>, <attributes>), ...)")
        return new.func

    def _split_module_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        """A call in a module body (or a function it calls), split if it calls a legacy module."""
        func = original.func
        if not isinstance(func, cst.Call):
            self._unfollowed(original)
        self._check_handed_over(original)
        choice = self._choices.get((id(self._functions[-1]), func.value)) \
            if isinstance(func, cst.Name) and self._functions else None
        if choice is None and isinstance(func, cst.Call) and isinstance(func.func, (cst.Name, cst.Attribute)):
            branches = self._branches_by(func)  # get_normalizer(kind, train)(x)
            choice = (branches, None) if branches is not None else None
        if choice is not None:
            return self._choice_call(updated, *choice)
        returned = self._returned.get((id(self._functions[-1]), func.value)) \
            if isinstance(func, cst.Name) and self._functions else None
        made = None  # make_norm(train)(x): the call spec of the one definition it returns
        if returned is None and isinstance(func, cst.Call) and isinstance(func.func, (cst.Name, cst.Attribute)):
            returned = self._returned_by(func)
            made = spec_of(returned, self.ctx.index) if returned is not None else None
            if made is not None and not made.problem:
                made_bound = frozenset(k for k, _ in returned.ty.ref.kwargs)  # type: ignore[union-attr]
                returned = None
        factory = self._definition_factory(func.func) if returned is not None and made is not None \
            and made.definition and isinstance(func, cst.Call) else None
        if factory is not None:
            new, problem = factory_call(updated, updated.func, factory, made,  # type: ignore[arg-type]
                                        lambda call: self._definition_call(call, made, cst.Name("_")))  # type: ignore
            if new is None:
                self.todo(f"{returned.name}(...)(...): {problem}")  # type: ignore[union-attr]
                return updated
            self.keep_comments(updated, new)
            self.fixed(f"{returned.name}(<module>, ...)(x, <attributes>) -> "  # type: ignore[union-attr]
                       f"{returned.name}(partial(<module>, <attributes>), ...)(x)")
            return new
        if returned is not None:
            self.todo(self._factory_todo(_name(func) if isinstance(func, cst.Name) else f"{returned.name}(...)(...)",
                                         returned))
            return updated
        spec = self._spec(func, original)
        bound: frozenset[str] = frozenset()
        carried: tuple[cst.Arg, ...] = ()  # inputs a .partial() local fixed, passed at its calls
        init_qual = self.resolve_class(func)  # whose parameters may take legacy initializers
        ctor: cst.BaseExpression = updated.func
        if spec is not None and self._in_plain_function() and self.resolve_class(func) == "flax.nn.dropout" \
                and not self._calls_modules():
            return updated  # maybe outside any module: LU901 says what it became
        if spec is not None:
            call_spec, ctor = spec
        elif made is not None:
            call_spec, bound = made, made_bound
        elif (isinstance(func, cst.Name) and self._class_quals
              and (self._class_quals[-1], func.value) in self.ctx.index.partial_params):
            # an apply parameter that call sites fill with a Module.partial (the ResNet pattern)
            target, bound = self.ctx.index.partial_params[(self._class_quals[-1], func.value)]  # type: ignore[index]
            target_spec = spec_for_qual(target, self.ctx.index)
            if target_spec is None:
                return updated
            call_spec = target_spec
        elif (isinstance(func, cst.Name) and self._class_quals
              and (self._class_quals[-1], func.value) in self.ctx.index.ambiguous_params):
            alike = self._split_alike(self.ctx.index.ambiguous_params[(self._class_quals[-1], func.value)])
            if alike is None:
                self.todo(f"{func.value}: call sites (or its default) give this parameter different modules "
                          f"whose calls split differently: convert its calls by hand to "
                          f"{func.value}(<attributes>)(<inputs>)")
                return updated
            call_spec, bound = alike
        elif (isinstance(func, cst.Name) and self._class_quals
              and (self._class_quals[-1], func.value) in self.ctx.index.untraced_params):
            owner = spec_for_qual(self._class_quals[-1], self.ctx.index)
            if owner is None or owner.problem:
                return updated  # the class stays legacy (LU101's TODO)
            self.todo(f"{func.value}: a call site hands this parameter a function's parameter or local "
                      f"(Module.partial({func.value}=module) in def f(module)), which this run does not follow: "
                      f"if it holds a legacy module class, call it as {func.value}(<attributes>)(<inputs>)")
            return updated
        elif isinstance(func, cst.Name) and self._partials and func.value in self._partials[-1]:
            call_spec, bound, kind, carried = self._partials[-1][func.value]
            if kind == "shared" and given_attributes(call_spec, bound):
                return updated  # LU103 leaves the instance legacy with its TODO, LU901 says so here
            if kind == "shared":  # an instance already: only inputs may be passed
                extra = [a for a in updated.args if a.star or (
                    a.keyword is not None and a.keyword.value not in call_spec.inputs)]
                if extra or sum(a.keyword is None for a in updated.args) > len(call_spec.linen_call):
                    self.todo(f"{func.value}: a .shared() module called with configuration arguments: "
                              "pass them where it is created")
                    return updated
                return self._with_carried(updated, carried, call_spec.linen_call, call_spec.renames)
            if not self._becomes_linen(func.value):
                return updated  # LU103 leaves the definition legacy with its TODO, LU901 says so here
        elif (alias := self._alias(func)) is not None:
            target, bound = alias
            target_spec = spec_for_qual(target, self.ctx.index)
            if target_spec is None:
                return updated
            if target_spec.problem or bound & target_spec.inputs and not inputs_fixable(target, self.ctx.index):
                if target_spec.is_legacy_call(original, bound):
                    self.todo(f"{_name(func)}(...) calls a module-level .partial of {target} that stays legacy in "
                              "its file (its TODO says why): convert them together by hand")
                return updated
            call_spec, init_qual = target_spec, target
        elif (registry := self._registry_entry(func)) is not None:
            # ``block = BLOCKS[depth]``: one of the module classes of a dict literal of the file
            alike = self._split_alike(registry)
            if alike is None:
                shown = code(func)
                self.todo(f"{shown} holds an entry of a dict of module classes whose calls split differently: "
                          f"convert its calls by hand to {shown}(<attributes>)(<inputs>)")
                return updated
            call_spec, bound = alike
        else:
            if self._in_legacy_module() and self._nested(func) == (None, True):
                self.todo(f"{code(func)}: a module class defined in a class body whose name another class of "
                          f"this file has too: write {code(func)}(<attributes>)(<inputs>) by hand")
                return updated
            if self._untraced_module_call(original):
                self.todo(f"{code(func)}(...) calls what {code(func)} holds, a value this run cannot "
                          f"trace to a module (a registry entry, a factory's result): if it is a legacy module, "
                          f"write {code(func)}(<attributes>)(<inputs>) by hand")
            return updated
        if not call_spec.is_legacy_call(original, bound):
            return updated
        legacy = self.ctx.index.legacy_module(self._class_quals[-1]) if self._class_quals else None
        if legacy is not None and forwarded_by_definition(original, legacy.apply_params):
            return updated  # *args/**kwargs only forwarded: LU101 converts the call with its class
        extra: list[cst.Arg] = []
        if call_spec.features_from_carry and not any(
                a.keyword is not None and a.keyword.value == "features" for a in updated.args) \
                and "features" not in bound:
            carry = carry_arg(updated)
            if carry is None:
                self.todo(f"{_name(func)}: Linen cells need features=<hidden size>: pass the carry's size")
                return updated
            source = call_spec.features_from_carry.format(carry=cst.Module([]).code_for_node(carry))
            extra.append(kwarg("features", cst.parse_expression(source)))
        if bound:  # what the partial fixed is not overridden by a default
            call_spec = dataclasses.replace(
                call_spec, explicit={k: v for k, v in call_spec.explicit.items() if k not in bound})
        given = updated  # what a TODO leaves in place
        updated = self._with_carried(updated, carried, call_spec.legacy, {})
        updated, decode = self._cache_arg(updated)
        if call_spec.manual and "batch_stats" in call_spec.manual:
            updated = self._without_collection(updated)
        query = None
        if call_spec.manual and "attention_axis" in call_spec.manual:
            updated, query, problem = self._attention_axes(updated, call_spec)
            if problem:
                self.todo(f"{_name(func)}: {problem}")
                return given
        mask = None
        if call_spec.manual and "causal_mask" in call_spec.manual:
            updated, mask, problem = self._attention_mask(updated, call_spec, decoding=decode is not None)
            if problem:
                self.todo(f"{_name(func)}: {problem}")
                return given
        if call_spec.definition and call_spec.definition in bound:
            new, problem = None, (f"a partial fixed the module given as {call_spec.definition}, which in Linen "
                                  f"carries its attributes: write {_name(func)}({call_spec.definition}=partial("
                                  "<module>, <attributes>))(<inputs>) by hand")
        elif call_spec.definition:
            new, problem = self._definition_call(updated, call_spec, ctor)
        else:
            new, problem = split_call(updated, call_spec, ctor, extra)
        if new is None:
            self.todo(f"{_name(func)}: {problem}")
            return given
        if not call_spec.definition:
            new = self._wrap_two_arg_initializers(new, call_spec, init_qual)
        new = attention_result(new, mask, decode, query)
        self.keep_comments(given, new)
        for key in rejected(updated, call_spec):
            self.fixed(f"{_name(func)}(..., {key}=...): its apply takes no {key}, so legacy raised TypeError "
                       f"here; the Linen call keeps {key}= and raises it too: drop it if this code should run")
        # the output's name: nn.dropout -> nn.Dropout
        self.fixed(f"{_name(func)}(x, ...) -> {_name(ctor)}(...)(x)")
        return new


    def _definition_call(self, call: cst.Call, spec: CallSpec, ctor: cst.BaseExpression
                         ) -> tuple[cst.BaseExpression | None, str | None]:
        """A wrapper that runs the module definition it is given (``_wrapped_definitions``)."""
        given = definition_given(call, spec)
        qual = self.resolve_class(given) if given is not None else None
        # it, and what the call hands it (Masked(x, block=Noisy, wrapped=Holder))
        quals = [q for q in [qual, *(self.resolve_class(a.value) for a in call.args)] if q]
        problem = runs_with_collections(code(given), spec, frozenset().union(  # type: ignore[arg-type]
            *(self.ctx.index.needs(q) for q in quals))) if qual else None
        if problem:
            return None, problem
        wrapped = self._spec(given) if given is not None else None
        return split_definition_call(call, spec, ctor, wrapped,
                                     lambda inner, s: self._wrap_two_arg_initializers(inner, s, qual),
                                     self._spell_partial)

    def _without_collection(self, call: cst.Call) -> cst.Call:
        """BatchNorm without its explicit ``batch_stats=`` collection when it is None, or the class's
        parameter that defaults to None and only ever goes there, which no call site gives (else LU201/LU202
        leave a TODO there, ``USER_COLLECTION``): legacy then kept the statistics in the ``nn.stateful``
        collection, as Linen keeps them in ``'batch_stats'``."""
        enclosing = self._class_quals[-1] if self._class_quals else None
        args = [a for a in call.args if not (a.keyword is not None and a.keyword.value == "batch_stats"
                                             and dropped_collection(a.value, enclosing, self.ctx.index))]
        if len(args) == len(call.args):
            return call
        self.fixed("BatchNorm(batch_stats=None) -> the 'batch_stats' collection")
        return call.with_changes(args=[*args[:-1], args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)])


class _Loops(FastVisitor):
    """The iterables of a function body's own ``for`` loops, by the plain names they bind."""

    def __init__(self) -> None:
        self.found: dict[str, list[cst.BaseExpression]] = {}

    def visit_For(self, node: cst.For) -> None:
        targets = [e.value for e in node.target.elements] \
            if isinstance(node.target, (cst.Tuple, cst.List)) else [node.target]
        for t in targets:
            if isinstance(t, cst.Name):
                self.found.setdefault(t.value, []).append(node.iter)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


class _Reads(FastVisitor):
    """How a file names ``name``: in all, as ``name[...]``, and whether it stores into it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.names, self.subscripts, self.stored = name, 0, 0, False

    def visit_Name(self, node: cst.Name) -> None:
        self.names += node.value == self.name

    def visit_Subscript(self, node: cst.Subscript) -> None:
        self.subscripts += isinstance(node.value, cst.Name) and node.value.value == self.name

    def _item(self, target: cst.BaseExpression) -> None:
        """``name[key] = ...`` / ``del name[key]``: the file changes the dict."""
        self.stored = self.stored or isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name) \
            and target.value.value == self.name

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._item(node.target)

    def visit_Del(self, node: cst.Del) -> None:
        self._item(node.target)


def _name(expr: cst.BaseExpression) -> str:
    return dotted(expr) or "call"

