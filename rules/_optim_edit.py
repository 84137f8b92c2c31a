"""Edits LU301 (optim_constructors) and LU302 (optim_train_state) make
around the optax expressions they write: line breaks for an expression too
long for its line, the custom transforms of ``linen_upgrade/tables/optimizers.py``
copied into the file once, and ``flax.optim`` imports nothing uses any more
dropped.
"""

from __future__ import annotations

import os

import libcst as cst

from linen_upgrade.resolve import canonical, dotted
from linen_upgrade.rule import Context, FastTransformer, FastVisitor
from linen_upgrade.rules._cst import drop_from_imports

_WIDTH = 88  # black's line length


# -- line breaks -----------------------------------------------------------------
def _newline(indent: str) -> cst.ParenthesizedWhitespace:
    return cst.ParenthesizedWhitespace(first_line=cst.TrailingWhitespace(), empty_lines=[], indent=False,
                                       last_line=cst.SimpleWhitespace(indent))


def format_expression(node: cst.BaseExpression, indent: str, column: int, depth: int = 0) -> cst.BaseExpression:
    """One argument a line, indented from the line the call starts on, where
    the expression does not fit in the line."""
    if column + len(cst.Module([]).code_for_node(node)) <= _WIDTH:
        return node
    inner, closing = _newline(indent + "    " * (depth + 1)), _newline(indent + "    " * depth)
    column = len(indent) + 4 * (depth + 1)
    if isinstance(node, cst.Call) and node.args:
        args = [a.with_changes(value=format_expression(a.value, indent, column + len(_keyword(a)), depth + 1),
                               comma=cst.Comma(whitespace_after=inner if i < len(node.args) - 1 else closing))
                for i, a in enumerate(node.args)]
        return node.with_changes(whitespace_before_args=inner, args=args)
    if isinstance(node, cst.Dict) and node.elements:
        elements = [e.with_changes(value=format_expression(e.value, indent, column + 4 + len(_key(e)), depth + 1),
                                   comma=cst.Comma(whitespace_after=inner if i < len(node.elements) - 1
                                                   else closing))
                    for i, e in enumerate(node.elements)]
        return node.with_changes(lbrace=cst.LeftCurlyBrace(whitespace_after=inner), elements=elements)
    return node


def _keyword(arg: cst.Arg) -> str:
    return f"{arg.keyword.value}=" if arg.keyword is not None else ""


def _key(element: cst.BaseDictElement) -> str:
    key = getattr(element, "key", None)
    return cst.Module([]).code_for_node(key) + ": " if key is not None else ""


# -- the custom transforms ------------------------------------------------------
def _is_header(stmt: cst.CSTNode) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    return all(isinstance(s, (cst.Import, cst.ImportFrom)) or (
        isinstance(s, cst.Expr) and isinstance(s.value, (cst.SimpleString, cst.ConcatenatedString)))
        for s in stmt.body)


def insert_helpers(module: cst.Module, helpers: list[str]) -> cst.Module:
    """The custom transforms, once each, after the leading imports."""
    defined = {s.name.value for s in module.body if isinstance(s, (cst.FunctionDef, cst.ClassDef))}
    new: list[cst.BaseStatement] = []
    for src in helpers:
        for stmt in cst.parse_module(src).body:
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and stmt.name.value not in defined:
                defined.add(stmt.name.value)
                new.append(stmt.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()]))
    if not new:
        return module
    body = list(module.body)
    at = 0
    while at < len(body) and _is_header(body[at]):
        at += 1
    if at == 0 and not module.header:  # the file's first lines: no blank lines above
        new[0] = new[0].with_changes(leading_lines=[])
    if at < len(body):
        blank = 0
        for line in body[at].leading_lines:
            if line.comment is not None:
                break
            blank += 1
        if blank < 2:
            body[at] = body[at].with_changes(
                leading_lines=[cst.EmptyLine()] * (2 - blank) + list(body[at].leading_lines))
    return module.with_changes(body=[*body[:at], *new, *body[at:]])


# -- imports nothing uses any more ---------------------------------------------
class _Uses(FastVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.dotted: set[str] = set()
        self._attrs: set[int] = set()

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self._attrs.add(id(node.attr))
        name = dotted(node)
        if name:
            self.dotted.add(name)
        return True

    def visit_Name(self, node: cst.Name) -> bool:
        if id(node) not in self._attrs:
            self.names.add(node.value)
        return False


def _is_optim(target: str) -> bool:
    target = canonical(target)
    return target == "flax.optim" or target.startswith("flax.optim.")


def drop_unused_optim_imports(module: cst.Module, ctx: Context) -> cst.Module:
    """``flax.optim`` does not exist in current Flax: an import of it that
    nothing uses any more must go, or the upgraded file cannot be imported."""
    uses = _Uses()
    module.visit(uses)
    offered = _offered(module, ctx)
    unused = {target for local, target in ctx.facts.imports.aliases.items()
              if _is_optim(target) and local not in uses.names and local not in offered}
    module = drop_from_imports(module, unused)
    optim_dotted = any(d == "flax.optim" or d.startswith("flax.optim.") for d in uses.dotted)

    class DropImports(FastTransformer):
        def on_visit(self, node: cst.CSTNode) -> bool:
            # imports are statements: no need to walk into expressions (most of a tree)
            return not isinstance(node, cst.BaseExpression) and super().on_visit(node)

        def leave_Import(self, original: cst.Import, updated: cst.Import):
            keep = []
            for orig, alias in zip(original.names, updated.names):
                name = dotted(alias.name) or ""
                local = alias.asname.name.value if alias.asname else None  # type: ignore[union-attr]
                if _is_optim(name) and local is not None and local not in uses.names \
                        and local not in offered:
                    continue
                if _is_optim(name) and local is None and not optim_dotted:
                    if "flax" in uses.names and not _other_flax_import(module, orig):
                        alias = alias.with_changes(name=cst.Name("flax"))  # it also bound `flax`
                    else:
                        continue
                keep.append(alias)
            if not keep:
                return cst.RemoveFromParent()
            keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(names=keep)

    return module.visit(DropImports())


def _offered(module: cst.Module, ctx: Context) -> set[str]:
    """Imported names the file offers other code (a re-export): listed in its
    ``__all__``, used by another file of the run through it, or imported by a
    package's ``__init__.py``.  Such an import of ``flax.optim`` stays (LU901
    marks it): dropped, ``pkg.Adam`` or ``from pkg import *`` fails with no
    finding."""
    offered: set[str] = set()
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and any(
                        isinstance(t.target, cst.Name) and t.target.value == "__all__" for t in small.targets) \
                        and isinstance(small.value, (cst.List, cst.Tuple)):
                    offered.update(e.value.evaluated_value for e in small.value.elements
                                   if isinstance(e.value, cst.SimpleString)
                                   and isinstance(e.value.evaluated_value, str))
    name = ctx.facts.module_name
    if name:
        offered.update(local for local in ctx.facts.imports.aliases
                       if ctx.index.referrers.get(f"{name}.{local}"))
    if os.path.basename(ctx.path or "") == "__init__.py":
        offered.update(ctx.facts.imports.aliases)
    return offered


def _other_flax_import(module: cst.Module, this: cst.ImportAlias) -> bool:
    """Does another ``import flax...`` statement bind ``flax``?"""
    found = False

    class Find(FastVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            # imports are statements: expressions (most of a tree) cannot hold one
            return not isinstance(node, cst.BaseExpression) and super().on_visit(node)

        def visit_ImportAlias(self, node: cst.ImportAlias) -> bool:
            nonlocal found
            name = dotted(node.name) or ""
            if node is not this and node.asname is None and name.split(".")[0] == "flax" and not _is_optim(name):
                found = True
            return False

        def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
            return False
    module.visit(Find())
    return found
