"""LU301 (optim_constructors)'s plan: which flax.optim definitions of a file
convert to their optax expression here, and which keep their legacy form with
a TODO because their value reaches the OptimizerDef API (``.create``,
``apply_gradient``, ...) -- directly, through a variable, a function's return
value, a keyword of that name or a wrapper's slot -- which LU302 converts
together with the optimizer code around it.
"""

from __future__ import annotations

import ast

from dataclasses import dataclass
from functools import lru_cache

import libcst as cst

from linen_upgrade.rule import Context
from linen_upgrade.rules._optim_defs import WEIGHT_NORM, Ctor, Scan, convert, last_name
from linen_upgrade.tables.optimizers import HELPERS, MULTI, ConversionError, MissingLearningRate


# the mark of LU301's TODOs on definitions that feed flax.optim code LU302 may convert
FEEDS_OPTIM = "LU301:feeds-flax-optim"


@dataclass
class Outcome:
    expr: str | None = None  # the optax source, when the call converts
    helpers: tuple[str, ...] = ()
    todo: str | None = None
    withdrawable: bool = False  # the TODO is about code LU302 may convert (FEEDS_OPTIM)
    indent: str = ""  # leading whitespace of the call's first line
    column: int = 0


def plan_definitions(scan: Scan, module: cst.Module) -> dict[int, Outcome]:
    """id(call) -> outcome, for the outermost constructor calls."""
    ctor_ids = {id(c.node) for c in scan.ctors}
    roots = [c for c in scan.ctors if not any(id(a) in ctor_ids for a in c.ancestors)]
    taken = _names_taken(module, scan.ctx)
    converted: dict[int, tuple[str, tuple[str, ...]] | str | MissingLearningRate] = {}
    for c in roots:
        try:
            expr, helpers = convert(c.node, scan, module)
            clash = sorted(n for h in helpers for n in _helper_objects(h) if n in taken)
            if clash:
                raise ConversionError(f"this file defines its own {', '.join(clash)}: "
                                      "rename it to make room for the helper")
            converted[id(c.node)] = expr, helpers
        except MissingLearningRate as e:  # LU302 converts it where every step gives one
            converted[id(c.node)] = e
        except ConversionError as e:
            converted[id(c.node)] = str(e)
    assigned: dict[str, list[Ctor]] = {}
    for c in roots:
        for name in _assign_targets(c):
            assigned.setdefault(name, []).append(c)
    legacy_names, legacy_funcs = set(scan.legacy_names), set(scan.legacy_funcs)
    if legacy_names or legacy_funcs:  # `def keep(d): holder.opt_def = d`: its .create is not followed to d
        legacy_names |= scan.stored
    # a function no code here calls is called from other files, out of sight
    legacy_funcs |= set(scan.params) - scan.called
    # what other files of the run are handed (their code is not converted with it: it stays legacy)
    elsewhere = handovers(scan, roots)
    for kind, value, _, _ in scan.passed_out:
        (legacy_names if kind == "name" else legacy_funcs).add(value)
    blocked: set[int] = {id(c.node) for c in roots if not isinstance(converted[id(c.node)], tuple)}
    blocked |= elsewhere.keys()
    changed = True
    while changed:  # to a fixpoint: each rule below only ever adds
        before = (len(blocked), len(legacy_names), len(legacy_funcs))
        for targets, func in scan.call_assigns:
            if targets & legacy_names:
                legacy_funcs.add(func)
        for func, name in scan.returns:
            if func in legacy_funcs:
                legacy_names.add(name)
        for kind, value, callee, where in scan.passed:  # g(opt_def) or g(make_optimizer())
            params = scan.params.get(callee, [])
            param = where if isinstance(where, str) else params[where] if where < len(params) else None
            if param in legacy_names:
                (legacy_names if kind == "name" else legacy_funcs).add(value)
        for c in roots:
            if id(c.node) in blocked:
                legacy_names.update(_optimizer_slot_names(c.node, scan))
            elif _reaches_legacy(c, scan, legacy_names, legacy_funcs) or any(
                    not assigned.get(n) or any(id(o.node) in blocked for o in assigned[n])
                    for n in _optimizer_slot_names(c.node, scan)):
                blocked.add(id(c.node))
        for group in assigned.values():  # one variable: all its definitions, or none
            if any(id(c.node) in blocked for c in group):
                blocked.update(id(c.node) for c in group)
        changed = before != (len(blocked), len(legacy_names), len(legacy_funcs))
    plan: dict[int, Outcome] = {}
    lines: list[str] = []
    starts: list[tuple[int, int]] | None = None  # (the module's code is made only for a call converted)
    for c in roots:
        shown = module.code_for_node(c.node.func)
        result = converted[id(c.node)]
        if isinstance(result, (str, MissingLearningRate)):
            plan[id(c.node)] = Outcome(todo=f"{shown}(...): {result}; not converted",
                                       withdrawable=isinstance(result, MissingLearningRate))
        elif id(c.node) in blocked:
            expr, helpers = result
            extra = (f" with {', '.join(_helper_names(helpers))} from linen_upgrade/optax_legacy.py"
                     if helpers else "")
            form = f"optax form: {' '.join(expr.split())}{extra}"
            if id(c.node) in elsewhere:  # LU302 does not convert it here: the TODO stays
                plan[id(c.node)] = Outcome(todo=(
                    f"{shown}(...) {elsewhere[id(c.node)].text}, whose code (.create, apply_gradient, ...) this rule "
                    f"does not convert with it: convert them together by hand; {form}"))
            else:
                plan[id(c.node)] = Outcome(withdrawable=True, todo=(
                    f"{shown}(...) feeds flax.optim code that is not converted (.create, apply_gradient, "
                    f"...): convert them together; {form}"))
        else:
            if starts is None:
                code = module.code
                lines = code.splitlines()
                starts = _call_starts(code, scan.calls)
            line_no, column = starts[c.call_index]
            line = lines[line_no - 1]
            plan[id(c.node)] = Outcome(*result, indent=line[:len(line) - len(line.lstrip())],
                                       column=column)
    return plan


@lru_cache(maxsize=None)
def _helper_objects(helper_source: str) -> dict[str, str]:
    """The functions/classes a helper defines, with their code."""
    return {s.name.value: cst.Module([]).code_for_node(s.with_changes(leading_lines=[])).strip()
            for s in cst.parse_module(helper_source).body if isinstance(s, (cst.FunctionDef, cst.ClassDef))}


def _names_taken(module: cst.Module, ctx: Context) -> set[str]:
    """Module-level names bound to something other than our helper of that name."""
    taken = set(ctx.facts.imports.aliases)
    for stmt in module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            # the code of a definition named as none of ours is not needed to know it is not ours
            # (nor are our helpers' sources read: inspect and a parse of each, for every file)
            if stmt.name.value not in _HELPER_OBJECTS or _our_code().get(stmt.name.value) != cst.Module(
                    []).code_for_node(stmt.with_changes(leading_lines=[])).strip():
                taken.add(stmt.name.value)
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                for target in getattr(small, "targets", ()):
                    if isinstance(target.target, cst.Name):
                        taken.add(target.target.value)
    return taken


_HELPER_OBJECTS = frozenset(o for h in HELPERS.values() for o in h.objects)


@lru_cache(maxsize=None)
def _our_code() -> dict[str, str]:
    """Each helper function/class name -> its code."""
    return {name: code for h in HELPERS.values() for name, code in _helper_objects(h.source).items()}


def _assign_targets(c: Ctor) -> set[str]:
    return {last_name(t) for t in _targets(c)} - {""}


def _targets(c: Ctor) -> list[cst.CSTNode]:
    """What the definition is assigned to: targets of an assignment, or the parameter it is the default of."""
    node, at = c.node, len(c.ancestors) - 1
    while at >= 0 and isinstance(c.ancestors[at], cst.IfExp) and c.ancestors[at].test is not node:
        node, at = c.ancestors[at], at - 1  # d = optim.Adam(0.1) if flag else ...: a value of d
    parent = c.ancestors[at] if at >= 0 else None
    if isinstance(parent, cst.Assign) and parent.value is node:
        return [t.target for t in parent.targets]
    if isinstance(parent, cst.AnnAssign) and parent.value is node:
        return [parent.target]
    if isinstance(parent, cst.Param) and parent.default is node:  # def fit(model, opt_def=optim.Adam(0.1))
        return [parent.name]
    return []


def _stored_out_of_sight(c: Ctor, scan: Scan) -> bool:
    """Is the definition kept where this plan does not follow it: in an object's attribute or item
    (``defs.actor = optim.Adam(0.1)``), or as an argument of a call to no function of this file
    (a ``@dataclass``'s or library's constructor: ``Definitions(actor=optim.Adam(0.1))``), or of a
    class of the file, whose ``__init__`` may keep it under any attribute name (``self.tx = d``)?"""
    if any(not isinstance(t, cst.Name) for t in _targets(c)):
        return True
    parent = c.ancestors[-1] if c.ancestors else None
    if not (isinstance(parent, cst.Arg) and len(c.ancestors) >= 2 and isinstance(c.ancestors[-2], cst.Call)):
        return False
    callee = last_name(c.ancestors[-2].func)
    return callee not in scan.params or callee in scan.constructors


def _call_starts(code: str, expected: int) -> list[tuple[int, int]]:
    """(line, column) of every call in ``code`` in source order -- the order a
    LibCST traversal meets them (outer call first when two start together).
    ``ast`` gives positions for a fraction of LibCST's PositionProvider cost."""
    tree = ast.parse(code)
    calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)),
                   key=lambda n: (n.lineno, n.col_offset, -(n.end_lineno or 0), -(n.end_col_offset or 0)))
    assert len(calls) == expected, "ast and LibCST disagree on the calls of this file"
    lines = code.splitlines()
    # ast columns count UTF-8 bytes, LibCST's count characters
    return [(n.lineno, len(lines[n.lineno - 1].encode("utf-8")[:n.col_offset].decode("utf-8", "replace")))
            for n in calls]


def _reaches_legacy(c: Ctor, scan: Scan, legacy_names: set[str], legacy_funcs: set[str]) -> bool:
    """Is the definition's value visibly used through the OptimizerDef API?"""
    parent = c.ancestors[-1] if c.ancestors else None
    if isinstance(parent, cst.Attribute):
        return True
    if (scan.legacy_names or scan.legacy_funcs) and (_in_container(c) or _stored_out_of_sight(c, scan)):
        return True  # `for d in [optim.Adam(0.1), ...]: d.create(p)` is not followed: keep it legacy
    if _assign_targets(c) & legacy_names:
        return True
    if c.function in legacy_funcs and any(isinstance(a, cst.Return) for a in c.ancestors):
        return True  # in what the function returns
    if isinstance(parent, cst.Arg) and len(c.ancestors) >= 2 and isinstance(c.ancestors[-2], cst.Call):
        call = c.ancestors[-2]
        if parent.keyword is not None:
            return parent.keyword.value in legacy_names
        positional = [a for a in call.args if a.keyword is None and not a.star]
        params = scan.params.get(last_name(call.func), [])
        if parent in positional and positional.index(parent) < len(params):
            return params[positional.index(parent)] in legacy_names
    return False


@dataclass(frozen=True)
class Handover:
    """How a definition of the file reaches another file of the run, which keeps it legacy."""

    text: str  # for the TODO
    function: str = ""  # the qualified function of another file it is an argument of
    slot: int | str | None = None  # there, its position or keyword (None: not known)
    name: str = ""  # or: the module-level name of this file other files use


def handovers(scan: Scan, roots: list[Ctor] | None = None) -> dict[int, Handover]:
    """id(call) -> how it reaches another file, for the outermost constructor calls reaching one:
    an argument of a function there (directly or through a name), or a module-level name other
    files use (``defs.MOMENTUM.create(p)``)."""
    if roots is None:
        ctor_ids = {id(c.node) for c in scan.ctors}
        roots = [c for c in scan.ctors if not any(id(a) in ctor_ids for a in c.ancestors)]
    found: dict[int, Handover] = {}
    for c in roots:
        parent = c.ancestors[-1] if c.ancestors else None
        call = c.ancestors[-2] if isinstance(parent, cst.Arg) and len(c.ancestors) >= 2 else None
        qual = scan.other_file_function(call) if isinstance(call, cst.Call) else None
        if qual:
            assert isinstance(call, cst.Call) and isinstance(parent, cst.Arg)
            found[id(c.node)] = Handover(f"is passed to {qual}() of another file of the run", qual,
                                         _slot(call, parent))
            continue
        for name in sorted(_assign_targets(c)):
            users = scan.ctx.index.referrers.get(f"{scan.ctx.facts.module_name}.{name}")
            if c.function is None and users:
                found[id(c.node)] = Handover(f"is used as {name} by {', '.join(sorted(users))} of the run",
                                             name=name)
                break
            passed = next(((q, where) for kind, value, q, where in scan.passed_out
                           if kind == "name" and value == name), None)
            if passed:
                found[id(c.node)] = Handover(f"is passed as {name} to {passed[0]}() of another file of the run",
                                             *passed)
                break
    return found


def _slot(call: cst.Call, arg: cst.Arg) -> int | str | None:
    """``arg``'s keyword, or its position among the call's arguments (None after a ``*args``)."""
    if arg.keyword is not None:
        return arg.keyword.value
    positional = []
    for a in call.args:
        if a.star:
            break
        if a.keyword is None:
            positional.append(a)
    return next((i for i, a in enumerate(positional) if a is arg), None)


def _in_container(c: Ctor) -> bool:
    """Is the definition an element of a list/tuple/set/dict literal of its statement?"""
    for a in reversed(c.ancestors):
        if isinstance(a, cst.BaseStatement):
            return False
        if isinstance(a, (cst.List, cst.Tuple, cst.Set, cst.Dict)):
            return True
    return False


def _optimizer_slot_names(call: cst.Call, scan: Scan) -> set[str]:
    """Variables passed where a wrapper (WeightNorm, MultiOptimizer) takes a definition."""
    return {n.value for n in _optimizer_slots(call, scan) if isinstance(n, cst.Name)}


def _optimizer_slots(call: cst.Call, scan: Scan) -> list[cst.BaseExpression]:
    qual = scan.qual(call.func)
    if qual == WEIGHT_NORM:
        for i, a in enumerate(call.args):
            if (a.keyword is None and i == 0 and not a.star) or (
                    a.keyword is not None and a.keyword.value == "wrapped_optimizer"):
                return [a.value]
    if qual == MULTI:
        return [a.value.elements[1].value for a in call.args
                if isinstance(a.value, (cst.Tuple, cst.List)) and len(a.value.elements) == 2]
    return []


def _helper_names(sources: tuple[str, ...]) -> list[str]:
    by_source = {h.source: name for name, h in HELPERS.items()}
    return [by_source.get(s, "?") for s in sources]
