"""LU105's inline shared submodules: the same ``cell = Cell.shared(...,
name='cell')`` written in ``apply`` and again in an ``@nn.module_method``
(or kept as ``self.cell = Cell.shared(...)``) -> one ``self.cell =
Cell(..., name='cell')`` in ``setup()``, read as ``self.cell`` everywhere.

Legacy looked the submodule up by its name in each method, so every method
saw the same parameters; Linen shares it by building one instance.  That is
the same module only when each method builds it alike: the same call (same
text, up to formatting), made of hyper-parameters, module-level names and
locals computed from them by the same simple statements before it (``if
hidden is None: hidden = 2 * classes``), which setup() repeats.
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst

from linen_upgrade.rule import FastTransformer, FastVisitor
from linen_upgrade.rules._cst import code, named_params
from linen_upgrade.rules._definitions import reassigned_names, stored_on_self
from linen_upgrade.transformer import target_names


@dataclass
class _Binding:
    method: str
    stmt: cst.SimpleStatementLine
    call: cst.Call
    local: str | None  # ``cell = ...``; None for ``self.<attr> = ...``
    stored: str | None  # ``self.<attr> = ...``
    prelude: list[cst.BaseStatement] = field(default_factory=list)
    kinds: tuple[tuple[str, str], ...] = ()  # each name it reads: a hyper-parameter, a local or a global


@dataclass
class InlinePlan:
    """What setup() gains and what each method loses."""
    setup: list[cst.BaseStatement]  # prelude statements and ``self.<attr> = M.shared(...)`` (legacy form)
    calls: dict[int, str]  # id of each ``.shared()`` call setup() builds -> its attribute
    dropped: set[int]  # ids of the statements the methods lose (bindings, no-op stores)
    renames: dict[str, dict[str, str]]  # method -> local -> attribute
    inputs: set[str]  # apply's inputs it stored on self (``self.orbit = orbit``), read as themselves

    @property
    def attrs(self) -> set[str]:
        return set(self.calls.values())


def plan_inline_shared(methods: dict[str, cst.FunctionDef], module_methods: set[str], attrs: set[str],
                       taken: set[str], is_module: Callable[[cst.BaseExpression], bool]) -> InlinePlan | str | None:
    """The plan for ``apply`` and the module methods, ``None`` when none
    shares a ``.shared()`` submodule so, or why it cannot be done.  ``attrs``:
    the ``apply`` parameters that become attributes; ``taken``: names an
    attribute made in setup() may not take; ``is_module``: whether an
    expression is a legacy module (``Cell`` in ``Cell.shared(...)``)."""
    found: dict[str | None, list[_Binding]] = {}
    for name in ["apply", *sorted(module_methods)]:
        if name in methods:
            for stmt in methods[name].body.body:  # type: ignore[union-attr]
                b = _binding(name, stmt)
                if b is not None and is_module(b.call.func.value):  # type: ignore[attr-defined]
                    found.setdefault(legacy_name(b.call), []).append(b)
    # only what a module method shares, or apply keeps on self, needs setup()
    groups = {n: bs for n, bs in found.items()
              if any(b.method in module_methods or b.stored for b in bs)}
    if not groups:
        return None
    for legacy, bindings in groups.items():
        if legacy is None:
            return ("a .shared() submodule without a literal name= kept on self or by a module method: legacy "
                    "numbered it, setup() would name it after its attribute (new parameter paths); give it a name= "
                    "and re-run")
        stored = {b.stored for b in bindings if b.stored}
        if len(stored) > 1 or len({b.method for b in bindings}) < len(bindings):
            return f"the shared submodule {legacy!r} is made more than once in one method: build it in setup() by hand"
        for b in bindings:
            problem = _prelude(b, methods[b.method], attrs)
            if problem:
                return f"{b.method} builds the shared submodule {legacy!r} {problem}: build it in setup() by hand"
        made = {_same(b): b.method for b in bindings}
        if len(made) > 1:
            return (f"{' and '.join(made.values())} build the shared submodule {legacy!r} differently "
                    "(a different call or different values before it): one of them would change; "
                    "build it once in setup() by hand")
    # one attribute per shared submodule: the name apply keeps it under, else the legacy name
    named = {legacy: next(iter({b.stored for b in bs if b.stored}), None) or legacy for legacy, bs in groups.items()}
    clashing = [a for a in named.values() if a in taken or keyword.iskeyword(a) or a == "setup"]
    if clashing or len(set(named.values())) < len(named):
        return (f"the shared submodule attribute {(clashing or list(named.values()))[0]} is taken by a method "
                "or hyper-parameter: build it in setup() by hand")
    # setup() repeats one method's statements, in its order: preludes from several would repeat themselves
    sources = {bs[0].method for bs in groups.values() if bs[0].prelude}
    if len(sources) > 1:
        return "shared submodules made from local values in different methods: build them in setup() by hand"
    setup = _setup_statements(methods, groups)
    calls = {id(bs[0].call): named[legacy] for legacy, bs in groups.items()}
    dropped = {id(b.stmt) for bs in groups.values() for b in bs}
    renames: dict[str, dict[str, str]] = {}
    for legacy, bindings in groups.items():
        for b in bindings:
            if b.local is not None:
                renames.setdefault(b.method, {})[b.local] = named[legacy]
    inputs: set[str] = set()
    if "apply" in methods:
        stores, inputs = _self_stores(methods["apply"], attrs, methods)
        dropped |= {id(s) for s in stores}
    # a store left (``self.n = x.shape[0]``) keeps the class legacy (LU101 says why): so does this
    if stored_on_self([m.with_changes(body=m.body.with_changes(body=[
            s for s in m.body.body if id(s) not in dropped])) for m in methods.values()]):  # type: ignore[union-attr]
        return None
    return InlinePlan(setup, calls, dropped, renames, inputs)


def _binding(method: str, stmt: cst.BaseStatement) -> _Binding | None:
    """``v = M.shared(...)`` or ``self.v = M.shared(...)`` alone on a line."""
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1):
        return None
    value, target = stmt.body[0].value, stmt.body[0].targets[0].target
    if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value == "shared"):
        return None
    if isinstance(target, cst.Name):
        return _Binding(method, stmt, value, target.value, None)
    if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self":
        return _Binding(method, stmt, value, None, target.attr.value)
    return None


def legacy_name(call: cst.Call) -> str | None:
    """The literal ``name=`` of a call, when it is an identifier."""
    for a in call.args:
        if a.keyword is not None and a.keyword.value == "name" and isinstance(a.value, cst.SimpleString):
            value = a.value.evaluated_value
            if isinstance(value, str) and value.isidentifier():
                return value
    return None


def _prelude(b: _Binding, fn: cst.FunctionDef, attrs: set[str]) -> str | None:
    """Fill ``b.prelude`` (the statements before the binding that compute the
    locals its call reads) and ``b.kinds``; or what else the call reads."""
    body = list(fn.body.body)  # type: ignore[union-attr]
    at = next(i for i, s in enumerate(body) if s is b.stmt)
    p = fn.params
    params = {q.name.value for q in named_params(p)}
    params |= {q.name.value for q in (p.star_arg, p.star_kwarg) if isinstance(q, cst.Param)}
    # the hyper-parameters this method sees: apply's attributes it takes as parameters
    # (legacy passed them all to a module method; one without them reads a global)
    hyper = attrs & params
    changed = reassigned_names(fn.body)
    local = params | changed
    if b.local is not None and (b.local in local - {b.local} or b.local in attrs or b.local in _comprehended(fn)
                                or any(b.local in reassigned_names(s) for s in [*body[:at], *body[at + 1:]])):
        return f"into {b.local}, which the method binds again (or a comprehension does)"
    # a hyper-parameter nothing rebinds reads self.<attr>; any other local needs the statements making it
    needed = {n for n in loads(b.call) if n in local and not (n in hyper and n not in changed)}
    prelude: list[cst.BaseStatement] = []
    for stmt in reversed(body[:at]):
        if reassigned_names(stmt) & needed:
            if not _simple(stmt):
                return f"from a local computed by {code(stmt).strip().splitlines()[0]!r}"
            prelude.insert(0, stmt)
            needed |= {n for n in loads(stmt) if n in local}
    bound = set().union(*(reassigned_names(s) for s in prelude)) if prelude else set()
    outside = sorted(n for n in needed if n not in hyper and n not in bound)
    if outside:
        return f"from {', '.join(outside)}, which is not a hyper-parameter"
    reads = loads(b.call).union(*(loads(s) for s in prelude))
    shadowed = sorted(n for n in reads if n in attrs and n not in local)
    if shadowed:
        return f"from the module-level {', '.join(shadowed)}, named like a hyper-parameter"
    b.prelude = prelude
    b.kinds = tuple(sorted((n, "hyper" if n in hyper else "local" if n in local else "global") for n in reads))
    return None


def _comprehended(fn: cst.FunctionDef) -> set[str]:
    """Names a comprehension in ``fn`` binds (``[c for c in cells]``): not the local read as ``self.<attr>``."""
    found: set[str] = set()

    class V(FastVisitor):
        def visit_CompFor(self, node: cst.CompFor) -> None:
            found.update(n.value for n in target_names(node.target))
    fn.visit(V())
    return found


def _simple(stmt: cst.CSTNode) -> bool:
    """Assignments of names and ``if`` blocks of them, with no calls: setup()
    may run them again without side effects."""
    if isinstance(stmt, cst.If):
        return (_simple_block(stmt.body) and (stmt.orelse is None or _simple(stmt.orelse))
                and _pure(stmt.test))
    if isinstance(stmt, cst.Else):
        return _simple_block(stmt.body)
    if not isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):  # ``if h is None: h = 2``
        return False
    for small in stmt.body:
        if isinstance(small, cst.Assign):
            targets = [t.target for t in small.targets]
        elif isinstance(small, (cst.AugAssign, cst.AnnAssign)):
            targets = [small.target]
        else:
            return False
        if not all(isinstance(t, cst.Name) for t in targets):
            return False
    return _pure(stmt)


def _simple_block(block: cst.BaseSuite) -> bool:
    if isinstance(block, cst.SimpleStatementSuite):
        return _simple(block)
    return isinstance(block, cst.IndentedBlock) and all(_simple(s) for s in block.body)


def _pure(node: cst.CSTNode) -> bool:
    """No calls, lambdas, walrus or ``self``."""
    impure = False

    class V(FastVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            nonlocal impure
            impure = True

        def visit_Lambda(self, node: cst.Lambda) -> None:
            nonlocal impure
            impure = True

        def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
            nonlocal impure
            impure = True
    node.visit(V())
    return not impure and "self" not in loads(node)


def loads(node: cst.CSTNode) -> set[str]:
    """The names ``node`` reads: not attribute names, keywords or ``del`` targets."""
    found: set[str] = set()
    skip: set[int] = set()

    class V(FastVisitor):
        def visit_Del(self, n: cst.Del) -> bool:
            return False

        def visit_Attribute(self, n: cst.Attribute) -> None:
            skip.add(id(n.attr))

        def visit_Arg(self, n: cst.Arg) -> None:
            if n.keyword is not None:
                skip.add(id(n.keyword))

        def visit_Name(self, n: cst.Name) -> None:
            if id(n) not in skip:
                found.add(n.value)
    node.visit(V())
    return found


def _same(b: _Binding) -> tuple:
    """The prelude and the call up to formatting, and what each name read is."""
    return ast.dump(ast.parse(cst.Module(body=b.prelude).code)), expression_key(b.call), b.kinds


def expression_key(expr: cst.BaseExpression) -> str:
    """``expr`` up to formatting: equal for ``f(a=1)`` and ``f( a = 1 )``."""
    return ast.dump(ast.parse(code(expr).strip(), mode="eval"))


def _setup_statements(methods: dict[str, cst.FunctionDef], groups: dict[str | None, list[_Binding]]
                      ) -> list[cst.BaseStatement]:
    """Each group's first binding with its prelude, in the order of the method holding it."""
    chosen: list[cst.BaseStatement] = []
    ids: set[int] = set()
    for bindings in groups.values():
        first = bindings[0]
        for s in [*first.prelude, first.stmt]:
            if id(s) not in ids:
                ids.add(id(s))
                chosen.append(s)
    order = {id(s): (m, i) for m, fn in enumerate(methods.values())
             for i, s in enumerate(fn.body.body)}  # type: ignore[union-attr]
    return sorted(chosen, key=lambda s: order[id(s)])


def _self_stores(apply: cst.FunctionDef, attrs: set[str], methods: dict[str, cst.FunctionDef]
                 ) -> tuple[list[cst.BaseStatement], set[str]]:
    """``self.orbit = orbit`` in apply, ``orbit`` a parameter nothing rebinds: a
    hyper-parameter is that attribute in Linen already (the store goes); an input
    is read as the parameter instead, when only apply reads ``self.orbit`` and no
    function inside it takes a parameter of that name.  The stores and the inputs."""
    changed = reassigned_names(apply.body)
    p = apply.params
    params = {q.name.value for q in named_params(p)}
    stores, inputs = [], set()
    for stmt in apply.body.body:  # type: ignore[union-attr]
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1):
            continue
        t, v = stmt.body[0].targets[0].target, stmt.body[0].value
        if not (isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self"
                and isinstance(v, cst.Name) and v.value == t.attr.value and v.value in params
                and v.value not in changed and v.value not in methods):
            continue
        if v.value not in attrs:
            if any(_reads_self(m, v.value) for n, m in methods.items() if n != "apply") \
                    or v.value in _nested_params(apply):
                continue
            inputs.add(v.value)
        stores.append(stmt)
    return stores, inputs


def _reads_self(fn: cst.CSTNode, name: str) -> bool:
    found = False

    class V(FastVisitor):
        def visit_Attribute(self, node: cst.Attribute) -> None:
            nonlocal found
            found = found or (isinstance(node.value, cst.Name) and node.value.value == "self"
                              and node.attr.value == name)
    fn.visit(V())
    return found


def _nested_params(fn: cst.FunctionDef) -> set[str]:
    """Parameter names of the functions and lambdas inside ``fn``."""
    found: set[str] = set()

    class V(FastVisitor):
        def visit_Param(self, node: cst.Param) -> None:
            found.add(node.name.value)
    fn.body.visit(V())
    return found


class ReadInputs(FastTransformer):
    """``self.orbit`` -> ``orbit`` for the inputs apply no longer stores."""

    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if isinstance(original.value, cst.Name) and original.value.value == "self" and original.attr.value in self.names:
            return cst.Name(original.attr.value, lpar=updated.lpar, rpar=updated.rpar)
        return updated
