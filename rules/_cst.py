"""LibCST helpers shared by more than one rule."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import libcst as cst

from linen_upgrade.resolve import ImportMap, canonical, dotted
from linen_upgrade.rule import FastTransformer, FastVisitor
from linen_upgrade.tables.jax_renames import JAX_RENAMES

# functools.partial, and its old re-export in jax (LU401 renames it)
PARTIALS = frozenset({"functools.partial", *(k for k, v in JAX_RENAMES.items() if v == "functools.partial")})


_EQ = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))


def kwarg(name: str, value: cst.BaseExpression) -> cst.Arg:
    """``name=value``, written as Python style writes keyword arguments."""
    return cst.Arg(value=value, keyword=cst.Name(name), equal=_EQ)


def comma_list(args: list[cst.Arg]) -> list[cst.Arg]:
    """Arguments separated by ``, ``, the last without a comma."""
    out = []
    for i, a in enumerate(args):
        last = i == len(args) - 1
        out.append(a.with_changes(comma=cst.MaybeSentinel.DEFAULT if last else cst.Comma(
            whitespace_after=cst.SimpleWhitespace(" "))))
    return out


def appended(args: Sequence[cst.Arg], new: cst.Arg) -> list[cst.Arg]:
    """``args`` as written, then ``new`` on the last one's line, after a ``, ``; a trailing comma (with
    its comment and line break) moves to ``new``."""
    if not args:
        return [new]
    last = args[-1]
    space = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return [*args[:-1], last.with_changes(comma=space), new.with_changes(comma=last.comma)]


def with_keyword_only(params: cst.Parameters, name: str) -> cst.Parameters:
    """``params`` and one more keyword-only parameter ``name`` (after a bare ``*`` where there is none)."""
    return params.with_changes(
        kwonly_params=[*params.kwonly_params, cst.Param(cst.Name(name))],
        star_arg=params.star_arg if params.star_arg is not cst.MaybeSentinel.DEFAULT else cst.ParamStar())


def build_dotted(name: str) -> cst.BaseExpression:
    """``a.b.c`` as a Name/Attribute chain."""
    head, *rest = name.split(".")
    node: cst.BaseExpression = cst.Name(head)
    for part in rest:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


def express(qualname: str, imports: ImportMap) -> tuple[str, str | None]:
    """How this file can spell ``qualname``, and the module to import if it cannot yet.

    The longest prefix bound by an existing import wins (``jnp.index_exp`` for
    ``jax.numpy.index_exp`` when ``jnp`` is bound); otherwise the full dotted
    name and the top-level module that must be imported for it.
    """
    parts = qualname.split(".")
    spellable = imports.spellable()
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        for local, target in sorted(spellable.items()):
            if canonical(target) == prefix:
                return ".".join([local, *parts[cut:]]), None
    return qualname, parts[0]


def _binds(stmt: cst.BaseSmallStatement, name: str, obj: str | None) -> bool:
    if obj is None and isinstance(stmt, cst.Import):
        return any(a.asname is None and dotted(a.name) == name for a in stmt.names)
    if obj is not None and isinstance(stmt, cst.ImportFrom) and not stmt.relative and stmt.module:
        return dotted(stmt.module) == name and not isinstance(stmt.names, cst.ImportStar) and any(
            a.asname is None and dotted(a.name) == obj for a in stmt.names)
    return False


def add_import(module: cst.Module, name: str, obj: str | None = None) -> cst.Module:
    """``import name`` (or ``from name import obj``) once, after the last
    top-level import; merged into an existing ``from name import ...``.

    (LibCST's ``AddImportsVisitor`` does the same with two full matcher passes:
    half the run time of a legacy file, measured by ``bench/bench.py``.)"""
    body = list(module.body)
    last_import = -1
    for i, stmt in enumerate(body):
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if _binds(small, name, obj):
                return module
            if isinstance(small, (cst.Import, cst.ImportFrom)):
                last_import = i
    if obj is not None:
        for i, stmt in enumerate(body):
            if (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                    and isinstance(stmt.body[0], cst.ImportFrom) and not stmt.body[0].relative
                    and stmt.body[0].module is not None and dotted(stmt.body[0].module) == name
                    and isinstance(stmt.body[0].names, (list, tuple))
                    and not stmt.body[0].lpar):
                names = list(stmt.body[0].names)
                names[-1] = names[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                names.append(cst.ImportAlias(name=cst.Name(obj)))
                body[i] = stmt.with_changes(body=[stmt.body[0].with_changes(names=names)])
                return module.with_changes(body=body)
    new = cst.parse_statement(f"from {name} import {obj}\n" if obj else f"import {name}\n")
    if last_import < 0:
        # after a docstring and ``from __future__`` imports, else first
        at = 1 if body and is_docstring(body[0]) else 0
        body.insert(at, new)
    else:
        body.insert(last_import + 1, new)
    return module.with_changes(body=body)


def is_docstring(stmt: cst.CSTNode) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Expr) and isinstance(stmt.body[0].value, cst.SimpleString))


def statements(fn: cst.FunctionDef) -> list[cst.BaseStatement]:
    """The statements of ``fn``'s block after its docstring (a string, concatenated too); none for a
    body on the ``def`` line."""
    body = list(fn.body.body) if isinstance(fn.body, cst.IndentedBlock) else []
    if body and isinstance(body[0], cst.SimpleStatementLine) and isinstance(body[0].body[0], cst.Expr) \
            and isinstance(body[0].body[0].value, (cst.SimpleString, cst.ConcatenatedString)):
        return body[1:]
    return body


def is_property(fn: cst.FunctionDef) -> bool:
    """``@property`` (or ``functools.cached_property``): reading the attribute runs the getter."""
    return any(dotted(d.decorator) in ("property", "cached_property", "functools.cached_property")
               for d in fn.decorators)


def call_args_plain(call: cst.Call) -> bool:
    """No ``*args``/``**kwargs`` in the call: positions are known."""
    return all(a.star == "" for a in call.args)


def strip_comma(arg: cst.Arg) -> cst.Arg:
    return arg.with_changes(comma=cst.MaybeSentinel.DEFAULT)


def needs_parens(expr: cst.BaseExpression) -> bool:
    """Would ``expr.attr`` bind differently than ``(expr).attr``?"""
    return not isinstance(expr, (cst.Name, cst.Attribute, cst.Call, cst.Subscript,
                                 cst.Integer, cst.Float, cst.SimpleString, cst.List,
                                 cst.Tuple, cst.Dict, cst.Set)) and not expr.lpar


class _DropFromImports(FastTransformer):
    def __init__(self, quals: set[str]) -> None:
        super().__init__()
        self.quals = quals

    def on_visit(self, node: cst.CSTNode) -> bool:
        # imports are statements: no need to walk into expressions (most of a tree)
        return not isinstance(node, cst.BaseExpression) and super().on_visit(node)

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine,
                                  updated: cst.SimpleStatementLine):
        if len(updated.body) != 1 or not isinstance(updated.body[0], cst.ImportFrom):
            return updated
        stmt = updated.body[0]
        if isinstance(stmt.names, cst.ImportStar) or stmt.module is None or stmt.relative:
            return updated
        module = cst.helpers.get_full_name_for_node(stmt.module)
        keep = [a for a in stmt.names
                if not (isinstance(a.name, cst.Name) and f"{module}.{a.name.value}" in self.quals)]
        if len(keep) == len(stmt.names):
            return updated
        if not keep:
            return cst.RemoveFromParent()
        keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return updated.with_changes(body=[stmt.with_changes(names=keep)])


def drop_from_imports(module: cst.Module, quals: set[str]) -> cst.Module:
    """Remove ``from m import name`` entries whose ``m.name`` is in ``quals``."""
    return module.visit(_DropFromImports(quals))


def rename_imported_modules(node: cst.Import, new_name, fixed) -> cst.Import:
    """``import old[ as x]`` -> ``import new[ as x]`` for every alias where
    ``new_name(old, alias)`` gives a name; ``fixed`` records each change."""
    names = []
    for alias in node.names:
        old = dotted(alias.name) or ""
        new = new_name(old, alias)
        if new:
            fixed(f"import {old} -> import {new}")
            alias = alias.with_changes(name=build_dotted(new))
        names.append(alias)
    return node.with_changes(names=names)


def code(node: cst.CSTNode) -> str:
    """The source of ``node`` alone."""
    return cst.Module([]).code_for_node(node)


class _Names(FastVisitor):
    def __init__(self, after_dots: bool) -> None:
        super().__init__()
        self.after_dots = after_dots
        self.found: set[str] = set()

    def visit_Name(self, n: cst.Name) -> None:
        self.found.add(n.value)

    def visit_Attribute(self, attribute: cst.Attribute) -> bool:
        if self.after_dots:
            return True
        attribute.value.visit(self)
        return False


def names_in(node: cst.CSTNode, after_dots: bool = True) -> set[str]:
    """Every ``Name`` in ``node`` (without ``after_dots``, not the attribute names of ``a.b``).
    (One class for all calls: a class made per call cost more than its walk, 28,000 calls on the corpus.)"""
    visitor = _Names(after_dots)
    node.visit(visitor)
    return visitor.found


class _AttributeUses(FastVisitor):
    def __init__(self, receiver: str, names: Collection[str]) -> None:
        self.receiver, self.names = receiver, names
        self.found: list[cst.Attribute] = []
        self.called = 0

    def _is_use(self, node: cst.Attribute) -> bool:
        value = node.value
        return type(value) is cst.Name and value.value == self.receiver and node.attr.value in self.names

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if self._is_use(node):
            self.found.append(node)

    def visit_Call(self, node: cst.Call) -> None:
        if type(node.func) is cst.Attribute and self._is_use(node.func):
            self.called += 1


def attribute_uses(node: cst.CSTNode, receiver: str, names: Collection[str]) -> tuple[list[cst.Attribute], int]:
    """The attributes ``receiver.<one of names>`` in ``node``, in the order a walk meets them, and
    how many of them are called (``receiver.name(...)``).  (What ``libcst.matchers.findall``
    would find; that module alone costs about 0.2 s of CPU at start-up.)"""
    uses = _AttributeUses(receiver, names)
    node.visit(uses)
    return uses.found, uses.called


def spell_any(imports: ImportMap, shadowed: bool) -> tuple[str, tuple[str, str | None]]:
    """How a file writes ``typing.Any``, and the import that takes: ``Any``, unless an import of the
    file or (``shadowed``) one of its own top-level names gives ``Any`` another meaning."""
    if imports.spellable().get("Any") in (None, "typing.Any") and not shadowed:
        return "Any", ("typing", "Any")
    return "typing.Any", ("typing", None)


def named_params(params: cst.Parameters) -> list[cst.Param]:
    """The parameters a call can name: positional-only, positional and keyword-only (not ``*a``/``**k``)."""
    return [*params.posonly_params, *params.params, *params.kwonly_params]


def line_comments(stmt: cst.BaseStatement) -> list[cst.EmptyLine]:
    """The comments of a statement line that goes (above it and after it), to keep elsewhere."""
    comment = stmt.trailing_whitespace.comment if isinstance(stmt, cst.SimpleStatementLine) else None
    return [*stmt.leading_lines, *([cst.EmptyLine(comment=comment)] if comment else [])]


def binds_at_top(module: cst.Module, name: str) -> bool:
    """Does a statement of ``module``'s own scope bind ``name`` (a def, a class, an
    assignment, an import; also inside ``if``/``try``/``with``/loops at that level)?"""
    stack: list[cst.CSTNode] = list(module.body)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            if stmt.name.value == name:
                return True
            continue
        if isinstance(stmt, cst.BaseCompoundStatement):  # its blocks are the same scope
            stack.extend(s for block in _blocks(stmt) for s in block.body)
            continue
        for s in getattr(stmt, "body", ()):
            if isinstance(s, (cst.Assign, cst.AnnAssign, cst.AugAssign)) and any(
                    name in names_in(t) for t in _targets(s)):
                return True
            if isinstance(s, (cst.Import, cst.ImportFrom)) and not isinstance(s.names, cst.ImportStar) and any(
                    (dotted(a.asname.name) if a.asname else dotted(a.name).partition(".")[0]) == name
                    for a in s.names):
                return True
    return False


def _blocks(stmt: cst.BaseCompoundStatement) -> list[cst.BaseSuite]:
    """The suites of a compound statement: its body, ``else``/``elif``, handlers, ``finally``."""
    blocks = [stmt.body]
    for part in ("orelse", "finalbody"):
        extra = getattr(stmt, part, None)
        while extra is not None:  # an elif chain is an If in orelse
            blocks.append(extra.body)
            extra = getattr(extra, "orelse", None) if isinstance(extra, cst.If) else None
    blocks.extend(h.body for h in getattr(stmt, "handlers", ()))
    return [b for b in blocks if isinstance(b, cst.IndentedBlock)]


def _targets(stmt: cst.Assign | cst.AnnAssign | cst.AugAssign) -> list[cst.BaseExpression]:
    if isinstance(stmt, cst.Assign):
        return [t.target for t in stmt.targets]
    return [stmt.target]


def spell_partial(imports: ImportMap, module: cst.Module) -> tuple[str, tuple[str, str | None] | None]:
    """How a file writes ``functools.partial``, and the import it needs for that: ``partial``
    (``from functools import partial``) unless the file binds that name to something else
    (at its top or in any function: ``imports.bound_here``),
    then through its ``functools`` import, or ``functools.partial`` (``import functools``)."""
    imported = imports.spellable().get("partial")
    if "partial" in imports.bound_here:  # a name of the file (a local of some function) is not ours to take
        spelled, needed = express("functools", imports)
        return f"{spelled}.partial", (needed, None) if needed else None
    if imported in PARTIALS - {"functools.partial"}:
        return "partial", None  # ``from jax.util import partial``: LU401 makes that import functools'
    added = any(isinstance(stmt, cst.SimpleStatementLine) and any(_binds(s, "functools", "partial") for s in stmt.body)
                for stmt in module.body)  # by a rule that ran before
    if imported == "functools.partial" or added or (imported is None and not binds_at_top(module, "partial")):
        return "partial", ("functools", "partial")
    spelled, needed = express("functools.partial", imports)
    return spelled, (needed, None) if needed else None
