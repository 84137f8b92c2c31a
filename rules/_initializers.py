"""User initializers that Linen would call differently from legacy Flax.

Legacy built-in modules called an initializer ``init(key, shape)``; Linen's
call it ``init(key, shape, dtype)``.  A user function that takes exactly
``(key, shape)`` fails there, and one whose third parameter is not ``dtype``
would receive the dtype in it.  An adapter that drops the dtype is exact:
legacy never passed one.  Which values are such functions is decided by data
flow over the file, never by names: a value is a user initializer when it
is a name bound once at the top level of the file, by a ``def`` (or
``name = lambda ...``), that no function around the use binds, or a call of such a function whose every ``return``
gives a function defined inside it.  (``self.param(name, init, shape)``
needs nothing: Linen calls that ``init(key, shape)``, as legacy did.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import libcst as cst

from linen_upgrade.rule import FastVisitor
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES

Function = cst.FunctionDef | cst.Lambda


class _Bindings(FastVisitor):
    """How often each name is bound in one scope: the module's top level (a
    ``global`` statement anywhere counts too), or a function with all it encloses."""

    def __init__(self, top_level: bool) -> None:
        super().__init__()
        self.count: Counter[str] = Counter()
        self._top_level = top_level
        self._depth = 0  # functions, lambdas and classes entered

    def _bind(self, name: str) -> None:
        if not self._top_level or self._depth == 0:
            self.count[name] += 1

    def _enter(self) -> bool:
        self._depth += 1
        return True

    def _leave(self, node: cst.CSTNode) -> None:
        self._depth -= 1

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._bind(node.name.value)
        return self._enter()

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self._bind(node.name.value)
        return self._enter()

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return self._enter()

    leave_FunctionDef = leave_ClassDef = leave_Lambda = _leave

    def visit_Param(self, node: cst.Param) -> None:
        self._bind(node.name.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._targets(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._targets(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._targets(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._targets(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._targets(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._targets(node.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._targets(node.target)

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        if node.asname is None:
            self._bind(cst.Module([]).code_for_node(node.name).split(".")[0])

    def visit_Global(self, node: cst.Global) -> None:
        for n in node.names:
            self.count[n.name.value] += 1  # assigned from inside a function: not resolvable

    def _targets(self, node: cst.CSTNode) -> None:
        if isinstance(node, cst.Name):
            self._bind(node.value)
        elif isinstance(node, (cst.Tuple, cst.List)):
            for e in node.elements:
                self._targets(e.value)
        elif isinstance(node, cst.StarredElement):
            self._targets(node.value)


def local_names(fn: cst.FunctionDef) -> frozenset[str]:
    """The names ``fn`` (or a function inside it) binds: they hide module-level functions."""
    b = _Bindings(top_level=False)
    fn.params.visit(b)
    fn.body.visit(b)
    return frozenset(b.count)


def _takes_dtype(fn: Function) -> bool:
    """Does ``fn(key, shape, dtype)`` mean what ``fn(key, shape)`` meant?  Only
    when its third positional parameter is the dtype (Linen's own convention)."""
    params = fn.params
    positional = [*params.posonly_params, *params.params]
    return len(positional) >= 3 and positional[2].name.value == "dtype"


def _takes_key_and_shape(fn: Function) -> bool:
    params = fn.params
    return len([*params.posonly_params, *params.params]) >= 2 or isinstance(params.star_arg, cst.Param)


class Initializers:
    """The user initializers of one file (see the module docstring)."""

    def __init__(self, module: cst.Module) -> None:
        bindings = _Bindings(top_level=True)
        module.visit(bindings)
        self._functions: dict[str, Function] = {}  # module-level functions bound once
        for stmt in module.body:
            fn: Function | None = None
            name = None
            if isinstance(stmt, cst.FunctionDef):
                fn, name = stmt, stmt.name.value
            elif (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                  and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1
                  and isinstance(stmt.body[0].targets[0].target, cst.Name)
                  and isinstance(stmt.body[0].value, cst.Lambda)):
                fn, name = stmt.body[0].value, stmt.body[0].targets[0].target.value
            if fn is not None and name is not None and bindings.count[name] == 1:
                self._functions[name] = fn

    def needs_adapter(self, value: cst.BaseExpression, hidden: frozenset[str] = frozenset()) -> str | None:
        """The user function ``value`` is (or returns), when Linen's
        ``init(key, shape, dtype)`` call would not mean the legacy ``init(key, shape)``;
        ``hidden``: the names the functions around ``value`` bind."""
        if isinstance(value, cst.Name) and value.value in hidden:
            return None
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in hidden:
            return None
        if isinstance(value, cst.Name) and value.value in self._functions:
            fn = self._functions[value.value]
            return value.value if _takes_key_and_shape(fn) and not _takes_dtype(fn) else None
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in self._functions:
            factory = self._functions[value.func.value]
            made = _returned_functions(factory) if isinstance(factory, cst.FunctionDef) else None
            if made and all(_takes_key_and_shape(f) and not _takes_dtype(f) for f in made):
                return value.func.value
        return None

    def adapt(self, args: Sequence[cst.Arg], slots: frozenset[str],
              hidden: frozenset[str] = frozenset()) -> tuple[list[cst.Arg], list[str]]:
        """``args`` with every keyword in ``slots`` that passes a user initializer
        wrapped; and what was wrapped (for the report)."""
        out: list[cst.Arg] = []
        done: list[str] = []
        for a in args:
            name = self.needs_adapter(a.value, hidden) if a.keyword is not None and a.keyword.value in slots else None
            if name is not None:
                a = a.with_changes(value=adapter(a.value))
                done.append(f"{a.keyword.value}={name}")  # type: ignore[union-attr]
            out.append(a)
        return out, done


def initializer_slots(legacy: tuple[str, ...]) -> frozenset[str]:
    """The initializer parameters of the built-in module whose legacy ``apply``
    parameters are ``legacy`` (the table's ``*_init`` rows); none for a user module."""
    if not any(row.legacy == legacy for row in BUILTIN_MODULES.values()):
        return frozenset()
    return frozenset(n for n in legacy if n.endswith("_init"))


def adapter(value: cst.BaseExpression) -> cst.Lambda:
    """``lambda key, shape, dtype=None: f(key, shape)``; a made initializer
    (``factory(0.5)``) is made once, where legacy made it, as the default of
    a parameter Linen never passes."""
    if isinstance(value, cst.Name):
        return cst.ensure_type(cst.parse_expression(f"lambda key, shape, dtype=None: {value.value}(key, shape)"),
                               cst.Lambda)
    made = cst.Module([]).code_for_node(value)
    return cst.ensure_type(cst.parse_expression(f"lambda key, shape, dtype=None, init={made}: init(key, shape)"),
                           cst.Lambda)


def _returned_functions(factory: cst.FunctionDef) -> list[Function] | None:
    """The functions every ``return`` of ``factory`` gives (a nested def or a
    lambda), None when one returns anything else."""
    nested: dict[str, cst.FunctionDef] = {}
    returns: list[cst.BaseExpression | None] = []

    class _Walk(FastVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            if node is not factory:
                nested[node.name.value] = node
                return False  # its returns are its own
            return True

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            return False

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def visit_Return(self, node: cst.Return) -> None:
            returns.append(node.value)

    factory.visit(_Walk())
    out: list[Function] = []
    for r in returns:
        if isinstance(r, cst.Lambda):
            out.append(r)
        elif isinstance(r, cst.Name) and r.value in nested:
            out.append(nested[r.value])
        else:
            return None
    return out or None
