"""LU101 module_definitions: ``def apply(self, x, features, ...)`` -> attributes + ``@nn.compact __call__``.

What it does
    In every class that resolves to a legacy ``flax.nn.Module`` (directly or
    through another legacy module of the run), the configuration parameters
    of ``apply`` become typed dataclass attributes, ``apply`` becomes
    ``@nn.compact def __call__`` with only the call inputs, and each use of an
    attribute in the body becomes ``self.<attr>`` (a body that reassigns one
    gets a local copy first).
Which parameters stay inputs
    The first positional one always; flags, masks, carries and rngs by name
    (``CALL_ARGUMENT_NAMES`` in ``linen_upgrade/tables/nn_modules.py``); any
    other one that the body uses as an array (sliced, ``.shape``, a ``jnp``
    argument, the input of a submodule call, added to an input) or that call
    sites anywhere in the run pass an array.  Configuration: what the body
    uses as a Python value (``range``, an ``if`` test, a submodule's
    ``features``) or call sites pass as a literal.  The project index
    decides once (``index.py``); the call-site rule LU102 makes the same
    split from the same function (``split_params``).
``*args``/``**kwargs`` only forwarded
    ``def apply(self, x, **kwargs): return nn.Dense(x, **kwargs)`` -> an
    attribute ``kwargs: Any = FrozenDict()`` and ``nn.Dense(**self.kwargs)(x)``;
    call sites pass ``kwargs={'features': 3}`` (Linen names), and inputs of
    the callee forwarded through it (``train=``) stay call arguments.
    ``*args`` -> ``args: Any = ()`` and ``nn.Dense(*self.args)(x)``, when the
    callee's Linen fields keep the legacy positional order (the index checks
    how far: Dense's features, bias -> use_bias, dtype); call sites pass
    ``args=(3,)``, and positional arguments past that order go by their legacy
    name into a ``**kwargs`` forwarded into the same calls (else a TODO there).
Not converted (TODO)
    ``*args``/``**kwargs`` read in the body or forwarded into a callee of
    unknown signature, ``*args`` into a callee whose next legacy positional
    argument has another Linen place (``nn.BatchNorm``'s ``batch_stats``) or
    followed by keyword-only parameters; a parameter with conflicting
    evidence (used as an array and as a Python value); ``@nn.module_method``
    methods.
"""

from __future__ import annotations

from dataclasses import replace

import libcst as cst

from linen_upgrade.facts import Param
from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, Example, FastTransformer, NoChange, Rule, RuleTransformer
from linen_upgrade.rules._cst import add_import, build_dotted, express, is_docstring, strip_comma
from linen_upgrade.rules._modules import (SelfAttributes, has_legacy_classes, spec_for_qual, split_call,
                                          split_params, type_of)


class ModuleDefinitions(Rule):
    id = "LU101"
    # after the other LU1xx rules, which recognise legacy bodies by their ``apply``
    order = 10
    summary = "Legacy module classes: apply(self, x, features) -> dataclass attributes + @nn.compact __call__(self, x)"
    examples = [
        Example(
            "from flax import nn\n\n\nclass Dense(nn.Module):\n"
            "    def apply(self, inputs, features, use_bias=True):\n"
            "        kernel = self.param('kernel', (inputs.shape[-1], features), init)\n"
            "        y = jnp.dot(inputs, kernel)\n"
            "        if use_bias:\n"
            "            y = y + self.param('bias', (features,), zeros)\n"
            "        return y\n",
            "from flax import nn\nfrom typing import Any\n\n\nclass Dense(nn.Module):\n"
            "    features: Any\n"
            "    use_bias: bool = True\n\n"
            "    @nn.compact\n"
            "    def __call__(self, inputs):\n"
            "        kernel = self.param('kernel', (inputs.shape[-1], self.features), init)\n"
            "        y = jnp.dot(inputs, kernel)\n"
            "        if self.use_bias:\n"
            "            y = y + self.param('bias', (self.features,), zeros)\n"
            "        return y\n",
        ),
        Example(
            "import jax.numpy as jnp\nfrom flax import nn\n\n\nclass Head(nn.Module):\n"
            "    def apply(self, x, context, *args, **kwargs):\n"
            "        return nn.Dense(jnp.concatenate([x, context], -1), *args, **kwargs)\n",
            "import jax.numpy as jnp\nfrom flax import nn\nfrom flax.core import FrozenDict\nfrom typing import Any\n\n\n"
            "class Head(nn.Module):\n"
            "    args: Any = ()\n"
            "    kwargs: Any = FrozenDict()\n\n"
            "    @nn.compact\n"
            "    def __call__(self, x, context):\n"
            "        return nn.Dense(*self.args, **self.kwargs)(jnp.concatenate([x, context], -1))\n",
            name="array input by use, forwarded *args/**kwargs",
        ),
        NoChange("import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def apply(self, fn):\n"
                 "        return fn(self)\n", name="torch"),
    ]

    def applies(self, ctx: Context) -> bool:
        return has_legacy_classes(ctx)

    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        t = _Transformer(self, ctx)
        module = module.visit(t)
        for name, obj in sorted(t.imports):
            module = add_import(module, name, obj)
        return module


def _reassigned(body: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class V(cst.CSTVisitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            found.update(n.value for n in _names(node.target))

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            found.update(n.value for n in _names(node.target))

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            found.update(n.value for n in _names(node.target))

        def visit_For(self, node: cst.For) -> None:
            found.update(n.value for n in _names(node.target))

        def visit_AsName(self, node: cst.AsName) -> None:
            found.update(n.value for n in _names(node.name))

        def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
            found.update(n.value for n in _names(node.target))

    body.visit(V())
    return found


def _names(target: cst.CSTNode) -> list[cst.Name]:
    if isinstance(target, cst.Name):
        return [target]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for el in target.elements for n in _names(el.value)]
    if isinstance(target, cst.StarredElement):
        return _names(target.value)
    return []


class _Transformer(RuleTransformer):
    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__(rule, ctx)
        self.imports: set[tuple[str, str | None]] = set()

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self._local_names = {t.target.value for s in node.body if isinstance(s, cst.SimpleStatementLine)
                             for a in s.body if isinstance(a, cst.Assign) for t in a.targets
                             if isinstance(t.target, cst.Name)} | {
            s.name.value for s in node.body if isinstance(s, (cst.ClassDef, cst.FunctionDef))}
        return True

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        if not any(self.is_legacy_class(b.value) for b in original.bases):
            return updated
        body = list(updated.body.body)
        applies = [i for i, s in enumerate(body) if isinstance(s, cst.FunctionDef) and s.name.value == "apply"]
        if not applies:
            return updated
        apply_at = applies[0]
        problem = self._unsupported(original, body, applies)
        if problem:
            self.todo(problem)
            return updated
        params = self._apply_params(original)
        split = split_params(params)
        if split.problem:
            self.todo(split.problem)
            return updated
        if split.forward is not None or split.star is not None:
            forwarding = _Forwarding(self, split)
            body[apply_at] = body[apply_at].visit(forwarding)
            if forwarding.problem:
                stars = [f"*{split.star.name}"] if split.star is not None else []
                stars += [f"**{split.forward.name}"] if split.forward is not None else []
                self.todo(f"{' and '.join(stars)} forwarded into a call that cannot be split: "
                          f"{forwarding.problem}")
                return updated
        for s in body:
            if isinstance(s, cst.FunctionDef) and any(
                    (self.resolve(d.decorator) or "").endswith("module_method") for d in s.decorators):
                self.todo(f"@nn.module_method {s.name.value}: move shared submodules to setup() and "
                          "call it with apply(..., method=...)")
        apply: cst.FunctionDef = body[apply_at]  # type: ignore[assignment]
        body[apply_at] = self._call_method(apply, split)
        attrs = {a.name for a in split.attrs}
        for i, s in enumerate(body):
            if isinstance(s, cst.FunctionDef) and i != apply_at and s.name.value != "setup":
                body[i] = _method_with_attributes(s, attrs)
        fields = [self._field(apply, a) for a in split.attrs]
        if split.star is not None:
            fields.append(self._star_field(split.star))
        if split.forward is not None:
            fields.append(self._forward_field(split.forward))
        insert_at = 1 if body and is_docstring(body[0]) else 0
        # above a field another rule added (LU102's ``decode``): one block, no blank line between
        if fields and insert_at < len(body) and not body[insert_at].leading_lines \
                and not _is_field(body[insert_at]):
            body[insert_at] = body[insert_at].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
            if insert_at == 0:  # the blank line goes after the fields
                fields[0] = fields[0].with_changes(leading_lines=())
        body[insert_at:insert_at] = fields
        self.fixed(f"class {original.name.value}: apply -> __call__")
        return updated.with_changes(body=updated.body.with_changes(body=body))

    def _unsupported(self, cls: cst.ClassDef, body: list, applies: list[int]) -> str | None:
        """Shapes of legacy classes this rule does not convert (they get a TODO)."""
        apply: cst.FunctionDef = body[applies[0]]
        if len(applies) > 1:
            return "the class defines apply more than once: keep one and re-run"
        if sum(c.name == cls.name.value for c in self.ctx.facts.classes) > 1:
            return f"several classes are named {cls.name.value} in this file: rename one and re-run"
        if apply.asynchronous is not None:
            return "async apply has no Linen form"
        if apply.decorators:
            return "a decorated apply (staticmethod, ...): convert it by hand"
        if any(isinstance(s, (cst.SimpleStatementLine,)) and "apply" in {
                t.target.value for a in s.body if isinstance(a, cst.Assign) for t in a.targets
                if isinstance(t.target, cst.Name)} for s in body):
            return "apply is reassigned in the class body: convert it by hand"
        if "super().apply" in cst.Module([]).code_for_node(cls).replace(" ", ""):
            return ("super().apply(...) calls the parent's legacy apply; in Linen, Module.apply is "
                    "the variables entry point: restructure with the parent's attributes")
        return None

    def _apply_params(self, cls: cst.ClassDef) -> tuple[Param, ...]:
        qual = self.resolve_class(cls.name)
        legacy = self.ctx.index.legacy_module(qual)
        if legacy is not None and legacy.apply_params is not None:
            return legacy.apply_params
        facts = next(c for c in self.ctx.facts.classes if c.name == cls.name.value)
        return tuple(facts.apply_params or ())

    def _field(self, apply: cst.FunctionDef | None, attr: Param) -> cst.SimpleStatementLine:
        annotation = type_of(attr)
        if annotation == "Any":
            bound = self.ctx.facts.imports.aliases.get("Any")
            if bound in (None, "typing.Any") and "Any" not in self._local_names:
                self.imports.add(("typing", "Any"))
            else:  # the file gives ``Any`` another meaning
                annotation = "typing.Any"
                self.imports.add(("typing", None))
        param = next((p for p in [*apply.params.posonly_params, *apply.params.params,
                                  *apply.params.kwonly_params] if p.name.value == attr.name), None) \
            if apply is not None else None
        value = param.default if param is not None else None
        return cst.SimpleStatementLine(body=[cst.AnnAssign(
            target=cst.Name(attr.name),
            annotation=(param.annotation if param is not None else None)
            or cst.Annotation(cst.parse_expression(annotation)),
            value=value,
            equal=cst.AssignEqual() if value is not None else cst.MaybeSentinel.DEFAULT)])

    def _forward_field(self, param: Param) -> cst.SimpleStatementLine:
        """``kwargs: Any = FrozenDict()``: the forwarded configuration, holding the
        legacy values of Linen attributes whose default changed (call sites add them too)."""
        annotation = self._field(None, Param(param.name, "pos", None)).body[0].annotation  # type: ignore[attr-defined]
        spelled = "FrozenDict"
        if (self.ctx.facts.imports.aliases.get("FrozenDict") in (None, "flax.core.FrozenDict")
                and "FrozenDict" not in self._local_names):
            self.imports.add(("flax.core", "FrozenDict"))
        else:
            spelled = "flax.core.FrozenDict"
            self.imports.add(("flax", None))
        explicit = dict(param.forward.explicit) if param.forward else {}
        value = f"{spelled}({{{', '.join(f'{k!r}: {v}' for k, v in explicit.items())}}})" if explicit \
            else f"{spelled}()"
        return cst.SimpleStatementLine(body=[cst.AnnAssign(
            target=cst.Name(param.name), annotation=annotation, value=cst.parse_expression(value),
            equal=cst.AssignEqual())])

    def _star_field(self, param: Param) -> cst.SimpleStatementLine:
        """``args: Any = ()``: the forwarded positional configuration."""
        annotation = self._field(None, Param(param.name, "pos", None)).body[0].annotation  # type: ignore[attr-defined]
        return cst.SimpleStatementLine(body=[cst.AnnAssign(
            target=cst.Name(param.name), annotation=annotation, value=cst.Tuple([]), equal=cst.AssignEqual())])

    def _call_method(self, apply: cst.FunctionDef, split) -> cst.FunctionDef:
        inputs = {p.name for p in split.inputs}
        attrs = {a.name for a in split.attrs}
        reassigned = _reassigned(apply.body) & attrs
        body = apply.body.visit(SelfAttributes({a: a for a in attrs - reassigned}))
        if reassigned:
            copies = [cst.parse_statement(f"{n} = self.{n}") for n in sorted(reassigned)]
            stmts = list(body.body)  # type: ignore[attr-defined]
            at = 1 if stmts and is_docstring(stmts[0]) else 0
            body = body.with_changes(body=[*stmts[:at], *copies, *stmts[at:]])
        old = apply.params
        keep = [p for p in [*old.posonly_params, *old.params] if p.name.value == "self" or p.name.value in inputs]
        kwonly = [p for p in old.kwonly_params if p.name.value in inputs]
        params = old.with_changes(
            posonly_params=[], posonly_ind=cst.MaybeSentinel.DEFAULT,
            params=[p.with_changes(comma=cst.MaybeSentinel.DEFAULT) for p in keep],
            kwonly_params=[p.with_changes(comma=cst.MaybeSentinel.DEFAULT) for p in kwonly],
            star_arg=old.star_arg if kwonly else cst.MaybeSentinel.DEFAULT,
            # forwarded inputs (``train=``) still arrive as keywords
            star_kwarg=old.star_kwarg if split.forward is not None and split.forward.forward.inputs else None)
        # through the file's flax.nn alias (LU100 turns it into flax.linen), else directly
        compact, needed = express("flax.nn.compact", self.ctx.facts.imports)
        if needed:
            compact, needed = express("flax.linen.compact", self.ctx.facts.imports)
        if needed:
            self.imports.add((needed, None))
        decorators = [cst.Decorator(decorator=build_dotted(compact)), *apply.decorators]
        return apply.with_changes(name=cst.Name("__call__"), params=params, body=body, decorators=decorators)


def _is_field(stmt: cst.CSTNode) -> bool:
    """``name: type [= default]`` at class level."""
    return isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.AnnAssign)


def _method_with_attributes(fn: cst.FunctionDef, attrs: set[str]) -> cst.FunctionDef:
    """Other methods (former module methods) read the hyper-parameters as
    ``self.<attr>``; a parameter repeating one (legacy passed them all) goes."""
    params = fn.params
    kept = [p for p in params.params if p.name.value not in attrs]
    if len(kept) != len(params.params):
        kept = [*kept[:-1], kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)] if kept else kept
        params = params.with_changes(params=kept)
    own = {p.name.value for p in [*params.params, *params.kwonly_params]}
    names = attrs - own - _reassigned(fn.body)
    return fn.with_changes(params=params, body=fn.body.visit(SelfAttributes({a: a for a in names})))


class _Forwarding(FastTransformer):
    """In a wrapper's ``apply``, ``Callee(x, 3, *args, **kwargs)`` -> ``Callee(3,
    *self.args, **self.kwargs)(x)`` (``**kwargs`` also in the call when the
    callee has inputs a call site may forward).  LU102 leaves these calls to this rule."""

    def __init__(self, outer: _Transformer, split) -> None:
        super().__init__()
        self.outer = outer
        self.ours = {("*", split.star.name)} if split.star is not None else set()
        if split.forward is not None:
            self.ours.add(("**", split.forward.name))
        self.forward = split.forward.forward if split.forward is not None else None
        self.problem: str | None = None

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        stars = [a for a in updated.args if a.star]
        ours = {a.star: a.value.value for a in stars  # type: ignore[attr-defined]
                if isinstance(a.value, cst.Name) and (a.star, a.value.value) in self.ours}
        if not ours:
            return updated
        spec = spec_for_qual(self.outer.resolve_class(original.func), self.outer.ctx.index)
        at = next((i for i, a in enumerate(updated.args) if a.star == "*"), len(updated.args))
        if len(ours) != len(stars) or spec is None or any(
                a.keyword is None and not a.star for a in updated.args[at:]):
            self.problem = self.problem or (f"{dotted(original.func)}: an unknown module, other *args/**kwargs "
                                            "or positional arguments after *args")
            return updated
        rest = [a for a in updated.args if not a.star]
        rest = [*rest[:-1], strip_comma(rest[-1])] if rest else rest
        # the callee's changed defaults travel in the forwarded dict (a keyword given twice is an error)
        new, problem = split_call(updated.with_changes(args=rest), replace(spec, explicit={}) if "**" in ours
                                  else spec, updated.func)
        if new is None:
            self.problem = self.problem or problem
            return updated
        inner: cst.Call = new.func  # type: ignore[assignment]
        args = list(inner.args)
        if "*" in ours:
            # right after the positional attributes, which the index checked keep their Linen places
            given = spec.legacy[:sum(a.keyword is None for a in rest)]
            positional = sum(a.keyword is None for a in args)
            if positional != sum(n not in spec.inputs for n in given):
                self.problem = self.problem or f"{dotted(original.func)}: the arguments before *{ours['*']} " \
                                               "change places in Linen"
                return updated
            args.insert(positional, cst.Arg(_self_attr(ours["*"]), star="*"))
        if "**" in ours:
            args.append(cst.Arg(_self_attr(ours["**"]), star="**"))
        inner = inner.with_changes(args=_commas(args))
        call_args = list(new.args)
        if "**" in ours and self.forward is not None and self.forward.inputs:
            call_args = _commas([*call_args, cst.Arg(cst.Name(ours["**"]), star="**")])
        return new.with_changes(func=inner, args=call_args)


def _self_attr(name: str) -> cst.Attribute:
    return cst.Attribute(value=cst.Name("self"), attr=cst.Name(name))


def _commas(args: list[cst.Arg]) -> list[cst.Arg]:
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return [a.with_changes(comma=comma) for a in args[:-1]] + [
        a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in args[-1:]]
