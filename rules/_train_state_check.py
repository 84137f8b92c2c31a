"""LU302 (optim_train_state)'s check of a file's optimizer code: every use
of an optimizer value must be a form the rule converts, or nothing in the
file is converted.  Per-step hyper-parameters (``apply_gradient(g,
learning_rate=...)``) wrap the optax transforms in
``optax.inject_hyperparams``, under the optax names of the table's ``hyper``
column, and are applied by the ``_apply_gradients_with`` helper.  Files that
share optimizers (``_optim_cross``) decide this together, from their joined
``Steps``: one file's definitions are wrapped for another file's steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import FastVisitor
from linen_upgrade.rules import _optim
from linen_upgrade.rules._train_state import Plan
from linen_upgrade.tables.optimizers import FROZEN_LABEL, HELPERS, MULTI, OPTIMIZER_DEF, hyper_names

APPLY_WITH = "_apply_gradients_with"
WHOLE_GRADIENT = "legacy_compute_gradient"  # the helper for ``r = opt.compute_gradient(f)`` (its source read when used)
FROM_DEF = "optax_from_optimizer_def"  # the helper running a former OptimizerDef (linen_upgrade/optax_legacy.py)
APPLY_WITH_SOURCE = '''def _apply_gradients_with(state, grads, **hyperparams):
    """``state.apply_gradients(grads=grads)`` with this step's hyper-parameters
    (legacy ``optimizer.apply_gradient(grads, learning_rate=...)``): they replace
    those of every ``optax.inject_hyperparams`` state in ``state.opt_state`` (one,
    or one per group of a ``multi_transform`` or link of a ``chain``)."""
    def injected(opt_state):
        return hasattr(opt_state, "hyperparams") and hasattr(opt_state, "_replace")

    def inject(opt_state):
        if not injected(opt_state):
            return opt_state
        values = dict(opt_state.hyperparams)
        for name, value in hyperparams.items():
            # never narrower than the value: a state made from learning_rate=1 is int32 (0.1 -> 0)
            values[name] = jax.numpy.asarray(value, dtype=jax.numpy.result_type(values[name], value))
        return opt_state._replace(hyperparams=values)
    if not any(map(injected, jax.tree_util.tree_leaves(state.opt_state, is_leaf=injected))):
        raise ValueError(f"state.tx is not wrapped in optax.inject_hyperparams: {', '.join(hyperparams)} "
                         "would be ignored")
    opt_state = jax.tree_util.tree_map(inject, state.opt_state, is_leaf=injected)
    return state.replace(opt_state=opt_state).apply_gradients(grads=grads)
'''


def _inject(expr: str, keys: set[str]) -> str | None:
    """``optax.f(args)`` -> ``optax.inject_hyperparams(optax.f)(args)`` (``keys``: the optax names set
    per step, int literals among them written as floats); for the learning
    rate alone, also the link of an ``optax.chain`` that takes it and each group of an
    ``optax.multi_transform`` (a group named by a variable is wrapped where that is bound);
    None where the hyper-parameters cannot be injected so."""
    node = _inject_node(cst.parse_expression(expr), keys)
    return None if node is None else cst.Module([]).code_for_node(node)


def _inject_node(node: cst.BaseExpression, keys: set[str]) -> cst.BaseExpression | None:
    function = dotted(node.func) if isinstance(node, cst.Call) else None
    if function == FROM_DEF:  # a former OptimizerDef: the helper puts the step's values into its hyper_params
        assert isinstance(node, cst.Call)
        per_step = cst.ensure_type(cst.parse_expression(f"f(per_step={tuple(sorted(keys))!r})"), cst.Call).args[0]
        return node.with_changes(args=[*node.args, per_step])
    if not (function and function.startswith("optax.") and function.count(".") == 1):
        return None
    assert isinstance(node, cst.Call)
    if function in _COMPOSITES:
        return _COMPOSITES[function](node) if keys == {"learning_rate"} else None
    if function == "optax.adafactor" and any(
            i > 0 or (a.keyword is not None and a.keyword.value != "learning_rate") for i, a in enumerate(node.args)):
        return None  # injected, its momentum= fails under jit (unhashable array): only the learning rate is safe
    args = [cst.Arg(node.func)]
    static = _STATIC_ARGS.get(function)
    if static:
        args.append(cst.ensure_type(cst.parse_expression(f"f(static_args={static!r})"), cst.Call).args[0])
    return node.with_changes(func=cst.Call(func=cst.parse_expression("optax.inject_hyperparams"), args=args),
                             args=[_float_literal(a) if _named(a, i) in keys else a for i, a in enumerate(node.args)])


def _named(arg: cst.Arg, position: int) -> str | None:
    """The optax parameter ``arg`` fills: its keyword, or ``learning_rate`` for the first positional
    argument (every function of the table's templates takes it first, the rest by keyword)."""
    if arg.keyword is not None:
        return arg.keyword.value
    return "learning_rate" if position == 0 and not arg.star else None


def _float_literal(arg: cst.Arg) -> cst.Arg:
    """``1`` -> ``1.0`` for a hyper-parameter set per step: ``inject_hyperparams`` keeps an int
    literal as an int32 state, where legacy computed the update in floats with any value given."""
    value, sign = arg.value, None
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, (cst.Minus, cst.Plus)):
        value, sign = value.expression, value
    if not isinstance(value, cst.Integer):
        return arg
    new: cst.BaseExpression = cst.Float(repr(float(value.evaluated_value)))
    return arg.with_changes(value=sign.with_changes(expression=new) if sign else new)


def _chain(node: cst.Call) -> cst.Call | None:
    """The one link taking the learning rate (``optax.sgd``, ``optax.scale_by_learning_rate``
    in the table's chains), injected."""
    at = [i for i, a in enumerate(node.args) if isinstance(a.value, cst.Call)
          and dotted(a.value.func) in _LEARNING_RATE_LINKS]
    if len(at) != 1 or any(a.star for a in node.args):
        return None
    new = _inject_node(node.args[at[0]].value, {"learning_rate"})
    args = list(node.args)
    args[at[0]] = args[at[0]].with_changes(value=new)
    return None if new is None else node.with_changes(args=args)


def _multi_transform(node: cst.Call) -> cst.Call | None:
    """Each group of ``optax.multi_transform({...}, labels)`` (legacy MultiOptimizer gave
    every sub-optimizer the step's values); the frozen group has none."""
    if not node.args or not isinstance(node.args[0].value, cst.Dict):
        return None
    elements = []
    for e in node.args[0].value.elements:
        if not isinstance(e, cst.DictElement):
            return None
        if isinstance(e.key, cst.SimpleString) and e.key.evaluated_value == FROZEN_LABEL \
                or isinstance(e.value, cst.Name):
            elements.append(e)
            continue
        new = _inject_node(e.value, {"learning_rate"})
        if new is None:
            return None
        elements.append(e.with_changes(value=new))
    return node.with_changes(args=[node.args[0].with_changes(value=node.args[0].value.with_changes(
        elements=elements)), *node.args[1:]])


_LEARNING_RATE_LINKS = frozenset({"optax.sgd", "optax.scale_by_learning_rate"})
_COMPOSITES = {"optax.chain": _chain, "optax.multi_transform": _multi_transform}


# integer arguments that steer Python control flow: injected (traced) they fail under jit
# (optax.adafactor's `if shape[d] < min_dim_size_to_factor`: found by bench/fuzz.py, issue 16)
_STATIC_ARGS = {"optax.adafactor": ("min_dim_size_to_factor",)}


# LU202 applies a Model of a definition chosen at run time through the optimizer's apply_fn (a
# TrainState's): where the optimizer stays legacy, those calls need it (the same words on a re-run)
APPLY_FN_NEEDED = "the module calls written as optimizer.apply_fn(...) need this TrainState"


@dataclass(frozen=True)
class Steps:
    """How the optimizers of a file, or of the files sharing them, are stepped and made."""

    key_sets: frozenset[frozenset[str]] = frozenset()  # the hyper-parameters of each apply_gradient passing some
    plain: int = 0  # apply_gradient calls passing none
    applies: int = 0  # apply_gradient / optimize calls
    txs: tuple[tuple[str, str], ...] = ()  # (legacy definition, optax function) of each transform made


def joined(steps: Iterable[Steps]) -> Steps:
    """The steps of files that share their optimizers: each file's definitions meet every step."""
    steps = list(steps)
    return Steps(frozenset().union(*(s.key_sets for s in steps)), sum(s.plain for s in steps),
                 sum(s.applies for s in steps), tuple(t for s in steps for t in s.txs))


def steps_of(plan: Plan, module: cst.Module) -> Steps:
    """The ``Steps`` of one file (``plan`` is its plan)."""
    check = _Check(plan, [])
    module.visit(check)
    return check.steps()


def check_uses(plan: Plan, module: cst.Module, carried: bool = False, group: Steps | None = None) -> list[str]:
    """Why the optimizer code of ``module`` cannot be converted (nothing: it can).  ``carried``:
    its TrainStates carry the module LU202 applies through ``optimizer.apply_fn``; ``group``: the
    joined ``Steps`` of the files it shares optimizers with (itself included)."""
    problems = list(plan.problems)
    check = _Check(plan, problems, carried)
    module.visit(check)
    check.finish()
    own = check.steps()
    steps = group or own
    every_step_lr = not steps.plain and all("learning_rate" in keys for keys in steps.key_sets)
    if plan.lr_per_step and (not every_step_lr or not steps.applies or plan.explicit
                             or group is None and (plan.passes or plan.across_files)):
        problems.extend(plan.lr_per_step.values())  # the placeholder would be used: legacy failed there
    if steps.key_sets:
        if steps.plain:
            problems.append("apply_gradient with hyper-parameters at some calls and without at others "
                            "(legacy uses the definition's values where none are given)")
        if len(steps.key_sets) > 1:  # the injected value of one call would stay for the next
            problems.append("apply_gradient with different hyper-parameters at different calls "
                            f"({' / '.join(sorted(', '.join(sorted(k)) for k in steps.key_sets))}: legacy uses "
                            "the definition's value where a call gives none)")
        _inject_all(plan, problems, steps, bool(own.key_sets))
    if check.apply_fn_used or (carried and problems):
        problems.append(APPLY_FN_NEEDED)
    return problems


def _own_txs(plan: Plan) -> list[str]:
    """The optax expressions of the transforms this file makes."""
    return [*plan.ctor_expr.values(), *(tx for tx, _ in plan.creates.values() if tx not in plan.defs)]


def _inject_all(plan: Plan, problems: list[str], steps: Steps, here: bool) -> None:
    """Every transform of ``steps`` in ``optax.inject_hyperparams`` (this file wraps its own), each
    legacy keyword under its optax name; ``here``: this file steps with hyper-parameters (and
    needs the ``_apply_gradients_with`` helper)."""
    keys = set().union(*steps.key_sets)
    txs = list(steps.txs)
    multi = any(qual == MULTI for qual, _ in txs)
    if multi and keys != {"learning_rate"}:
        problems.append("MultiOptimizer with per-step hyper-parameters other than learning_rate (each group "
                        "would need them under its own optax names)")
    txs = [(qual, fn) for qual, fn in txs if qual != MULTI]
    if "hyper_params" in keys:
        problems.append("apply_gradient(..., hyper_params=...) replaces every hyper-parameter at once")
        return
    for key in sorted(keys):  # the optax name of each legacy hyper-parameter, the same for every tx
        # a former OptimizerDef takes the legacy name (its hyper_params.replace(**values), as legacy)
        names = {key if qual == OPTIMIZER_DEF else hyper_names(qual, fn).get(key) if qual else None
                 for qual, fn in txs}
        if multi and key == "learning_rate":  # the same name in every group (hyper_names)
            names.add(key)
        if len(names) == 1 and None not in names:
            plan.hyper_rename[key] = names.pop()  # type: ignore[assignment]
        else:
            problems.append(f"apply_gradient(..., {key}=...): "
                            f"{' / '.join(sorted({fn for _, fn in txs}))} has no hyper-parameter of that "
                            "meaning for optax.inject_hyperparams")
    keys = {plan.hyper_rename.get(key, key) for key in keys}  # optax's names from here on
    for key, expr in list(plan.ctor_expr.items()):
        new = _inject(expr, keys)
        if new is None:
            problems.append(f"{expr} cannot be wrapped in optax.inject_hyperparams for apply_gradient's "
                            "hyper-parameters")
        else:
            plan.ctor_expr[key] = new
    for key, (tx, target) in list(plan.creates.items()):
        if tx in plan.defs:
            continue
        new = _inject(tx, keys)
        if new is None:
            problems.append(f"{tx} cannot be wrapped in optax.inject_hyperparams for apply_gradient's "
                            "hyper-parameters")
        else:
            plan.creates[key] = (new, target)
    if here:
        plan.inject = True
        if APPLY_WITH_SOURCE not in plan.helpers:
            plan.helpers.append(APPLY_WITH_SOURCE)


def _function(tx: str) -> str:
    """``optax.inject_hyperparams(optax.adam)(...)`` / ``optax.adam(...)`` -> ``optax.adam``."""
    node = cst.parse_expression(tx)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Call) and node.func.args:
        return dotted(node.func.args[0].value) or tx
    return (dotted(node.func) if isinstance(node, cst.Call) else None) or tx


# where an optimizer is put that the plan does not follow
_CONTAINER = "the optimizer is put in a list, set or dict, whose uses this rule cannot follow"
_TUPLE = "the optimizer is put in a tuple this rule does not follow (bound to a name or looped over)"
_CHOSEN = ("the optimizer is one value of `x if c else y` or `x or y` whose other value is not one: this rule "
           "cannot follow the result")

# `opt.state[0].step`: code written for the flax releases where a MultiOptimizer's state was a tuple of its
# sub-optimizers' states (flax 0.3.6 raises TypeError there: its state is one OptimizerState)
SUB_STATE_STEP = ("optimizer.state[i].step -> optimizer.step: a MultiOptimizer's state was a tuple of its "
                  "sub-optimizers' states in older flax releases (flax 0.3.6 raises TypeError here), each "
                  "counting every apply_gradient as TrainState.step counts apply_gradients: check against "
                  "the release this code ran on")


def _sub_state(node: cst.BaseExpression) -> cst.Attribute | None:
    """``x.state`` of ``x.state[0]`` (one integer literal index), else None."""
    if isinstance(node, cst.Subscript) and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index) \
            and isinstance(node.slice[0].slice.value, cst.Integer) and isinstance(node.value, cst.Attribute) \
            and node.value.attr.value == "state":
        return node.value
    return None


# what a legacy nn.Model has that a params pytree does not
_MODEL_ATTRIBUTES = frozenset({"params", "module", "truncate_at"})


class _Check(FastVisitor):
    """Every use of an optimizer value must be one this rule converts."""

    def __init__(self, plan: Plan, problems: list[str], carried: bool = False) -> None:
        super().__init__()
        self.plan, self.problems, self.carried = plan, problems, carried
        self.apply_fn_used = False  # optimizer.apply_fn(...) where LU202 did not write it in this run
        self.ok: set[int] = set()
        self.plain = 0  # apply_gradient calls without hyper-parameters
        self.key_sets: set[frozenset[str]] = set()  # the hyper-parameters each call passes
        self.applies: list[cst.Call] = []  # apply_gradient / optimize on optimizer values
        self.axes: set[str | None] = set()  # of legacy .replicate() calls

    def steps(self) -> Steps:
        plan = self.plan
        return Steps(frozenset(self.key_sets), self.plain, len(self.applies),
                     tuple((plan.tx_qual.get(tx, ""), _function(tx)) for tx in _own_txs(plan)))

    def finish(self) -> None:
        """A legacy ``.replicate()`` averages the gradients over its axis inside
        ``apply_gradient``: every update must run in a function pmapped over that axis."""
        if not self.axes:
            return
        if len(self.axes) != 1 or None in self.axes:
            self.problems.append("optimizer.replicate(...) with an axis_name that is not one string literal")
            return
        axis = next(iter(self.axes))
        for call in self.applies:
            if any(self.plan.pmapped.get(fn, "") == axis for fn in self.plan.enclosing.get(id(call), ())):
                self.plan.pmean[id(call)] = axis
            else:
                self.problems.append(f"{call.func.attr.value} of a replicated optimizer outside a function "  # type: ignore[attr-defined]
                                     f"pmapped with axis_name={axis!r} (legacy averaged the gradients there)")

    def _hyper_args(self, args) -> None:
        if any(a.star or a.keyword is None for a in args):
            self.problems.append("apply_gradient with unusual arguments")
        elif args:
            self.key_sets.add(frozenset(a.keyword.value for a in args))
        else:
            self.plain += 1

    def visit_Assign(self, node: cst.Assign) -> None:
        if isinstance(node.value, cst.Tuple):
            self._contained(node.value, _TUPLE)
        call = node.value
        if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)):
            return
        method, receiver = call.func.attr.value, call.func.value
        targets = _optim.tuple_names(node.targets[0].target) if len(node.targets) == 1 else None
        if method in _optim.GRADIENT_METHODS and self.plan.is_opt(receiver):
            unpacked = _optim.tuple_targets(node.targets[0].target) if len(node.targets) == 1 else None
            whole = len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name)
            problem = _optim.gradient_form(call, unpacked, whole)
            if problem is None:
                if whole and HELPERS[WHOLE_GRADIENT].source not in self.plan.helpers:
                    self.plan.helpers.append(HELPERS[WHOLE_GRADIENT].source)
                self.plan.statements[id(call)] = method
                if method == "optimize":
                    self._hyper_args(call.args[1:])
                    self.applies.append(call)
            else:
                self.problems.append(problem)
            self.ok.add(id(call.func))
        elif id(call) in self.plan.explicit and method == "apply_gradient":
            problem = _optim.explicit_apply_problem(call, self.plan.explicit[id(call)], targets)
            if problem is None:
                self.plan.statements[id(call)] = method
                self.ok.add(id(_optim.bind_args(call, _optim.EXPLICIT_APPLY_PARAMS)["hyper_params"]))  # type: ignore[index]
            else:
                self.problems.append(problem)
            self.ok.add(id(call.func))

    def visit_Call(self, node: cst.Call) -> None:
        f = node.func
        if not isinstance(f, cst.Attribute):
            return
        method = f.attr.value
        if id(node) in self.plan.explicit:
            if method == "init_state" and not (len(node.args) == 1 and not node.args[0].star
                                                and node.args[0].keyword is None):
                self.problems.append(f"{f.value.value}.init_state with unusual arguments")  # type: ignore[attr-defined]
            elif method == "apply_gradient" and id(node) not in self.plan.statements and id(f) not in self.ok:
                self.problems.append(f"{f.value.value}.apply_gradient(...) outside an assignment of its "  # type: ignore[attr-defined]
                                     "(params, state) pair")
            self.ok.add(id(f))
        if not self.plan.is_opt(f.value):
            if method == "create" and isinstance(f.value, cst.Name) and f.value.value in self.plan.defs:
                self.ok.add(id(f))
            return
        if method == "apply_gradient":
            first, rest = (node.args[0], node.args[1:]) if node.args else (None, ())
            if first is None or first.star or (first.keyword is not None and first.keyword.value != "grads"):
                self.problems.append("apply_gradient with unusual arguments")
            else:
                self._hyper_args(rest)
            self.applies.append(node)
            self.ok.add(id(f))
        elif method == "replace":
            # apply_fn=: LU202 gave a TrainState made without its module the caller's (carried)
            allowed = ("target", "apply_fn") if self.carried else ("target",)
            if any(a.keyword is None or a.keyword.value not in allowed for a in node.args):
                self.problems.append("optimizer.replace(...) of fields other than target")
            self.ok.add(id(f))
        elif method in _optim.REPLICATE_METHODS:
            if method == "replicate":
                bound = _optim.replicate_axis(node)
                self.axes.add(bound[0] if bound else None)
            elif node.args:
                self.problems.append("optimizer.unreplicate(...) with arguments")
            self.ok.add(id(f))
        elif method in _optim.GRADIENT_METHODS and id(f) not in self.ok:
            self.problems.append(f"optimizer.{method}(...) outside an assignment to names")
            self.ok.add(id(f))

    # an optimizer put in a list, set or dict is used where this rule cannot follow it (issue 16);
    # tuples are how functions return it with other values and wrappers hand it back, which the
    # plan follows: not a tuple bound to a name or looped over (``opts = (adam, sgd)``, ``a, b =
    # opt, x``, ``for opt in opts``: the creates would convert, the uses not)
    def visit_DictElement(self, node: cst.DictElement) -> None:
        self._contained(node.value, _CONTAINER)

    def visit_List(self, node: cst.List) -> None:
        for e in node.elements:
            self._contained(e.value, _CONTAINER)

    def visit_Set(self, node: cst.Set) -> None:
        for e in node.elements:
            self._contained(e.value, _CONTAINER)

    def visit_For(self, node: cst.For) -> None:
        if isinstance(node.iter, cst.Tuple):
            self._contained(node.iter, _TUPLE)

    def visit_IfExp(self, node: cst.IfExp) -> None:
        if self.plan.is_opt(node.body) != self.plan.is_opt(node.orelse):
            self.problems.append(_CHOSEN)

    def visit_BooleanOperation(self, node: cst.BooleanOperation) -> None:
        self._contained(node.left, _CHOSEN)
        self._contained(node.right, _CHOSEN)

    def _contained(self, value: cst.BaseExpression, problem: str) -> None:
        if self._holds_opt(value):
            self.problems.append(problem)

    def _holds_opt(self, value: cst.BaseExpression) -> bool:
        """An optimizer, or a tuple with one (``[('adam', optim.Adam(...).create(p)), ...]``)."""
        if isinstance(value, cst.Tuple):
            return any(self._holds_opt(e.value) for e in value.elements)
        return self.plan.is_opt(value) or id(value) in self.plan.creates

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if id(node) in self.ok:
            return
        if node.attr.value == "step" and (state := _sub_state(node.value)) is not None \
                and self.plan.is_opt(state.value) and self.plan.created() == {MULTI}:
            self.ok.add(id(state))
            self.plan.sub_state_steps.add(id(node))
        if isinstance(node.value, cst.Attribute) and node.value.attr.value == "state" \
                and self.plan.is_opt(node.value.value):
            if node.attr.value == "step":
                self.ok.add(id(node.value))
            else:
                self.problems.append(f"optimizer.state.{node.attr.value}")
                self.ok.add(id(node.value))
        if self.plan.is_opt(node.value) and node.attr.value == "apply_fn":
            self.apply_fn_used = self.apply_fn_used or not self.carried
        elif self.plan.is_opt(node.value) and node.attr.value != "target":
            self.problems.append(f"optimizer.{node.attr.value}")
        if node.attr.value in _MODEL_ATTRIBUTES and isinstance(node.value, cst.Attribute) \
                and node.value.attr.value == "target" and self.plan.is_opt(node.value.value):
            # an nn.Model target that LU202 (which runs first) did not follow here: `.params.params`
            self.problems.append(f"optimizer.target.{node.attr.value} (an nn.Model's, which LU202 does not follow "
                                 "here)")
        if isinstance(node.value, cst.Name) and node.value.value in self.plan.defs:
            self.problems.append(f"{node.value.value}.{node.attr.value} on an optimizer definition")
        if isinstance(node.value, cst.Name) and node.value.value in self.plan.state_names:
            self.problems.append(f"{node.value.value}.{node.attr.value} on the state of init_state "
                                 "(an optax state has other fields)")
