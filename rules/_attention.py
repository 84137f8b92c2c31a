"""Attention for LU102 (submodule_calls): legacy ``causal_mask=True`` (or a
value: the causal mask behind the same ``if``) / ``padding_mask=`` /
``key_padding_mask=`` / segmentations -> one Linen ``mask=``
(``ATTENTION_MASKS``); ``attention_axis=(1, ..., k)`` -> attention
over the flattened axes, reshaped back (``ATTENTION_AXES``); an
``apply(..., cache=None)`` that only passes the cache on to causal attention,
tests it (``if cache:``) or keeps a decoding position in it (the idiom of
Flax's own legacy examples, ``position_index``) -> a ``decode: bool = False``
attribute, ``decode=self.decode`` and ``self.decode`` (Linen's 'cache'
collection); a legacy ``Cache`` passed to a module outside modules ->
a TODO (``CACHE_USAGE``).
"""

from __future__ import annotations

import dataclasses

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, FastTransformer, FastVisitor, Rule, RuleTransformer
from linen_upgrade.rules._cst import code, express, is_docstring, kwarg, named_params, names_in
from linen_upgrade.rules._modules import CallSpec
from linen_upgrade.tables.nn_modules import ATTENTION_AXES, ATTENTION_CACHE, ATTENTION_MASKS, CACHE_USAGE


def _flat(mask: str) -> str:
    return ATTENTION_MASKS["flat"].format(m=mask)


def _none_in(value: cst.BaseExpression) -> bool:
    """Is ``value`` None, or a conditional expression one branch of which may be?"""
    if isinstance(value, cst.IfExp):
        return _none_in(value.body) or _none_in(value.orelse)
    return isinstance(value, cst.Name) and value.value == "None"


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
        or to user modules taking a cache, tests it, or keeps a decoding position in it: Linen
        attention caches itself (``decode=True``, the 'cache' collection), so the parameter
        becomes ``decode: bool = False``."""
        apply = next(s for s in cls.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "apply")
        cache = next((p for p in named_params(apply.params) if p.name.value == "cache"), None)
        if cache is None:
            return False
        if not (isinstance(cache.default, cst.Name) and cache.default.value == "None"):
            # ``if cache:`` is ``decode`` only when no cache means None
            self.todo("cache: its default is not None: Linen attention caches itself: add `decode: bool = "
                      "False`, pass decode=self.decode to the attention and apply with mutable=['cache']")
            return False
        uses: set[int] = set()
        passed: set[int] = set()
        problems: list[str] = []
        outer = self

        class Uses(FastVisitor):
            def visit_If(self, node: cst.If) -> bool:
                return position_index(node, apply) is None  # the idiom's uses are its own

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
        if uses - passed - truth_uses(apply.body) or problems:
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
            # legacy asserts it while caching; Linen's decoding is causal by itself
            if causal is None or (isinstance(causal, cst.Name) and causal.value == "False") \
                    or not _evaluates_alike(causal):
                return "legacy caching needs causal_mask=True"
            if "attention_axis" in keywords and literal_axes(keywords["attention_axis"]) == (1,):
                del keywords["attention_axis"]  # the default for (batch, length, features), as without a cache
            manual = sorted(set(keywords) & ATTENTION_CACHE[qual])
            if manual:
                return f"decoding with {', '.join(manual)}: build the decoding mask by hand"
            return None
        if self._takes_cache(call.func):
            return None
        return f"passed to {dotted(call.func) or 'call'}, which is not attention or a module taking a cache"

    def _takes_cache(self, func: cst.BaseExpression, default_none: bool = False) -> bool:
        """Does ``func`` name a legacy module whose apply takes ``cache`` (``default_none``: that
        defaults to None), or a ``.partial`` alias of one that leaves it open (``SelfAttention =
        Attention.partial(inputs_kv=None)``)?"""
        qual = self.resolve_class(func)
        if qual is None and isinstance(func, cst.Name) and func.value in self.ctx.facts.partial_aliases:
            qual = ".".join(filter(None, (self.ctx.facts.module_name, func.value)))  # an alias of this file
        alias = self.ctx.index.partial_alias(qual) if qual else None
        if alias is not None:
            qual = None if "cache" in dict(alias[1]) else alias[0]
        if qual in ATTENTION_CACHE:
            return True
        legacy = self.ctx.index.legacy_module(qual)
        return legacy is not None and any(p.name == "cache" and (not default_none or p.default == "None")
                                          for p in legacy.apply_params or ())

    def _cache_arg(self, call: cst.Call) -> tuple[cst.Call, cst.BaseExpression | None]:
        """The call without its ``cache=None`` (no caching, the default of the callee's ``cache``
        and so of its ``decode``), or, in a class whose ``cache`` became ``decode``, without its
        ``cache=cache``; and the ``decode=`` its constructor takes."""
        decode = None
        cache_at = next((i for i, a in enumerate(call.args)
                         if a.keyword is not None and a.keyword.value == "cache"), None)
        value = call.args[cache_at].value if cache_at is not None else None
        none = isinstance(value, cst.Name) and value.value == "None" and self._takes_cache(call.func, True)
        if none or (cache_at is not None and self._decode and self._decode[-1]):
            if isinstance(value, cst.Name) and value.value in ("cache", "None"):
                # cache=None: legacy did not cache (``if cache:``), the Linen default
                decode = cst.parse_expression("self.decode") if value.value == "cache" else None
                rest = [a for i, a in enumerate(call.args) if i != cache_at]
                call = call.with_changes(args=[*rest[:-1], rest[-1].with_changes(
                    comma=cst.MaybeSentinel.DEFAULT)])
        return call, decode

    def _attention_mask(self, call: cst.Call, spec: CallSpec, decoding: bool = False
                        ) -> tuple[cst.Call, cst.BaseExpression | None, str | None]:
        """Legacy ``causal_mask=`` / ``padding_mask=`` / ``key_padding_mask=`` -> one Linen
        ``mask=`` (``make_causal_mask``, ``make_attention_mask``, ``combine_masks``, which drops
        the None of ``make_causal_mask(...) if causal else None``).  ``decoding``: the call
        passed the cache on (now ``decode=self.decode``); legacy ignored the padding masks
        while it cached, so does the mask."""
        # a keyword given None is one not given (legacy tested ``is not None``, ``if causal_mask:``)
        keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None
                    and not (isinstance(a.value, cst.Name) and a.value.value == "None")}
        names = ("causal_mask", "padding_mask", "key_padding_mask", "segmentation", "key_segmentation")
        if not any(a.keyword is not None and a.keyword.value in names for a in call.args):
            return call, None, None
        positional = [a.value for a in call.args if a.keyword is None]
        q = keywords.get("inputs_q", positional[0] if positional else None)
        kv = keywords.get("inputs_kv", positional[1] if len(positional) > 1 and "inputs_kv" in spec.legacy
                          else None)
        simple = (cst.Name, cst.Attribute, cst.Subscript)
        if not isinstance(q, simple) or (kv is not None and not isinstance(kv, simple)):
            return call, None, "masks need the inputs as plain names: build mask= by hand"
        if isinstance(q, cst.Name) and isinstance(kv, cst.Name) and q.value == kv.value:
            kv = None  # one variable, one object: legacy's self-attention (``inputs_kv is inputs_q``)
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
            padding = ATTENTION_MASKS["padding"].format(
                nn=nn_prefix, pq=self._or_else(pq, pk, q, kv), pk=self._or_else(pk, pq, kv or q, kv))
            tests = ["not self.decode"] if decoding else []
            masks = list(dict.fromkeys(code(p) for p in (pq, pk)))
            if self._may_be_none(pq) and self._may_be_none(pk):  # legacy skipped them when both were None
                tests.append(f"({masks[0]} is not None or {masks[1]} is not None)" if len(masks) > 1
                             else f"{masks[0]} is not None")
            parts.append(f"{padding} if {' and '.join(tests)} else None" if tests else padding)
        # legacy read key_segmentation only under ``if segmentation is not None``: alone it goes
        sq, sk = keywords.get("segmentation"), keywords.get("key_segmentation")
        if sq is not None:
            if sk is None and kv is not None:
                return call, None, ("cross-attention with the query's segmentation alone (legacy asserted "
                                    "self-attention there): build mask= by hand")
            sk = sk or sq
            if not isinstance(sq, simple) or not isinstance(sk, simple):
                return call, None, "segmentations need plain names: build mask= by hand"
            eq, needed = express("jax.numpy.equal", self.ctx.facts.imports)
            if needed:
                self.imports.add((needed, None))
            sk_code = _flat(code(sk)) if kv else self._or_else(sk, sq, q, kv)  # cross: legacy asserted it was given
            segments = ATTENTION_MASKS["segmentation"].format(nn=nn_prefix, sq=_flat(code(sq)), sk=sk_code, eq=eq)
            if self._may_be_none(sq):  # legacy skipped the masks when the query's segmentation was None
                segments = f"{segments} if {code(sq)} is not None else None"
            parts.append(segments)
        rest = [a for a in call.args if a.keyword is None or a.keyword.value not in names]
        call = call.with_changes(args=[*rest[:-1], rest[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)])
        if not parts:
            return call, None, None
        source = parts[0] if len(parts) == 1 else f"{nn_prefix}.combine_masks({', '.join(parts)})"
        self.fixed("attention masks -> mask=")
        return call, cst.parse_expression(source), None

    def _or_else(self, mask: cst.BaseExpression, other: cst.BaseExpression, inputs: cst.BaseExpression,
                 kv: cst.BaseExpression | None) -> str:
        """``mask`` as (batch, length), or where it may be None apart from ``other``, with what
        legacy put in its place: ``other`` in self-attention (``kv`` None), all True over ``inputs``
        in cross-attention (``... if mask is not None else ...``)."""
        code = cst.Module([]).code_for_node
        if code(mask) == code(other) or not self._may_be_none(mask):
            return _flat(code(mask))
        if kv is None:
            fallback = _flat(code(other))
        else:
            ones, needed = express("jax.numpy.ones", self.ctx.facts.imports)
            if needed:
                self.imports.add((needed, None))
            fallback = f"{ones}({code(inputs)}.shape[:2], bool)"
        return f"{_flat(code(mask))} if {code(mask)} is not None else {fallback}"

    def _may_be_none(self, expr: cst.BaseExpression) -> bool:
        """Is ``expr`` a parameter defaulting to None of the function the call is in
        (``_functions``: the transformer's stack), which a caller may leave out, or a local
        of it bound to None somewhere (``_assignments``)?"""
        functions = getattr(self, "_functions", [])
        if not (isinstance(expr, cst.Name) and functions):
            return False
        if any(q.name.value == expr.value and isinstance(q.default, cst.Name) and q.default.value == "None"
               for q in named_params(functions[-1].params)):
            return True
        # or a local some binding of which is None (``mask = (p > 0)[..., None] if p is not None else None``)
        return any(_none_in(a.value) for a in getattr(self, "_assignments")(expr.value))

    def _attention_axes(self, call: cst.Call, spec: CallSpec) -> tuple[cst.Call, str | None, str | None]:
        """Legacy ``attention_axis=(1, ..., k)`` -> the Linen call on inputs whose attention axes
        are flattened into one (``ATTENTION_AXES``); returns the call, the query's source
        (to reshape the output back, None when nothing is to be reshaped) and a problem."""
        at = next((i for i, a in enumerate(call.args) if a.keyword is not None
                   and a.keyword.value == "attention_axis"), None)
        if at is None:
            return call, None, None
        axes = literal_axes(call.args[at].value)
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
        if self._takes_cache(owner) or (isinstance(arg.value, cst.Name) and arg.value.value in self._mutated):
            self.todo(CACHE_USAGE)


def literal_axes(value: cst.BaseExpression) -> tuple[int, ...] | None:
    """``attention_axis=(1, 2)`` -> ``(1, 2)``; None when it is not a tuple of integers."""
    if isinstance(value, cst.Tuple) and all(
            isinstance(e, cst.Element) and isinstance(e.value, cst.Integer) for e in value.elements):
        return tuple(int(e.value.value) for e in value.elements)  # type: ignore[attr-defined]
    return None


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


def _truth_names(expr: cst.BaseExpression) -> list[cst.Name]:
    """The ``cache`` names whose truth the test ``expr`` reads (through ``not``/``and``/``or``)."""
    if isinstance(expr, cst.Name):
        return [expr] if expr.value == "cache" else []
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Not):
        return _truth_names(expr.expression)
    if isinstance(expr, cst.BooleanOperation):
        return [*_truth_names(expr.left), *_truth_names(expr.right)]
    return []


class _Truths(FastVisitor):
    """``cache`` read for its truth only: the test of ``if``/``while``/``assert``/``x if c else y``
    and the operand of ``not``.  A legacy Cache is always true (``Collection`` has no ``__len__``
    or ``__bool__``) and no cache is None, so each reads as ``decode``."""

    def __init__(self) -> None:
        super().__init__()
        self.found: set[int] = set()

    def _test(self, expr: cst.BaseExpression) -> None:
        self.found.update(id(n) for n in _truth_names(expr))

    def visit_If(self, node: cst.If) -> None:
        self._test(node.test)

    def visit_While(self, node: cst.While) -> None:
        self._test(node.test)

    def visit_Assert(self, node: cst.Assert) -> None:
        self._test(node.test)

    def visit_IfExp(self, node: cst.IfExp) -> None:
        self._test(node.test)

    def visit_UnaryOperation(self, node: cst.UnaryOperation) -> None:
        if isinstance(node.operator, cst.Not):
            self._test(node.expression)


def truth_uses(body: cst.CSTNode) -> set[int]:
    """The ids of the ``cache`` names ``body`` reads only for their truth (``_Truths``)."""
    v = _Truths()
    body.visit(v)
    return v.found


def _is_call(expr: cst.BaseExpression | None, owner: str, method: str) -> bool:
    return (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute)
            and isinstance(expr.func.value, cst.Name) and expr.func.value.value == owner
            and expr.func.attr.value == method)


def _only(stmt: cst.BaseStatement) -> cst.BaseSmallStatement | None:
    """The one small statement of a comment-free simple line (None otherwise)."""
    if (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and not stmt.leading_lines
            and stmt.trailing_whitespace.comment is None):
        return stmt.body[0]
    return None


def _assigned(stmt: cst.BaseStatement) -> tuple[str, cst.BaseExpression] | None:
    """``name = value`` as (name, value)."""
    small = _only(stmt)
    if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
        return small.targets[0].target.value, small.value
    return None


def _step(entry: str, expr: cst.BaseExpression) -> cst.BaseExpression | None:
    """``entry.replace(i=entry.i + step)`` -> ``step``."""
    if not (_is_call(expr, entry, "replace") and len(expr.args) == 1):  # type: ignore[union-attr]
        return None
    arg = expr.args[0]  # type: ignore[union-attr]
    plus = arg.value
    if not (arg.keyword is not None and arg.keyword.value == "i" and isinstance(plus, cst.BinaryOperation)
            and isinstance(plus.operator, cst.Add) and isinstance(plus.left, cst.Attribute)
            and isinstance(plus.left.value, cst.Name) and plus.left.value.value == entry
            and plus.left.attr.value == "i"):
        return None
    return plus.right


_INDEX_NAMES = ("is_initialized", "cache_index")  # what the Linen form binds


def position_index(node: cst.If, fn: cst.FunctionDef) -> PositionIndex | None:
    """The decoding position kept in a legacy Cache, as Flax's own legacy examples
    (lm1b, wmt) wrote it in ``fn``'s body, and the statements its ``else`` runs after it::

        if cache:
            if self.is_initializing():
                cache.store(np.array((4, 1, 1), dtype=np.int32))
            else:
                cache_entry = cache.retrieve(None)
                i = cache_entry.i
                cache.store(cache_entry.replace(i=cache_entry.i + 1))   # or: entry = ...; cache.store(entry)
                ...  # reads i, never the cache or its entry again

    Linen's form of the same (``PositionIndex.linen``) keeps the position in the
    'cache' collection, as Flax's Linen examples do.  None when ``node`` is not
    exactly that, a line of it that goes has a comment, or ``fn`` uses the
    names the Linen form binds."""
    if not (isinstance(node.test, cst.Name) and node.test.value == "cache" and node.orelse is None
            and len(node.body.body) == 1 and isinstance(inner := node.body.body[0], cst.If)
            and not inner.leading_lines and isinstance(inner.orelse, cst.Else)):
        return None
    init = _only(inner.body.body[0]) if len(inner.body.body) == 1 else None
    if not (_is_call(inner.test, "self", "is_initializing") and not inner.test.args  # type: ignore[union-attr]
            and isinstance(init, cst.Expr) and _is_call(init.value, "cache", "store")):
        return None
    stmts = list(inner.orelse.body.body)
    retrieve = _assigned(stmts[0]) if stmts else None
    if retrieve is None or not _is_call(retrieve[1], "cache", "retrieve"):
        return None
    entry = retrieve[0]
    index = _assigned(stmts[1]) if len(stmts) > 1 else None
    if not (index is not None and isinstance(index[1], cst.Attribute) and isinstance(index[1].value, cst.Name)
            and index[1].value.value == entry and index[1].attr.value == "i"):
        return None
    at = 2
    while at < len(stmts) and not {"cache", entry} & names_in(stmts[at], after_dots=False):
        at += 1  # ``one = jnp.array(1, jnp.uint32)``: kept before the step
    kept, rest = stmts[2:at], stmts[at:]
    step = None
    store = _only(rest[0]) if rest else None
    if isinstance(store, cst.Expr) and _is_call(store.value, "cache", "store") and len(store.value.args) == 1:
        step, rest = _step(entry, store.value.args[0].value), rest[1:]
    elif len(rest) > 1 and (bump := _assigned(rest[0])) is not None and bump[0] == entry:
        store = _only(rest[1])
        if (isinstance(store, cst.Expr) and _is_call(store.value, "cache", "store") and len(store.value.args) == 1
                and isinstance(store.value.args[0].value, cst.Name) and store.value.args[0].value.value == entry):
            step, rest = _step(entry, bump[1]), rest[2:]
    if step is None or any({"cache", entry} & names_in(s, after_dots=False) for s in rest):
        return None
    others = fn.body.deep_replace(node, cst.SimpleStatementLine([cst.Pass()]))  # the rest of the function
    if {entry, *_INDEX_NAMES} & names_in(others, after_dots=False) or set(_INDEX_NAMES) & names_in(node):
        return None
    return PositionIndex(node, index[0], kept, step, rest)


@dataclasses.dataclass(frozen=True)
class PositionIndex:
    """A matched ``position_index``: its ``if cache:`` statement, the name of the position
    (``i``), the statements between reading and bumping it, the step, what follows."""

    node: cst.If
    index: str
    kept: list[cst.BaseStatement]
    step: cst.BaseExpression
    rest: list[cst.BaseStatement]

    def linen(self, jnp: str) -> cst.If:
        """Flax's Linen form: the position in the 'cache' collection, made at init."""
        step = code(self.step)
        head = [cst.parse_statement(line) for line in (
            "is_initialized = self.has_variable('cache', 'cache_index')\n",
            f"cache_index = self.variable('cache', 'cache_index', lambda: {jnp}.array(0, dtype={jnp}.uint32))\n")]
        body = [cst.parse_statement(f"{self.index} = cache_index.value\n"), *self.kept,
                cst.parse_statement(f"cache_index.value = {self.index} + {step}\n"), *self.rest]
        inner = self.node.body.body[0]
        assert isinstance(inner, cst.If)
        ready = inner.with_changes(test=cst.Name("is_initialized"), orelse=None,
                                   body=inner.orelse.body.with_changes(body=body))  # type: ignore[union-attr]
        return self.node.with_changes(test=cst.parse_expression("self.decode"),
                                      body=self.node.body.with_changes(body=[*head, ready]))


class _ToDecode(FastTransformer):
    """``cache`` read for its truth -> ``self.decode``; the position-index idiom -> its Linen form."""

    def __init__(self, fn: cst.FunctionDef, jnp: str) -> None:
        super().__init__()
        self.truths = truth_uses(fn.body)
        self.fn, self.jnp, self.positions = fn, jnp, 0

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.If:
        found = position_index(original, self.fn)
        if found is None:
            return updated
        self.positions += 1
        return found.linen(self.jnp)

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        return cst.parse_expression("self.decode") if id(original) in self.truths else updated


def cache_to_decode(cls: cst.ClassDef, jnp: str) -> tuple[cst.ClassDef, int]:
    """Drop ``cache`` from ``apply``, read ``self.decode`` where apply tested the cache, and add
    ``decode: bool = False`` (LU101 adds its fields above); also how many decoding positions
    became Linen's (their form spells ``jax.numpy`` as ``jnp``)."""
    body = list(cls.body.body)
    at = next(i for i, s in enumerate(body) if isinstance(s, cst.FunctionDef) and s.name.value == "apply")
    apply: cst.FunctionDef = body[at]  # type: ignore[assignment]
    to_decode = _ToDecode(apply, jnp)
    apply = apply.with_changes(body=apply.body.visit(to_decode))
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
    return cls.with_changes(body=cls.body.with_changes(body=body)), to_decode.positions
