"""The parts of LU101's (module_definitions) transformer that write the pieces
of a Linen module: typed dataclass attributes (and the forwarded
``kwargs``/``args`` ones), ``@nn.compact __call__`` with ``self.<attr>`` in
its body, other methods reading the attributes; and the shapes of legacy
classes it does not convert.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.facts import Param
from linen_upgrade.rule import Context, FastTransformer, FastVisitor, Rule, RuleTransformer
from linen_upgrade.transformer import comments_in, target_names
from linen_upgrade.rules._cst import (build_dotted, express, is_docstring, kwarg, line_comments, named_params, names_in,
                                      spell_any)
from linen_upgrade.rules._frozen_attributes import given_container, reads_sequences
from linen_upgrade.rules._initializers import Initializers, adapter, initializer_slots
from linen_upgrade.rules._member_names import LINEN_MODULE_MEMBERS
from linen_upgrade.rules._modules import SelfAttributes, creates_module, type_of
from linen_upgrade.rules._wrapped_definitions import DefinitionCalls


class ModuleParts(RuleTransformer):
    """What LU101's transformer builds a class from; ``imports`` collects the
    imports the fields need (added after the walk)."""

    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__(rule, ctx)
        self.imports: set[tuple[str, str | None]] = set()
        # the apply parameters of the class being converted that reach a built-in's initializer
        # (``default_problem`` sets them for ``_field``): their defaults get the dtype adapter
        self._init_slots: frozenset[str] = frozenset()

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self._globals = _assigned_values(node.body)
        self._local_names = set(self._globals) | {
            s.name.value for s in node.body if isinstance(s, (cst.ClassDef, cst.FunctionDef))}
        self._classes = {s.name.value: s for s in node.body if isinstance(s, cst.ClassDef)}
        return True

    def _unhashable(self, expr: cst.BaseExpression) -> tuple[str, bool] | None:
        """What a default is that a dataclass refuses (its class has no ``__hash__``: an array, an
        instance of a mutable dataclass or of a class defining ``__eq__`` only), and whether
        ``default_factory=lambda: <it>`` gives the same value: a name bound once at the top level
        (the very object), an array made from literals (an equal one; numpy's and jax's arrays,
        which legacy made once, are not written to in place by jitted code)."""
        if isinstance(expr, cst.Name) and len(self._globals.get(expr.value, ())) == 1:
            found = self._unhashable(self._globals[expr.value][0])
            return (found[0], True) if found else None
        if not isinstance(expr, cst.Call):
            return None
        qual = self.resolve(expr.func) or ""
        if qual.rpartition(".")[0] in _ARRAY_MODULES and qual.rpartition(".")[2] in ARRAY_MAKERS \
                or qual.startswith("jax.random."):
            return "an array", all(self._literal(a.value) and not a.star for a in expr.args)
        cls = self._classes.get(expr.func.value) if isinstance(expr.func, cst.Name) and qual == "" else None
        if cls is not None and _instances_unhashable(cls, self.resolve):
            return f"an instance of {cls.name.value}", False
        return None

    def _literal(self, expr: cst.BaseExpression) -> bool:
        """A constant, a display of constants, a dtype or an array made of them."""
        if isinstance(expr, (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString)):
            return True
        if isinstance(expr, cst.Name) and expr.value in ("True", "False", "None"):
            return True
        if isinstance(expr, cst.UnaryOperation):
            return self._literal(expr.expression)
        if isinstance(expr, (cst.List, cst.Tuple)):
            return all(not isinstance(e, cst.StarredElement) and self._literal(e.value) for e in expr.elements)
        if isinstance(expr, cst.Call):
            found = self._unhashable(expr)
            return bool(found and found[0] == "an array" and found[1])
        return (self.resolve(expr) or "").rpartition(".")[0] in _ARRAY_MODULES  # jnp.float32

    def default_problem(self, apply: cst.FunctionDef, attrs, body: list, qual: str | None = None,
                        params: tuple = ()) -> str | None:
        """A mutable default (list, dict, set) becomes ``field(default_factory=lambda: ...)``;
        the lambda cannot see names of the class body, which the legacy default could.
        Linen hands list attributes to the methods as tuples and dicts as FrozenDicts:
        a body that does more than read one (``widths + [2]``, ``append``, ``==``) is left,
        also where the list or dict comes from a call site of the run (``given_container``)."""
        from linen_upgrade.rules._usage_reads import argument_read  # (which reads _READERS here)

        class_values = _assigned_values(body)
        methods = [s for s in body if isinstance(s, cst.FunctionDef)]
        above = body[:next((i for i, s in enumerate(body) if s is apply), len(body))]  # what the defaults see
        self._init_slots = initializer_slots((), self.ctx.index.legacy_module(qual)) if qual else frozenset()
        for param in named_params(apply.params):
            name = param.name.value
            given = given_container(self.ctx.index, qual, params, name)
            if given and name in {a.name for a in attrs} and not all(
                    _only_read(m, name, lambda f: creates_module(self, f) or reads_sequences(self.resolve(f)),
                               lambda call, arg, rebound: argument_read(
                                   self.ctx.index, self.ctx.path, self.ctx.facts.module_name,
                                   self.resolve(call.func), call, arg, rebound))
                    for m in methods):
                return (f"a call site gives {name} a {given}, which a Linen module sees as a "
                        f"{'tuple' if given == 'list' else 'FrozenDict'}, and the body does more than read it: "
                        "convert by hand")
            if param.default is None or name not in {a.name for a in attrs}:
                continue
            unhashable = self._unhashable(param.default)
            if unhashable and not unhashable[1]:
                return (f"the default of {name} is {unhashable[0]}, which a Linen module's dataclass field "
                        "refuses as its default (ValueError: mutable default): make it a field with "
                        "default_factory by hand, keeping one value for all calls as legacy did")
            kind = _mutable_kind(param.default, {**self._globals, **class_values}) or (
                unhashable[0] if unhashable else None)
            read = names_in(param.default, after_dots=False) & set(class_bound(above))
            if kind and read:
                return (f"the default of {name} is a {kind} that reads names of the class body: make it "
                        "a field with default_factory by hand")
            if read:  # legacy evaluated the default in the class body; the field stands above it
                return (f"the default of {name} reads {', '.join(sorted(read))} of the class body, which the "
                        f"field {name} (written above the class body) cannot see (NameError, or a global of that "
                        "name): write the field below it, or the value itself, by hand")
            if kind in ("list", "dict") and not all(_only_read(m, name, lambda f: creates_module(self, f)) for m in methods):
                return (f"{name} defaults to a {kind}, which a Linen module sees as a "
                        f"{'tuple' if kind == 'list' else 'FrozenDict'}, and the body does more than read it: "
                        "convert by hand")
        return None

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
        problem = _shadowed_member(body) or self._class_field_problem(cls, body)
        if problem:
            return problem
        stored = stored_on_self(body)
        if stored:
            # legacy apply ran on a fresh instance that took any attribute; a Linen module is
            # frozen outside setup() and raises SetAttributeFrozenModuleError at the assignment
            return (f"the methods store {stored}, and a Linen module is frozen outside setup(): keep "
                    "the value in a local and pass it to the methods that read it, build shared "
                    "submodules in setup(), and re-run")
        return None

    def _class_field_problem(self, cls: cst.ClassDef, body: list) -> str | None:
        """Class attributes written with an annotation (``gain: float = 2.0``): plain class
        attributes in legacy, dataclass fields in Linen.  A field refuses a mutable default, and
        a subclass setting the name without an annotation (``gain = 5.0``) no longer changes
        what ``self.gain`` reads: the instance's field wins over the class attribute."""
        fields = _annotated_values(body)
        subclasses = [c for c in self._classes.values() if c is not cls and any(
            isinstance(b.value, cst.Name) and b.value.value == cls.name.value for b in c.bases)]
        for owner, values in [(cls, fields), *((c, _annotated_values(list(c.body.body))) for c in subclasses)]:
            for name, value in values.items():
                kind = _mutable_kind(value, self._globals) or (self._unhashable(value) or ("", False))[0]
                if kind:
                    return (f"the class attribute {name} of {owner.name.value} (annotated) becomes a dataclass "
                            f"field in Linen, which refuses {kind if kind.startswith('an') else 'a ' + kind} as "
                            "its default (ValueError: mutable "
                            f"default): annotate it ClassVar[...] (a class attribute, as in legacy) or make it a "
                            "field with default_factory by hand, and re-run")
        if not fields or self.resolve_class(cls.name) not in self.ctx.index.subclassed:
            return None
        for sub in subclasses:
            for name, stmt in class_bound(list(sub.body.body)).items():
                if name in fields and not isinstance(stmt, cst.AnnAssign):
                    return (f"{sub.name.value} sets {name} without an annotation: in Linen the field {name} of "
                            f"{cls.name.value} keeps its default there (the instance's field hides the class "
                            f"attribute): annotate it in {sub.name.value}, or {name} ClassVar[...] here, and re-run")
        if not subclasses:
            return (f"classes of other files derive from {cls.name.value}, whose annotated class attributes "
                    f"({', '.join(fields)}) become dataclass fields in Linen: a subclass setting one without an "
                    f"annotation no longer changes it; annotate them ClassVar[...] (class attributes, as in "
                    "legacy) by hand, and re-run")
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
            annotation, needed = spell_any(self.ctx.facts.imports, "Any" in self._local_names)
            self.imports.add(needed)
        param = next((p for p in named_params(apply.params) if p.name.value == attr.name), None) \
            if apply is not None else None
        value = param.default if param is not None else None
        if value is not None and attr.name in self._init_slots and Initializers(self.ctx).needs_adapter(value):
            value = adapter(value)  # Linen calls a field's initializer with a dtype too
        elif value is not None and (_mutable_kind(value, self._globals) or self._unhashable(value)):
            # a dataclass refuses a mutable default; the factory keeps its type (code may
            # append to it or add lists), evaluated when the module is made
            field, needed = express("dataclasses.field", self.ctx.facts.imports)
            if needed:
                self.imports.add((needed, None))
            value = cst.Call(func=build_dotted(field), args=[kwarg("default_factory", cst.Lambda(
                params=cst.Parameters(), body=value))])
        # a comment written after the parameter (``# pylint: disable=...``) stays with it
        comments = " ".join(comments_in(param.comma)) if param is not None else ""
        return cst.SimpleStatementLine(body=[cst.AnnAssign(
            target=cst.Name(attr.name),
            annotation=(param.annotation if param is not None else None)
            or cst.Annotation(cst.parse_expression(annotation)),
            value=value,
            equal=cst.AssignEqual() if value is not None else cst.MaybeSentinel.DEFAULT)],
            trailing_whitespace=cst.TrailingWhitespace(whitespace=cst.SimpleWhitespace("  "),
                                                       comment=cst.Comment(comments))
            if comments else cst.TrailingWhitespace())

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
        reassigned = reassigned_names(apply.body) & attrs
        body = without_deletes(apply.body, attrs - reassigned).visit(SelfAttributes({a: a for a in attrs - reassigned}))
        if reassigned:
            copies = [cst.parse_statement(f"{n} = self.{n}") for n in sorted(reassigned)]
            stmts = list(body.body)  # type: ignore[attr-defined]
            at = 1 if stmts and is_docstring(stmts[0]) else 0
            body = body.with_changes(body=[*stmts[:at], *copies, *stmts[at:]])
        if split.definition:
            body = body.visit(DefinitionCalls(split.definition, self.ctx.config.rng_kind if split.definition_rngs
                                              else None))
        old = apply.params
        keep = [p for p in [*old.posonly_params, *old.params] if p.name.value == "self" or p.name.value in inputs]
        kwonly = [p for p in old.kwonly_params if p.name.value in inputs]
        params = old.with_changes(
            posonly_params=[], posonly_ind=cst.MaybeSentinel.DEFAULT,
            # a comma followed by a comment keeps its line (``x,  # the image``)
            params=[p if comments_in(p.comma) and i < len(keep) - 1
                    else p.with_changes(comma=cst.MaybeSentinel.DEFAULT) for i, p in enumerate(keep)],
            kwonly_params=[p.with_changes(comma=cst.MaybeSentinel.DEFAULT) for p in kwonly],
            # a definition's inputs pass through ``*args``/``**kwargs`` (``_wrapped_definitions``)
            # (a bare ``*`` only before keyword-only parameters that stay)
            star_arg=old.star_arg if kwonly or split.definition and isinstance(old.star_arg, cst.Param)
            else cst.MaybeSentinel.DEFAULT,
            # forwarded inputs (``train=``) still arrive as keywords
            star_kwarg=old.star_kwarg if split.definition or (split.forward is not None and split.forward.forward.inputs)
            else None)
        # through the file's flax.nn alias (LU100 turns it into flax.linen), else directly
        compact, needed = express("flax.nn.compact", self.ctx.facts.imports)
        if needed:
            compact, needed = express("flax.linen.compact", self.ctx.facts.imports)
        if needed:
            self.imports.add((needed, None))
        decorators = [cst.Decorator(decorator=build_dotted(compact)), *apply.decorators]
        return apply.with_changes(name=cst.Name("__call__"), params=params, body=body, decorators=decorators)


def reassigned_names(body: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class V(FastVisitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            found.update(n.value for n in target_names(node.target))

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            found.update(n.value for n in target_names(node.target))

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            found.update(n.value for n in target_names(node.target))

        def visit_For(self, node: cst.For) -> None:
            found.update(n.value for n in target_names(node.target))

        def visit_AsName(self, node: cst.AsName) -> None:
            found.update(n.value for n in target_names(node.name))

        def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
            found.update(n.value for n in target_names(node.target))

        def visit_CompFor(self, node: cst.CompFor) -> None:
            # a comprehension's own variable (``for features in (1, 3)``): not the attribute
            found.update(n.value for n in target_names(node.target))

        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            found.add(node.name.value)

        def visit_ClassDef(self, node: cst.ClassDef) -> None:
            found.add(node.name.value)

    body.visit(V())
    return found


def self_uses(fn: cst.FunctionDef, name: str) -> list[cst.BaseExpression]:
    """Each ``self.<name>`` in ``fn``: the call when it is called, else the attribute."""
    uses: list[cst.BaseExpression] = []

    class V(FastVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            if _is_self_attr(node.func, name):
                uses.append(node)

        def visit_Attribute(self, node: cst.Attribute) -> None:
            if _is_self_attr(node, name) and not any(isinstance(u, cst.Call) and u.func is node for u in uses):
                uses.append(node)
    fn.body.visit(V())
    return uses


def _is_self_attr(node: cst.CSTNode, name: str) -> bool:
    return (isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name)
            and node.value.value == "self" and node.attr.value == name)


_KINDS = {cst.List: "list", cst.ListComp: "list", cst.Dict: "dict", cst.DictComp: "dict",
          cst.Set: "set", cst.SetComp: "set"}


def _mutable_kind(expr: cst.BaseExpression, bound: dict[str, list[cst.BaseExpression]]) -> str | None:
    """"list", "dict" or "set" for a display or constructor call of one (or a name ``bound`` to one)."""
    if type(expr) in _KINDS:
        return _KINDS[type(expr)]
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name):
        return {"list": "list", "dict": "dict", "set": "set", "bytearray": "list"}.get(expr.func.value)
    if isinstance(expr, cst.Name):
        return next((k for v in bound.get(expr.value, ()) if (k := _mutable_kind(v, {}))), None)
    return None


# calls of these (numpy's, jax.numpy's; and all of jax.random) give arrays, which a dataclass refuses
# as a field default
_ARRAY_MODULES = frozenset({"numpy", "jax.numpy"})
ARRAY_MAKERS = frozenset({"array", "asarray", "ones", "zeros", "full", "empty", "eye", "identity", "arange",
                          "linspace", "ones_like", "zeros_like", "full_like", "stack", "concatenate", "diag"})


def _instances_unhashable(cls: cst.ClassDef, resolve) -> bool:
    """Is an instance of ``cls`` (no base class) surely unhashable: a ``@dataclasses.dataclass``
    neither frozen nor eq=False nor unsafe_hash, or ``__eq__`` without ``__hash__``?"""
    methods = {s.name.value for s in cls.body.body if isinstance(s, cst.FunctionDef)}
    if "__hash__" in methods or cls.bases:
        return False
    for d in cls.decorators:
        call = d.decorator if isinstance(d.decorator, cst.Call) else None
        if resolve(call.func if call else d.decorator) == "dataclasses.dataclass":
            flags = {a.keyword.value: a.value for a in (call.args if call else ()) if a.keyword is not None}
            return all(isinstance(v, cst.Name) and v.value == want for k, want in
                       (("frozen", "False"), ("eq", "True"), ("unsafe_hash", "False")) if (v := flags.get(k)))
    return "__eq__" in methods


# what a tuple does as a list does (and a FrozenDict as a dict): read it
_READERS = frozenset({"len", "enumerate", "zip", "sorted", "reversed", "sum", "max", "min", "list", "tuple",
                      "any", "all", "iter", "dict", "set", "frozenset"})
_READ_METHODS = frozenset({"index", "count", "get", "items", "keys", "values"})


def _only_read(fn: cst.FunctionDef, name: str, is_module, reads_argument=None) -> bool:
    """Does ``fn`` only iterate, index, measure, test membership in or pass on to
    submodules the value of ``name`` (a list or dict), or to a function that
    ``reads_argument(call, arg, rebound)`` says reads it (``rebound``: the call's
    result is assigned to ``name`` again)?"""
    read: set[int] = set()
    rebinding: set[int] = set()
    loads: list[cst.Name] = []
    skip: set[int] = set()
    ok = True

    def mark(node: cst.CSTNode) -> None:
        if isinstance(node, cst.Name) and node.value == name:
            read.add(id(node))

    class V(FastVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            if node.value == name and id(node) not in skip:
                loads.append(node)

        def visit_Attribute(self, node: cst.Attribute) -> None:
            skip.add(id(node.attr))

        def visit_Param(self, node: cst.Param) -> None:
            skip.add(id(node.name))

        def visit_Arg(self, node: cst.Arg) -> None:
            if node.keyword is not None:
                skip.add(id(node.keyword))

        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            nonlocal ok
            if isinstance(node.target, cst.Subscript) and isinstance(node.target.value, cst.Name) \
                    and node.target.value.value == name:
                ok = False  # item assignment
            skip.update(id(n) for n in target_names(node.target))

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            nonlocal ok
            if name in {n.value for n in target_names(node.target)} or (
                    isinstance(node.target, cst.Subscript) and isinstance(node.target.value, cst.Name)
                    and node.target.value.value == name):
                ok = False  # ``+=`` extends a list in place, makes a new tuple

        def visit_Del(self, node: cst.Del) -> None:
            nonlocal ok
            ok = False

        def visit_For(self, node: cst.For) -> None:
            mark(node.iter)
            skip.update(id(n) for n in target_names(node.target))

        def visit_CompFor(self, node: cst.CompFor) -> None:
            mark(node.iter)
            skip.update(id(n) for n in target_names(node.target))

        def visit_Subscript(self, node: cst.Subscript) -> None:
            mark(node.value)

        def visit_Comparison(self, node: cst.Comparison) -> None:
            for c in node.comparisons:
                if isinstance(c.operator, (cst.In, cst.NotIn)):
                    mark(c.comparator)

        def visit_Assign(self, node: cst.Assign) -> None:
            if all(isinstance(t.target, (cst.Tuple, cst.List)) for t in node.targets):
                mark(node.value)  # unpacked
            if [t.target.value for t in node.targets if isinstance(t.target, cst.Name)] == [name] \
                    and len(node.targets) == 1:
                rebinding.add(id(node.value))  # name = f(name)

        def visit_Call(self, node: cst.Call) -> None:
            f = node.func
            if isinstance(f, cst.Attribute) and f.attr.value in _READ_METHODS:
                mark(f.value)
            elif (isinstance(f, cst.Name) and f.value in _READERS) or is_module(f) or (
                    isinstance(f, cst.Attribute) and f.attr.value in ("partial", "shared")):
                for a in node.args:
                    mark(a.value)
            elif reads_argument is not None:
                for a in node.args:
                    if isinstance(a.value, cst.Name) and a.value.value == name \
                            and reads_argument(node, a, id(node) in rebinding):
                        mark(a.value)

    fn.body.visit(V())
    return ok and all(id(n) in read for n in loads)


def self_stores(node: cst.CSTNode) -> list[str]:
    """The ``self.<name>`` that ``node`` assigns (``self.n = ...``, ``self.k += 1``, in a tuple target),
    in order; a class defined inside has a ``self`` of its own."""
    targets: list[str] = []

    class Stores(FastVisitor):
        def _target(self, target: cst.BaseExpression) -> None:
            if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) \
                    and target.value.value == "self":
                targets.append(target.attr.value)
            elif isinstance(target, (cst.Tuple, cst.List)):
                for el in target.elements:
                    self._target(el.value)

        def visit_AssignTarget(self, n: cst.AssignTarget) -> None:
            self._target(n.target)

        def visit_AugAssign(self, n: cst.AugAssign) -> None:
            self._target(n.target)

        def visit_AnnAssign(self, n: cst.AnnAssign) -> None:
            self._target(n.target)

        def visit_ClassDef(self, n: cst.ClassDef) -> bool:
            return False

    node.visit(Stores())
    return targets


def stored_on_self(body: list) -> str | None:
    """``self.<name>`` the methods of a class body other than ``setup`` assign
    (``self.n = x.shape[0]``, ``self.rnn = RNN.shared(...)``, ``self.k += 1``), quoted;
    ``None`` when none does."""
    targets = [f"self.{name}" for s in body  # (LU105 builds shared submodules in setup)
               if isinstance(s, cst.FunctionDef) and s.name.value != "setup" for name in self_stores(s)]
    return ", ".join(dict.fromkeys(targets)) or None


def _assigned_values(body) -> dict[str, list[cst.BaseExpression]]:
    """``name = value`` statements of a module or class body: name -> its values."""
    values: dict[str, list[cst.BaseExpression]] = {}
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for a in stmt.body:
                if isinstance(a, cst.Assign):
                    for t in a.targets:
                        if isinstance(t.target, cst.Name):
                            values.setdefault(t.target.value, []).append(a.value)
    return values


def name_clash(body: list[cst.BaseStatement], attrs: set[str]) -> str | None:
    """A method named like an attribute (an ``apply`` parameter, or the ``decode``
    LU102 adds for a cache) would replace the field's default in the dataclass."""
    fields = attrs | {s.body[0].target.value for s in body  # type: ignore[attr-defined]
                      if is_field(s) and isinstance(s.body[0].target, cst.Name)}  # type: ignore[attr-defined]
    for s in body:
        if isinstance(s, cst.FunctionDef) and s.name.value != "apply" and s.name.value in fields:
            return f"the method {s.name.value} and the attribute {s.name.value} share a name: rename the method"
    for name, stmt in class_bound(body).items():
        if name in attrs and not isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            # legacy kept them apart (apply read its parameter, self.<name> the class attribute)
            return (f"the class attribute {name} and the apply parameter {name} share a name, and Linen makes "
                    f"both the field {name} (the class attribute becomes its default): rename one")
    return None


def class_bound(body: list) -> dict[str, cst.CSTNode]:
    """The names a class body binds at its own level (``name = v``, ``name: T = v``, ``def name``,
    ``class name``) -> the last statement binding each."""
    bound: dict[str, cst.CSTNode] = {}
    for stmt in body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            bound[stmt.name.value] = stmt
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else \
                    [small.target] if isinstance(small, (cst.AnnAssign, cst.AugAssign)) else []
                for t in targets:
                    for n in target_names(t):
                        bound[n.value] = small
    return bound


def _annotated_values(body: list) -> dict[str, cst.BaseExpression]:
    """``name: T = value`` at class level (not ``ClassVar``): the dataclass fields Linen makes of them."""
    return {small.target.value: small.value for stmt in body if isinstance(stmt, cst.SimpleStatementLine)
            for small in stmt.body if isinstance(small, cst.AnnAssign) and small.value is not None
            and isinstance(small.target, cst.Name) and "ClassVar" not in names_in(small.annotation)}


def _shadowed_member(body: list) -> str | None:
    """A method or class attribute named like a member of ``flax.linen.Module`` (``setup``, ``clone``,
    ``init``, ``variables``, ``name``): Linen calls or reads its own under that name.  A ``setup``
    taking only ``self`` that the class never calls is Linen's own (LU105 writes it)."""
    for name, stmt in class_bound(body).items():
        if name == "apply" or name not in LINEN_MODULE_MEMBERS:
            continue
        if name == "setup" and isinstance(stmt, cst.FunctionDef) and len(named_params(stmt.params)) == 1 \
                and not isinstance(stmt.params.star_arg, cst.Param) and stmt.params.star_kwarg is None and not any(
                    self_uses(s, "setup") for s in body if isinstance(s, cst.FunctionDef)):
            continue
        return (f"the class defines {name}, a name flax.linen.Module uses itself (Linen calls or reads its own "
                f"Module.{name}): rename it and its uses by hand, and re-run")
    return None


def is_field(stmt: cst.CSTNode) -> bool:
    """``name: type [= default]`` at class level."""
    return isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.AnnAssign)


def class_level(fn: cst.FunctionDef) -> bool:
    """A ``@classmethod`` or ``@staticmethod``: no instance, so no ``self.<attr>`` to read
    (legacy passed it no hyper-parameters either: only module methods got them)."""
    return any(isinstance(d.decorator, cst.Name) and d.decorator.value in ("classmethod", "staticmethod")
               for d in fn.decorators)


def drop_repeated_arguments(body: list[cst.BaseStatement], attrs: set[str]
                            ) -> tuple[list[cst.BaseStatement], str | None]:
    """The calls ``self.m(...)`` in the class lose the arguments of the parameters
    ``method_with_attributes`` drops from ``m``: each must pass that very
    hyper-parameter (``self.m(x, width)``), which the method then reads as
    ``self.width``; any other call is a problem (the signature and its calls
    change together or not at all)."""
    methods = [s for s in body if isinstance(s, cst.FunctionDef)]
    new_calls: dict[int, cst.Call] = {}
    for m in methods:
        if m.name.value in ("apply", "setup") or class_level(m):
            continue
        params = [p.name.value for p in m.params.params[1:]]  # after self
        dropped = {p for p in params if p in attrs}
        if not dropped:
            continue
        for caller in methods:
            changed = reassigned_names(caller.body)
            for use in self_uses(caller, m.name.value):
                if not isinstance(use, cst.Call):
                    return body, f"self.{m.name.value} is used other than called, and loses its parameters " \
                                 f"{', '.join(sorted(dropped))} (now attributes)"
                kept, passed = [], set()
                for i, a in enumerate(use.args):
                    key = a.keyword.value if a.keyword is not None else (params[i] if i < len(params) else None)
                    if a.star or key not in dropped:
                        kept.append(a)
                    elif isinstance(a.value, cst.Name) and a.value.value == key and key not in changed:
                        passed.add(key)
                    else:
                        return body, (f"{caller.name.value} passes {m.name.value} a value for {key} other "
                                      f"than the attribute {key}: rename the parameter")
                if passed != dropped or any(a.star for a in use.args):
                    return body, (f"{caller.name.value} calls {m.name.value} without passing "
                                  f"{', '.join(sorted(dropped - passed)) or 'its parameters by name'}, "
                                  "which become attributes: pass them or rename the parameters")
                if kept:
                    kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                new_calls[id(use)] = use.with_changes(args=kept)
    return [replace_calls(s, new_calls) if isinstance(s, cst.FunctionDef) else s for s in body], None


def replace_calls(node: cst.CSTNode, by_id: dict[int, cst.BaseExpression]) -> cst.CSTNode:
    """``node`` with each call whose id is in ``by_id`` replaced by its value."""
    if not by_id:
        return node

    class Replace(FastTransformer):
        def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
            return by_id.get(id(original), updated)
    return node.visit(Replace())


def method_with_attributes(fn: cst.FunctionDef, attrs: set[str], every_attribute: bool = False) -> cst.FunctionDef:
    """Other methods (former module methods) read the hyper-parameters as
    ``self.<attr>``; a parameter repeating one (legacy passed them all) goes,
    and a body rebinding it starts from a local copy (``hidden = self.hidden``).
    ``every_attribute``: the body sees every attribute so (setup() repeating
    apply's statements)."""
    params = fn.params
    kept = [p for p in params.params if p.name.value not in attrs]
    dropped = attrs if every_attribute else {p.name.value for p in params.params} & attrs
    if len(kept) != len(params.params):
        kept = [*kept[:-1], kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)] if kept else kept
        params = params.with_changes(params=kept)
    own = {p.name.value for p in [*params.params, *params.kwonly_params]}
    reassigned = reassigned_names(fn.body)
    names = attrs - own - reassigned
    body = without_deletes(fn.body, names).visit(SelfAttributes({a: a for a in names}))
    copies = [cst.parse_statement(f"{n} = self.{n}") for n in sorted(dropped & reassigned - own)]
    if copies:
        stmts = list(body.body)  # type: ignore[attr-defined]
        at = 1 if stmts and is_docstring(stmts[0]) else 0
        body = body.with_changes(body=[*stmts[:at], *copies, *stmts[at:]])
    return fn.with_changes(params=params, body=body)


def without_deletes(body: cst.BaseSuite, names: set[str]) -> cst.BaseSuite:
    """``body`` without ``del`` of the hyper-parameters that become attributes
    (``del unused``: legacy freed a local, ``del self.unused`` would raise on a
    Linen module); a ``del`` left with no target goes."""
    if not names:
        return body

    class Strip(FastTransformer):
        def leave_Del(self, original: cst.Del, updated: cst.Del):
            target = updated.target
            elements = [e.value for e in target.elements] if isinstance(target, cst.Tuple) else [target]
            kept = [e for e in elements if not (isinstance(e, cst.Name) and e.value in names)]
            if len(kept) == len(elements):
                return updated
            if not kept:
                return cst.RemoveFromParent()
            if len(kept) == 1:
                return updated.with_changes(target=kept[0])
            return updated.with_changes(target=cst.Tuple(
                [cst.Element(e) for e in kept], lpar=target.lpar, rpar=target.rpar))  # type: ignore[union-attr]

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False  # a nested function's names are its own

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
            # the comments of a line that went (``del edge_x  # Unused.``) go above the next statement
            kept, carried = [], []
            gone = len(original.body) - len(updated.body)
            statements = iter(updated.body)
            for stmt in original.body:
                if gone and _only_deletes(stmt, names):
                    gone -= 1
                    carried += line_comments(stmt)
                    continue
                new = next(statements)
                kept.append(new.with_changes(leading_lines=[*carried, *new.leading_lines]) if carried else new)
                carried = []
            if not kept:  # a block holding only such a del
                return updated.with_changes(body=[cst.SimpleStatementLine([cst.Pass()], leading_lines=carried)])
            return updated.with_changes(body=kept, footer=[*carried, *updated.footer])
    return body.visit(Strip())


def _only_deletes(stmt: cst.BaseStatement, names: set[str]) -> bool:
    """A line of ``del`` statements of ``names`` only (``without_deletes`` removes it whole)."""
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    for small in stmt.body:
        if not isinstance(small, cst.Del):
            return False
        target = small.target
        elements = [e.value for e in target.elements] if isinstance(target, cst.Tuple) else [target]
        if not all(isinstance(e, cst.Name) and e.value in names for e in elements):
            return False
    return True
