"""A module definition carried out of the function that makes it (LU202, ``Analysis.carries``).

``create_model(key, kwargs)`` binds ``module = MLP.partial(**kwargs)`` (keywords only it knows) or
``module = A if flag else B`` (a class chosen at run time), and returns ``nn.Model(module, params)``.
The Model becomes its params, so the callers, which apply it (through an optimizer's target, in a
train step), cannot write its Linen module.  The function hands the definition out too:

    def create_model(key, kwargs):            def create_model(key, kwargs):
        module = MLP.partial(**kwargs)            module = _module_partial(MLP, **kwargs)
        ...                               ->      ...
        return nn.Model(module, params)           return params, module

    model = create_model(key, kwargs)         model, module = create_model(key, kwargs)

and the caller holds it by a name, as if it had made it there: its optimizer becomes a TrainState
carrying ``apply_fn=module().apply``, its steps apply it.  Only where every use of the function is
such a call, in its own file, so that no caller is left expecting the old result:

- a top-level function, undecorated (a jitted one cannot return a module), not a generator, called
  nowhere else in the run (the index lists no other file referring to it);
- its result holds Models of one definition held by one local name (not a parameter: a caller
  passing the definition already names it), bound by plain assignments, all before every
  ``return``, and the body ends in a ``return`` (no path returns None);
- every reference to it is ``target = create_model(...)``, a single target;
- a caller uses the definition (``useless``): it applies the Model, makes an optimizer of it, or hands
  it to a function of this file; one that only passes it to another file is no better off.
A tuple result nests: ``return (model, state), module``.  Anything else keeps today's TODO at the uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import libcst as cst

from linen_upgrade.transformer import FastVisitor
from linen_upgrade.rules._usage_types import MODEL, OPTIM, TUPLE, Ty

if TYPE_CHECKING:
    from linen_upgrade.rules._usage_analysis import Analysis
    from linen_upgrade.rules._usage_scopes import Scope


@dataclass
class Carry:
    """One function handing out the definition its Models are made of."""

    local: str  # the name in the function holding the definition
    returns: list[cst.Return] = field(default_factory=list)
    # each call: (the caller's scope, the assignment of the call, the call, the name it binds the definition to)
    callers: list[tuple[Scope, cst.Assign, cst.Call, str]] = field(default_factory=list)


def plan(a: Analysis) -> dict[int, Carry]:
    """id(function) -> its Carry, for every function of the file that can hand its definition out;
    binds each caller's new name in the analysis (``Analysis.carried``)."""
    carries: dict[int, Carry] = {}
    for fid, fn in a.funcs.items():
        fscope = a.scopes[fid]
        if not isinstance(fn, cst.FunctionDef) or fscope.parent is not a.module_scope or fn.decorators \
                or a.index.referrers.get(f"{a.facts.module_name}.{fn.name.value}"):
            continue
        local = _held_local(a.rets.get(fid), fscope)
        returns = _returns_after(fn, local) if local is not None else None
        if returns is None:
            continue
        assigns = _call_statements(a, fn)
        if assigns is None:
            continue
        carry = Carry(local, returns)
        for scope, assign, call in assigns:
            name = a.fresh(scope.node, local)
            carry.callers.append((scope, assign, call, name))
            a.carried[id(call)] = (id(scope), name)
            scope.bind(name)
            a.bindings.append((scope, name, ("carried", fscope, local), ()))
            a.bound_at[(id(scope), name)] = [assign]
        carries[fid] = carry
    return carries


def useless(a: Analysis, carries: dict[int, Carry]) -> list[int]:
    """The carries no caller uses (typed with them bound): no Model of the definition is applied, made
    an optimizer of, or handed to a function of this file where a caller's name holds it (say, it
    only goes on to another file).  They are undone (``undo``), and the function left as it was."""
    useless = []
    for fid, carry in carries.items():
        held = {(id(scope), name) for scope, _, _, name in carry.callers}
        if not any(_uses(a, s, c, held) for s, c in a.calls):
            useless.append(fid)
    return useless


def _uses(a: Analysis, scope: Scope, call: cst.Call, held: set[tuple[int, str]]) -> bool:
    def named(t: Ty | None) -> bool:
        return t is not None and t.ref is not None and t.ref.def_var in held

    site = a.site(call)
    if site is not None and named(site[1]):
        return True  # applied where the name is visible
    func = call.func
    t = a.ty(call, scope)
    if t is not None and t.kind == OPTIM and named(t) and (
            isinstance(func, cst.Attribute) and func.attr.value == "create" or a._callee(call, scope)[0] is not None):
        return True  # an optimizer made of it here: a TrainState carrying the module
    return a._callee(call, scope)[0] is not None and any(
        named(a.ty(arg.value, scope)) for arg in call.args)  # handed to a function of this file


def undo(a: Analysis, carries: dict[int, Carry], fids: list[int]) -> None:
    for fid in fids:
        for scope, _, call, name in carries.pop(fid).callers:
            del a.carried[id(call)]
            a.bindings = [b for b in a.bindings if not (b[0] is scope and b[1] == name and b[2][0] == "carried")]
            del a.bound_at[(id(scope), name)]
            scope.bound[name] -= 1
            if not scope.bound[name]:
                del scope.bound[name]


def _held_local(ret: Ty | None, fscope: Scope) -> str | None:
    """The one local name of the function holding the definition of every held Model it returns."""
    names: set[str] = set()

    def walk(t: Ty | None) -> None:
        if t is None:
            return
        if t.kind == TUPLE:
            for item in t.items:
                walk(item)
        elif t.kind == MODEL and t.ref is not None and t.ref.held:
            var = t.ref.def_var
            names.add(var[1] if var is not None and var[0] == id(fscope) and var[1] not in fscope.params else "")

    walk(ret)
    if len(names) != 1 or "" in names or (local := names.pop()) in fscope.globals:
        return None
    return local


class _Order(FastVisitor):
    """The function's own assignments of ``local`` and returns, in source order (nested functions
    and classes are theirs); ``bad`` when ``local`` is bound otherwise, or the function yields."""

    def __init__(self, fn: cst.FunctionDef, local: str) -> None:
        self.fn, self.local = fn, local
        self.events: list[tuple[str, cst.CSTNode]] = []
        self.bad = False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return node is self.fn

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_Assign(self, node: cst.Assign) -> None:
        if any(isinstance(t.target, cst.Name) and t.target.value == self.local for t in node.targets):
            self.events.append(("bind", node))

    def _other_binding(self, target: cst.CSTNode | None) -> None:
        if isinstance(target, cst.Name) and target.value == self.local:
            self.bad = True

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._other_binding(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._other_binding(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._other_binding(node.target)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._other_binding(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._other_binding(node.name)

    def visit_Del(self, node: cst.Del) -> None:
        self._other_binding(node.target)

    def visit_Yield(self, node: cst.Yield) -> None:
        self.bad = True

    def visit_Return(self, node: cst.Return) -> None:
        self.events.append(("return", node))


def _returns_after(fn: cst.FunctionDef, local: str) -> list[cst.Return] | None:
    """The function's returns, when each has a value and comes after every binding of ``local``, and
    the body ends in one."""
    order = _Order(fn, local)
    fn.visit(order)
    binds = [i for i, (kind, _) in enumerate(order.events) if kind == "bind"]
    returns = [(i, node) for i, (kind, node) in enumerate(order.events) if kind == "return"]
    body = fn.body.body if isinstance(fn.body, cst.IndentedBlock) else ()
    ends = bool(body) and isinstance(body[-1], cst.SimpleStatementLine) \
        and any(isinstance(s, cst.Return) for s in body[-1].body)  # type: ignore[union-attr]
    if order.bad or not ends or not binds or max(binds) > returns[0][0] \
            or any(r.value is None for _, r in returns):  # type: ignore[attr-defined]
        return None
    return [r for _, r in returns]  # type: ignore[misc]


def _call_statements(a: Analysis, fn: cst.FunctionDef) -> list[tuple[Scope, cst.Assign, cst.Call]] | None:
    """Every use of the function: ``target = fn(...)`` (a single target), in a function body or at
    module level; None when it is used otherwise (passed on, wrapped, read) or never called."""
    name = fn.name.value
    found = []
    for scope, call in a.calls:
        if not (isinstance(call.func, cst.Name) and call.func.value == name) or scope.lookup(name) is not a.module_scope:
            continue
        assign = a.parent.get(id(call))
        if not (isinstance(assign, cst.Assign) and assign.value is call and len(assign.targets) == 1) \
                or not isinstance(scope.node, (cst.FunctionDef, cst.Module)):
            return None
        found.append((scope, assign, call))
    from linen_upgrade.rules._usage import _references  # (the usage package imports this module)
    if not found or _references(a.module_scope.node, name) != len(found) + 1:
        return None
    return found
