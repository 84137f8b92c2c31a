"""Call inputs fixed by a ``.shared()``/``.partial()`` local, moved to the calls.

``enc = Encoder.shared(mask=m, train=t, features=8, name='enc')`` fixes two
inputs of ``Encoder`` (which parameters are inputs is the index's decision,
``Param.role``, read through ``CallSpec.inputs``).  A Linen constructor
takes attributes only, so ``enc = Encoder(features=8, name='enc')`` and
every ``enc(x)`` becomes ``enc(x, mask=m, train=t)``: LU102 appends the
inputs to the calls, LU103 drops them from the definition once every call
carries them.

That is exact only when each call computes the value the definition did:
the local is bound once and only called, after its definition, in the same
function (not in a nested function, lambda or comprehension, which could
run later or shadow a name) -- or handed, as a whole argument, to a function
defined in this one (``def stack(y, block, n): ... block(y, growth)``) that
every call hands this local at that parameter and that only calls the
parameter: its calls there are the local's calls (``hand_overs``); each
fixed value is a constant, a name not
rebound after the definition (parameters, locals and globals assigned only
before the definition and outside loops), an attribute read of ``self`` or
of a global, or operators over those (``not train``), and, read in a
function it is handed to, not bound there.  Anything else keeps LU103's TODO.
"""

from __future__ import annotations

from collections.abc import Mapping

import libcst as cst

from linen_upgrade.rules._cst import code, named_params
from linen_upgrade.transformer import FastVisitor, target_names

# node types, matched exactly (``type(node) in``: a failed ``isinstance`` against LibCST's classes
# costs an ``ABCMeta.__instancecheck__``, on every node of every function scanned)
_NESTED = frozenset({cst.FunctionDef, cst.ClassDef, cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp,
                     cst.GeneratorExp})
_LOOPS = frozenset({cst.For, cst.While})
_CONSTANTS = frozenset({"True", "False", "None"})


class FunctionScan(FastVisitor):
    """Where one function binds and reads each name, in source order (``order``: a counter of
    the nodes visited, compared only, never subtracted: whitespace inside punctuation is skipped)."""

    tokens_unread = True  # (the order of whitespace and punctuation is never asked)

    def __init__(self, fn: cst.FunctionDef) -> None:
        super().__init__()
        self.fn = fn
        params = fn.params
        self.params = {p.name.value for p in named_params(params)}
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                self.params.add(star.name.value)
        self.order = 0
        self.start: dict[int, int] = {}  # statement -> its order; end: after its last node
        self.end: dict[int, int] = {}
        self._nested = 0
        self._loops = 0
        self._skip: set[int] = set()  # attribute names and keywords: not variables
        self._targets: set[int] = set()  # Name nodes that bind
        self._callee: dict[int, cst.Call] = {}  # Name node -> the call it is the function of
        self.bindings: dict[str, list[tuple[int, bool]]] = {}  # name -> (order, in a loop or nested scope)
        self.unstable: set[str] = set()  # declared global/nonlocal somewhere
        self.reads: dict[str, list[tuple[int, cst.Call | None]]] = {}  # name -> (order, the call at this level)
        self.outer: dict[int, cst.Call] = {}  # call -> the call of its result, f(...)(x)
        self.called: set[str] = set()  # names called somewhere, nested scopes included
        self.nested: dict[str, cst.FunctionDef] = {}  # functions defined directly in this one
        self.assigned: dict[str, cst.Assign] = {}  # ``name = ...`` directly in this one (the last)
        self._arg_of: dict[int, tuple[cst.Call, cst.Arg]] = {}  # Name node -> the call it is a whole argument of
        self._passed: dict[str, dict[int, tuple[cst.Call, cst.Arg]]] = {}  # name -> order -> (call, arg)
        self._inner: dict[int, FunctionScan] = {}
        fn.body.visit(self)

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.order += 1
        self.start[id(node)] = self.order
        kind = type(node)
        if kind in _NESTED:
            self._nested += 1
        elif kind in _LOOPS:
            self._loops += 1
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        super().on_leave(original_node)
        self.end[id(original_node)] = self.order
        kind = type(original_node)
        if kind in _NESTED:
            self._nested -= 1
        elif kind in _LOOPS:
            self._loops -= 1

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._skip.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._skip.add(id(node.keyword))

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name):
            self._callee[id(node.func)] = node
        elif isinstance(node.func, cst.Call):
            self.outer[id(node.func)] = node
        for a in node.args:
            if isinstance(a.value, cst.Name) and not a.star:
                self._arg_of[id(a.value)] = (node, a)

    def _bind(self, target: cst.CSTNode) -> None:
        self._targets.update(id(n) for n in target_names(target))

    def visit_Assign(self, node: cst.Assign) -> None:
        if not self._nested and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            self.assigned[node.targets[0].target.value] = node

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._bind(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._bind(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._bind(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._bind(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._bind(node.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind(node.target)

    def visit_Del(self, node: cst.Del) -> None:
        self._bind(node.target)

    def visit_Param(self, node: cst.Param) -> None:
        self._bind(node.name)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._bind(node.name)
        if self._nested == 1:
            self.nested[node.name.value] = node

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._bind(node.name)

    def visit_ImportAlias(self, node: cst.ImportAlias) -> bool:
        # ``import a.b`` binds ``a``; ``import a.b as c`` binds ``c``
        bound = node.asname.name if node.asname is not None else None
        head = code(bound) if bound is not None else code(node.name).partition(".")[0]
        self.bindings.setdefault(head, []).append((self.order, bool(self._loops or self._nested)))
        return False

    def visit_Global(self, node: cst.Global) -> None:
        self.unstable.update(n.name.value for n in node.names)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self.unstable.update(n.name.value for n in node.names)

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) in self._skip:
            return
        if id(node) in self._targets:
            # a binding in a loop or a nested scope may run again after the definition
            self.bindings.setdefault(node.value, []).append((self.order, bool(self._loops or self._nested)))
        else:
            if id(node) in self._callee:
                self.called.add(node.value)
            call = None if self._nested else self._callee.get(id(node))
            self.reads.setdefault(node.value, []).append((self.order, call))
            if not self._nested and id(node) in self._arg_of:
                self._passed.setdefault(node.value, {})[self.order] = self._arg_of[id(node)]

    def passed(self, name: str, order: int) -> tuple[cst.Call, cst.Arg] | None:
        """(the call, its argument) where the read of ``name`` at ``order`` is a whole argument,
        outside nested scopes; None otherwise."""
        return self._passed.get(name, {}).get(order)

    def calls(self, name: str) -> list[cst.Call]:
        """The calls of the local ``name``: here, and of the parameters it is handed to."""
        here = [c for _, c in self.reads.get(name, []) if c is not None]
        return here + [c for inner, param in self.hand_overs(name) or () for c in inner.calls(param)]

    def inner(self, fn: cst.FunctionDef) -> FunctionScan:
        if id(fn) not in self._inner:
            self._inner[id(fn)] = FunctionScan(fn)
        return self._inner[id(fn)]

    def _shadowed(self, name: str, order: int) -> bool:
        """Is the node at ``order`` inside a function defined here that binds ``name`` itself?"""
        for fn in self.nested.values():
            if self.start[id(fn)] <= order <= self.end[id(fn)]:
                inner = self.inner(fn)
                return name in inner.params or name in inner.bindings
        return False

    def _own(self, table: dict, name: str) -> list:
        return [entry for entry in table.get(name, []) if not self._shadowed(name, entry[0])]

    def _parameter(self, call: cst.Call, arg: cst.Arg) -> tuple[cst.FunctionDef, str] | None:
        """(the function defined here that ``call`` calls, the parameter ``arg`` fills)."""
        fn = self.nested.get(call.func.value) if isinstance(call.func, cst.Name) else None
        if fn is None or fn.decorators or len(self.bindings.get(fn.name.value, [])) != 1 \
                or any(a.star for a in call.args):
            return None
        if arg.keyword is not None:
            names = {p.name.value for p in named_params(fn.params)}
            return (fn, arg.keyword.value) if arg.keyword.value in names else None
        positional = [*fn.params.posonly_params, *fn.params.params]
        index = [a for a in call.args if a.keyword is None].index(arg)
        return (fn, positional[index].name.value) if index < len(positional) else None

    def hand_overs(self, name: str) -> list[tuple[FunctionScan, str]] | None:
        """(scan, parameter) of each function defined here that the local ``name`` is handed to
        where not called, when every call of that function hands ``name`` at that parameter and
        the function only calls it; None when some use is neither a call nor such a hand-over."""
        found: list[tuple[cst.FunctionDef, str]] = []
        for order, call in self._own(self.reads, name):
            passed = self._passed.get(name, {}).get(order)
            target = self._parameter(*passed) if call is None and passed is not None else None
            if call is None and target is None:
                return None
            if target is not None and target not in found:
                found.append(target)
        out = []
        for fn, param in found:
            calls = [c for _, c in self.reads.get(fn.name.value, [])]
            inner = self.inner(fn)
            if any(c is None or not self._hands(c, fn, param, name) for c in calls) \
                    or param in inner.bindings or param in inner.unstable \
                    or any(c is None for _, c in inner.reads.get(param, [])):
                return None
            out.append((inner, param))
        return out

    def _hands(self, call: cst.Call, fn: cst.FunctionDef, param: str, name: str) -> bool:
        """Does ``call`` (of ``fn``) pass the bare name ``name`` at ``fn``'s parameter ``param``?"""
        return any(isinstance(a.value, cst.Name) and a.value.value == name
                   and self._parameter(call, a) == (fn, param) for a in call.args)

    def only_called(self, assign: cst.Assign, name: str) -> str | None:
        """Why the local ``name`` bound by ``assign`` is not just called after it,
        in this function or a function defined here that it is handed to (not passed
        on otherwise, returned, rebound, or used in a nested scope); None when it is."""
        if len(self._own(self.bindings, name)) != 1 or name in self.params or name in self.unstable:
            return f"{name} is bound more than once"
        reads = self._own(self.reads, name)
        if not reads or self.hand_overs(name) is None or any(order <= self.end[id(assign)] for order, _ in reads):
            return f"{name} is used otherwise than called after its definition, in the same function"
        return None

    def problem(self, assign: cst.Assign, name: str, values: list[cst.BaseExpression]) -> str | None:
        """Why moving ``values`` from the definition ``assign`` (of the local
        ``name``) to its calls could change them; None when it cannot."""
        why = self.only_called(assign, name)
        if why is not None:
            return why
        for value in values:
            why = self._stable(value, self.start[id(assign)])
            if why:
                return why
            for inner, _ in self.hand_overs(name) or ():  # read there at its calls
                bound = next((n for n in _names(value) if n in inner.params or n in inner.bindings), None)
                if bound is not None:
                    return f"{bound} is bound in {inner.fn.name.value}, which calls {name}"
        return None

    def _stable(self, expr: cst.BaseExpression, before: int) -> str | None:
        if isinstance(expr, (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString)):
            return None
        if isinstance(expr, cst.Name):
            return self._stable_name(expr.value, before)
        if isinstance(expr, cst.Attribute):
            root: cst.BaseExpression = expr
            while isinstance(root, cst.Attribute):
                root = root.value
            if not isinstance(root, cst.Name):
                return f"{code(expr)} reads an attribute of a computed value"
            if root.value != "self" and (root.value in self.params or root.value in self.bindings):
                return f"{code(expr)} reads an attribute of a local value, which may change"
            return self._stable_name(root.value, before)
        if isinstance(expr, cst.UnaryOperation):
            return self._stable(expr.expression, before)
        if isinstance(expr, (cst.BinaryOperation, cst.BooleanOperation)):
            return self._stable(expr.left, before) or self._stable(expr.right, before)
        if isinstance(expr, cst.Comparison):
            return next((why for e in [expr.left, *(c.comparator for c in expr.comparisons)]
                         if (why := self._stable(e, before))), None)
        if isinstance(expr, cst.Tuple):
            return next((why for e in expr.elements
                         if (why := "a starred value" if isinstance(e, cst.StarredElement)
                             else self._stable(e.value, before))), None)
        return f"{code(expr)} is not a name, an attribute read or a constant: it could differ at each call"

    def _stable_name(self, name: str, before: int) -> str | None:
        if name in _CONSTANTS:
            return None
        binds = self.bindings.get(name, [])
        changing = f"{name} may change between the definition and the calls"
        # bindings before the definition that no loop can run again: none runs after it
        stable = all(not again and order < before for order, again in binds)
        return None if stable and name not in self.unstable else changing


def module_scan(module: cst.Module) -> FunctionScan:
    """A ``FunctionScan`` of a module's top level (its bindings; functions are nested scopes)."""
    return FunctionScan(cst.FunctionDef(name=cst.Name("_"), params=cst.Parameters(),
                                        body=cst.IndentedBlock(body=module.body)))


def only_called_on_one(body: cst.CSTNode, name: str) -> bool:
    """Is every read of ``name`` in ``body`` (nested scopes included) the function of a call
    with one positional argument, ``name(x)``?  (Its bindings are the caller's to check.)"""

    class Reads(FastVisitor):
        def __init__(self) -> None:
            super().__init__()
            self.skip: set[int] = set()  # attribute names, keywords and the calls' own function names
            self.ok = True

        def visit_Attribute(self, node: cst.Attribute) -> None:
            self.skip.add(id(node.attr))

        def visit_Arg(self, node: cst.Arg) -> None:
            self.skip.add(id(node.keyword))

        def visit_Call(self, node: cst.Call) -> None:
            if isinstance(node.func, cst.Name) and len(node.args) == 1 and node.args[0].keyword is None \
                    and not node.args[0].star:
                self.skip.add(id(node.func))

        def visit_Name(self, node: cst.Name) -> None:
            if node.value == name and id(node) not in self.skip:
                self.ok = False

    reads = Reads()
    body.visit(reads)
    return reads.ok


def _names(expr: cst.CSTNode) -> set[str]:
    """The variables ``expr`` reads (the root of ``a.b.c``, not ``b`` or ``c``)."""
    if isinstance(expr, cst.Name):
        return {expr.value}
    if isinstance(expr, cst.Attribute):
        return _names(expr.value)
    return {n for child in expr.children for n in _names(child)}


def passes(call: cst.Call, keywords: list[str]) -> bool:
    """Does ``call`` pass every one of ``keywords`` by keyword?"""
    given = {a.keyword.value for a in call.args if a.keyword is not None}
    return set(keywords) <= given


def append_keywords(call: cst.Call, args: list[cst.Arg]) -> cst.Call:
    """``f(x)`` -> ``f(x, k=v, ...)``: fresh copies of ``args`` (one node per place in the tree)."""
    added = [a.deep_clone() for a in args]
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    added = [a.with_changes(comma=comma) for a in added[:-1]] + [
        added[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)]
    old = list(call.args)
    if old and old[-1].comma is cst.MaybeSentinel.DEFAULT:
        old[-1] = old[-1].with_changes(comma=comma)
    return call.with_changes(args=[*old, *added])


def left_legacy(call: cst.Call, parent: Mapping[int, cst.CSTNode]) -> str | None:
    """Why the ``.partial``/``.shared`` ``call`` stays legacy with its calls: it is
    assigned to a local that its function (outside module bodies) both calls -- a
    legacy module call, run under a module's apply -- and passes on or returns, which
    the module rules do not follow (LU103 says so); None otherwise.  ``parent``: each
    node's parent."""
    assign = parent.get(id(call))
    if not (isinstance(assign, cst.Assign) and len(assign.targets) == 1
            and isinstance(assign.targets[0].target, cst.Name)):
        return None
    fn = parent.get(id(assign))
    while fn is not None and not isinstance(fn, (cst.FunctionDef, cst.ClassDef)):
        fn = parent.get(id(fn))
    if not isinstance(fn, cst.FunctionDef):
        return None
    name = assign.targets[0].target.value
    scan = FunctionScan(fn)
    return scan.only_called(assign, name) if name in scan.called else None
