"""User initializers that Linen would call differently from legacy Flax.

Legacy built-in modules called an initializer ``init(key, shape)``; Linen's
call it ``init(key, shape, dtype)``.  Which values need an adapter that
drops the dtype (exact: legacy never passed one) is decided by data flow,
never by names: a lambda or a function of this file or of another file of the run that
cannot take the dtype third, or a call of a function returning one
(``linen_upgrade.analysis.initializers``, through the file's facts and the
project index), reached directly, through the module path it is imported
by, or through a local name assigned once; ``functools.partial(init,
dtype=...)``, which fixes the parameter Linen passes by position, and a partial
of such a function; and an instance of a class of this file (its ``__call__``
may not take the dtype: the adapter is exact whatever it takes).  In a run that
turns jax's x64 on, also a function or lambda whose ``dtype`` defaults to
another dtype than jax's default float: Linen's built-ins pass it
``param_dtype=float`` there (``analysis.initializers``, X64 kinds).
(``self.param(name, init, shape)`` needs nothing: Linen calls that
``init(key, shape)``, as legacy did.)
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Mapping, Sequence

import libcst as cst

from linen_upgrade.analysis.initializers import (FACTORY, FUNCTION, X64_FACTORY, X64_FUNCTION, needs_adapter,
                                                 needs_adapter_x64)
from linen_upgrade.index import LegacyModule
from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, FastVisitor
from linen_upgrade.rules._cst import code, named_params
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES

# names bound in the functions around a use -> the value of their only plain assignment, or None
Hidden = Mapping[str, "cst.BaseExpression | None"]


class _Bindings(FastVisitor):
    """The names one function (with all it encloses) binds, and the value of
    each one bound by a single plain assignment."""

    def __init__(self) -> None:
        super().__init__()
        self.count: Counter[str] = Counter()
        self.values: dict[str, cst.BaseExpression] = {}

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.count[node.name.value] += 1

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.count[node.name.value] += 1

    def visit_Param(self, node: cst.Param) -> None:
        self.count[node.name.value] += 1

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            self.values[node.targets[0].target.value] = node.value

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
            self.count[code(node.name).split(".")[0]] += 1

    def visit_Global(self, node: cst.Global) -> None:
        for n in node.names:
            self.count[n.name.value] += 1

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        for n in node.names:
            self.count[n.name.value] += 1

    def _targets(self, node: cst.CSTNode) -> None:
        if isinstance(node, cst.Name):
            self.count[node.value] += 1
        elif isinstance(node, (cst.Tuple, cst.List)):
            for e in node.elements:
                self._targets(e.value)
        elif isinstance(node, cst.StarredElement):
            self._targets(node.value)


def local_names(fn: cst.FunctionDef) -> dict[str, cst.BaseExpression | None]:
    """The names ``fn`` (or a function inside it) binds, which hide the file's
    top-level names, each with its value where one plain assignment binds it."""
    b = _Bindings()
    fn.params.visit(b)
    fn.body.visit(b)
    return {name: b.values.get(name) if n == 1 else None for name, n in b.count.items()}


def merged(scopes: Sequence[Hidden]) -> dict[str, cst.BaseExpression | None]:
    """The hidden names of nested functions, the innermost binding winning."""
    out: dict[str, cst.BaseExpression | None] = {}
    for scope in scopes:
        out.update(scope)
    return out


class Initializers:
    """The user initializers one file can reach (see the module docstring)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _kind(self, value: cst.BaseExpression, hidden: Hidden, depth: int) -> str | None:
        """FUNCTION or FACTORY for a name or dotted path that stands for one that needs
        the adapter in this run (the X64 kinds count as those in an x64 run)."""
        kind = self._fact(value, hidden, depth)
        if self.ctx.index.x64:
            kind = {X64_FUNCTION: FUNCTION, X64_FACTORY: FACTORY}.get(kind, kind)  # type: ignore[arg-type]
        return kind

    def _fact(self, value: cst.BaseExpression, hidden: Hidden, depth: int) -> str | None:
        name = dotted(value)
        if name is None:
            return None
        head = name.partition(".")[0]
        if head in hidden:
            local = hidden[head]  # followed only when assigned once, to a name or path
            if name != head or local is None or depth > 3 or dotted(local) is None:
                return None
            return self._fact(local, {k: v for k, v in hidden.items() if k != head}, depth + 1)
        if name in self.ctx.facts.initializers:
            return self.ctx.facts.initializers[name]
        qual = self.ctx.facts.imports.resolve_dotted(name)
        return self.ctx.index.initializers.get(self.ctx.index.canonical(qual)) if qual else None

    def needs_adapter(self, value: cst.BaseExpression, hidden: Hidden = {}, depth: int = 0) -> str | None:
        """What makes ``value`` an initializer Linen's ``init(key, shape, dtype)``
        would call differently from the legacy ``init(key, shape)``, for the report."""
        if isinstance(value, cst.Name) and value.value in hidden and depth <= 3:
            local = hidden[value.value]
            if isinstance(local, cst.Call):  # a factory's result or a partial, assigned once
                rest = {k: v for k, v in hidden.items() if k != value.value}
                return self.needs_adapter(local, rest, depth + 1)
            if isinstance(local, cst.Lambda) and _lambda_needs_adapter(local.params, self.ctx.index.x64):
                return value.value
        if self._kind(value, hidden, depth) == FUNCTION:
            return dotted(value)
        if isinstance(value, cst.Lambda) and _lambda_needs_adapter(value.params, self.ctx.index.x64):
            return "lambda"
        if isinstance(value, cst.Call):
            func = dotted(value.func)
            if self._kind(value.func, hidden, depth) == FACTORY:
                return f"{func}(...)"
            if (func is not None and func.partition(".")[0] not in hidden
                    and self.ctx.facts.imports.resolve_dotted(func) == "functools.partial" and value.args):
                if any(a.keyword is not None and a.keyword.value == "dtype" for a in value.args):
                    return "functools.partial(..., dtype=...)"
                wrapped = value.args[0]
                if wrapped.keyword is None and not wrapped.star and self.needs_adapter(wrapped.value, hidden, depth + 1):
                    return f"functools.partial({code(wrapped.value)}, ...)"
            if isinstance(value.func, cst.Name) and value.func.value not in hidden and any(
                    c.name == value.func.value and c.apply_params is None for c in self.ctx.facts.classes):
                return f"{func}(...)"  # an instance of a class of this file: its __call__ may not take the dtype
        return None

    def adapt(self, args: Sequence[cst.Arg], slots: frozenset[str],
              hidden: Hidden = {}) -> tuple[list[cst.Arg], list[str]]:
        """``args`` with every keyword in ``slots`` that passes such an
        initializer wrapped; and what was wrapped (for the report)."""
        out: list[cst.Arg] = []
        done: list[str] = []
        for a in args:
            what = self.needs_adapter(a.value, hidden) if a.keyword is not None and a.keyword.value in slots else None
            if what is not None:
                a = a.with_changes(value=adapter(a.value))
                done.append(f"{a.keyword.value}={what}")  # type: ignore[union-attr]
            out.append(a)
        return out, done


def _lambda_needs_adapter(params: cst.Parameters, x64: bool = False) -> bool:
    """``lambda k, s: ...`` (Linen's dtype would not fit) or ``lambda k, s, scale=0.5: ...`` (it would
    land in ``scale``); in an x64 run also ``lambda k, s, dtype=jnp.float32: ...``: the reading of
    ``analysis.initializers``, on the lambda's parameters."""
    fn = ast.parse(f"lambda {code(params)}: 0", mode="eval").body
    return needs_adapter(fn) or (x64 and needs_adapter_x64(fn))  # type: ignore[arg-type]


def initializer_slots(legacy: tuple[str, ...], module: LegacyModule | None = None) -> frozenset[str]:
    """The parameters a legacy initializer may be passed to: those a module of the
    run passes on to a built-in's initializer (``module.init_params``), or the
    ``*_init`` rows of the built-in whose legacy ``apply`` parameters are ``legacy``."""
    if module is not None:
        return module.init_params
    if not any(row.legacy == legacy for row in BUILTIN_MODULES.values()):
        return frozenset()
    return frozenset(n for n in legacy if n.endswith("_init"))


def adapter(value: cst.BaseExpression) -> cst.Lambda:
    """``lambda key, shape, dtype=None: f(key, shape)``; a made initializer
    (``factory(0.5)``) is made once, where legacy made it, as the default of
    a parameter Linen never passes."""
    if isinstance(value, cst.Lambda) and len(value.params.params) == 2 and not value.params.posonly_params \
            and not isinstance(value.params.star_arg, cst.Param):  # lambda k, s: ... -> lambda k, s, dtype=None: ...
        taken = {p.name.value for p in named_params(value.params)}
        dtype = cst.Param(cst.Name("dtype" if "dtype" not in taken else "_dtype"), default=cst.Name("None"),
                          equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
        return value.with_changes(params=value.params.with_changes(params=[*value.params.params, dtype]))
    name = dotted(value)
    if name is not None:
        return cst.ensure_type(cst.parse_expression(f"lambda key, shape, dtype=None: {name}(key, shape)"),
                               cst.Lambda)
    made = code(value)
    return cst.ensure_type(cst.parse_expression(f"lambda key, shape, dtype=None, init={made}: init(key, shape)"),
                           cst.Lambda)
