"""The contract between the engine and a rule.

A rule is a class in ``rules/<slug>.py`` with a stable ``id``, a one-line
``summary``, inline ``examples`` (which are also tests) and a ``transformer``:
a LibCST transformer derived from :class:`RuleTransformer`.  The engine only
parses a file when some rule's :meth:`Rule.applies` says it may have work, and
only then builds the transformer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Union

import libcst as cst

from linen_upgrade.analysis import scopes
from linen_upgrade.resolve import dotted

if TYPE_CHECKING:
    from linen_upgrade.config import Config
    from linen_upgrade.facts import FileFacts
    from linen_upgrade.index import ProjectIndex

TODO_PREFIX = "# TODO(linen-upgrade):"
TODO_RE = re.compile(r"#\s*TODO\(linen-upgrade\):\s*(?P<rule>LU\d{3})\s+(?P<msg>.*)$")
SKIP_MARK = "linen-upgrade: skip"
SKIP_FILE_MARK = "linen-upgrade: skip-file"
# a comment above the statement a fix changed (k: its index in Context.fixed), gone from the output
FIX_MARK = "# <linen-upgrade-fix {}>"
_WHITESPACE = re.compile(r"\s+")


def todo_line(rule_id: str, message: str) -> str:
    """``# TODO(linen-upgrade): ID message`` on one line: a message quoting
    multi-line code (``jax.pmap(\\n lambda ...)``) would otherwise make a
    comment node LibCST refuses, and the whole file would stay legacy."""
    return _WHITESPACE.sub(" ", f"{TODO_PREFIX} {rule_id} {message}").strip()


def quote(code: str, limit: int = 80) -> str:
    """Code quoted in a message: one line (``f(\\n  a)`` -> ``f(a)``), cut at ``limit`` characters."""
    code = re.sub(r"([(\[{]) | ([)\]}])", r"\1\2", _WHITESPACE.sub(" ", code).strip())
    return code if len(code) <= limit else code[:limit - 3].rstrip() + "..."


@dataclass(frozen=True)
class Example:
    """``before`` must become ``after``; ``after`` must stay as it is."""

    before: str
    after: str
    name: str = ""


@dataclass(frozen=True)
class NoChange:
    """Code the rule must leave byte-identical."""

    code: str
    name: str = ""


RuleExample = Union[Example, NoChange]


@dataclass
class Context:
    """What a rule may read about the file and the run."""

    path: str
    facts: FileFacts
    index: ProjectIndex
    config: Config
    # filled by transformers: (rule id, message) of every rewrite made
    fixed: list[tuple[str, str]] = field(default_factory=list)
    # mark -> TODO lines a rule wrote that a later rule withdraws where it converts what they
    # are about (LU301's "feeds flax.optim code" once LU302 converts that code): rules talk
    # through these marks, never by matching each other's comment text
    withdrawable: dict[str, set[str]] = field(default_factory=dict)


class Rule:
    id: ClassVar[str]
    name: ClassVar[str]  # the file stem, set by the registry
    summary: ClassVar[str]
    examples: ClassVar[list[RuleExample]] = []
    # run order: converting rules (0), then report-only rules (90), then the
    # import rewrite (100) -- every rule resolves names through the legacy
    # imports, so those change last
    order: ClassVar[int] = 0

    def applies(self, ctx: Context) -> bool:
        """Cheap test on the file's facts: may this rule change anything?"""
        raise NotImplementedError

    def transformer(self, ctx: Context) -> RuleTransformer:
        raise NotImplementedError

    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        return module.visit(self.transformer(ctx))


# whitespace and punctuation: over half of all nodes, never what a rule
# rewrites; a pass that has no hook for them leaves them as they are
_TOKENS = frozenset({
    cst.SimpleWhitespace, cst.ParenthesizedWhitespace, cst.TrailingWhitespace, cst.Newline,
    cst.EmptyLine, cst.Comment, cst.Comma, cst.Dot, cst.Colon, cst.Semicolon, cst.AssignEqual,
    cst.LeftParen, cst.RightParen, cst.LeftSquareBracket, cst.RightSquareBracket,
    cst.LeftCurlyBrace, cst.RightCurlyBrace, cst.ImportStar,
    # the operators (no issubclass on LibCST's ABCs: that costs 14 ms of start-up)
    *(t for t in vars(cst).values() if isinstance(t, type) and t.__module__ == "libcst._nodes.op"),
})


def _own_hook(cls: type, name: str) -> Any:
    """``cls.<name>`` unless it is missing or one of LibCST's typed no-op stubs."""
    fn = getattr(cls, name, None)
    return None if fn is None or getattr(fn, "__module__", "").startswith("libcst") else fn


class _Dispatch:
    """LibCST looks ``visit_<Type>``/``leave_<Type>`` up by name for every node,
    and ``visit_<Type>_<attr>`` for every child attribute; a rule walks whole
    trees several times, so the lookups are cached per class, the attribute
    hooks (which none of our visitors define) are skipped, and so are the
    children of whitespace and punctuation nodes (``_TOKENS``) in a class
    with no hook for any of them: LibCST would rebuild each of those nodes."""

    _table: dict[type, tuple[Any, Any, bool]]
    _tokens_plain: bool

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._table = {}
        assert not any(re.match(r"(visit|leave)_[A-Z]\w*_[a-z]", n) for n in vars(cls)), \
            f"{cls.__name__}: attribute hooks are not dispatched"
        cls._tokens_plain = not any(_own_hook(cls, f"{hook}_{t.__name__}")
                                    for t in _TOKENS for hook in ("visit", "leave"))

    def _entry(self, kind: type) -> tuple[Any, Any, bool]:
        try:
            return self._table[kind]
        except KeyError:
            cls = type(self)
            entry = (_own_hook(cls, f"visit_{kind.__name__}"), _own_hook(cls, f"leave_{kind.__name__}"),
                     kind in _TOKENS and cls._tokens_plain)
            self._table[kind] = entry
            return entry

    def _visit(self, node: cst.CSTNode) -> bool:
        visit, _, plain = self._entry(type(node))
        if plain:
            return False
        return visit is None or visit(self, node) is not False

    def _leave_func(self, node: cst.CSTNode) -> Any:
        return self._entry(type(node))[1]

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


class FastVisitor(_Dispatch, cst.CSTVisitor):
    """``cst.CSTVisitor`` with cached dispatch (see ``_Dispatch``)."""

    def on_visit(self, node: cst.CSTNode) -> bool:
        return self._visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        leave = self._leave_func(original_node)
        if leave is not None:
            leave(self, original_node)


class FastTransformer(_Dispatch, cst.CSTTransformer):
    """``cst.CSTTransformer`` with cached dispatch (see ``_Dispatch``)."""

    def on_visit(self, node: cst.CSTNode) -> bool:
        return self._visit(node)

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):  # type: ignore[override]
        return self._leave(original_node, updated_node)

    def _leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):
        leave = self._leave_func(original_node)
        return updated_node if leave is None else leave(self, original_node, updated_node)


class RuleTransformer(FastTransformer):
    """Base transformer: TODO comments on statements, and opt-out comments.

    ``self.todo(msg)`` attaches ``# TODO(linen-upgrade): ID msg`` to the
    innermost statement being visited (once: a re-run finds it there already).
    Statements carrying ``# linen-upgrade: skip`` are returned untouched.
    """

    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__()
        self.rule = rule
        self.ctx = ctx
        self._todo_stack: list[list[str]] = []
        self._skip_stack: list[bool] = []
        # positions cost a codegen per statement: only where the text has a mark
        self._check_skips = ctx.facts.has_skip_marks
        self._module: cst.Module | None = None
        self._header: set[str] = set()
        # imported names some local scope binds again, and what each enclosing scope binds
        self._shadowable = ctx.facts.shadowed_imports
        self._scopes: list[frozenset[str]] = []

    def resolve(self, node: cst.CSTNode) -> str | None:
        """The qualified name ``node`` stands for through the file's imports,
        in the scope it is used in (a parameter named ``jax`` is not jax)."""
        if self._scopes:
            head = dotted(node)
            if head is not None and any(head.partition(".")[0] in bound for bound in self._scopes):
                return None
        return self.ctx.facts.imports.resolve(node)

    def resolve_class(self, node: cst.CSTNode) -> str | None:
        """Like :meth:`resolve`, and a bare name of a class of this file too."""
        qual = self.resolve(node)
        if qual is None and isinstance(node, cst.Name):
            module = self.ctx.facts.module_name
            if any(c.name == node.value for c in self.ctx.facts.classes):
                qual = f"{module}.{node.value}" if module else node.value
        return qual

    def is_legacy_class(self, node: cst.CSTNode) -> bool:
        """Does ``node`` name ``flax.nn.Module`` or a legacy module class of the run?"""
        return self.ctx.index.is_legacy_module(self.resolve_class(node))

    # -- reporting -----------------------------------------------------------
    def todo(self, message: str, mark: str | None = None) -> None:
        """Attach a TODO to the statement being visited; ``mark``: a later rule may
        withdraw it (``Context.withdrawable``)."""
        line = todo_line(self.rule.id, message)
        if mark is not None:
            self.ctx.withdrawable.setdefault(mark, set()).add(line)
        if self._todo_stack and line not in self._todo_stack[-1]:
            self._todo_stack[-1].append(line)

    def fixed(self, message: str) -> None:
        self.ctx.fixed.append((self.rule.id, message))
        if self._todo_stack:  # marks the statement, like a TODO; the engine reads its line and drops the mark
            self._todo_stack[-1].append(FIX_MARK.format(len(self.ctx.fixed) - 1))

    # -- traversal hooks -----------------------------------------------------
    def visit_Module(self, node: cst.Module) -> bool:
        self._module = node
        # LibCST keeps comments above the first statement in the module
        # header, where a re-run must find the TODOs it wrote there
        self._header = {line.comment.value.strip() for line in node.header if line.comment}
        return True

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self._shadowable and isinstance(node, scopes.SCOPES):
            self._scopes.append(scopes.bound_names(node, self._shadowable))
        if isinstance(node, cst.BaseStatement):
            skip = self._check_skips and self._is_skipped(node)
            self._skip_stack.append(skip)
            self._todo_stack.append([])
            if skip:
                return False
        return self._visit(node)

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):  # type: ignore[override]
        if self._shadowable and isinstance(original_node, scopes.SCOPES):
            self._scopes.pop()
        if not isinstance(original_node, cst.BaseStatement):
            return self._leave(original_node, updated_node)
        if self._skip_stack[-1]:
            self._skip_stack.pop()
            self._todo_stack.pop()
            return original_node
        # leave_X may still add TODOs for this very statement: pop afterwards
        result = self._leave(original_node, updated_node)
        self._skip_stack.pop()
        todos = self._todo_stack.pop()
        todos = [t for t in todos if t not in self._header]
        if todos and isinstance(result, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            result = _with_todos(result, todos)
        elif todos and isinstance(result, cst.FlattenSentinel) and result.nodes:
            first = result.nodes[0]
            if isinstance(first, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                result = cst.FlattenSentinel([_with_todos(first, todos), *result.nodes[1:]])
        elif todos and self._todo_stack:
            # the statement vanished: its TODOs move to the enclosing statement
            self._todo_stack[-1].extend(t for t in todos if t not in self._todo_stack[-1])
        return result

    def _is_skipped(self, node: cst.BaseStatement) -> bool:
        for line in getattr(node, "leading_lines", ()):
            if line.comment and SKIP_MARK in line.comment.value:
                return True
        if isinstance(node, cst.SimpleStatementLine):
            assert self._module is not None
            return SKIP_MARK in self._module.code_for_node(node)
        body = getattr(node, "body", None)
        header = getattr(body, "header", None)
        comment = getattr(header, "comment", None)
        return bool(comment and SKIP_MARK in comment.value)


def _with_todos(stmt, todos: list[str]):
    existing = {line.comment.value.strip() for line in stmt.leading_lines if line.comment}
    new = [cst.EmptyLine(comment=cst.Comment(t)) for t in todos if t not in existing]
    if not new:
        return stmt
    return stmt.with_changes(leading_lines=[*stmt.leading_lines, *new])
