"""Attention for LU102 (submodule_calls): legacy ``causal_mask=True`` (or a
value: the causal mask behind the same ``if``) / ``padding_mask=`` /
``key_padding_mask=`` / segmentations -> one Linen ``mask=``
(``ATTENTION_MASKS``); ``attention_axis=(1, ..., k)`` -> attention
over the flattened axes, reshaped back (``ATTENTION_AXES``); an
``apply(..., cache=None)`` that only passes the cache on to causal attention
-> a ``decode: bool = False`` attribute and ``decode=self.decode`` (Linen's
'cache' collection); a legacy ``Cache`` passed to a module outside modules ->
a TODO (``CACHE_USAGE``).
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, FastVisitor, Rule, RuleTransformer
from linen_upgrade.rules._cst import express, is_docstring, kwarg
from linen_upgrade.rules._modules import CallSpec
from linen_upgrade.tables.nn_modules import ATTENTION_AXES, ATTENTION_CACHE, ATTENTION_MASKS, CACHE_USAGE


class AttentionCalls(RuleTransformer):
    """The part of LU102's transformer that converts attention calls and a
    ``cache`` parameter; the transformer provides ``imports`` ((module, name) pairs to import)."""

    imports: set[tuple[str, str | None]]

    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__(rule, ctx)
        # per class: does its apply's ``cache`` parameter become a ``decode`` attribute?
        self._decode: list[bool] = []
        self._mutated: set[str] = set()  # names bound by ``with c.mutate() as name`` (visit_With)

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
        return f"passed to {dotted(call.func) or 'call'}, which is not attention or a module taking a cache"

    def _cache_arg(self, call: cst.Call) -> tuple[cst.Call, cst.BaseExpression | None]:
        """In a class whose ``cache`` became ``decode``: the call without its
        ``cache=cache`` / ``cache=None``, and the ``decode=`` its constructor takes."""
        decode = None
        cache_at = next((i for i, a in enumerate(call.args)
                         if a.keyword is not None and a.keyword.value == "cache"), None)
        if cache_at is not None and self._decode and self._decode[-1]:
            value = call.args[cache_at].value
            if isinstance(value, cst.Name) and value.value in ("cache", "None"):
                # cache=None: legacy did not cache (``if cache:``), the Linen default
                decode = cst.parse_expression("self.decode") if value.value == "cache" else None
                rest = [a for i, a in enumerate(call.args) if i != cache_at]
                call = call.with_changes(args=[*rest[:-1], rest[-1].with_changes(
                    comma=cst.MaybeSentinel.DEFAULT)])
        return call, decode

    def _attention_mask(self, call: cst.Call, spec: CallSpec
                        ) -> tuple[cst.Call, cst.BaseExpression | None, str | None]:
        """Legacy ``causal_mask=`` / ``padding_mask=`` / ``key_padding_mask=`` -> one Linen
        ``mask=`` (``make_causal_mask``, ``make_attention_mask``, ``combine_masks``, which drops
        the None of ``make_causal_mask(...) if causal else None``)."""
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
            made = ATTENTION_MASKS["causal_mask"].format(nn=nn_prefix, q=code(q))
            if isinstance(causal, cst.Name) and causal.value in ("True", "False"):
                parts.extend([made] if causal.value == "True" else [])
            elif _evaluates_alike(causal):
                # legacy tested ``if causal_mask:``; combine_masks drops the None
                test = code(causal) if isinstance(causal, (cst.Name, cst.Attribute)) else f"({code(causal)})"
                parts.append(f"{made} if {test} else None")
            else:
                return call, None, "causal_mask is computed by a call or a nested function: build mask= by hand"
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
                self.imports.add((needed, None))
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


def _evaluates_alike(expr: cst.BaseExpression) -> bool:
    """Does ``expr`` give the same value wherever the call evaluates it (no call, lambda,
    comprehension, assignment or yield): moved from the legacy call's arguments into
    ``mask=``, it is evaluated after the constructor's arguments."""
    found: list[cst.CSTNode] = []

    class Effects(FastVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if isinstance(node, (cst.Call, cst.Lambda, cst.NamedExpr, cst.Yield, cst.Await, cst.ListComp,
                                 cst.SetComp, cst.DictComp, cst.GeneratorExp)):
                found.append(node)
                return False
            return super().on_visit(node)

    expr.visit(Effects())
    return not found


def attention_result(new: cst.Call, mask: cst.BaseExpression | None, decode: cst.BaseExpression | None,
                     query: str | None) -> cst.BaseExpression:
    """The split call with what the conversions above took out of the legacy
    call: ``mask=`` on the call, ``decode=`` on the constructor, the output
    reshaped back to the legacy layout (``query``: the query's source)."""
    if mask is not None:
        new = new.with_changes(args=[*new.args[:-1], new.args[-1].with_changes(
            comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), kwarg("mask", mask)])
    if decode is not None:
        new = new.with_changes(func=_with_ctor_kwarg(new.func, "decode", decode))  # type: ignore[arg-type]
    if query is not None:  # back to the legacy layout
        back = cst.parse_expression(ATTENTION_AXES["unflatten"].format(y="_", x=query))
        assert isinstance(back, cst.Call) and isinstance(back.func, cst.Attribute)
        return back.with_changes(func=back.func.with_changes(value=new))
    return new


def _with_ctor_kwarg(ctor: cst.Call, key: str, value: cst.BaseExpression) -> cst.Call:
    """``M(a, name='n')`` -> ``M(a, key=value, name='n')``."""
    args = list(ctor.args)
    at = next((i for i, a in enumerate(args) if a.keyword is not None and a.keyword.value == "name"), len(args))
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    if at and args[at - 1].comma is cst.MaybeSentinel.DEFAULT:
        args[at - 1] = args[at - 1].with_changes(comma=comma)
    new = kwarg(key, value).with_changes(comma=comma if at < len(args) else cst.MaybeSentinel.DEFAULT)
    return ctor.with_changes(args=[*args[:at], new, *args[at:]])


def cache_to_decode(cls: cst.ClassDef) -> cst.ClassDef:
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
