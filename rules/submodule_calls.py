"""LU102 submodule_calls: ``nn.Dense(x, 500, name='z')`` -> ``nn.Dense(500, name='z')(x)``.

What it does
    Inside legacy module classes, splits every call of a legacy module into
    construction (attributes) and call (inputs): built-ins by the table
    ``linen_upgrade/tables/nn_modules.py`` (renamed arguments such as
    ``bias`` -> ``use_bias``, ``nn.dropout`` -> ``nn.Dropout``, legacy
    defaults that became ``None`` in Linen passed explicitly), user modules
    of the run by their own ``apply`` signatures (the same split LU101 makes),
    and calls through a local ``conv = nn.Conv.partial(...)``.
Why
    Linen constructors return a module instance; the inputs go to its call.
    A positional argument stays positional only while the legacy and Linen
    orders agree; otherwise it becomes a keyword.
Not converted (TODO)
    Attention masks and caches, ``*args``/``**kwargs`` calls, RNN cells whose
    ``features`` cannot be recovered from an ``initialize_carry`` call.
"""

from __future__ import annotations

import dataclasses

import libcst as cst

from linen_upgrade.rule import Context, Example, NoChange, Rule, RuleTransformer
from linen_upgrade.rules._cst import add_import, build_dotted, express
from linen_upgrade.rules._modules import CallSpec, defines_apply, has_legacy_classes, split_call
from linen_upgrade.tables.nn_modules import ATTENTION_MASKS, BUILTIN_MODULES


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

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        # only classes still in legacy form (LU101 renames apply after this rule)
        legacy = any(self.is_legacy_class(b.value) for b in node.bases) and defines_apply(node)
        self._legacy_class_depth.append(legacy)
        self._class_quals.append(self.resolve_class(node.name) if legacy else None)
        return True

    def visit_Call(self, node: cst.Call) -> bool:
        if isinstance(node.func, cst.Call):  # M(...)(x): already split
            self._split.add(id(node.func))
        return True

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self._legacy_class_depth.pop()
        self._class_quals.pop()
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
        ``Cell(features=size, carry_init=init_fn).initialize_carry(rng, (*batch_dims, 1))``:
        Linen reads the batch dimensions off an input shape."""
        func = original.func
        assert isinstance(func, cst.Attribute)
        qual = self.resolve_class(func.value)
        row = BUILTIN_MODULES.get(qual or "")
        if row is None or row.features_from_carry is None:
            if row is not None:
                self.todo(f"{qual}.initialize_carry: Linen's needs a constructed cell (kernel_size, ...)")
            return updated
        bound = _bind_carry_args(updated)
        if bound is None:
            self.todo(f"{qual}.initialize_carry: pass (rng, batch_dims, size[, init_fn])")
            return updated
        eq = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))
        ctor_args = [cst.Arg(value=bound["size"], keyword=cst.Name("features"), equal=eq)]
        if "init_fn" in bound:
            ctor_args.append(cst.Arg(value=bound["init_fn"], keyword=cst.Name("carry_init"), equal=eq))
        if self._in_legacy_module():
            # unbound: inside a compact module a bound helper cell would take the
            # name LSTMCell_0 from the real one (Linen counts constructions)
            ctor_args.append(cst.Arg(value=cst.Name("None"), keyword=cst.Name("parent"), equal=eq))
        dims = bound["batch_dims"]
        if isinstance(dims, cst.Tuple):
            shape: cst.BaseExpression = cst.Tuple([*(e.with_changes(comma=cst.MaybeSentinel.DEFAULT)
                                                     for e in dims.elements), cst.Element(cst.Integer("1"))])
        else:
            shape = cst.Tuple([cst.StarredElement(dims), cst.Element(cst.Integer("1"))])
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

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if isinstance(original.func, cst.Attribute) and original.func.attr.value == "initialize_carry":
            return self._initialize_carry(original, updated)
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
        mask = None
        if call_spec.manual and "causal_mask" in call_spec.manual:
            updated, mask, problem = self._attention_mask(updated, call_spec)
            if problem:
                self.todo(f"{_name(func)}: {problem}")
                return updated
        new, problem = split_call(updated, call_spec, ctor, extra)
        if new is not None and mask is not None:
            new = new.with_changes(args=[*new.args[:-1], new.args[-1].with_changes(
                comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), _kwarg("mask", mask)])
        if new is not None:
            new = self._wrap_two_arg_initializers(new)
        if new is None:
            self.todo(f"{_name(func)}: {problem}")
            return updated
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


def _carry_arg(call: cst.Call) -> cst.BaseExpression | None:
    """The carry argument, if it is a plain name/attribute/subscript (safe to read twice)."""
    carry = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "carry"),
                 call.args[0].value if call.args and call.args[0].keyword is None else None)
    if isinstance(carry, (cst.Name, cst.Attribute, cst.Subscript)):
        return carry
    return None


def _kwarg(name: str, value: cst.BaseExpression) -> cst.Arg:
    return cst.Arg(value=value, keyword=cst.Name(name), equal=cst.AssignEqual(
        whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))


def _name(expr: cst.BaseExpression) -> str:
    from linen_upgrade.resolve import dotted

    return dotted(expr) or "call"
