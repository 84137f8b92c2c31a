"""The plan of LU303 (train_state_batch_stats): which optimizer (a
``TrainState``) and ``batch_stats`` value are threaded together through which
functions and call sites, proven from LibCST scopes (``_threading.Scopes``);
anything not provably the same refuses the plan (``_Refused``), and the code
stays as it is.
"""

from __future__ import annotations

import ast

import libcst as cst

from linen_upgrade.facts import _dotted as ast_dotted
from linen_upgrade.resolve import ImportMap
from linen_upgrade.rule import FastVisitor
from linen_upgrade.rules._threading import (WRAPPERS, Scopes, bind_args, is_simple, merge_wrapper_args, positional,
                                            wrapper_call)

_CREATE = "flax.training.train_state.TrainState.create"
CLASS_NAME = "TrainState"
# methods of a TrainState whose result keeps the receiver's batch_stats
_KEEPS_FIELDS = frozenset({"apply_gradients", "replace"})


class _Threading(FastVisitor):
    """``may_thread``'s walk: the names some ``x = ....create(...)`` binds, and the
    assignments of a call to a tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.created: set[str] = set()
        self.tuples: list[cst.Assign] = []

    def visit_Assign(self, node: cst.Assign) -> None:
        call = node.value
        if type(call) is cst.Call:
            if type(call.func) is cst.Attribute and call.func.attr.value == "create":
                self.created.update(t.target.value for t in node.targets if type(t.target) is cst.Name)
            if type(node.targets[0].target) is cst.Tuple:
                self.tuples.append(node)


def may_thread(module: cst.Module) -> bool:
    """A cheap necessary condition: some ``x = ....create(...)`` and a call site
    ``x, s, ... = f(x, s, ...)`` that passes and gets back x and one more name
    (``*args`` is not passing a name; ``**kwargs`` is)."""
    walk = _Threading()
    module.visit(walk)
    for n in walk.tuples if walk.created else ():
        got = {e.value.value for e in n.targets[0].target.elements  # type: ignore[attr-defined]
               if type(e) is cst.Element and type(e.value) is cst.Name}
        passed = {a.value.value for a in n.value.args  # type: ignore[attr-defined]
                  if type(a.value) is cst.Name and a.star != "*"}
        if got & passed & walk.created and len(got & passed) >= 2:
            return True
    return False


def creates(tree: ast.Module, imports: ImportMap) -> bool:
    """Another necessary condition, once the imports are known: some ``x = <TrainState>.create(...)``
    (all ``Planner.plans`` starts from), before LibCST scopes that cost several parses are resolved."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call):
            name = ast_dotted(n.value.func)
            if name is not None and imports.resolve_dotted(name) == _CREATE:
                return True
    return False


class _Fn:
    """A function the optimizer and the state are threaded through."""

    def __init__(self, node: cst.FunctionDef, opt: str, state: str, out: tuple[int, int, int]) -> None:
        self.node, self.opt, self.state, self.out = node, opt, state, out
        self.bind = False  # True: ``state = opt.batch_stats`` first, reads unchanged
        self.returns: list[cst.Return] = []
        self.wrappers: dict[int, list[cst.Arg]] = {}  # id(wrapper call) -> its new arguments
        self.reads: dict[int, str] = {}  # id(Name) of a state read -> opt (reads replaced)
        self.calls: set[int] = set()  # id(Call) of every call of the function in the file


class Plan:
    def __init__(self, create: cst.Call, opt: str, base: str) -> None:
        self.create, self.opt, self.base = create, opt, base
        self.state = ""
        self.fns: dict[int, _Fn] = {}  # id(FunctionDef)
        self.sites: dict[int, tuple[int, int]] = {}  # id(Assign) -> (target to drop, id(Arg) to drop)
        self.reads: dict[int, str] = {}  # id(Name) -> the name whose .batch_stats replaces it
        self.dropped: set[int] = set()  # id(Name) of the state arguments dropped at the call sites


class _Refused(Exception):
    pass


class Planner(Scopes):
    def __init__(self, module: cst.Module, imports: ImportMap) -> None:
        super().__init__(module)
        self.imports = imports

    def plans(self) -> list[Plan]:
        if any(CLASS_NAME in s.assignments or s.accesses[CLASS_NAME] for s in self.all_scopes):
            return []
        if self.imports.aliases.get("Any", "typing.Any") != "typing.Any" or any(
                not isinstance(a.node, cst.ImportAlias) for s in self.all_scopes for a in s.assignments["Any"]):
            return []
        out: list[Plan] = []
        for node in self.scopes:
            if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call) \
                    and self.imports.resolve(node.value.func) == _CREATE:
                try:
                    out.append(self._plan(node))
                except _Refused:
                    pass
        fns = [k for p in out for k in p.fns]
        return [p for p in out if all(fns.count(k) == 1 for k in p.fns)]

    # -- the plan --------------------------------------------------------------
    def _plan(self, assign: cst.Assign) -> Plan:
        call = assign.value
        assert isinstance(call, cst.Call)
        stmt, target = self.parents[assign], assign.targets[0].target
        block = self.parents.get(stmt)
        if len(assign.targets) != 1 or not isinstance(target, cst.Name) or len(stmt.body) != 1 \
                or not (isinstance(block, cst.Module) or isinstance(self.parents.get(block), cst.FunctionDef)):
            raise _Refused  # a create in a loop or branch: "after the create" is no longer "in order"
        func = call.func
        assert isinstance(func, cst.Attribute)
        plan = Plan(call, target.value, cst.Module([]).code_for_node(func.value))
        scope = self.scopes[call]
        at = self.top(stmt, block)
        sites = []
        for a in scope.assignments[plan.opt]:
            if a.node is target:
                continue
            if self.top(a.node, block) > at:
                sites.append(self._site(a.node, plan))
        if not sites:
            raise _Refused
        states = {s for _, s, _ in sites}
        if len(states) != 1:
            raise _Refused
        plan.state = states.pop()
        site_targets = {id(t) for _, _, t in sites}
        site_args = set(plan.dropped)
        calls = {id(site.value) for site, _, _ in sites}
        if any(not fn.calls <= calls for fn in plan.fns.values()):
            raise _Refused  # a threaded function is called somewhere else too
        before = False
        for a in scope.assignments[plan.state]:
            if id(a.node) in site_targets:
                continue
            if isinstance(a.node, cst.Param) or (isinstance(a.node, cst.Name) and self.scopes.get(a.node) is scope
                                                 and 0 <= self.top(a.node, block) < at):
                before = True
                continue
            raise _Refused  # the state changes by other means after the create
        if not before:
            raise _Refused
        # after the create, the optimizer and the state change together only (at the call sites):
        # every later read of the state, also from a closure made later, is ``opt.batch_stats``
        for acc in self.accesses(scope.assignments[plan.state]) + list(scope.accesses[plan.state]):
            later = self.top(acc.node, block) > at
            if isinstance(self.parents.get(acc.node), cst.Del) or (acc.scope is not scope and not (
                    later and self.visible(plan.opt, acc.scope, scope))):
                raise _Refused
            if later and id(acc.node) not in site_args:
                plan.reads[id(acc.node)] = plan.opt
        return plan

    def _site(self, name: cst.CSTNode, plan: Plan) -> tuple[cst.Assign, str, cst.CSTNode]:
        """``opt, s, ... = f(opt, s, ...)``: (the assignment, the state's name, its target)."""
        element = self.parents.get(name)
        tup = self.parents.get(element)
        assign = self.parents.get(self.parents.get(tup))
        if not (isinstance(element, cst.Element) and isinstance(tup, (cst.Tuple, cst.List))
                and isinstance(assign, cst.Assign) and len(assign.targets) == 1
                and isinstance(assign.value, cst.Call) and isinstance(assign.value.func, cst.Name)):
            raise _Refused
        elements = list(tup.elements)
        if any(not isinstance(e, cst.Element) or not isinstance(e.value, cst.Name) for e in elements):
            raise _Refused
        a = [i for i, e in enumerate(elements) if e is element][0]
        fn, wrappers, calls = self._function(assign.value.func)
        args = bind_args(assign.value, fn)
        if args is None:
            raise _Refused
        names = {p: arg.value.value for p, arg in args.items() if isinstance(arg.value, cst.Name)}
        opt_params = [p for p, v in names.items() if v == plan.opt]
        states = [(i, p) for i, e in enumerate(elements) for p, v in names.items()
                  if i != a and v == e.value.value]  # type: ignore[attr-defined]
        if len(opt_params) != 1 or len(states) != 1:
            raise _Refused
        b, state_param = states[0]
        known = plan.fns.get(id(fn))
        if known is None:
            known = plan.fns[id(fn)] = self._threaded(fn, wrappers, opt_params[0], state_param,
                                                      (a, b, len(elements)))
            known.calls = calls
            plan.reads.update(known.reads)
        elif (known.opt, known.state, known.out) != (opt_params[0], state_param, (a, b, len(elements))):
            raise _Refused
        plan.sites[id(assign)] = (b, id(args[state_param]))
        plan.dropped.add(id(args[state_param].value))
        return assign, names[state_param], elements[b].value

    def _function(self, callee: cst.Name) -> tuple[cst.FunctionDef, list[cst.Call], set[int]]:
        """The function a call site reaches, directly or through ``w = jax.jit(f, ...)``."""
        refs = self.referents(callee)
        if len(refs) != 1:
            raise _Refused
        ref = refs.pop()
        wrappers: list[cst.Call] = []
        if isinstance(ref.node, cst.Name):
            assign = self.parents.get(self.parents.get(ref.node))
            if not (isinstance(assign, cst.Assign) and len(assign.targets) == 1
                    and isinstance(assign.value, cst.Call) and self.imports.resolve(assign.value.func) in WRAPPERS
                    and assign.value.args and isinstance(assign.value.args[0].value, cst.Name)
                    and not assign.value.args[0].keyword):
                raise _Refused
            wrappers.append(assign.value)
            calls = self._calls_only(ref)
            refs = self.referents(assign.value.args[0].value)
            if len(refs) != 1:
                raise _Refused
            ref = refs.pop()
            if {id(r.node) for r in ref.references} != {id(assign.value.args[0].value)}:
                raise _Refused
        elif isinstance(ref.node, cst.FunctionDef):
            calls = self._calls_only(ref)
        if not isinstance(ref.node, cst.FunctionDef) or len(ref.scope.assignments[ref.name]) != 1:
            raise _Refused
        return ref.node, wrappers, calls

    def _calls_only(self, ref) -> set[int]:
        calls = self.calls_only(ref)
        if calls is None:
            raise _Refused
        return calls

    def _threaded(self, fn: cst.FunctionDef, wrappers: list[cst.Call], opt: str, state: str,
                  out: tuple[int, int, int]) -> _Fn:
        info = _Fn(fn, opt, state, out)
        params = positional(fn)
        pos = {p.name.value: i for i, p in enumerate(params)}
        if opt not in pos or state not in pos or not isinstance(fn.body, cst.IndentedBlock):
            raise _Refused
        for deco in fn.decorators:
            w = wrapper_call(deco.decorator, self.imports)
            if w is None:
                raise _Refused
            if isinstance(deco.decorator, cst.Call):
                wrappers.append(deco.decorator)
        for w_call in wrappers:  # jax.jit(fn, **kw) or partial(jax.jit, **kw)
            new = merge_wrapper_args(list(w_call.args[1:]), fn.name.value, (pos[opt], opt), (pos[state], state), out)
            if isinstance(new, str):
                raise _Refused
            lead = w_call.args[0] if new else w_call.args[0].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            info.wrappers[id(w_call)] = [lead, *new]
        fscope = self.scopes[fn.body.body[0]]
        self._returns(fn, info, fscope)
        opt_param = [a for a in fscope.assignments[opt] if isinstance(a.node, cst.Param)]
        state_assigns = list(fscope.assignments[state])
        reads = self.accesses(state_assigns)
        if not any(_is_stats_entry(self.parents.get(acc.node)) for acc in reads):
            raise _Refused  # not shown to be the model's batch_stats collection
        info.bind = len(state_assigns) != 1 or any(
            not (isinstance(a.node, cst.Param) or _keeps_fields(self.parents.get(self.parents.get(a.node)), opt))
            for a in fscope.assignments[opt])
        # ``opt`` must name the same object where the state is read
        info.bind = info.bind or any(not self.visible(opt, acc.scope, fscope)
                                     or isinstance(self.parents.get(acc.node), cst.Del) for acc in reads)
        if not info.bind:
            info.reads = {id(acc.node): opt for acc in reads}
        if not opt_param:
            raise _Refused
        return info

    def _returns(self, fn: cst.FunctionDef, info: _Fn, fscope) -> None:
        a, b, n = info.out
        for node, scope in self.scopes.items():
            if scope is not fscope:
                continue
            if isinstance(node, (cst.Yield, cst.Await)):
                raise _Refused
            if isinstance(node, cst.Return):
                value = node.value
                if not isinstance(value, cst.Tuple) or len(value.elements) != n or any(
                        isinstance(e, cst.StarredElement) for e in value.elements):
                    raise _Refused
                # the new state's expression is now evaluated right after the optimizer's: it may
                # move past others only where it reads a local name or nothing it passes has effects
                state = value.elements[b].value
                crossed = [e.value for e in value.elements[min(a, b) + 1:max(a, b)]]
                if b < a:
                    crossed.append(value.elements[a].value)
                if not (isinstance(state, cst.Name) and state.value in fscope.assignments) \
                        and not all(is_simple(e) for e in [state, *crossed]):
                    raise _Refused
                info.returns.append(node)
        if not info.returns:
            raise _Refused


def _is_stats_entry(node: cst.CSTNode | None) -> bool:
    return isinstance(node, cst.DictElement) and isinstance(node.key, cst.SimpleString) \
        and node.key.evaluated_value == "batch_stats"


def _keeps_fields(assign: cst.CSTNode | None, opt: str) -> bool:
    """``opt = opt.apply_gradients(...)`` / ``opt.replace(params=...)``: batch_stats unchanged."""
    if not isinstance(assign, cst.Assign) or not isinstance(assign.value, cst.Call):
        return False
    f = assign.value.func
    return isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name) and f.value.value == opt \
        and f.attr.value in _KEEPS_FIELDS \
        and not any(arg.keyword and arg.keyword.value == "batch_stats" for arg in assign.value.args)
