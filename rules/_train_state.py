"""LU302 (optim_train_state)'s plan: which names of a file hold a legacy
optimizer (by name, over the whole file: assignments, function parameters,
return values, tuple results, ``jax.jit``/``pmap`` and
``replicate``/``unreplicate``), the ``create`` calls with their optax
expression, and the TODO put on the first optimizer statement of a file it
leaves alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, FastTransformer, FastVisitor, quote, todo_line
from linen_upgrade.rules import _optim
from linen_upgrade.rules._cst import is_property
from linen_upgrade.rules._optim_calls import (CHECKPOINT_HINT, CHECKPOINTS, PRESERVING, READERS, SAVE_RESTORE, bind,
                                              current, unwrap)
from linen_upgrade.rules._optim_attributes import Attributes
from linen_upgrade.rules._optim_defs import Scan, convert, traversal_source
from linen_upgrade.rules._initializers import local_names
from linen_upgrade.rules._optim_focus import focus_argument, traversal_problem
from linen_upgrade.rules._optim_preserving import handed_back
from linen_upgrade.tables.optimizers import (MULTI, PER_STEP_LEARNING_RATE, TRANSFORMS, ConversionError,
                                             MissingLearningRate, multi_transform_expression)


TRAIN_STATE_BOUND = "the file binds the names 'train_state' and 'flax' itself: spell flax.training.train_state by hand"


def train_state_module(ctx: Context) -> tuple[str, tuple[str, str | None]] | None:
    """How the file spells the module ``flax.training.train_state``, and the import that binds it:
    ``train_state`` (``from flax.training import train_state``) unless the file binds that name itself
    (``train_state = {...}``, in any scope: a local shadows the import; ``imports.bound_here``), then
    the dotted name (``import flax.training.train_state``) -- None where ``flax`` is the file's own
    name too."""
    imports = ctx.facts.imports
    if "train_state" not in imports.bound_here:
        return "train_state", ("flax.training", "train_state")
    if imports.aliases.get("flax", "flax") != "flax" or "flax" in imports.bound_here:
        return None
    return "flax.training.train_state", ("flax.training.train_state", None)


class Plan(FastVisitor):
    """Which names hold an optimizer (by name, over the whole file), and the
    ``create`` calls with their optax expression."""

    def __init__(self, module: cst.Module, scan: Scan, seeds: Iterable[str] = (),
                 external: Mapping[str, frozenset[int | None]] | None = None,
                 exported: Iterable[str] = ()) -> None:
        """``seeds``: parameter names holding an optimizer another file of the
        run passes in; ``external``: functions of other files (qualified) that
        return one (None: the whole value, else tuple positions);
        ``exported``: functions of this file whose optimizer results other
        files follow (``_optim_cross``)."""
        super().__init__()
        self.external = dict(external or {})
        self.exported = frozenset(exported)
        self.across_files = bool(seeds or self.external or self.exported)  # its optimizers meet other files' code
        self.module = module
        self.scan = scan
        self.defs: dict[str, list[cst.Call]] = {}  # name -> constructor calls assigned to it
        self.def_binds: dict[str, int] = {}  # name -> assignments of definitions to it
        self.def_names: set[str] = set()  # names bound to definitions
        self.creates: dict[int, tuple[str, cst.BaseExpression]] = {}  # id(create call) -> (tx source, target)
        self.ctor_expr: dict[int, str] = {}  # id(ctor call) -> optax source, for `d = optim.X(...)`
        self.helpers: list[str] = []
        self.problems: list[str] = []
        self.funcs: dict[str, cst.FunctionDef] = {}
        self.aliases: dict[str, tuple[cst.BaseExpression, int]] = {}  # p = jax.pmap(f) -> p: (f, 0)
        # optimizers passed to functions of other files of the run: (call, qualified callee, parameter slot)
        self.passes: list[tuple[cst.Call, str, int | str]] = []
        self.assigns: list[tuple[cst.BaseExpression, cst.BaseExpression]] = []
        self.calls: list[cst.Call] = []
        self.saved: dict[int, bool] = {}  # id(call) saving or restoring (True) the whole optimizer
        self.returns: dict[str, list[cst.BaseExpression]] = {}
        self._fn: list[str] = []
        self.inject = False  # apply_gradient(g, learning_rate=...): tx in inject_hyperparams
        self.hyper_rename: dict[str, str] = {}  # legacy hyper-parameter -> optax's, for inject
        self.tx_qual: dict[str, str] = {}  # optax source -> the legacy definition it came from
        # optax source made without a learning rate -> the problem, unless every step gives one
        self.lr_per_step: dict[str, str] = {}
        # d.init_state(p) / d.apply_gradient(d.hyper_params, p, s, g) on a definition name d
        self.explicit: dict[int, str] = {}
        self.state_names: set[str] = set()  # names bound to a legacy OptimizerState of d.init_state
        self.enclosing: dict[int, tuple[str, ...]] = {}  # id(call) -> enclosing functions
        self.pmap_names = _optim.pmap_aliases(module, scan.qual)
        self.pmapped = _optim.pmap_axes(module, self.qual)
        self.statements: dict[int, str] = {}  # id(call) -> method, rewritten with its statement (_train_state_check)
        self.pmean: dict[int, str] = {}  # id(apply call) -> axis its gradients are averaged over (_train_state_check)
        self.sub_state_steps: set[int] = set()  # id(``opt.state[0].step``) written ``opt.step`` (_train_state_check)
        self.names: set[str] = set(seeds)
        self.opt_funcs: set[str] = set()
        self.attributes = Attributes()  # `self.optimizer` of a class of the file (_optim_attributes)
        self.attr_opts: set[tuple[str, str]] = set()  # (class, attribute) holding an optimizer
        self.factory_creates: list[cst.Call] = []  # f(...).create(p) of a function of the file
        # names whose call returns one positional argument's value (its position): PRESERVING's
        # functions bound to a name of the file, and functions of the file returning a parameter
        # through them (``_find_preserving``)
        self.preserving: dict[str, int] = {}
        self._dup_funcs: set[str] = set()  # function names defined more than once in the file
        # d.create(target, focus=f) of an inline definition d: (create, d, target, f)
        self.focused: list[tuple[cst.Call, cst.Call, cst.BaseExpression, cst.BaseExpression]] = []
        module.visit(self)
        module.visit(self.attributes)
        self._find_aliases()
        self._focus_creates()
        self._solve(frozenset(seeds))

    def created(self) -> set[str | None]:
        """The legacy definitions (qualified) of the optimizers this file makes; None among them for one
        it cannot name, or where optimizers come from other files."""
        if self.across_files or self.explicit:
            return {None}
        out: set[str | None] = set()
        for tx, _ in self.creates.values():
            out.update({self.qual(c.func) for c in self.defs[tx]} if tx in self.defs else {self.tx_qual.get(tx)})
        return out

    def qual(self, node: cst.BaseExpression) -> str | None:
        if type(node) is cst.Name and node.value in self.pmap_names:
            return "jax.pmap"
        return self.scan.qual(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if node.name.value in self.funcs:
            self._dup_funcs.add(node.name.value)
        self.funcs[node.name.value] = node
        self._fn.append(node.name.value)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._fn.pop()

    def visit_Return(self, node: cst.Return) -> None:
        if self._fn and node.value is not None:
            self.returns.setdefault(self._fn[-1], []).append(node.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self.assigns.append((t.target, node.value))
            if isinstance(t.target, cst.Name) and (ctors := self._alternatives(node.value)):
                self.defs.setdefault(t.target.value, []).extend(ctors)
                self.def_binds[t.target.value] = self.def_binds.get(t.target.value, 0) + 1

    def _find_aliases(self) -> None:
        """``p = jax.pmap(f)``: calling ``p`` runs ``f``, where the file's bindings of ``p`` by ``=`` to a
        function (a function of the file, or a wrapper of one binding the same arguments) all give ``f``:
        ``s = f`` in one branch and ``s = sharded_jit(f, ...)`` in the other; ``s = jax.jit(s)`` keeps
        what ``s`` runs.  Bindings to other values (``p = None``, a call's result) do not decide, as
        before."""
        runs: dict[str, set[tuple[str, int]]] = {}
        for target, value in self.assigns:
            if not isinstance(target, cst.Name) or not isinstance(value, (cst.Call, cst.Name)):
                continue
            wrapped = unwrap(value, self.qual) if isinstance(value, cst.Call) else (value, 0)
            if wrapped is None or isinstance(value, cst.Name) and value.value not in self.funcs:
                continue
            if isinstance(wrapped[0], cst.Name) and wrapped[0].value == target.value and not wrapped[1]:
                continue
            runs.setdefault(target.value, set()).add((_optim.code(wrapped[0]), wrapped[1]))
            self.aliases[target.value] = wrapped
        for name, funcs in runs.items():
            if len(funcs) != 1:
                del self.aliases[name]

    def _alternatives(self, value: cst.BaseExpression) -> list[cst.Call]:
        """The definitions ``value`` is one of (``optim.Adam(0.1) if flag else optim.Momentum(0.1)``,
        nested too); none where any of its values is something else."""
        if isinstance(value, cst.IfExp):
            body, orelse = self._alternatives(value.body), self._alternatives(value.orelse)
            return body + orelse if body and orelse else []
        return [value] if isinstance(value, cst.Call) and self.qual(value.func) in TRANSFORMS | {MULTI} else []

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:  # `opt: optim.Optimizer = make(p)` holds what `opt = make(p)` would
            self.assigns.append((node.target, node.value))

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)
        self.enclosing[id(node)] = tuple(self._fn)
        f = node.func
        if isinstance(f, cst.Attribute) and f.attr.value in ("init_state", "apply_gradient") \
                and isinstance(f.value, cst.Name):
            self.explicit[id(node)] = f.value.value  # kept where f.value is a definition (_solve)
        if isinstance(f, cst.Attribute) and f.attr.value == "create":
            base = f.value
            if isinstance(base, cst.Call) and self.qual(base.func) in TRANSFORMS | {MULTI}:
                ctor = base
            elif isinstance(base, cst.Name) and base.value in self.defs:
                ctor = None
            else:
                if isinstance(base, cst.Call) and isinstance(base.func, cst.Name):
                    self.factory_creates.append(node)  # make_optimizer(...).create(p): decided in _solve
                return
            target = _create_target(node)
            if target is None and ctor is not None and (focused := focus_argument(node)) is not None:
                self.focused.append((node, ctor, *focused))  # decided once the file is read (_focus_creates)
                return
            if target is None:
                self.problems.append(f"{dotted(f) or 'create'}(...) with a focus or unusual arguments")
                return
            if ctor is None:
                self.creates[id(node)] = (base.value, target)  # type: ignore[union-attr]
                return
            tx = self._tx(ctor)
            if tx is not None:
                self.creates[id(node)] = (tx, target)

    def _factories(self) -> None:
        """``make_optimizer(name).create(p)`` where every ``return`` of the function is a
        definition and every use of it is such a create: each return converts in place (like a
        variable bound only to definitions), and the create takes whichever the call returns."""
        used = _optim.name_counts(self.module)
        elsewhere = self.scan.ctx.index.referrers
        by_function: dict[str, list[cst.Call]] = {}
        for create in self.factory_creates:
            by_function.setdefault(create.func.value.func.value, []).append(create)  # type: ignore[attr-defined]
        for name, creates in by_function.items():
            returns = self.returns.get(name, [])
            if not (returns and all(isinstance(r, cst.Call) and self.qual(r.func) in TRANSFORMS | {MULTI}
                                    for r in returns)):
                continue
            if used.get(name, 0) != len(creates) + 1 or f"{self.scan.ctx.facts.module_name}.{name}" in elsewhere:
                self.problems.append(f"{name}() returns optimizer definitions and is used other than as "
                                     f"{name}(...).create(...)")
                continue
            for create in creates:
                target = _create_target(create)
                if target is None:
                    self.problems.append(f"{name}(...).create(...) with a focus or unusual arguments")
                    continue
                tx = _optim.code(create.func.value)  # type: ignore[attr-defined]
                self.defs[tx] = returns  # type: ignore[assignment]
                self.creates[id(create)] = (tx, target)

    def _focus_creates(self) -> None:
        """``d.create(target, focus=f)`` as legacy made it, ``MultiOptimizer((f, d)).create(target)``
        (``_optim_focus``)."""
        values: dict[str, list[cst.BaseExpression]] = {}
        for assigned, value in self.assigns:
            for n in _optim.assigned_names(assigned):
                values.setdefault(n, []).append(value)
        for create, ctor, target, focus in self.focused:
            problem = traversal_problem(focus, self.enclosing[id(create)], self.module,
                                        lambda n: values.get(n, []), self.scan)
            inner = self._tx(ctor) if problem is None else None
            if inner in self.lr_per_step:
                problem = f"create(..., focus=...) of {self.lr_per_step.pop(inner)}"  # type: ignore[arg-type]
            if problem is not None:
                self.problems.append(problem)
            if problem is not None or inner is None:
                continue
            try:
                expr, helpers = multi_transform_expression([(traversal_source(focus, self.scan, self.module), inner)])
            except ConversionError as e:
                self.problems.append(f"create(..., focus=...): {e}")
                continue
            self.helpers.extend(h for h in helpers if h not in self.helpers)
            self.tx_qual[expr] = MULTI
            self.creates[id(create)] = (expr, target)

    def _tx(self, ctor: cst.Call) -> str | None:
        try:
            expr, helpers = convert(ctor, self.scan, self.module)
        except MissingLearningRate as e:  # right only if every step gives it (_train_state_check)
            try:
                expr, helpers = convert(ctor, self.scan, self.module, PER_STEP_LEARNING_RATE)
            except ConversionError as again:
                self.problems.append(f"{dotted(ctor.func)}(...): {again}")
                return None
            self.lr_per_step[expr] = f"{dotted(ctor.func)}(...): {e}"
        except ConversionError as e:
            self.problems.append(f"{dotted(ctor.func)}(...): {e}")
            return None
        for h in helpers:
            if h not in self.helpers:
                self.helpers.append(h)
        self.tx_qual[expr] = self.qual(ctor.func) or ""
        return expr

    # -- which names hold an optimizer -----------------------------------------
    def is_opt(self, e: cst.BaseExpression) -> bool:
        if isinstance(e, cst.Name):
            return e.value in self.names
        if isinstance(e, cst.IfExp):  # either branch's optimizer (another value: _Check's problem)
            return self.is_opt(e.body) and self.is_opt(e.orelse)
        if isinstance(e, cst.Attribute):
            return self.attributes.holds(e, self.attr_opts)
        if isinstance(e, cst.Call):
            if id(e) in self.creates:
                return True
            kept = self.preserved(e)
            if kept is not None:
                return self.is_opt(kept)
            if isinstance(e.func, cst.Attribute) and e.func.attr.value in (
                    "apply_gradient", "replace", *_optim.REPLICATE_METHODS):
                return self.is_opt(e.func.value)
            local, qual, _ = self.callee(e.func)
            return local in self.opt_funcs or None in self.external.get(qual or "", ())
        return False

    def preserved(self, call: cst.Call) -> cst.BaseExpression | None:
        """The argument whose value ``call`` returns, leaf-wise the same on a legacy Optimizer and on a
        TrainState (``jax_utils.replicate(x)``, ``jax.tree_map(f, x)``, a name or function of the file
        doing that: ``self.preserving``); None for any other call."""
        q = current(self.qual(call.func))
        if q in PRESERVING:
            at: int | None = PRESERVING[q]
        else:
            local, _, shift = self.callee(call.func)
            name = local or (call.func.value if isinstance(call.func, cst.Name) else None)
            at = self.preserving[name] - shift if name in self.preserving else None
        if at is None or at < 0 or len(call.args) <= at or any(a.star or a.keyword for a in call.args[:at + 1]):
            return None
        return call.args[at].value

    def _find_preserving(self, bound: Mapping[str, int]) -> None:
        """``broadcast = jax_utils.replicate`` (bound once) and ``def unbroadcast(tree): return
        jax.tree_map(f, tree)`` (a body of one ``return`` of a parameter through such calls): an
        optimizer passed in comes back, and only there -- the parameter holds whatever each call
        passes, so it is not an optimizer's name, nor is every call's result an optimizer."""
        for target, value in self.assigns:
            if isinstance(target, cst.Name) and bound.get(target.value) == 1 and target.value not in self.funcs \
                    and isinstance(value, (cst.Name, cst.Attribute)) and current(self.qual(value)) in PRESERVING:
                self.preserving[target.value] = PRESERVING[current(self.qual(value))]  # type: ignore[index]
        while True:
            found = {name: at for name, fn in self.funcs.items()
                     if name not in self.preserving and name not in self._dup_funcs and name not in bound
                     and (at := self._returned_parameter(fn)) is not None}
            if not found:
                return
            self.preserving.update(found)

    def _returned_parameter(self, fn: cst.FunctionDef) -> int | None:
        """The position of the parameter ``fn`` returns through preserving calls and locals bound by
        them, where its body reads it nowhere else (``_optim_preserving``)."""
        if fn.decorators:
            return None
        params = [*fn.params.posonly_params, *fn.params.params]
        at = handed_back(fn, self.preserved)
        # annotated (``tree: optim.Optimizer``), it is an optimizer's helper: followed as one, its annotations
        # converted
        return None if at is None or fn.returns is not None or params[at].annotation is not None else at

    def callee(self, func: cst.BaseExpression) -> tuple[str | None, str | None, int]:
        """(function of this file, qualified name, positional arguments bound by
        ``functools.partial``) of what calling ``func`` runs, through
        ``jax.jit``/``pmap``/``partial`` and names bound to them."""
        shift, seen = 0, set()
        while True:
            if isinstance(func, cst.Call) and (wrapped := unwrap(func, self.qual)) is not None:
                func, bound = wrapped
            elif isinstance(func, cst.Name) and func.value in self.aliases and func.value not in seen:
                seen.add(func.value)
                func, bound = self.aliases[func.value]
            else:
                break
            shift += bound
        if isinstance(func, cst.Name) and func.value in self.funcs:
            return func.value, None, shift
        return None, self.qual(func), shift

    def _items(self, call: cst.Call, tuple_funcs: dict[str, set[int | None]]) -> set[int | None]:
        local, qual, _ = self.callee(call.func)
        return set(tuple_funcs.get(local, ())) if local else set(self.external.get(qual or "", ()))

    def _ret_items(self, name: str) -> set[int | None]:
        """Positions (None: the whole value) at which function ``name`` returns an optimizer."""
        out: set[int | None] = set()
        if name in self.preserving:  # what the call is passed (is_opt)
            return out
        for r in self.returns.get(name, []):
            if self.is_opt(r):
                out.add(None)
            elif isinstance(r, cst.Tuple):
                out.update(i for i, el in enumerate(r.elements) if self.is_opt(el.value))
        return out

    def _solve(self, seeds: frozenset[str]) -> None:
        params = {p.name.value for fn in self.funcs.values()
                  for p in (*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params)}
        bound: dict[str, int] = {}
        for target, _ in self.assigns:
            for n in _optim.assigned_names(target):
                bound[n] = bound.get(n, 0) + 1
        users = self.scan.ctx.index.referrers
        for name in sorted(self.defs.keys() & _module_level_names(self.module)):
            if f"{self.scan.ctx.facts.module_name}.{name}" in users:  # not converted there (LU301's TODO)
                self.problems.append(f"{name} holds an optimizer definition that other files of the run use")
        for name in list(self.defs):
            # bound to definitions only (``if flag: d = optim.Adam(...) else: d = optim.Momentum(...)``):
            # each assignment converts in place, and ``d.create(p)`` takes whichever ran
            if name in params or bound.get(name, 0) != self.def_binds.get(name, 0):
                self.problems.append(f"{name} holds an optimizer definition in one place and other values "
                                     "in others")
                del self.defs[name]
        self._factories()
        self._find_preserving(bound)
        for call_id, (tx, _) in self.creates.items():
            if tx in bound and tx not in self.defs:
                self.problems.append(f"{tx}.create(...): the definition is not bound once in this file")
        handled = {id(c) for cs in self.defs.values() for c in cs}
        for c in self.scan.ctors:  # what LU301 converted is gone: these reach OptimizerDef API
            if id(c.node) in handled or any(id(a) in handled for a in c.ancestors):
                continue
            parent = c.ancestors[-1] if c.ancestors else None
            if isinstance(parent, cst.Attribute) and any(
                    isinstance(a, cst.Call) and id(a) in self.creates for a in c.ancestors):
                continue
            if any(isinstance(a, cst.Call) and id(a) in self.creates for a in c.ancestors):
                continue  # a slot of a converted definition (WeightNorm, MultiOptimizer)
            self.problems.append(f"{dotted(c.node.func)}(...) is used where this rule cannot follow it")
        for name, ctors in self.defs.items():
            for c in ctors:
                expr = self._tx(c)
                if expr is not None:
                    self.ctor_expr[id(c)] = expr
        self.explicit = {k: d for k, d in self.explicit.items() if d in self.defs}
        explicit_calls = {id(c): c for c in self.calls if id(c) in self.explicit}
        for target, value in self.assigns:
            if id(value) in explicit_calls:
                if value.func.attr.value == "init_state":  # type: ignore[attr-defined]
                    self.state_names.update(_optim.assigned_names(target))
                elif isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2:
                    self.state_names.update(_optim.assigned_names(target.elements[1].value))
        received: set[tuple[str, str]] = set()  # (function, parameter) a call of this file passes an optimizer
        while True:
            before = (len(self.names), len(self.opt_funcs), len(self.attr_opts))
            tuple_funcs: dict[str, set[int | None]] = {}
            for f in self.funcs:
                items = self._ret_items(f)
                if None in items:
                    self.opt_funcs.add(f)
                elif items:
                    tuple_funcs[f] = items
            for target, value in self.assigns:
                if isinstance(target, cst.Name) and self.is_opt(value):
                    self.names.add(target.value)
                elif (holder := self.attributes.holder(target)) is not None and self.is_opt(value):
                    self.attr_opts.add(holder)
                elif isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, cst.Call) \
                        and isinstance(value.func, cst.Attribute) and value.func.attr.value == "optimize" \
                        and self.is_opt(value.func.value) and isinstance(target.elements[0].value, cst.Name):
                    self.names.add(target.elements[0].value.value)  # (new optimizer, loss[, aux])
                elif isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, cst.Call):
                    for i in self._items(value, tuple_funcs):
                        element = target.elements[i].value if i is not None and i < len(target.elements) else None
                        if isinstance(element, cst.Name):
                            self.names.add(element.value)
                        elif element is not None and (holder := self.attributes.holder(element)) is not None:
                            self.attr_opts.add(holder)
                        elif element is not None:
                            self.problems.append(f"{self.module.code_for_node(element)} keeps the optimizer in "
                                                 "an attribute or container, whose uses this rule cannot follow")
            for call in self.calls:
                local, _, shift = self.callee(call.func)
                fn = self.funcs.get(local) if local else None
                if fn is None or local in self.preserving:
                    continue
                params = [p.name.value for p in (*fn.params.posonly_params, *fn.params.params)]
                for i, a in enumerate(call.args):
                    if a.star or not self.is_opt(a.value):
                        continue
                    if a.keyword is not None:
                        self.names.add(a.keyword.value)
                        received.add((local, a.keyword.value))
                    elif i + shift < len(params):
                        self.names.add(params[i + shift])
                        received.add((local, params[i + shift]))
            if before == (len(self.names), len(self.opt_funcs), len(self.attr_opts)):
                break
        for target, value in self.assigns:
            # `state['optimizer'] = d.create(p)`, `other.optimizer = ...`: its uses are out of this rule's
            # sight; converting the create alone is wrong (issue 16).  `self.optimizer` of a class of the
            # file is followed where the data says it is that attribute (_optim_attributes)
            if not isinstance(target, (cst.Name, cst.Tuple, cst.List)) and self.is_opt(value) \
                    and self.attributes.holder(target) is None:
                self.problems.append(f"{self.module.code_for_node(target)} keeps the optimizer in an attribute "
                                     "or container, whose uses this rule cannot follow")
        module = self.scan.ctx.facts.module_name
        elsewhere = self.scan.ctx.index.referrers
        self.problems += self.attributes.problems(self.attr_opts, self.module,
                                                  lambda cls: f"{module}.{cls}" in elsewhere)
        self._check_parameters(received, seeds)
        used = _optim.name_counts(self.module)
        for f in self.funcs:
            if self._ret_items(f) and is_property(self.funcs[f]):
                self.problems.append(f"{f} is a @property returning the optimizer, whose reads this rule cannot "
                                     "follow")
            if f in self.exported or not self._ret_items(f):
                continue
            if used.get(f, 0) <= 1 or f"{module}.{f}" in elsewhere:  # called from other files
                self.problems.append(f"{f}() returns the optimizer to code in other files, which this "
                                     "file's conversion cannot reach: convert them together")
        self._follow_arguments()

    def _check_parameters(self, received: set[tuple[str, str]], seeds: frozenset[str]) -> None:
        """Names hold an optimizer file-wide; a parameter that shares such a name
        is one only where the data says so: a call of this file or another
        file of the run passes it an optimizer, or the function steps it
        (``.apply_gradient``) or hands it on to a function that does (``_holding``).  Otherwise
        ``def report(optimizer): return optimizer.target`` called with another object would get
        ``.params``."""
        holding = self._holding() | received
        for name, fn in self.funcs.items():
            if name in self.preserving:
                continue
            for p in (*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params):
                param = p.name.value
                if param in self.names and param not in seeds and (name, param) not in holding \
                        and _reads(fn, param):
                    self.problems.append(f"{param} (parameter of {name}()) is named like an optimizer of this "
                                         "file, but no call here passes it one")

    def _holding(self) -> set[tuple[str, str]]:
        """The (function, parameter) pairs that must hold an optimizer, whoever calls the function: it
        steps it (``.apply_gradient``) or hands it on to such a parameter of a function of this file
        (``ptrain_step(optimizer, batch)`` with ``ptrain_step = jax.pmap(train_step)``).  A parameter
        that some call passes an optimizer may be given other values elsewhere: it decides nothing here."""
        holding = {(name, p.name.value) for name, fn in self.funcs.items()
                   for p in (*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params)
                   if _steps(fn, p.name.value)}
        while True:
            before = len(holding)
            for call in self.calls:
                local, _, shift = self.callee(call.func)
                fn = self.funcs.get(local) if local else None
                if fn is None or local in self.preserving or local in self._dup_funcs:
                    continue
                bound = bind([p.name.value for p in (*fn.params.posonly_params, *fn.params.params)],
                             list(call.args), shift)
                for param, value in (bound or {}).items():
                    if isinstance(value, cst.Name) and (local, param) in holding \
                            and (owner := self._parameter_of(value.value, self.enclosing[id(call)])) is not None:
                        holding.add((owner, value.value))
            if len(holding) == before:
                return holding

    def _parameter_of(self, name: str, around: tuple[str, ...]) -> str | None:
        """The function of ``around`` (innermost last) whose parameter ``name`` is where it is read,
        unless a function nearer the read (or one inside that) binds that name itself."""
        for fn_name in reversed(around):
            fn = self.funcs.get(fn_name)
            if fn is None or fn_name in self._dup_funcs:
                return None
            if name in {p.name.value for p in (*fn.params.posonly_params, *fn.params.params,
                                                 *fn.params.kwonly_params)}:
                return fn_name
            if name in local_names(fn):
                return None
        return None

    def _follow_arguments(self) -> None:
        """Where the optimizers passed as arguments go: functions of this file
        are followed above, those of other files of the run are ``passes``
        (``_optim_cross``), calls that keep or only read the value are fine,
        anything else is a problem."""
        run = self.scan.ctx.index.referrers  # names of the run's files that other files use
        for call in self.calls:
            local, qual, shift = self.callee(call.func)
            opts = [(i, a) for i, a in enumerate(call.args) if self.is_opt(a.value)]
            if not opts or id(call) in self.creates:
                continue
            if local is not None:  # followed (_solve), unless the function only hands back another argument
                if local in self.preserving and any(a.value is not self.preserved(call) for _, a in opts):
                    self.problems.append(f"the optimizer is passed to {local}(...) other than as the argument "
                                         "it hands back")
                continue
            shown = qual or dotted(call.func) or quote(_optim.code(call.func))
            for i, a in opts:
                if a.star:
                    self.problems.append(f"the optimizer is unpacked into {shown}(...)")
                elif qual in run and not qual.startswith(f"{self.scan.ctx.facts.module_name}."):
                    self.passes.append((call, qual, a.keyword.value if a.keyword else i + shift))
                elif qual in SAVE_RESTORE and (i == SAVE_RESTORE[qual] and a.keyword is None
                                               or a.keyword is not None and a.keyword.value == "target"):
                    self.saved[id(call)] = qual.endswith("restore_checkpoint")
                elif qual in CHECKPOINTS or qual in SAVE_RESTORE:
                    self.problems += [f"{shown}(...) of the optimizer", CHECKPOINT_HINT]
                elif a.value is not self.preserved(call) and not (
                        qual is None and isinstance(call.func, cst.Name) and call.func.value in READERS):
                    self.problems.append(f"the optimizer is passed to {shown}(...), which this rule cannot "
                                         "follow")


_STEPS = frozenset({"apply_gradient", "optimize", "compute_gradient"})


def _steps(fn: cst.FunctionDef, name: str) -> bool:
    """Does ``fn`` call an optimizer-only method on ``name`` (``name.apply_gradient(...)``)?"""
    return any(isinstance(c.func, cst.Attribute) and c.func.attr.value in _STEPS
               and isinstance(c.func.value, cst.Name) and c.func.value.value == name
               for c in _calls(fn))


def _reads(fn: cst.FunctionDef, name: str) -> bool:
    """Does the body of ``fn`` mention ``name`` (``def keep(path, _): return 'bias' in path`` does not:
    nothing of its parameter ``_`` is rewritten, whatever holds that name elsewhere)?"""
    found = False

    class _Names(FastVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            nonlocal found
            found = found or node.value == name
    fn.body.visit(_Names())
    return found


def _calls(node: cst.CSTNode) -> list[cst.Call]:
    found: list[cst.Call] = []

    class _Calls(FastVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            found.append(call)

    node.visit(_Calls())
    return found


def _create_target(create: cst.Call) -> cst.BaseExpression | None:
    """The target of ``d.create(target)``; None for a focus or other arguments."""
    args = list(create.args)
    if len(args) != 1 or args[0].star or (args[0].keyword and args[0].keyword.value != "target"):
        return None
    return args[0].value


def has_converted(stmt: cst.CSTNode, plan: Plan) -> bool:
    found = False

    class Find(FastVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            nonlocal found
            if id(node) in plan.ctor_expr or id(node) in plan.creates:
                found = True
    stmt.visit(Find())
    return found


def todo_on_first_create(module: cst.Module, plan: Plan, rule_id: str, problems: list[str],
                         functions: Iterable[str] = ()) -> cst.Module:
    """The TODO on the first statement creating an optimizer, else (a file
    handed its optimizers by other files) on the first of ``functions``."""
    msg = todo_line(rule_id, "flax.optim optimizer not converted to a TrainState: "
                    f"{'; '.join(dict.fromkeys(problems))}")
    functions = set(functions)

    def add(node):
        lines = list(node.leading_lines)
        if not any(ln.comment and ln.comment.value == msg for ln in lines):
            lines.append(cst.EmptyLine(comment=cst.Comment(msg)))
        return node.with_changes(leading_lines=lines)

    class Add(FastTransformer):
        done = False

        def leave_SimpleStatementLine(self, original, updated):
            if not Add.done and has_converted(original, plan):
                Add.done = True
                return add(updated)
            return updated
    module = module.visit(Add())
    if Add.done or not functions:
        return module

    class AddToFunction(FastTransformer):  # top-level functions only
        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def leave_FunctionDef(self, original, updated):
            if not Add.done and original.name.value in functions:
                Add.done = True
                return add(updated)
            return updated
    return module.visit(AddToFunction())


def _module_level_names(module: cst.Module) -> set[str]:
    """The names the module's top-level assignments bind."""
    return {t.target.value for stmt in module.body if isinstance(stmt, cst.SimpleStatementLine)
            for small in stmt.body if isinstance(small, cst.Assign)
            for t in small.targets if isinstance(t.target, cst.Name)}
