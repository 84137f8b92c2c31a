"""The LibCST base classes of every rule pass: cached dispatch (``FastVisitor``,
``FastTransformer``), and ``RuleTransformer`` (TODOs, fix marks, opt-out comments,
scope-aware name resolution).  Imported only once a file is parsed
(``rule.py`` hands these names out lazily)."""

from __future__ import annotations

import abc
import dataclasses
import operator
import re
from typing import TYPE_CHECKING, Any

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import FIX_MARK, SKIP_MARK, todo_line

if TYPE_CHECKING:
    from linen_upgrade.rule import Context, Rule


class _NodeMeta(abc.ABCMeta):
    """The metaclass LibCST's node classes are given (``_plain_node_checks``): ``isinstance`` and
    ``issubclass`` by the class hierarchy alone, in C, as for any class.  ``ABCMeta``'s own go
    through a Python frame and its registry of virtual subclasses, which LibCST never fills."""

    __instancecheck__ = type.__instancecheck__
    __subclasscheck__ = type.__subclasscheck__


def _plain_node_checks() -> None:
    """``isinstance(node, cst.Name)`` where ``node`` is another node type (most checks of the rules
    and of the usage analysis, about 12 million on the corpus) costs an ``ABCMeta.__instancecheck__``
    call: LibCST's nodes derive from ``abc.ABC``.  Their classes become ``_NodeMeta``'s, which answer
    the same (no node class has a virtual subclass or a ``__subclasshook__``: ``test_node_checks``)
    without it; abstract classes still refuse to be instantiated.  Classes defined later inherit it."""
    todo = [cst.CSTNode]
    while todo:
        kind = todo.pop()
        todo.extend(kind.__subclasses__())
        if type(kind) is abc.ABCMeta:
            kind.__class__ = _NodeMeta


_plain_node_checks()

# the CST nodes that open a function scope (class bodies do not reach into their methods)
# (a set: node types are matched exactly, ``type(node) in``, where a failed ``isinstance`` against
# LibCST's classes would cost an ``ABCMeta.__instancecheck__`` per node of a pass)
SCOPES = frozenset({cst.FunctionDef, cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp})


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


class _IsStatement(dict):
    """node type -> is it a statement, filled on first sight: ``isinstance`` against LibCST's
    abstract ``BaseStatement`` goes through ``ABCMeta.__instancecheck__``, twice per node of
    every rule pass."""

    def __missing__(self, kind: type) -> bool:
        found = self[kind] = issubclass(kind, cst.BaseStatement)
        return found


_IS_STATEMENT = _IsStatement()


# nodes whose children are all whitespace and punctuation (``lpar``, ``rpar``, ``semicolon``):
# a pass with no hook for those leaves the node itself as it is, not a rebuilt copy
_LEAVES = frozenset({cst.Name, cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.Ellipsis,
                     cst.Pass, cst.Break, cst.Continue})


def _own_hook(cls: type, name: str) -> Any:
    """``cls.<name>`` unless it is missing or one of LibCST's typed no-op stubs."""
    if name not in cls._hook_names:  # type: ignore[attr-defined]
        return None
    fn = getattr(cls, name, None)
    return None if fn is None or getattr(fn, "__module__", "").startswith("libcst") else fn


def _own_hook_names(klass: type) -> frozenset[str]:
    """The ``visit_*``/``leave_*`` names ``klass`` itself defines (a ``_Dispatch`` class keeps
    them: a class made per call, a visitor defined in a function, reads its bases' from there)."""
    found = klass.__dict__.get("_own_hooks")
    if found is None:
        found = frozenset(name for name in vars(klass) if name.startswith(("visit_", "leave_")))
    return found


def _hook_names(cls: type) -> frozenset[str]:
    """The ``visit_*``/``leave_*`` names a class and its bases other than LibCST's define:
    read from their own few attributes, where looking up every node type's hooks on the class
    costs a class made per call (a visitor defined in a function) more than its walk."""
    return frozenset().union(*(_own_hook_names(klass) for klass in cls.__mro__
                               if klass not in _NO_HOOKS and not klass.__module__.startswith("libcst")))


_NO_HOOKS = frozenset({object, abc.ABC})
# ``visit_<Type>_<attribute>``: LibCST's attribute hooks, which ``_Dispatch`` does not call
_ATTRIBUTE_HOOK = re.compile(r"(visit|leave)_[A-Z]\w*_[a-z]")


# a visitor with none of these leaves whitespace and punctuation out of its walk
_TOKEN_HOOKS = frozenset(f"{hook}_{t.__name__}" for t in _TOKENS for hook in ("visit", "leave"))


class _Hooks(dict):
    """One class's dispatch table: node type -> (visit hook, leave hook, node and children
    skipped, children skipped), filled on the first node of each type (one dict lookup per
    node after that)."""

    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def __missing__(self, kind: type) -> tuple[Any, Any, bool, bool]:
        cls = self.cls
        plain = cls._tokens_plain
        entry = self[kind] = (_own_hook(cls, f"visit_{kind.__name__}"), _own_hook(cls, f"leave_{kind.__name__}"),
                              kind in _TOKENS and plain, kind in _LEAVES and plain)
        return entry


class _FieldOrder(cst.CSTVisitor):
    """Records the fields LibCST visits of one node, in its order (the source's), without
    going into them."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_leave(self, original_node: cst.CSTNode) -> None:
        pass

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        self.names.append(attribute)  # called for a None field too

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


class _Fields(dict):
    """node type -> a function giving the values of the fields a walk goes into, in LibCST's
    visiting order (one C call: ``operator.attrgetter``), learnt from the first node of each
    type.  LibCST skips one field when it is None (an f-string part's ``format_spec``, its
    last): fields None in that first node come last."""

    def learn(self, node: cst.CSTNode) -> Any:
        kind = type(node)
        recorder = _FieldOrder()
        node._visit_and_replace_children(recorder)
        later = [f.name for f in dataclasses.fields(kind)
                 if f.name not in recorder.names and getattr(node, f.name) is None]
        names = (*recorder.names, *later)
        # attrgetter of one name gives the value, not a tuple of it
        found = self[kind] = (operator.attrgetter(*names) if len(names) > 1
                              else (lambda n, name=names[0]: (getattr(n, name),)) if names else (lambda n: ()))
        return found


_FIELDS = _Fields()


class _IsNode(dict):
    """value type -> is it a CST node (``isinstance`` against LibCST's abstract ``CSTNode``
    goes through ``ABCMeta.__instancecheck__``)."""

    def __missing__(self, kind: type) -> bool:
        found = self[kind] = issubclass(kind, cst.CSTNode)
        return found


_IS_NODE = _IsNode()


def _children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The nodes LibCST's walk goes into from ``node``, in its order."""
    found: list[cst.CSTNode] = []
    for value in (_FIELDS.get(type(node)) or _FIELDS.learn(node))(node):
        if type(value) in (tuple, list):
            found.extend(value)
        elif _IS_NODE[type(value)]:
            found.append(value)
    return found


# id(node) -> (the node, its children other than whitespace and punctuation, their indices among
# all its children, and all its children): a tree is walked by every rule and by many visitors
# inside them, and a node is immutable, so a node's children are listed once (the node is held, so
# its id is not another's).  Emptied after each file's rules (``forget_children``) and when it holds
# ``_KIDS_KEPT`` nodes (about 30 MB; a legacy file of 10,000 lines has some 63,000 such nodes).
_KIDS: dict[int, tuple[cst.CSTNode, tuple[cst.CSTNode, ...], tuple[int, ...], tuple[cst.CSTNode, ...]]] = {}
_KIDS_KEPT = 125_000


def forget_children() -> None:
    """Empty the children cache (``_KIDS``) and ``bound_names``'s (``_BOUND``): the file whose
    trees they hold is done."""
    _KIDS.clear()
    _BOUND.clear()


def _kids(node: cst.CSTNode) -> tuple[cst.CSTNode, tuple[cst.CSTNode, ...], tuple[int, ...], tuple[cst.CSTNode, ...]]:
    """``(node, children, indices, all)``: the children of ``node`` a walk that leaves whitespace and
    punctuation out goes into, their indices in ``_children(node)`` (``_Replay``'s), and all of them
    (a walk that goes into whitespace and punctuation)."""
    found = _KIDS.get(id(node))
    if found is None:
        if len(_KIDS) >= _KIDS_KEPT:
            _KIDS.clear()
        children, ks = [], []
        every = _children(node)
        for k, child in enumerate(every):
            if type(child) not in _TOKENS:
                children.append(child)
                ks.append(k)
        found = _KIDS[id(node)] = (node, tuple(children), tuple(ks), tuple(every))
    return found


class _Replay(cst.CSTTransformer):
    """Rebuilds one node around its children's results (child index -> result) through
    LibCST's own ``_visit_and_replace_children``, so that removals and flattened
    statements mean what they mean to LibCST; the children are not walked again."""

    def __init__(self, results: dict[int, Any]) -> None:
        super().__init__()
        self.results = results
        self.k = 0

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> Any:  # type: ignore[override]
        k = self.k
        self.k += 1
        return self.results.get(k, updated_node)

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


def _walk_from_root(on_visit: Any) -> Any:
    """``on_visit`` of a ``_Dispatch`` class: where LibCST's ``node.visit(self)`` starts (the
    tree's root, or ``x.visit(self)`` called by a hook during the walk), the class walks from
    there itself and tells LibCST not to go in.  A subclass's ``on_visit`` calling
    ``super().on_visit(node)`` for the node the walk is entering gets the hook as written."""

    def hook(self: _Dispatch, node: cst.CSTNode) -> bool:
        if self._walking and node is self._entered:
            return on_visit(self, node)
        outer = self._walking, self._entered
        self._walking = True
        try:
            result = self._walk(node)
        finally:
            self._walking, self._entered = outer
        self._root = (node, result)  # LibCST leaves ``node`` next: ``_root_result`` hands it back
        return False

    hook.raw = on_visit  # type: ignore[attr-defined]
    return hook


def _root_result(on_leave: Any) -> Any:
    """``on_leave`` of a ``_Dispatch`` class: LibCST leaves the root after ``_walk_from_root``;
    the walk has left it already, and its result is handed back."""

    def hook(self: _Dispatch, original_node: cst.CSTNode, *updated: Any) -> Any:
        root = self._root
        if root is not None and root[0] is original_node:
            self._root = None
            return root[1]
        return on_leave(self, original_node, *updated)

    hook.raw = on_leave  # type: ignore[attr-defined]
    return hook


def _ignores_tokens(fn: Any) -> Any:
    """Marks an ``on_visit``/``on_leave`` that does nothing for a whitespace or punctuation
    node in a class with no hook for them (``_tokens_plain``): such a class's walk does not
    go to those nodes at all (over half of all nodes)."""
    fn.ignores_tokens = True
    return fn


class _Dispatch:
    """LibCST looks ``visit_<Type>``/``leave_<Type>`` up by name for every node,
    and ``visit_<Type>_<attr>`` for every child attribute; a rule walks whole
    trees several times, so the lookups are cached per class, the attribute
    hooks (which none of our visitors define) are skipped, and so are the
    children of whitespace and punctuation nodes (``_TOKENS``) in a class
    with no hook for any of them: LibCST would rebuild each of those nodes
    (and each node holding nothing else, ``_LEAVES``).

    LibCST's walk also rebuilds every node it goes through (a new dataclass,
    validated), a visitor's too: about half of a rule pass.  A ``_Dispatch``
    class walks by itself (``_walk``) from the root of ``node.visit(self)``,
    calling the same ``on_visit``/``on_leave`` on the same nodes in the same
    order; a transformer rebuilds only a node a child of which came back
    changed, and an unchanged tree comes back as the same object."""

    _table: _Hooks
    _own_hooks: frozenset[str] = frozenset()  # (set on each subclass: ``_own_hook_names``)
    _hook_names: frozenset[str]
    _tokens_plain: bool
    _raw_visit: Any  # the class's on_visit and on_leave, as written (no root take-over)
    _raw_leave: Any
    _skips_tokens: bool  # the walk leaves whitespace and punctuation out (``_ignores_tokens``)
    # set by a class whose own on_visit/on_leave take whitespace and punctuation into no account
    # (a counter of the nodes entered that is only compared): its walk leaves them out too
    tokens_unread = False
    _walking = False
    _entered: cst.CSTNode | None = None  # the node whose own ``on_visit`` the walk is in
    _root: tuple[cst.CSTNode, Any] | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._table = _Hooks(cls)
        own = cls._own_hooks = _own_hook_names(cls)
        assert not any(_ATTRIBUTE_HOOK.match(n) for n in own), f"{cls.__name__}: attribute hooks are not dispatched"
        cls._hook_names = _hook_names(cls)
        cls._tokens_plain = not any(_own_hook(cls, name) for name in cls._hook_names & _TOKEN_HOOKS)
        for name, take_over in (("on_visit", _walk_from_root), ("on_leave", _root_result)):
            if not hasattr(getattr(cls, name), "raw"):  # written in this class (or a mixin)
                setattr(cls, name, take_over(getattr(cls, name)))
        cls._raw_visit = cls.on_visit.raw  # type: ignore[attr-defined]
        cls._raw_leave = cls.on_leave.raw  # type: ignore[attr-defined]
        ignored = getattr(cls._raw_visit, "ignores_tokens", False) and getattr(cls._raw_leave, "ignores_tokens", False)
        cls._skips_tokens = cls._tokens_plain and (cls.tokens_unread or ignored)

    def _walk(self, node: cst.CSTNode) -> Any:
        raise NotImplementedError

    def _visit(self, node: cst.CSTNode) -> bool:
        visit, _, plain, leaf = self._table[type(node)]
        if plain:
            return False
        if visit is None:
            return not leaf
        return visit(self, node) is not False and not leaf

    def _leave_func(self, node: cst.CSTNode) -> Any:
        return self._table[type(node)][1]

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


class FastVisitor(_Dispatch, cst.CSTVisitor):
    """``cst.CSTVisitor`` with cached dispatch and its own walk (see ``_Dispatch``)."""

    @_ignores_tokens
    def on_visit(self, node: cst.CSTNode) -> bool:
        return self._visit(node)

    def _walk(self, root: cst.CSTNode) -> None:
        cls = type(self)
        if cls._raw_visit is FastVisitor.on_visit.raw and cls._raw_leave is FastVisitor.on_leave.raw \
                and cls._skips_tokens:
            self._walk_hooks(root)
            return
        visit, leave, skip = cls._raw_visit, cls._raw_leave, cls._skips_tokens

        def walk(node: cst.CSTNode) -> None:
            self._entered = node
            if visit(self, node):
                # all children of a whitespace or punctuation node are listed again (it is not kept)
                for child in _kids(node)[1] if skip else _children(node) if type(node) in _TOKENS \
                        else (_KIDS.get(id(node)) or _kids(node))[3]:
                    walk(child)
            leave(self, node)

        walk(root)

    def _walk_hooks(self, root: cst.CSTNode) -> None:
        """The walk of a class whose own ``on_visit``/``on_leave`` are this class's: its hooks are
        called straight from the table (a few calls fewer per node; visitors walk the most)."""
        table = type(self)._table

        def walk(node: cst.CSTNode) -> None:
            visit, leave, _, leaf = table[type(node)]
            if (visit is None or visit(self, node) is not False) and not leaf:
                for child in (_KIDS.get(id(node)) or _kids(node))[1]:
                    walk(child)
            if leave is not None:
                leave(self, node)

        walk(root)

    @_ignores_tokens
    def on_leave(self, original_node: cst.CSTNode) -> None:
        leave = self._leave_func(original_node)
        if leave is not None:
            leave(self, original_node)


class FastTransformer(_Dispatch, cst.CSTTransformer):
    """``cst.CSTTransformer`` with cached dispatch (see ``_Dispatch``)."""

    @_ignores_tokens
    def on_visit(self, node: cst.CSTNode) -> bool:
        return self._visit(node)

    @_ignores_tokens
    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):  # type: ignore[override]
        return self._leave(original_node, updated_node)

    def _walk(self, root: cst.CSTNode) -> Any:
        cls = type(self)
        visit, leave, skip = cls._raw_visit, cls._raw_leave, cls._skips_tokens

        def walk(node: cst.CSTNode) -> Any:
            updated = node
            self._entered = node
            if visit(self, node):
                changed: dict[int, Any] = {}  # the child's index in LibCST's order (_Replay's) -> result
                if skip:  # whitespace and punctuation would come back as they are
                    _, children, ks, _ = _kids(node)
                    pairs = zip(ks, children)
                else:
                    pairs = enumerate(_children(node))
                for k, child in pairs:
                    result = walk(child)
                    if result is not child:
                        changed[k] = result
                if changed:
                    updated = node._visit_and_replace_children(_Replay(changed))
            return leave(self, node, updated)

        return walk(root)

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

    def keep_comments(self, old: cst.CSTNode, new: cst.CSTNode) -> None:
        """Comments of ``old`` that its rewrite ``new`` lost (a call rebuilt from its
        arguments: ``nn.Dense(x,  # why\n features=3)``) go above the statement."""
        left = comments_in(new)
        for comment in comments_in(old):
            if comment in left:
                left.remove(comment)
            elif self._todo_stack and comment not in self._todo_stack[-1]:
                self._todo_stack[-1].append(comment)

    # -- traversal hooks -----------------------------------------------------
    def visit_Module(self, node: cst.Module) -> bool:
        self._module = node
        # LibCST keeps comments above the first statement in the module
        # header, where a re-run must find the TODOs it wrote there
        self._header = {line.comment.value.strip() for line in node.header if line.comment}
        return True

    @_ignores_tokens  # a token is neither a scope nor a statement
    def on_visit(self, node: cst.CSTNode) -> bool:
        if self._shadowable and type(node) in SCOPES:
            self._scopes.append(bound_names(node, self._shadowable))
        if _IS_STATEMENT[type(node)]:
            skip = self._check_skips and self._is_skipped(node)
            self._skip_stack.append(skip)
            self._todo_stack.append([])
            if skip:
                return False
        return self._visit(node)

    @_ignores_tokens
    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):  # type: ignore[override]
        if self._shadowable and type(original_node) in SCOPES:
            self._scopes.pop()
        if not _IS_STATEMENT[type(original_node)]:
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


class _CommentsOf(FastVisitor):
    def __init__(self) -> None:
        self.found: list[str] = []

    def visit_Comment(self, node: cst.Comment) -> None:
        self.found.append(node.value)


class _Parents(FastVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict[cst.CSTNode, cst.CSTNode] = {}

    def on_visit(self, node: cst.CSTNode) -> bool:
        return True  # whitespace and punctuation too: the provider maps every node

    def on_leave(self, original_node: cst.CSTNode) -> None:
        for child in _children(original_node):
            self.found[child] = original_node


def parents(module: cst.Module) -> dict[cst.CSTNode, cst.CSTNode]:
    """Every node's parent, as LibCST's ``ParentNodeProvider`` maps them (set when the parent is
    left, so a node held in two places maps to the one left last), at the cost of one fast walk:
    the provider reads each node's ``children`` through LibCST's rebuilding walk."""
    visitor = _Parents()
    module.visit(visitor)
    return visitor.found


def comments_in(node: cst.CSTNode | cst.MaybeSentinel) -> list[str]:
    """The comments inside ``node`` (none in a sentinel)."""
    if not isinstance(node, cst.CSTNode):
        return []
    visitor = _CommentsOf()
    node.visit(visitor)
    return visitor.found


def _with_todos(stmt, todos: list[str]):
    existing = {line.comment.value.strip() for line in stmt.leading_lines if line.comment}
    new = [cst.EmptyLine(comment=cst.Comment(t)) for t in todos if t not in existing]
    if not new:
        return stmt
    return stmt.with_changes(leading_lines=[*stmt.leading_lines, *new])


class _Bindings(FastVisitor):
    """The names one scope binds, not looking into the scopes inside it."""

    def __init__(self, scope: cst.CSTNode, among: frozenset[str]) -> None:
        super().__init__()
        self.scope, self.among, self.found = scope, among, set()

    def _add(self, target: cst.CSTNode | None) -> None:
        self.found.update(n.value for n in target_names(target) if n.value in self.among)

    def on_visit(self, node: cst.CSTNode) -> bool:
        kind = type(node)
        if kind in _TOKENS:
            return False  # whitespace and punctuation bind nothing
        if node is not self.scope and (kind in SCOPES or kind is cst.ClassDef):
            if kind is cst.FunctionDef or kind is cst.ClassDef:
                self._add(node.name)  # type: ignore[attr-defined]
            # a comprehension's first iterable is evaluated in the enclosing scope
            return False
        if kind is cst.Import or kind is cst.ImportFrom:
            return False  # a local import binds the imported object: the alias map has it
        bound = _BINDING_FIELD.get(kind)
        if bound is not None:
            self._add(getattr(node, bound))
        return True


# the nodes that bind a name, and their field holding the target
_BINDING_FIELD = {cst.Param: "name", cst.AssignTarget: "target", cst.AnnAssign: "target", cst.AugAssign: "target",
                  cst.For: "target", cst.CompFor: "target", cst.AsName: "name", cst.NamedExpr: "target"}


def target_names(target: cst.CSTNode | None) -> list[cst.Name]:
    """The names an assignment (or loop, ``with``, ``as``) target binds."""
    if isinstance(target, cst.Name):
        return [target]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for el in target.elements for n in target_names(el.value)]
    if isinstance(target, cst.StarredElement):
        return target_names(target.value)
    return []


# (id(scope), among) -> (the scope, what it binds of among): each rule pass asks about every scope of
# the file, most of them the same nodes as the pass before (held, so an id is not another's); emptied
# with ``_KIDS``
_BOUND: dict[tuple[int, frozenset[str]], tuple[cst.CSTNode, frozenset[str]]] = {}


def bound_names(scope: cst.CSTNode, among: frozenset[str]) -> frozenset[str]:
    """Which of ``among`` the function, lambda or comprehension ``scope`` binds."""
    key = (id(scope), frozenset(among))  # (some callers hand a set)
    found = _BOUND.get(key)
    if found is None:
        visitor = _Bindings(scope, among)
        scope.visit(visitor)
        found = _BOUND[key] = (scope, frozenset(visitor.found))
    return found[1]
