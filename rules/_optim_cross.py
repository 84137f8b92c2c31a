"""LU302 (optim_train_state) across files: a legacy optimizer that one file
of the run passes to a function of another (``steps.train_step(optimizer,
batch)``, directly or through ``jax.jit``/``pmap``/``functools.partial``) is
converted in both files or in neither; so is one that a function of one
file returns to the files calling it (``opt = models.create_optimizer(...)``).

The files that hand optimizers to each other form a group, read from disk
the same way whichever of them is being rewritten (so each reaches the same
verdict): each file's ``Plan`` starts from the parameters the others pass it
an optimizer in (``seeds``) and follows the optimizers those functions, and
any function other files call, return (``external``), to a fixed point.  The
group converts when every file in it would convert alone, every call of a receiving function (in any file
of the run) passes an optimizer where the others do, and the optimizer
carries no per-step hyper-parameters or legacy ``.replicate()`` gradient
averaging (both are decided where the optimizer is created); otherwise each
file gets the TODO, naming the other file and function.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import libcst as cst

from linen_upgrade import engine
from linen_upgrade.config import Config
from linen_upgrade.index import ProjectIndex
from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, FastTransformer, FastVisitor, todo_line
from linen_upgrade.rules._optim_calls import bind, unwrap
from linen_upgrade.rules._optim_defs import LEGACY_ATTRS, Scan
from linen_upgrade.rules._optim_plan import handovers
from linen_upgrade.rules._train_state import TRAIN_STATE_BOUND, Plan, train_state_module
from linen_upgrade.rules._train_state_check import Steps, check_uses, joined, steps_of

_MAX_ROUNDS = 16


@dataclass(frozen=True)
class Shared:
    """What the other files of its group tell LU302 about one file."""

    seeds: frozenset[str] = frozenset()  # parameters that hold an optimizer of another file
    functions: tuple[str, ...] = ()  # the functions those are parameters of
    external: dict[str, frozenset[int | None]] = field(default_factory=dict)
    exported: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()  # of the other files of the group, and across files
    steps: Steps | None = None  # how the group's optimizers are made and stepped (``check_uses``)
    # flax.optim definitions other files hand this one, which stay legacy (LU301's TODO there):
    # (function, position or keyword of its parameter, giving module), or ("", the qualified
    # module-level name this file uses, its module)
    given: frozenset[tuple[str, int | str, str]] = frozenset()
    grouped: bool = True  # a member of a group (not only given definitions)


NOTHING = Shared()


def shared(ctx: Context, plan: Plan) -> Shared:
    """The group verdict for the file of ``ctx`` (``plan``: its own, without seeds)."""
    me = ctx.facts.module_name
    return _views(ctx).get(me, NOTHING) if me and me in ctx.index.paths else NOTHING


def in_a_group(ctx: Context) -> bool:
    """Is this file handed an optimizer by, or does it hand one to, another file of the run?"""
    return ctx.facts.module_name in _views(ctx)


def _views(ctx: Context) -> dict[str, Shared]:
    """module -> what its group tells it, for every group of the run, made once per run from
    the files that create optimizers (following where they pass them, and who else calls the
    functions that receive them): the cost is one more read of those files, not of every file
    they might reach.  A process pool builds the groups in its workers and hands each the
    result (``adopt``) instead."""
    if _RUN[0] is not ctx.index:
        _RUN[:] = [ctx.index, run_views(ctx.index, ctx.config)]
    return _RUN[1]


def starts(index: ProjectIndex) -> list[str]:
    """The files a group is searched from: those creating optimizers, in the order groups form."""
    return sorted(index.optim_creators & index.paths.keys())


def group_views(index: ProjectIndex, config: Config, start: str) -> dict[str, Shared]:
    """The group found from ``start``: each member -> its view (none: no optimizer crosses files),
    and each file its files hand definitions -> those (``grouped`` False where not a member)."""
    group = _Group(index, config, start)
    views = {member: group.view(member) for member in group.files} if group.edges or group.returned else {}
    for module, given in group.given.items():
        views[module] = replace(views.get(module, Shared(grouped=False)), given=frozenset(given))
    return views


def run_views(index: ProjectIndex, config: Config,
              built: dict[str, dict[str, Shared]] | None = None) -> dict[str, Shared]:
    """Every group's views (``built``: ``group_views`` of each start, made elsewhere): a file
    already in the group of an earlier start starts none, and belongs to the first it is in;
    the definitions it is given are those of every group."""
    views: dict[str, Shared] = {}
    given: dict[str, frozenset[tuple[str, int | str, str]]] = {}
    for start in starts(index):
        if start not in views:
            found = built[start] if built is not None else group_views(index, config, start)
            for member, view in found.items():
                given[member] = given.get(member, frozenset()) | view.given
                if view.grouped:
                    views.setdefault(member, replace(view, given=frozenset()))
    for member, handed in given.items():
        if handed:
            views[member] = replace(views.get(member, Shared(grouped=False)), given=handed)
    return views


def adopt(index: ProjectIndex, views: dict[str, Shared]) -> None:
    """This run's views (``run_views``), built in another process: none are built here."""
    _RUN[:] = [index, views]


def given_todos(module: cst.Module, ctx: Context, rule_id: str,
                given: frozenset[tuple[str, int | str, str]]) -> cst.Module:
    """A TODO on each statement using a definition another file hands this one (``Shared.given``)
    through the OptimizerDef API: that file keeps it legacy, so the code here stays legacy too."""
    paths, me = ctx.index.paths, ctx.facts.module_name or ""
    params: dict[tuple[str, str], str] = {}  # (top-level function, its parameter) -> the giving file
    names: dict[str, str] = {}  # qualified module-level name of another file -> that file
    functions = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
    for function, slot, giver in given:
        where = os.path.relpath(paths[giver], os.path.dirname(paths[me])) if giver in paths and me in paths \
            else giver
        if not function:
            names[str(slot)] = where
        elif function in functions:
            p = functions[function].params
            name = _parameter([q.name.value for q in (*p.posonly_params, *p.params)],
                              {q.name.value for q in p.kwonly_params}, slot)
            if name is not None:
                params[(function, name)] = where
    resolve = ctx.facts.imports.resolve

    class Mark(FastTransformer):
        def __init__(self) -> None:
            super().__init__()
            self.function: list[str] = []
            self.found: list[str] = []  # the messages for the statement being visited

        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            self.function.append(node.name.value)

        def leave_FunctionDef(self, original, updated):
            self.function.pop()
            return updated

        def visit_Attribute(self, node: cst.Attribute) -> None:
            given = self._given(node.value) if node.attr.value in LEGACY_ATTRS else None
            if given is not None:
                self.found.append(f"{given[0]} is a flax.optim definition {given[1]} keeps legacy (LU301's "
                                  f"TODO there), so its .{node.attr.value}(...) and the optimizer code after it "
                                  "stay legacy here: convert them together by hand")

        def _given(self, value: cst.BaseExpression) -> tuple[str, str] | None:
            """(how ``value`` is shown, the file giving it) where it is a definition given here."""
            if isinstance(value, cst.Name) and self.function and (self.function[0], value.value) in params:
                return f"{value.value} (parameter of {self.function[0]}())", params[(self.function[0], value.value)]
            qual = resolve(value) if isinstance(value, (cst.Name, cst.Attribute)) else None
            return (dotted(value) or qual, names[qual]) if qual in names else None  # type: ignore[return-value]

        def leave_SimpleStatementLine(self, original, updated):
            found, self.found = self.found, []
            todos = [cst.EmptyLine(comment=cst.Comment(todo_line(rule_id, m))) for m in dict.fromkeys(found)]
            return updated.with_changes(leading_lines=[*updated.leading_lines, *todos]) if todos else updated
    return module.visit(Mark()) if params or names else module


def _parameter(positional: list[str], keyword_only: set[str], slot: int | str) -> str | None:
    """The parameter an argument at ``slot`` (position or keyword) fills."""
    if isinstance(slot, int):
        return positional[slot] if slot < len(positional) else None
    return slot if slot in positional or slot in keyword_only else None


class _File:
    """One file of the group, read from disk."""

    def __init__(self, module: str, path: str, index: ProjectIndex, config: Config) -> None:
        self.module, self.path = module, path
        data = Path(path).read_bytes()
        engine.decode(data, path)  # a SourceError where it cannot be decoded
        self.tree = engine.tree_of(path, data, index)
        self.ctx = Context(path, engine.facts_for(data, path, module), index, config)
        self.scan = Scan(self.ctx)
        self.tree.visit(self.scan)
        self.functions = {s.name.value: [p.name.value for p in (*s.params.posonly_params, *s.params.params)]
                          for s in self.tree.body if isinstance(s, cst.FunctionDef)}
        self.keyword_only = {s.name.value: {p.name.value for p in s.params.kwonly_params}
                             for s in self.tree.body if isinstance(s, cst.FunctionDef)}
        self.references = _References(self.ctx)
        self.tree.visit(self.references)
        self.plan: Plan | None = None

    def param(self, function: str, slot: int | str) -> str | None:
        params = self.functions.get(function)
        return None if params is None else _parameter(params, self.keyword_only[function], slot)


class _References(FastVisitor):
    """How often each dotted name is used, and how often as a callee (or
    the function of ``jax.jit``/``pmap``/``functools.partial``)."""

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.called: set[int] = set()
        self.total: dict[str, int] = {}
        self.as_callee: dict[str, int] = {}

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Call(self, node: cst.Call) -> None:
        self.called.add(id(node.func))
        wrapped = unwrap(node, self.ctx.facts.imports.resolve)
        if wrapped is not None:
            self.called.add(id(wrapped[0]))

    def _count(self, node: cst.BaseExpression) -> bool:
        qual = self.ctx.facts.imports.resolve(node)
        if qual:
            self.total[qual] = self.total.get(qual, 0) + 1
            if id(node) in self.called:
                self.as_callee[qual] = self.as_callee.get(qual, 0) + 1
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        return self._count(node) if self.ctx.facts.imports.resolve(node) else True

    def visit_Name(self, node: cst.Name) -> bool:
        return self._count(node)


class _Group:
    def __init__(self, index: ProjectIndex, config: Config, start: str) -> None:
        self.index, self.config = index, config
        self.files: dict[str, _File | None] = {}
        self.seeds: dict[str, set[tuple[str, int | str]]] = {}
        self.external: dict[str, frozenset[int | None]] = {}
        self.edges: set[tuple[str, str, str]] = set()  # (caller module, callee module, function)
        # (user module, defining module, function): a function of the run returning an optimizer
        # (``models.create_optimizer(...)``) to the files that call it
        self.returned: set[tuple[str, str, str]] = set()
        self.problems: dict[str, list[str]] = {}
        self.steps: dict[str, Steps] = {}  # member of a group of several files -> the group's joined steps
        self.given: dict[str, set[tuple[str, int | str, str]]] = {}  # module -> ``Shared.given``
        self._load(start)
        for _ in range(_MAX_ROUNDS):
            before = (len(self.files), sum(map(len, self.seeds.values())), dict(self.external))
            for module in list(self.files):
                self._plan(module)
            if before == (len(self.files), sum(map(len, self.seeds.values())), self.external):
                break
        self._finish()

    def _load(self, module: str) -> None:
        if module in self.files:
            return
        path = self.index.paths.get(module)
        readable = path and path.endswith(".py")
        try:
            self.files[module] = _File(module, path, self.index, self.config) if readable else None
        except (OSError, ValueError, engine.SourceError, cst.ParserSyntaxError):
            self.files[module] = None

    def _seed_names(self, module: str) -> tuple[set[str], dict[str, list[str]]]:
        """Parameter names seeded in ``module``, and its functions -> those names."""
        f = self.files[module]
        names: set[str] = set()
        by_function: dict[str, list[str]] = {}
        for function, slot in self.seeds.get(module, ()):
            name = f.param(function, slot) if f is not None else None
            if name is not None:
                names.add(name)
                by_function.setdefault(function, []).append(name)
        return names, by_function

    def _plan(self, module: str, exported: frozenset[str] = frozenset()) -> Plan | None:
        f = self.files[module]
        if f is None:
            return None
        names, by_function = self._seed_names(module)
        external = {q: v for q, v in self.external.items() if q.rpartition(".")[0] != module}
        f.plan = plan = Plan(f.tree, f.scan, seeds=names, external=external, exported=exported)
        for _, qual, slot in plan.passes:
            callee, _, function = qual.rpartition(".")
            self._load(callee)
            self.seeds.setdefault(callee, set()).add((function, slot))
            self.edges.add((module, callee, function))
        for function in f.functions:  # what this file's functions return to other files
            items = plan._ret_items(function)
            users = self.index.referrers.get(f"{module}.{function}", ())
            if items and (function in by_function or users):
                self.external[f"{module}.{function}"] = frozenset(items)
            for user in users if items else ():
                self._load(user)
                self.returned.add((user, module, function))
        for function in by_function:  # every other caller of a receiving function
            for user in self.index.referrers.get(f"{module}.{function}", ()):
                self._load(user)
        return plan

    def _finish(self) -> None:
        plans = {}
        for module, f in self.files.items():
            self.problems.setdefault(module, [])
            if f is not None:
                plans[module] = self._plan(module, self._exported(module))
        own = {module: steps_of(plan, self.files[module].tree) for module, plan in plans.items()}  # type: ignore[union-attr]
        for members in self._components():
            if len(members) > 1:
                group = joined(own[m] for m in members if m in own)
                self.steps.update(dict.fromkeys(members, group))
        for module, plan in plans.items():
            self.problems[module] += check_uses(plan, self.files[module].tree, group=self.steps.get(module))  # type: ignore[union-attr,arg-type]
            if train_state_module(self.files[module].ctx) is None:  # type: ignore[union-attr]
                self.problems[module].append(TRAIN_STATE_BOUND)
        for caller, callee, function in sorted(self.edges):
            f = self.files[callee]
            if f is None or function not in f.functions:
                self.problems[caller].append(f"the optimizer is passed to {callee}.{function}(), which this "
                                             "rule cannot read")
            elif any(f.param(function, slot) is None for fn, slot in self.seeds[callee] if fn == function):
                self.problems[caller].append(f"the optimizer is passed to {callee}.{function}() in a "
                                             "parameter it does not have by that name or position")
        for module, f in self.files.items():
            if f is not None:
                self._check_callers(module, f)
        for user, module, function in sorted(self.returned):
            uf, qual = self.files[user], f"{module}.{function}"
            where = self._name(module, user)
            if uf is None or uf.plan is None:
                self.problems[module].append(f"{function}() returns the optimizer to {where}, which this rule "
                                             "cannot read")
            elif uf.references.total.get(qual, 0) > uf.references.as_callee.get(qual, 0):
                self.problems[module].append(f"{where} passes {function} around as a value: the optimizers it "
                                             "returns cannot be followed")
        for members in self._components():
            if len(members) > 1:
                self._check_shared(members)
        for module, f in self.files.items():
            if f is not None:
                self._hand_definitions(module, f)

    def _hand_definitions(self, module: str, f: _File) -> None:
        """``given``: the definitions ``module`` hands other files of the run."""
        for handover in handovers(f.scan).values():
            if handover.function and handover.slot is not None:
                callee, _, function = handover.function.rpartition(".")
                self.given.setdefault(callee, set()).add((function, handover.slot, module))
            for user in self.index.referrers.get(f"{module}.{handover.name}", ()) if handover.name else ():
                self.given.setdefault(user, set()).add(("", f"{module}.{handover.name}", module))

    def _exported(self, module: str) -> frozenset[str]:
        """The functions of ``module`` whose optimizer results files of the group follow."""
        return frozenset(q.rpartition(".")[2] for q in self.external
                         if q.rpartition(".")[0] == module and q in self.index.referrers)

    def _check_callers(self, module: str, f: _File) -> None:
        """Every use of a receiving function, in any file, passes an optimizer
        in each of its seeded parameters (a problem of the receiving file)."""
        _, by_function = self._seed_names(module)
        problems = self.problems[module]
        for function, names in by_function.items():
            qual = f"{module}.{function}"
            for user in sorted(self.index.referrers.get(qual, ())) + [module]:
                uf = self.files.get(user)
                where = self._name(module, user)
                if uf is None or uf.plan is None:
                    problems.append(f"{function}() is also used in {where}, which this rule cannot read")
                    continue
                if uf.references.total.get(qual, 0) > uf.references.as_callee.get(qual, 0):
                    problems.append(f"{where} passes {function} around as a value: its optimizer parameters "
                                    "cannot be followed to all its calls")
                for call in uf.plan.calls:
                    local, called, shift = uf.plan.callee(call.func)
                    if (called if user != module else (local and f"{module}.{local}")) != qual:
                        continue
                    bound = bind(f.functions[function], list(call.args), shift)
                    missing = sorted({n for n in names if bound is None or n not in bound
                                      or not uf.plan.is_opt(bound[n])})
                    if missing:
                        problems.append(f"{function}() is also called in {where} with a value for "
                                        f"{', '.join(missing)} that this rule cannot follow as an optimizer")

    def _check_shared(self, members: list[str]) -> None:
        """Gradient averaging is decided where the optimizer is created: it cannot
        travel to another file."""
        for module in members:
            plan = self.files[module].plan  # type: ignore[union-attr]
            if plan is not None and _legacy_replicate(plan):
                self.problems[module].append("optimizer.replicate() (its apply_gradient averages the gradients) "
                                             "on an optimizer shared with other files")

    def _components(self) -> list[list[str]]:
        parent = {m: m for m in self.files}

        def find(m: str) -> str:
            while parent[m] != m:
                m = parent[m]
            return m
        for caller, callee, _ in self.edges | self.returned:
            parent[find(caller)] = find(callee)
        groups: dict[str, list[str]] = {}
        for m in self.files:
            groups.setdefault(find(m), []).append(m)
        return [sorted(g) for g in groups.values()]

    def view(self, me: str) -> Shared:
        members = next(c for c in self._components() if me in c)
        f = self.files[me]
        if len(members) == 1 or f is None:
            return NOTHING
        _, by_function = self._seed_names(me)
        problems = list(self.problems[me])
        for other in members:
            if other != me:
                problems += [f"{self._describe(me, other)}: {p}" for p in self.problems[other]]
        return Shared(seeds=frozenset(n for ns in by_function.values() for n in ns),
                      functions=tuple(sorted(by_function)),
                      external={q: v for q, v in self.external.items() if q.rpartition(".")[0] != me},
                      exported=self._exported(me),
                      problems=tuple(problems), steps=self.steps.get(me))

    def _name(self, me: str, other: str) -> str:
        """``other``'s file, as seen from ``me``'s folder."""
        if me not in self.index.paths or other not in self.index.paths:
            return other
        return os.path.relpath(self.index.paths[other], os.path.dirname(self.index.paths[me]))

    def _describe(self, me: str, other: str) -> str:
        name = self._name(me, other)
        gives = sorted({fn for a, b, fn in self.edges if (a, b) == (me, other)})
        takes = sorted({fn for a, b, fn in self.edges if (a, b) == (other, me)})
        if gives:
            return f"{name} ({', '.join(f'{other}.{fn}()' for fn in gives)} receives this file's optimizer)"
        if takes:
            return f"{name} (passes its optimizer to {', '.join(f'{fn}()' for fn in takes)} here)"
        made = sorted({fn for a, b, fn in self.returned if (a, b) == (me, other)})
        if made:
            return f"{name} (whose {', '.join(f'{other}.{fn}()' for fn in made)} returns the optimizer used here)"
        used = sorted({fn for a, b, fn in self.returned if (a, b) == (other, me)})
        if used:
            return f"{name} (uses the optimizer {', '.join(f'{fn}()' for fn in used)} returns)"
        return f"{name} (shares the optimizer through other files)"


def _legacy_replicate(plan: Plan) -> bool:
    return any(isinstance(c.func, cst.Attribute) and c.func.attr.value == "replicate"
               and plan.is_opt(c.func.value) for c in plan.calls)


_RUN: list = [None, {}]  # (the run's index, module -> its group's view)

