"""The first pass of the usage analysis (``_usage_analysis``): scopes,
bindings, call sites, returns and parents of one module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import FastVisitor
from linen_upgrade.rules._usage_paths import legacy_key
from linen_upgrade.rules._usage_types import CLASS, INSTANCE, Ty

if TYPE_CHECKING:
    from linen_upgrade.rules._usage_analysis import Analysis

_MODEL_ATTRIBUTES = frozenset({"params", "module", "truncate_at", "replace", "as_dict"})


class Scope:
    def __init__(self, node: cst.CSTNode, parent: Scope | None, is_class: bool = False) -> None:
        self.node = node
        self.parent = parent
        self.is_class = is_class  # a class body: its names are not visible in its methods
        self.bound: dict[str, int] = {}  # name -> how many bindings
        # name -> for each binding, the arms of the ``if`` statements it sits in, ((id(if), arm), ...),
        # from the outermost; None for one in a loop, a ``try``, a comprehension or anything else
        self.arms: dict[str, list[tuple[tuple[int, int], ...] | None]] = {}
        self.globals: set[str] = set()
        self.params: list[str] = []

    def bind(self, name: str) -> None:
        self.bound[name] = self.bound.get(name, 0) + 1

    def exclusive(self, name: str) -> bool:
        """Is ``name`` bound once on every path through the scope: each of its bindings in another arm
        of one ``if`` (``if wide: d = M.partial(a=1) else: d = M.partial(a=2)``)?"""
        arms = self.arms.get(name, [])
        if len(arms) != self.bound.get(name) or any(a is None for a in arms):
            return False
        return all(_apart(a, b) for i, a in enumerate(arms) for b in arms[i + 1:])  # type: ignore[arg-type]

    def lookup(self, name: str) -> Scope | None:
        s: Scope | None = self
        while s is not None:
            if name in s.bound and name not in s.globals and (s is self or not s.is_class):
                return s
            s = s.parent
        return None


def _apart(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> bool:
    """Do two bindings sit in different arms of one ``if`` (at the first ``if`` their paths differ in)?"""
    for (if_a, arm_a), (if_b, arm_b) in zip(a, b):
        if if_a != if_b:
            return False
        if arm_a != arm_b:
            return True
    return False


class Collector(FastVisitor):
    """Scopes, bindings, call sites, returns and parents of one module."""

    # no one asks the parent or the scope of whitespace or punctuation (they are never a parent
    # themselves of anything but their like): the walk leaves them out, over half of all nodes
    tokens_unread = True

    def __init__(self, a: Analysis, module: cst.Module) -> None:
        super().__init__()
        self.a = a
        self.stack = [Scope(module, None)]
        a.module_scope = self.stack[0]
        self.parents: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.parents:
            self.a.parent[id(node)] = self.parents[-1]
        self.parents.append(node)
        self.a.scope_of[id(node)] = self.stack[-1]
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        super().on_leave(original_node)
        self.parents.pop()
        if self.stack[-1].node is original_node:
            self.stack.pop()

    def _arms(self) -> tuple[tuple[int, int], ...] | None:
        """The ``if`` arms the node being visited sits in, within its scope (None: also in something
        that may run it more than once, or not at all, other than an ``if``)."""
        arms: list[tuple[int, int]] = []
        scope = self.stack[-1].node
        for parent, child in zip(reversed(self.parents[:-1]), reversed(self.parents)):
            if parent is scope:
                return tuple(reversed(arms))
            if isinstance(parent, cst.If):
                if child is parent.test:
                    return None
                arms.append((id(parent), int(child is not parent.body)))
            elif not isinstance(parent, (cst.IndentedBlock, cst.SimpleStatementLine, cst.Else, cst.Assign,
                                         cst.AssignTarget, cst.AnnAssign, cst.With, cst.WithItem)):
                return None
        return None

    def _push(self, node: cst.CSTNode, params: cst.Parameters | None) -> Scope:
        scope = Scope(node, self.stack[-1])
        self.a.scopes[id(node)] = scope
        if params is not None:
            for p in [*params.posonly_params, *params.params]:
                scope.bind(p.name.value)
                scope.params.append(p.name.value)
            for p in [params.star_arg, params.star_kwarg, *params.kwonly_params]:
                if isinstance(p, cst.Param):
                    scope.bind(p.name.value)
        self.stack.append(scope)
        return scope

    def _bind(self, target: cst.BaseExpression, source: tuple, path: tuple[int, ...] = ()) -> None:
        if isinstance(target, cst.Name):
            scope, arms = self.stack[-1], self._arms()
            if target.value in scope.globals:  # ``global MODEL`` in a function: the module's name, bound at run time
                scope, arms = self.stack[0], None
            scope.bind(target.value)
            scope.arms.setdefault(target.value, []).append(arms)
            self.a.bindings.append((scope, target.value, source, path))
            self.a.bound_at.setdefault((id(scope), target.value), []).append(target)
        elif isinstance(target, cst.Attribute):  # obj.attr = ...: a field of obj's class, if a plain class
            self.a.field_bindings.append((self.stack[-1], target, source, path))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for i, el in enumerate(target.elements):
                if isinstance(el, cst.StarredElement):
                    self._bind(el.value, ("unknown",))
                else:
                    self._bind(el.value, source, (*path, i))

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.stack[-1].bind(node.name.value)
        self.a.bindings.append((self.stack[-1], node.name.value, ("class", node), ()))
        if len(self.stack) == 1:
            self.a.class_nodes[node.name.value] = node
        if self.a.is_legacy_class(node):
            return False  # legacy module bodies belong to the module rules
        # a plain class (a trainer holding a Model in self.model): its methods are top-level code
        self.a.plain_classes[id(node)] = node
        self.a.methods[id(node)] = {}
        self.a.class_functions[id(node)] = {}
        scope = Scope(node, self.stack[-1], is_class=True)
        self.a.scopes[id(node)] = scope
        self.stack.append(scope)
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.stack[-1].bind(node.name.value)
        self.a.bindings.append((self.stack[-1], node.name.value, ("def", node), ()))
        self.a.returns.setdefault(id(node), [])
        owner = self.stack[-1]
        scope = self._push(node, node.params)
        kinds = {d.decorator.value for d in node.decorators if isinstance(d.decorator, cst.Name)} \
            & {"staticmethod", "classmethod"}
        if owner.is_class and kinds:
            self.a.class_functions[id(owner.node)][node.name.value] = node
            if "classmethod" in kinds and scope.params:  # cls
                self.a.bindings.append((scope, scope.params[0], ("const", Ty(CLASS, func=(CLASS, id(owner.node)))), ()))
        elif owner.is_class and scope.params:
            self.a.methods[id(owner.node)][node.name.value] = node
            self.a.bindings.append((scope, scope.params[0], ("const", Ty(INSTANCE, func=(CLASS, id(owner.node)))), ()))
        return True

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        scope = self._push(node, node.params)
        self.a.returns[id(node)] = [(scope, node.body)]
        return True

    def _comp(self, node: cst.CSTNode) -> bool:
        self._push(node, None)
        return True

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comp

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._bind(node.target, ("iter", node.iter))

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._bind(t.target, ("expr", node.value))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._bind(node.target, ("expr", node.value) if node.value else ("unknown",))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind(node.target, ("unknown",))

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind(node.target, ("expr", node.value))

    def visit_For(self, node: cst.For) -> None:
        self._bind(node.target, ("iter", node.iter))

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind(node.asname.name, ("with", node.item))

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        if node.name is not None:
            self._bind(node.name.name, ("unknown",))

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        if len(self.stack) > 1:  # module-level imports are the resolver's business
            name = node.asname.name if node.asname else node.name
            if isinstance(name, cst.Name):
                self._bind(name, ("unknown",))
            elif isinstance(name, cst.Attribute):
                head = dotted(name)
                if head:
                    self.stack[-1].bind(head.split(".")[0])

    def visit_Global(self, node: cst.Global) -> None:
        self.stack[-1].globals.update(n.name.value for n in node.names)

    visit_Nonlocal = visit_Global

    def visit_Return(self, node: cst.Return) -> None:
        fn = next((s.node for s in reversed(self.stack) if isinstance(s.node, (cst.FunctionDef, cst.Lambda))), None)
        if isinstance(fn, cst.FunctionDef) and node.value is not None:
            self.a.returns[id(fn)].append((self.stack[-1], node.value))

    def visit_Call(self, node: cst.Call) -> None:
        self.a.calls.append((self.stack[-1], node))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value in _MODEL_ATTRIBUTES:
            self.a.model_attributes.append((self.stack[-1], node))

    def visit_Subscript(self, node: cst.Subscript) -> None:
        if legacy_key(node) is not None:
            self.a.legacy_keys.append((self.stack[-1], node))
