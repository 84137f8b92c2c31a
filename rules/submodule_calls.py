"""LU102 submodule_calls: ``nn.Dense(x, 500, name='z')`` -> ``nn.Dense(500, name='z')(x)``.

What it does
    Inside legacy module classes, splits every call of a legacy module into
    construction (attributes) and call (inputs): built-ins by the table
    ``linen_upgrade/tables/nn_modules.py`` (renamed arguments such as
    ``bias`` -> ``use_bias``, ``nn.dropout`` -> ``nn.Dropout``, legacy
    defaults that became ``None`` in Linen passed explicitly), user modules
    of the run by their own ``apply`` signatures (the same split LU101 makes),
    and calls through a local ``conv = nn.Conv.partial(...)``.  Also:
    ``Cell.initialize_carry(rng, batch_dims, size)`` -> the Linen cell's
    ``initialize_carry(rng, input_shape)`` (ConvLSTM included); attention
    ``attention_axis=(1, ..., k)`` -> attention over the flattened axes
    (``ATTENTION_AXES``); an ``apply(..., cache=None)`` that only passes the
    cache on to causal attention -> a ``decode: bool = False`` attribute and
    ``decode=self.decode`` (Linen's 'cache' collection).
Why
    Linen constructors return a module instance; the inputs go to its call.
    A positional argument stays positional only while the legacy and Linen
    orders agree; otherwise it becomes a keyword.
Not converted (TODO)
    Attention masks it cannot build, multi-axis attention with masks, a cache
    read in the module or combined with padding masks, code outside modules
    that passes a legacy ``Cache`` (init with ``decode=True`` and apply with
    ``mutable=['cache']`` by hand), ``*args``/``**kwargs`` calls, RNN cells
    whose ``features`` cannot be recovered from an ``initialize_carry`` call.
"""

from __future__ import annotations

import dataclasses

import libcst as cst

from linen_upgrade.rule import Context, Example, FastVisitor, NoChange, Rule, RuleTransformer
from linen_upgrade.rules._cst import add_import, build_dotted, express, is_docstring
from linen_upgrade.rules._modules import CallSpec, defines_apply, has_legacy_classes, split_call
from linen_upgrade.tables.nn_modules import (ATTENTION_AXES, ATTENTION_CACHE, ATTENTION_MASKS, BUILTIN_MODULES,
                                             CACHE_USAGE)


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

    def applies(self, ctx: Context) -> bool:
        return has_legacy_classes(ctx) or any(
            q.startswith("flax.nn.") and q.endswith(".initialize_carry") for q in ctx.facts.qualnames)

    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        t = _Transformer(self, ctx)
        module = module.visit(t)
        for name in sorted(t.imports):
            module = add_import(module, name)
        return module


class _Transformer(RuleTransformer):
    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__(rule, ctx)
        self.imports: set[str] = set()
        self._legacy_class_depth: list[bool] = []
        # per function: local name -> (spec, keywords it fixed, "partial"|"shared")
        self._partials: list[dict[str, tuple[CallSpec, frozenset[str], str]]] = []
        self._split: set[int] = set()
        self._class_quals: list[str | None] = []
        self._two_arg: set[str] = set()
        # per class: does its apply's ``cache`` parameter become a ``decode`` attribute?
        self._decode: list[bool] = []
        self._mutated: set[str] = set()

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        # only classes still in legacy form (LU101 renames apply after this rule)
        legacy = any(self.is_legacy_class(b.value) for b in node.bases) and defines_apply(node)
        self._legacy_class_depth.append(legacy)
        self._class_quals.append(self.resolve_class(node.name) if legacy else None)
        self._decode.append(legacy and self._cache_becomes_decode(node))
        return True

    def _cache_becomes_decode(self, cls: cst.ClassDef) -> bool:
        """An ``apply(..., cache=None)`` that only passes ``cache=cache`` on to causal attention
        or to user modules taking a cache: Linen attention caches itself (``decode=True``, the
        'cache' collection), so the parameter becomes ``decode: bool = False``."""
        apply = next(s for s in cls.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "apply")
        params = [*apply.params.params, *apply.params.kwonly_params]
        if not any(p.name.value == "cache" for p in params):
            return False
        uses: set[int] = set()
        passed: set[int] = set()
        problems: list[str] = []
        outer = self

        class Uses(FastVisitor):
            def visit_Name(self, node: cst.Name) -> None:
                if node.value == "cache":
                    uses.add(id(node))

            def visit_Attribute(self, node: cst.Attribute) -> bool:
                node.value.visit(self)
                return False

            def visit_Arg(self, node: cst.Arg) -> bool:
                node.value.visit(self)
                return False

            def visit_Call(self, node: cst.Call) -> None:
                arg = next((a for a in node.args if a.keyword is not None and a.keyword.value == "cache"), None)
                if arg is None or not (isinstance(arg.value, cst.Name) and arg.value.value == "cache"):
                    return
                problem = outer._decode_problem(node)
                if problem:
                    problems.append(problem)
                else:
                    passed.add(id(arg.value))

        apply.body.visit(Uses())
        if uses - passed or problems:
            self.todo("cache: " + (problems[0] if problems else "used other than passed on as cache=cache")
                      + ": Linen attention caches itself: add `decode: bool = False`, pass "
                      "decode=self.decode to the attention and apply with mutable=['cache']")
            return False
        return True

    def _decode_problem(self, call: cst.Call) -> str | None:
        """Why ``call(..., cache=cache)`` has no ``decode=`` form (None when it has one)."""
        qual = self.resolve_class(call.func) or ""
        if qual in ATTENTION_CACHE:
            keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
            causal = keywords.get("causal_mask")
            if not (isinstance(causal, cst.Name) and causal.value == "True"):
                return "legacy caching needs causal_mask=True"
            ignored = sorted(set(keywords) & ATTENTION_CACHE[qual])
            if ignored:
                return f"legacy decoding ignores {', '.join(ignored)}, Linen's would not"
            return None
        legacy = self.ctx.index.legacy_module(qual)
        if legacy is not None and legacy.apply_params is not None and any(
                p.name == "cache" for p in legacy.apply_params):
            return None
        return f"passed to {_name(call.func)}, which is not attention or a module taking a cache"

    def visit_Call(self, node: cst.Call) -> bool:
        if isinstance(node.func, cst.Call):  # M(...)(x): already split
            self._split.add(id(node.func))
        return True

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self._legacy_class_depth.pop()
        self._class_quals.pop()
        if self._decode.pop():
            updated = _cache_to_decode(updated)
            self.fixed(f"class {original.name.value}: apply(cache=) -> decode attribute")
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._partials.append({})
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self._partials.pop()
        return updated

    def _in_legacy_module(self) -> bool:
        return bool(self._legacy_class_depth and self._legacy_class_depth[-1])

    def visit_Assign(self, node: cst.Assign) -> bool:
        # conv = nn.Conv.partial(bias=False): later calls of ``conv`` split like nn.Conv;
        # dense = nn.Dense.shared(features=3): later calls of ``dense`` pass inputs only
        value = node.value
        if not (self._partials and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name)
                and isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
                and value.func.attr.value in ("partial", "shared")):
            return True
        spec = self._spec(value.func.value)
        if spec is not None:
            bound = frozenset(a.keyword.value for a in value.args if a.keyword is not None)
            kind = value.func.attr.value
            self._partials[-1][node.targets[0].target.value] = (spec[0], bound, kind)
        return True

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        # functions of this file that take (key, shape) only: legacy initializers
        self._two_arg = {
            s.name.value for s in node.body if isinstance(s, cst.FunctionDef)
            and len(s.params.params) == 2 and not isinstance(s.params.star_arg, cst.Param)
            and not s.params.kwonly_params and not isinstance(s.params.star_kwarg, cst.Param)}
        return True

    def _wrap_two_arg_initializers(self, call: cst.Call) -> cst.Call:
        """Linen built-ins call ``init(key, shape, dtype)``; a legacy ``f(key, shape)`` is wrapped."""
        inner = call.func
        if not isinstance(inner, cst.Call):
            return call
        args = []
        for a in inner.args:
            if (a.keyword is not None and a.keyword.value.endswith("_init")
                    and isinstance(a.value, cst.Name) and a.value.value in self._two_arg):
                a = a.with_changes(value=cst.parse_expression(
                    f"lambda key, shape, dtype=None: {a.value.value}(key, shape)"))
                self.fixed(f"two-argument initializer {a.keyword.value} wrapped")
            args.append(a)
        return call.with_changes(func=inner.with_changes(args=args))

    def _attention_mask(self, call: cst.Call, spec: CallSpec
                        ) -> tuple[cst.Call, cst.BaseExpression | None, str | None]:
        """Legacy ``causal_mask=True`` / ``padding_mask=`` / ``key_padding_mask=`` ->
        one Linen ``mask=`` (``make_causal_mask``, ``make_attention_mask``, ``combine_masks``)."""
        keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        names = ("causal_mask", "padding_mask", "key_padding_mask", "segmentation", "key_segmentation")
        if not any(n in keywords for n in names):
            return call, None, None
        positional = [a.value for a in call.args if a.keyword is None]
        q = keywords.get("inputs_q", positional[0] if positional else None)
        kv = keywords.get("inputs_kv", positional[1] if len(positional) > 1 and "inputs_kv" in spec.legacy
                          else None)
        simple = (cst.Name, cst.Attribute, cst.Subscript)
        if not isinstance(q, simple) or (kv is not None and not isinstance(kv, simple)):
            return call, None, "masks need the inputs as plain names: build mask= by hand"
        code = cst.Module([]).code_for_node
        nn_prefix = express("flax.nn.make_attention_mask", self.ctx.facts.imports)[0].rsplit(".", 1)[0]
        parts = []
        causal = keywords.get("causal_mask")
        if causal is not None:
            if not (isinstance(causal, cst.Name) and causal.value in ("True", "False")):
                return call, None, "causal_mask is not a literal True/False: build mask= by hand"
            if causal.value == "True":
                parts.append(ATTENTION_MASKS["causal_mask"].format(nn=nn_prefix, q=code(q)))
        pq, pk = keywords.get("padding_mask"), keywords.get("key_padding_mask")
        if pq is not None or pk is not None:
            if kv is not None and (pq is None or pk is None):
                return call, None, "cross-attention with one padding mask: build mask= by hand"
            pq, pk = pq or pk, pk or pq
            if not isinstance(pq, simple) or not isinstance(pk, simple):
                return call, None, "padding masks need plain names: build mask= by hand"
            parts.append(ATTENTION_MASKS["padding"].format(nn=nn_prefix, pq=code(pq), pk=code(pk)))
        sq, sk = keywords.get("segmentation"), keywords.get("key_segmentation")
        if sq is not None or sk is not None:
            if sq is None or (sk is None and kv is not None):
                return call, None, "cross-attention segmentation needs both segmentations: build mask= by hand"
            sk = sk or sq
            if not isinstance(sq, simple) or not isinstance(sk, simple):
                return call, None, "segmentations need plain names: build mask= by hand"
            eq, needed = express("jax.numpy.equal", self.ctx.facts.imports)
            if needed:
                self.imports.add(needed)
            parts.append(ATTENTION_MASKS["segmentation"].format(nn=nn_prefix, sq=code(sq), sk=code(sk), eq=eq))
        rest = [a for a in call.args if a.keyword is None or a.keyword.value not in names]
        call = call.with_changes(args=[*rest[:-1], rest[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)])
        if not parts:
            return call, None, None
        source = parts[0] if len(parts) == 1 else f"{nn_prefix}.combine_masks({', '.join(parts)})"
        self.fixed("attention masks -> mask=")
        return call, cst.parse_expression(source), None

    def _attention_axes(self, call: cst.Call, spec: CallSpec) -> tuple[cst.Call, str | None, str | None]:
        """Legacy ``attention_axis=(1, ..., k)`` -> the Linen call on inputs whose attention axes
        are flattened into one (``ATTENTION_AXES``); returns the call, the query's source
        (to reshape the output back, None when nothing is to be reshaped) and a problem."""
        at = next((i for i, a in enumerate(call.args) if a.keyword is not None
                   and a.keyword.value == "attention_axis"), None)
        if at is None:
            return call, None, None
        value = call.args[at].value
        axes = None
        if isinstance(value, cst.Tuple) and all(
                isinstance(e, cst.Element) and isinstance(e.value, cst.Integer) for e in value.elements):
            axes = tuple(int(e.value.value) for e in value.elements)  # type: ignore[attr-defined]
        if not axes or axes != tuple(range(1, len(axes) + 1)):
            return call, None, "attention_axis is not a literal (1, ..., k): " + spec.manual["attention_axis"]
        rest = [a for i, a in enumerate(call.args) if i != at]
        without = call.with_changes(args=[*rest[:-1], rest[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)])
        if axes == (1,):  # the legacy default for (batch, length, features) inputs
            return without, None, None
        keywords = {a.keyword.value for a in without.args if a.keyword is not None}
        masks = keywords & {"causal_mask", "padding_mask", "key_padding_mask", "segmentation",
                            "key_segmentation", "cache"}
        if masks:
            return call, None, (f"attention_axis with {', '.join(sorted(masks))}: flatten the attention "
                                "axes of the inputs and of the masks by hand")
        code = cst.Module([]).code_for_node
        length = " * ".join(f"{{x}}.shape[{a}]" for a in axes)
        args = []
        positional = 0
        query = None
        for a in without.args:
            name = a.keyword.value if a.keyword is not None else spec.legacy[min(positional, len(spec.legacy) - 1)]
            positional += a.keyword is None
            if name in ("inputs_q", "inputs_kv"):
                if not isinstance(a.value, (cst.Name, cst.Attribute)):
                    return call, None, "multi-axis attention needs its inputs as plain names: flatten them by hand"
                x = code(a.value)
                query = x if name == "inputs_q" else query
                a = a.with_changes(value=cst.parse_expression(
                    ATTENTION_AXES["flatten"].format(x=x, length=length.format(x=x))))
            args.append(a)
        self.fixed(f"attention_axis={axes} -> attention over the flattened axes")
        return without.with_changes(args=args), query, None

    def _spec_for_qual(self, qual: str) -> CallSpec | None:
        row = BUILTIN_MODULES.get(qual)
        if row is not None:
            return CallSpec.builtin(row)
        legacy = self.ctx.index.legacy_module(qual)
        if legacy is not None and legacy.apply_params is not None:
            return CallSpec.user(legacy.apply_params)
        return None

    def _spec(self, func: cst.BaseExpression) -> tuple[CallSpec, cst.BaseExpression] | None:
        """The call spec of a legacy module expression and its Linen constructor."""
        qual = self.resolve_class(func)
        row = BUILTIN_MODULES.get(qual or "")
        if row is not None:
            return CallSpec.builtin(row), self._linen_ctor(func, qual, row.linen)  # type: ignore[arg-type]
        legacy = self.ctx.index.legacy_module(qual)
        if legacy is not None and legacy.apply_params is not None:
            return CallSpec.user(legacy.apply_params), func
        return None

    def _initialize_carry(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        """``Cell.initialize_carry(rng, batch_dims, size, init_fn)`` (a static method) ->
        ``Cell(features=..., carry_init=init_fn).initialize_carry(rng, input_shape)``:
        Linen reads the batch (and spatial) dimensions off an input shape and the
        features off the cell."""
        func = original.func
        assert isinstance(func, cst.Attribute)
        qual = self.resolve_class(func.value)
        row = BUILTIN_MODULES.get(qual or "")
        if row is None or row.carry_size is None:
            return updated
        bound = _bind_carry_args(updated)
        if bound is None:
            self.todo(f"{qual}.initialize_carry: pass (rng, batch_dims, size[, init_fn])")
            return updated
        dims, size = bound["batch_dims"], bound["size"]
        if row.carry_size == "features":
            # legacy mem_shape = batch_dims + (size,); Linen: input_shape[:-1] + (features,)
            ctor_args = [_kwarg("features", size)]
            shape = _concat_shape(dims, [cst.Element(cst.Integer("1"))])
        else:
            # ConvLSTM: legacy mem_shape = batch_dims + size, size = spatial dims + (features,);
            # Linen's is input_shape[:-1] + (features,) whatever the kernel rank, so the input
            # shape is batch_dims + size and kernel_size only needs the right rank
            if isinstance(size, cst.Tuple) and size.elements and not any(
                    isinstance(e, cst.StarredElement) for e in size.elements):
                features = size.elements[-1].value
                kernel = cst.Tuple([cst.Element(cst.Integer("1")) for _ in size.elements[1:]]) \
                    if len(size.elements) > 2 else cst.parse_expression("(1,)")
                tail = [e.with_changes(comma=cst.MaybeSentinel.DEFAULT) for e in size.elements]
            elif isinstance(size, (cst.Name, cst.Attribute)):
                code = cst.Module([]).code_for_node(size)
                features = cst.parse_expression(f"{code}[-1]")
                kernel = cst.parse_expression(f"(1,) * (len({code}) - 1)")
                tail = [cst.StarredElement(size)]
            elif (isinstance(size, cst.BinaryOperation) and isinstance(size.operator, cst.Add)
                  and isinstance(size.right, cst.Tuple) and len(size.right.elements) == 1
                  and isinstance(size.right.elements[0], cst.Element)):
                # spatial + (features,), e.g. x.shape[1:-1] + (4,)
                features = size.right.elements[0].value
                code = cst.Module([]).code_for_node(size.left)
                kernel = cst.parse_expression(f"(1,) * len({code})")
                tail = [cst.StarredElement(size.left), cst.Element(features)]
            else:
                self.todo(f"{qual}.initialize_carry: size is not a tuple or a name: "
                          "construct the cell with features= and pass (*batch_dims, *size)")
                return updated
            ctor_args = [_kwarg("features", features), _kwarg("kernel_size", kernel)]
            shape = _concat_shape(dims, tail)
        if "init_fn" in bound:
            init = bound["init_fn"]
            if isinstance(init, cst.Name) and init.value in self._two_arg:
                init = cst.parse_expression(f"lambda key, shape, dtype=None: {init.value}(key, shape)")
            ctor_args.append(_kwarg("carry_init", init))
        if self._in_legacy_module():
            # unbound: inside a compact module a bound helper cell would take the
            # name LSTMCell_0 from the real one (Linen counts constructions)
            ctor_args.append(_kwarg("parent", cst.Name("None")))
        cell = cst.Call(func=self._linen_ctor(func.value, qual, row.linen), args=ctor_args)  # type: ignore[arg-type]
        self.fixed(f"{qual}.initialize_carry -> {row.linen}(features=...).initialize_carry")
        return cst.Call(func=cst.Attribute(value=cell, attr=cst.Name("initialize_carry")),
                        args=[cst.Arg(bound["rng"]), cst.Arg(shape)], lpar=updated.lpar, rpar=updated.rpar)

    def _linen_ctor(self, func: cst.BaseExpression, qual: str, linen: str) -> cst.BaseExpression:
        if qual.rsplit(".", 1)[-1] == linen:
            return func
        if isinstance(func, cst.Attribute):
            return func.with_changes(attr=cst.Name(linen))
        spelled, needed = express(f"flax.nn.{linen}", self.ctx.facts.imports)
        if needed:
            self.imports.add(needed)
        return build_dotted(spelled)

    def visit_With(self, node: cst.With) -> bool:
        # ``with cache.mutate() as new_cache:``: names that hold a legacy Cache (or other Collection)
        for item in node.items:
            call = item.item
            if (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)
                    and call.func.attr.value == "mutate" and item.asname is not None
                    and isinstance(item.asname.name, cst.Name)):
                self._mutated.add(item.asname.name.value)
        return True

    def _cache_usage(self, call: cst.Call) -> None:
        """Outside modules, a legacy Cache passed to a module (init, call, a model) has no
        automatic form yet: the module side became ``decode``, the usage is manual."""
        arg = next((a for a in call.args if a.keyword is not None and a.keyword.value == "cache"), None)
        if arg is None or (isinstance(arg.value, cst.Name) and arg.value.value == "None"):
            return
        func = call.func
        owner = func.value if isinstance(func, cst.Attribute) else func
        legacy = self.ctx.index.legacy_module(self.resolve_class(owner))
        takes_cache = legacy is not None and any(p.name == "cache" for p in legacy.apply_params or ())
        if takes_cache or (isinstance(arg.value, cst.Name) and arg.value.value in self._mutated):
            self.todo(CACHE_USAGE)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if isinstance(original.func, cst.Attribute) and original.func.attr.value == "initialize_carry":
            return self._initialize_carry(original, updated)
        if not self._in_legacy_module():
            self._cache_usage(original)
        if not self._in_legacy_module() or id(original) in self._split:
            return updated
        func = original.func
        spec = self._spec(func)
        bound: frozenset[str] = frozenset()
        ctor: cst.BaseExpression = updated.func
        if spec is not None:
            call_spec, ctor = spec
        elif (isinstance(func, cst.Name) and self._class_quals
              and (self._class_quals[-1], func.value) in self.ctx.index.partial_params):
            # an apply parameter that call sites fill with a Module.partial (the ResNet pattern)
            target, bound = self.ctx.index.partial_params[(self._class_quals[-1], func.value)]  # type: ignore[index]
            target_spec = self._spec_for_qual(target)
            if target_spec is None:
                return updated
            call_spec = target_spec
        elif isinstance(func, cst.Name) and self._partials and func.value in self._partials[-1]:
            call_spec, bound, kind = self._partials[-1][func.value]
            if kind == "shared":  # an instance already: only inputs may be passed
                extra = [a for a in updated.args if a.star or (
                    a.keyword is not None and a.keyword.value not in call_spec.inputs)]
                if extra or sum(a.keyword is None for a in updated.args) > len(call_spec.linen_call):
                    self.todo(f"{func.value}: a .shared() module called with configuration arguments: "
                              "pass them where it is created")
                return updated
        else:
            return updated
        if not call_spec.is_legacy_call(original, bound):
            return updated
        extra: list[cst.Arg] = []
        if call_spec.features_from_carry and not any(
                a.keyword is not None and a.keyword.value == "features" for a in updated.args) \
                and "features" not in bound:
            carry = _carry_arg(updated)
            if carry is None:
                self.todo(f"{_name(func)}: Linen cells need features=<hidden size>: pass the carry's size")
                return updated
            source = call_spec.features_from_carry.format(carry=cst.Module([]).code_for_node(carry))
            extra.append(cst.Arg(value=cst.parse_expression(source), keyword=cst.Name("features"),
                                 equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                                       whitespace_after=cst.SimpleWhitespace(""))))
        if bound:  # what the partial fixed is not overridden by a default
            call_spec = dataclasses.replace(
                call_spec, explicit={k: v for k, v in call_spec.explicit.items() if k not in bound})
        given = updated  # what a TODO leaves in place
        decode = None
        cache_at = next((i for i, a in enumerate(updated.args)
                         if a.keyword is not None and a.keyword.value == "cache"), None)
        if cache_at is not None and self._decode and self._decode[-1]:
            value = updated.args[cache_at].value
            if isinstance(value, cst.Name) and value.value in ("cache", "None"):
                # cache=None: legacy did not cache (``if cache:``), the Linen default
                decode = cst.parse_expression("self.decode") if value.value == "cache" else None
                rest = [a for i, a in enumerate(updated.args) if i != cache_at]
                updated = updated.with_changes(args=[*rest[:-1], rest[-1].with_changes(
                    comma=cst.MaybeSentinel.DEFAULT)])
        query = None
        if call_spec.manual and "attention_axis" in call_spec.manual:
            updated, query, problem = self._attention_axes(updated, call_spec)
            if problem:
                self.todo(f"{_name(func)}: {problem}")
                return given
        mask = None
        if call_spec.manual and "causal_mask" in call_spec.manual:
            updated, mask, problem = self._attention_mask(updated, call_spec)
            if problem:
                self.todo(f"{_name(func)}: {problem}")
                return given
        new, problem = split_call(updated, call_spec, ctor, extra)
        if new is not None and mask is not None:
            new = new.with_changes(args=[*new.args[:-1], new.args[-1].with_changes(
                comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), _kwarg("mask", mask)])
        if new is not None:
            new = self._wrap_two_arg_initializers(new)
        if new is not None and decode is not None:
            new = new.with_changes(func=_with_ctor_kwarg(new.func, "decode", decode))  # type: ignore[arg-type]
        if new is not None and query is not None:  # back to the legacy layout
            back = cst.parse_expression(ATTENTION_AXES["unflatten"].format(y="_", x=query))
            assert isinstance(back, cst.Call) and isinstance(back.func, cst.Attribute)
            new = back.with_changes(func=back.func.with_changes(value=new))
        if new is None:
            self.todo(f"{_name(func)}: {problem}")
            return given
        self.fixed(f"{_name(func)}(x, ...) -> {_name(func)}(...)(x)")
        return new


_CARRY_ARGS = ("rng", "batch_dims", "size", "init_fn")


def _bind_carry_args(call: cst.Call) -> dict[str, cst.BaseExpression] | None:
    out: dict[str, cst.BaseExpression] = {}
    for i, a in enumerate(call.args):
        key = a.keyword.value if a.keyword is not None else (_CARRY_ARGS[i] if i < 4 else None)
        if a.star or key not in _CARRY_ARGS or key in out:
            return None
        out[key] = a.value
    return out if {"rng", "batch_dims", "size"} <= set(out) else None


def _concat_shape(dims: cst.BaseExpression, tail: list[cst.BaseElement]) -> cst.Tuple:
    """``batch_dims + tail`` as one tuple literal (``(8, 1)``, ``(*dims, 1)``)."""
    if isinstance(dims, cst.Tuple):
        head: list[cst.BaseElement] = [e.with_changes(comma=cst.MaybeSentinel.DEFAULT) for e in dims.elements]
    else:
        head = [cst.StarredElement(dims)]
    return cst.Tuple([*head, *tail])


def _carry_arg(call: cst.Call) -> cst.BaseExpression | None:
    """The carry argument, if it is a plain name/attribute/subscript (safe to read twice)."""
    carry = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "carry"),
                 call.args[0].value if call.args and call.args[0].keyword is None else None)
    if isinstance(carry, (cst.Name, cst.Attribute, cst.Subscript)):
        return carry
    return None


def _with_ctor_kwarg(ctor: cst.Call, key: str, value: cst.BaseExpression) -> cst.Call:
    """``M(a, name='n')`` -> ``M(a, key=value, name='n')``."""
    args = list(ctor.args)
    at = next((i for i, a in enumerate(args) if a.keyword is not None and a.keyword.value == "name"), len(args))
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    if at and args[at - 1].comma is cst.MaybeSentinel.DEFAULT:
        args[at - 1] = args[at - 1].with_changes(comma=comma)
    new = _kwarg(key, value).with_changes(comma=comma if at < len(args) else cst.MaybeSentinel.DEFAULT)
    return ctor.with_changes(args=[*args[:at], new, *args[at:]])


def _cache_to_decode(cls: cst.ClassDef) -> cst.ClassDef:
    """Drop ``cache`` from ``apply`` and add ``decode: bool = False`` (LU101 adds its fields above)."""
    body = list(cls.body.body)
    at = next(i for i, s in enumerate(body) if isinstance(s, cst.FunctionDef) and s.name.value == "apply")
    apply: cst.FunctionDef = body[at]  # type: ignore[assignment]
    p = apply.params
    params = [x for x in p.params if x.name.value != "cache"]
    kwonly = [x for x in p.kwonly_params if x.name.value != "cache"]
    params = [*params[:-1], params[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)] if params else params
    kwonly = [*kwonly[:-1], kwonly[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)] if kwonly else kwonly
    star = p.star_arg if kwonly or isinstance(p.star_arg, cst.Param) else cst.MaybeSentinel.DEFAULT
    apply = apply.with_changes(params=p.with_changes(params=params, kwonly_params=kwonly, star_arg=star))
    first = 1 if body and is_docstring(body[0]) else 0
    if at == first and not apply.leading_lines:
        apply = apply.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
    body[at] = apply
    body.insert(first, cst.parse_statement("decode: bool = False\n"))
    return cls.with_changes(body=cls.body.with_changes(body=body))


def _kwarg(name: str, value: cst.BaseExpression) -> cst.Arg:
    return cst.Arg(value=value, keyword=cst.Name(name), equal=cst.AssignEqual(
        whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))


def _name(expr: cst.BaseExpression) -> str:
    from linen_upgrade.resolve import dotted

    return dotted(expr) or "call"
