"""LU105 shared_setup: helper methods that create ``.shared()`` submodules -> ``setup()``; ``@nn.module_method`` -> a plain method.

What it does
    In a legacy module class, a method whose body is ``return
    M.shared(...)`` (or a tuple of them) and is called as ``decoder =
    self._create_decoder()`` from ``apply`` or a ``@nn.module_method``
    becomes an attribute made in ``setup()`` (``self.decoder = M(...)``),
    every use of the local becomes ``self.decoder``, and the helper goes.
    ``@nn.module_method`` is dropped (call it with ``apply(..., method=)``),
    as is the ``**kwargs`` that received the legacy hyper-parameters.
Why
    Linen shares a submodule by keeping one instance; ``setup`` makes the
    instances once, and any method may use them (the guide's AutoEncoder).
    A class may have ``setup`` and one ``@nn.compact`` method together, so
    inline submodules of ``apply`` keep working.
Naming
    The attribute takes the legacy ``name=`` when there is one, so
    checkpoint keys are unchanged; otherwise the local variable's name.
Not converted (TODO)
    Helpers taking arguments; module methods that create inline submodules.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rule import Context, Example, Rule, RuleTransformer
from linen_upgrade.rules._cst import is_docstring
from linen_upgrade.rules._modules import (CallSpec, SelfAttributes, defines_apply, has_legacy_classes,
                                          spec_for_qual)


class SharedSetup(Rule):
    id = "LU105"
    order = -1  # before LU102/LU103 split or rewrite the .shared() calls
    summary = "Helper methods creating .shared() submodules -> setup(); @nn.module_method -> plain method"
    examples = [
        Example(
            "from flax import nn\n\n\nclass AutoEncoder(nn.Module):\n"
            "    def _create_decoder(self):\n        return Decoder.shared(name='decoder')\n\n"
            "    def apply(self, x, latents=20):\n        decoder = self._create_decoder()\n"
            "        z = Encoder(x, latents, name='encoder')\n        return decoder(z)\n\n"
            "    @nn.module_method\n    def generate(self, z, **unused_kwargs):\n"
            "        decoder = self._create_decoder()\n        return nn.sigmoid(decoder(z))\n",
            "from flax import nn\n\n\nclass AutoEncoder(nn.Module):\n"
            "    def setup(self):\n        self.decoder = Decoder()\n\n"
            "    def apply(self, x, latents=20):\n"
            "        z = Encoder(x, latents, name='encoder')\n        return self.decoder(z)\n\n"
            "    def generate(self, z):\n        return nn.sigmoid(self.decoder(z))\n",
        ),
    ]

    def applies(self, ctx: Context) -> bool:
        return ("shared" in ctx.facts.attributes or any(c.module_methods for c in ctx.facts.classes)) \
            and has_legacy_classes(ctx)

    def transformer(self, ctx: Context) -> RuleTransformer:
        return _Transformer(self, ctx)


def _shared_calls(method: cst.FunctionDef) -> list[cst.Call] | None:
    """The ``M.shared(...)`` calls a helper returns, if that is all it does."""
    body = [s for s in method.body.body if not is_docstring(s)]  # type: ignore[union-attr]
    if len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine):
        return None
    ret = body[0].body[0]
    if not isinstance(ret, cst.Return) or ret.value is None:
        return None
    values = [e.value for e in ret.value.elements] if isinstance(ret.value, cst.Tuple) else [ret.value]
    calls = [v for v in values if isinstance(v, cst.Call) and isinstance(v.func, cst.Attribute)
             and v.func.attr.value == "shared"]
    return calls if len(calls) == len(values) else None


class _UseAttributes(SelfAttributes):
    """Drop ``v = self._helper()`` and read ``v`` as ``self.<attr>``."""

    def __init__(self, helpers: set[str], locals_: dict[str, str]) -> None:
        super().__init__(locals_)
        self.helpers = helpers

    def leave_SimpleStatementLine(self, original, updated):
        stmt = original.body[0]
        if (len(original.body) == 1 and isinstance(stmt, cst.Assign)
                and isinstance(stmt.value, cst.Call) and isinstance(stmt.value.func, cst.Attribute)
                and isinstance(stmt.value.func.value, cst.Name) and stmt.value.func.value.value == "self"
                and stmt.value.func.attr.value in self.helpers):
            return cst.RemoveFromParent()
        return updated


class _Transformer(RuleTransformer):
    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        if not (any(self.is_legacy_class(b.value) for b in original.bases) and defines_apply(original)):
            return updated
        methods = [s for s in updated.body.body if isinstance(s, cst.FunctionDef)]
        helpers = {m.name.value: calls for m in methods if m.name.value != "apply"
                   and (calls := _shared_calls(m)) is not None}
        module_methods = {m.name.value for m in methods if self._is_module_method(m)}
        if not helpers and not module_methods:
            return updated
        for name in helpers:
            fn = next(m for m in methods if m.name.value == name)
            p = fn.params
            if len(p.params) != 1 or p.kwonly_params or isinstance(p.star_arg, cst.Param) or p.star_kwarg:
                self.todo(f"{name} takes arguments: build its submodules in setup() by hand")
                return updated
        # which local each helper result is bound to, in apply and the module methods
        attrs: dict[tuple[str, int], str] = {}
        locals_: dict[str, str] = {}
        for m in methods:
            if m.name.value != "apply" and m.name.value not in module_methods:
                continue
            for stmt in m.body.body:  # type: ignore[union-attr]
                bound = self._helper_binding(stmt, helpers)
                if bound is None:
                    continue
                helper, targets = bound
                for i, var in enumerate(targets):
                    call = helpers[helper][i]
                    attr = attrs.setdefault((helper, i), _legacy_name(call) or var)
                    if locals_.get(var, attr) != attr:
                        self.todo(f"{var} names different shared submodules in different methods")
                        return updated
                    locals_[var] = attr
        setup_lines = []
        for (helper, i), attr in sorted(attrs.items(), key=lambda kv: kv[1]):
            call = helpers[helper][i]
            new = self._construct(call)
            if new is None:
                self.todo(f"{helper}: cannot build {attr} in setup() automatically")
                return updated
            setup_lines.append(cst.parse_statement(f"self.{attr} = x").with_changes(
                body=[cst.Assign(targets=[cst.AssignTarget(cst.parse_expression(f"self.{attr}"))], value=new)]))
        rewrite = _UseAttributes(set(helpers), locals_)
        body: list[cst.BaseStatement] = []
        for stmt in updated.body.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value in helpers:
                continue
            if isinstance(stmt, cst.FunctionDef) and (stmt.name.value == "apply"
                                                      or stmt.name.value in module_methods):
                stmt = stmt.visit(rewrite)
                if stmt.name.value in module_methods:
                    stmt = self._plain_method(stmt)
            body.append(stmt)
        if setup_lines:
            setup = cst.FunctionDef(
                name=cst.Name("setup"), params=cst.Parameters(params=[cst.Param(cst.Name("self"))]),
                body=cst.IndentedBlock(body=setup_lines))
            at = 1 if body and is_docstring(body[0]) else 0
            if at < len(body) and not body[at].leading_lines and isinstance(body[at], cst.FunctionDef):
                body[at] = body[at].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
            body.insert(at, setup)
        self.fixed(f"class {original.name.value}: shared submodules -> setup()")
        return updated.with_changes(body=updated.body.with_changes(body=body))

    def _is_module_method(self, fn: cst.FunctionDef) -> bool:
        return any(self.resolve(d.decorator) == "flax.nn.module_method" for d in fn.decorators)

    @staticmethod
    def _helper_binding(stmt, helpers) -> tuple[str, list[str]] | None:
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1):
            return None
        assign = stmt.body[0]
        value = assign.value
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
                and isinstance(value.func.value, cst.Name) and value.func.value.value == "self"
                and value.func.attr.value in helpers and not value.args):
            return None
        target = assign.targets[0].target
        names = [e.value for e in target.elements] if isinstance(target, cst.Tuple) else [target]
        if not all(isinstance(n, cst.Name) for n in names):
            return None
        return value.func.attr.value, [n.value for n in names]  # type: ignore[union-attr]

    def _construct(self, call: cst.Call) -> cst.Call | None:
        """``M.shared(features=3, name='x')`` -> ``M(features=3)`` (setup names it)."""
        target = call.func.value  # type: ignore[attr-defined]
        # only legacy modules have .shared: an unknown one keeps its keywords as they are
        spec = spec_for_qual(self.resolve_class(target), self.ctx.index) or CallSpec(
            (), frozenset(), (), (), {}, {}, {})
        args = []
        for a in call.args:
            if a.star or a.keyword is None or a.keyword.value in spec.inputs:
                return None
            if a.keyword.value != "name":
                args.append(a.with_changes(keyword=cst.Name(spec.renames.get(a.keyword.value, a.keyword.value))))
        if args:
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return cst.Call(func=target, args=args)

    def _plain_method(self, fn: cst.FunctionDef) -> cst.FunctionDef:
        decorators = [d for d in fn.decorators if self.resolve(d.decorator) != "flax.nn.module_method"]
        params = fn.params
        if isinstance(params.star_kwarg, cst.Param):
            # legacy passed the module's hyper-parameters here; Linen methods see self.<attr>
            params = params.with_changes(star_kwarg=None)
            if params.params:
                params = params.with_changes(params=[*params.params[:-1], params.params[-1].with_changes(
                    comma=cst.MaybeSentinel.DEFAULT)])
        self.fixed(f"@nn.module_method {fn.name.value} -> plain method")
        return fn.with_changes(decorators=decorators, params=params)


def _legacy_name(call: cst.Call) -> str | None:
    for a in call.args:
        if a.keyword is not None and a.keyword.value == "name" and isinstance(a.value, cst.SimpleString):
            value = a.value.evaluated_value
            if isinstance(value, str) and value.isidentifier():
                return value
    return None
