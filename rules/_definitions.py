"""The parts of LU101's (module_definitions) transformer that write the pieces
of a Linen module: typed dataclass attributes (and the forwarded
``kwargs``/``args`` ones), ``@nn.compact __call__`` with ``self.<attr>`` in
its body, other methods reading the attributes; and the shapes of legacy
classes it does not convert.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.facts import Param
from linen_upgrade.rule import Context, FastVisitor, Rule, RuleTransformer
from linen_upgrade.rules._cst import build_dotted, express, is_docstring
from linen_upgrade.rules._modules import SelfAttributes, type_of


class ModuleParts(RuleTransformer):
    """What LU101's transformer builds a class from; ``imports`` collects the
    imports the fields need (added after the walk)."""

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


def _reassigned(body: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class V(FastVisitor):
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


def is_field(stmt: cst.CSTNode) -> bool:
    """``name: type [= default]`` at class level."""
    return isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.AnnAssign)


def method_with_attributes(fn: cst.FunctionDef, attrs: set[str]) -> cst.FunctionDef:
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
