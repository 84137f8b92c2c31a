"""LU301 optim_constructors: ``flax.optim`` optimizer definitions become the optax transform with the same update.

What it does
    Rewrites the constructor of every ``flax.optim`` optimizer definition
    (``optim.Adam(learning_rate=0.1, weight_decay=1e-4)`` ->
    ``optax.adamw(0.1, weight_decay=1e-4)``), by the rows of
    ``linen_upgrade/tables/optimizers.py``: by semantics, not by name, with
    ``optax.chain`` and small custom transforms where optax's namesake
    differs.  The custom transforms are copied into the file once, after the
    imports; ``import optax`` is added.  ``WeightNorm`` and ``MultiOptimizer``
    (-> ``optax.multi_transform`` with labels from the traversals, unselected
    parameters frozen) convert with the definitions they wrap.
    A user subclass of ``OptimizerDef`` becomes a plain class
    (``super().__init__(hp)`` -> ``self.hyper_params = hp``) and its instances
    ``optax_from_optimizer_def(MyOpt(...))``, which runs the class's own
    ``init_param_state``/``apply_param_gradient``, or the whole-tree
    ``apply_gradient(hyper_params, params, state, grads)`` it overrides (gradient
    clipping, Shampoo; the ``OptimizerState`` it builds -> ``ParamUpdateState``,
    the transform's state) (``rules/_optim_user.py``).  A subclass of
    ``optim.LAMB`` with its own ``apply_param_gradient`` derives from
    ``LegacyLAMB`` instead, a plain class copied in with LAMB's ``__init__`` and
    ``init_param_state`` (``lamb._LAMBParamState`` -> ``LegacyLAMBParamState``).
    ``optim.DynamicScale`` -> ``flax.training.dynamic_scale.DynamicScale``;
    ``optim.ModelParamTraversal`` -> ``flax.traverse_util.ModelParamTraversal``.
    A ``flax.optim`` import nothing uses any more is removed, unless the file
    offers the name to others (``__all__``, a package's ``__init__.py``, another
    file of the run using it through this one): that import stays, with
    LU901's TODO, as do the classes other files reach only through it.
Why
    ``flax.optim`` is gone from current Flax; optax replaced it.  Several
    optax namesakes differ (``optax.adagrad``'s accumulator, ``rmsprop``'s eps,
    ``lamb`` on zero parameters, ``adamw``'s default decay, ...); every row is
    proven against flax 0.3.6 for 20 steps (``tests/test_optimizers.py``).
Left alone (with a TODO)
    A definition whose value reaches ``.create``, ``apply_gradient`` or other
    ``OptimizerDef`` API -- directly, through a variable, a function's return
    value or a keyword of that name -- keeps its legacy form here: LU302
    (optim_train_state) converts it together with the optimizer code around
    it, into a ``TrainState``; where LU302 cannot, the TODO names the optax
    expression.  So does one returned by a function this file never
    calls (its callers are elsewhere, out of sight), and one another file
    of the run is handed -- an argument of its function
    (``models.make(optim.Adam(0.1), params)``), or a module-level name it
    uses (``defs.MOMENTUM.create(p)``): LU302 puts a TODO on that file's
    ``.create`` too.  Also ``*args``/``**kwargs`` (not on a user subclass's
    instance, made as written), unknown arguments, a
    missing ``learning_rate`` (given to ``apply_gradient`` instead: LU302
    converts it where every step gives one), a
    definition in a list/tuple/dict literal of a file using the
    ``OptimizerDef`` API, or kept where the plan does not follow it there: in
    an attribute or item (``defs.actor = optim.Adam(0.1)``), or an argument of
    a ``@dataclass``'s or library's constructor, or of a class of the file
    (its ``__init__`` may keep it under another name), other subclasses of ``flax.optim`` optimizers, and
    ``OptimizerDef`` subclasses that override or call more of the base
    (``init_state``, ``super().apply_gradient``, ``update_hyper_params``,
    ``state_dict``, ...) or set ``hyper_params`` other than through one
    ``super().__init__(hp)`` in ``__init__``, or that files of the run use
    without using ``flax.optim`` themselves (no rule converts the instances
    there, whose ``.create`` the plain class would not have).
"""

from __future__ import annotations

import os
from collections import Counter

import libcst as cst

from linen_upgrade.resolve import canonical, dotted
from linen_upgrade.rule import Context, Example, FastVisitor, NoChange, Rule, RuleTransformer
from linen_upgrade.tables.optimizers import (BASES, HELPERS, OPTIMIZER_DEF, OPTIMIZERS, TRAVERSAL,
                                             TRAVERSAL_TARGET, USER_DEF_HELPER, ConversionError, helper_imports,
                                             optax_expression)
from linen_upgrade.rules._cst import add_import, express
from linen_upgrade.rules._optim_defs import Scan
from linen_upgrade.rules._optim_edit import drop_unused_optim_imports, format_expression, insert_helpers
from linen_upgrade.rules._optim_plan import FEEDS_OPTIM, Outcome, plan_definitions
from linen_upgrade.rules._optim_user import builtin_base, class_problem, convert_class, user_defs

_DYNAMIC_SCALE = "flax.optim.DynamicScale"

class OptimConstructors(Rule):
    id = "LU301"
    summary = "flax.optim optimizer definitions -> the optax transform with the same update rule"
    examples = [
        Example(
            "from flax import optim\n\ntx = optim.Adam(learning_rate=0.1, weight_decay=1e-4)\n",
            "import optax\n\ntx = optax.adamw(0.1, weight_decay=1e-4)\n",
        ),
        Example(
            "import flax.optim as optim\n\ntx = optim.RMSProp(lr, centered=True)\n",
            "import optax\n\ntx = optax.rmsprop(lr, eps_in_sqrt=False, centered=True)\n",
            name="optax default differs",
        ),
        Example(
            "from flax import optim\n\noptimizer = optim.Momentum(0.1).create(params)\n",
            "from flax import optim\n\n"
            "# TODO(linen-upgrade): LU301 optim.Momentum(...) feeds flax.optim code that is not converted "
            "(.create, apply_gradient, ...): convert them together; optax form: optax.sgd(0.1, momentum=0.9)\n"
            "optimizer = optim.Momentum(0.1).create(params)\n",
            name="used with create: left for the optimizer code",
        ),
        NoChange("import optax\n\ntx = optax.adam(1e-3)\n", name="already optax"),
    ]


    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        scan = Scan(ctx)
        module.visit(scan)
        plan = plan_definitions(scan, module)
        transformer = _Transformer(self, ctx, plan)
        defs = user_defs(ctx.facts)
        if defs:  # the file's OptimizerDef subclasses it names besides defining them
            names = _Names(defs)
            module.visit(names)
            transformer.read = {n for n in defs if names.count[n] > 1}
        module = module.visit(transformer)
        for name in sorted(transformer.imports):
            module = add_import(module, name)
        if transformer.helpers:
            module = insert_helpers(module, transformer.helpers)
        return drop_unused_optim_imports(module, ctx)


class _Names(FastVisitor):
    """How often the file names each of ``names``."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.count: Counter = Counter()

    def visit_Name(self, node: cst.Name) -> None:
        if node.value in self.names:
            self.count[node.value] += 1


class _Transformer(RuleTransformer):
    def __init__(self, rule: Rule, ctx: Context, plan: dict[int, Outcome]) -> None:
        super().__init__(rule, ctx)
        self.plan = plan
        self.imports: set[str] = set()
        self.helpers: list[str] = []
        self._attrs: set[int] = set()  # the .attr Name of every Attribute
        self.read: set[str] = set()  # user OptimizerDef classes the file names besides their definition

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        bases = [canonical(self.resolve(b.value) or "") for b in original.bases]
        name = original.name.value
        if (OPTIMIZER_DEF in bases or any(b in BASES for b in bases)) and name in user_defs(self.ctx.facts):
            problem = class_problem(original, user_defs(self.ctx.facts), self.resolve) or self._users_left(name)
            if problem is None:
                self.fixed(f"{name}(OptimizerDef) -> a plain class for optax_from_optimizer_def")
                if name not in self.read and not self._users(name):
                    # a library's optimizer: its callers are not in the run, and its .create is gone
                    self.todo(f"{name} is a plain class now, and no file of this run makes an optimizer of it: "
                              f"code elsewhere that calls {name}(...).create(...) must use "
                              f"{USER_DEF_HELPER}({name}(...)) (linen_upgrade/optax_legacy.py) with a TrainState")
                builtin = builtin_base(original, self.resolve)
                if builtin is not None:  # its plain base, copied in
                    self._helper(HELPERS[builtin.base].source)
                return convert_class(updated, user_defs(self.ctx.facts), self.resolve)
            self.todo(f"{name}: {problem}; {OPTIMIZERS[OPTIMIZER_DEF].guideline}")
        elif any(b in OPTIMIZERS for b in bases):
            self.todo(f"{name}: a subclass of a flax.optim optimizer other than OptimizerDef has no optax "
                      "form here; write an optax.GradientTransformation")
        return updated

    def _helper(self, src: str) -> None:
        if src not in self.helpers:
            self.helpers.append(src)
            self.imports.update(helper_imports([src]))

    def _users(self, name: str) -> set[str]:
        """The other files of the run that use the class: also through a package's re-export
        (``optlib.ClippedSGD``, ``from optlib import ClippedSGD``), but not the files that only
        name it again to re-export it (``from .clipped import ClippedSGD``)."""
        module = self.ctx.facts.module_name
        index = self.ctx.index
        qual = f"{module}.{name}" if module else name
        via = {ref for ref in index.referrers if ref != qual and index.canonical(ref) == qual}
        users = set(index.referrers.get(qual, set())).union(*(index.referrers[ref] for ref in via))
        return users - {module} - {ref.rpartition(".")[0] for ref in via} \
            - {ref.rpartition(".")[0] for ref, target in index.reexports.items() if target == qual}

    def _users_left(self, name: str) -> str | None:
        """Files of the run that use the class but not flax.optim: no rule runs there to make
        its instances ``optax_from_optimizer_def(...)``, and the plain class has no ``.create``."""
        module = self.ctx.facts.module_name
        index = self.ctx.index
        users = self._users(name) - index.optim_creators
        if not users:
            return None
        here = os.path.dirname(index.paths.get(module, ""))
        names = sorted(os.path.relpath(index.paths[u], here) if u in index.paths and here else u for u in users)
        return (f"used by {', '.join(names)}, where no rule converts it (no flax.optim there): "
                "the plain class would have no .create/apply_gradient")

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        outcome = self.plan.get(id(original))
        if outcome is None:
            return self._dynamic_scale(original, updated)
        if outcome.todo:
            self.todo(outcome.todo, mark=FEEDS_OPTIM if outcome.withdrawable else None)
            return updated
        assert outcome.expr is not None
        self.imports.add("optax")
        for src in outcome.helpers:
            self._helper(src)
        self.fixed(f"{dotted(original.func)}(...) -> {' '.join(outcome.expr.split())}")
        new = format_expression(cst.parse_expression(outcome.expr), outcome.indent, outcome.column)
        new = new.visit(self)  # renames traversals inside
        return new.with_changes(lpar=original.lpar, rpar=original.rpar)

    def _dynamic_scale(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        qual = self.resolve(original.func)
        if qual is None or canonical(qual) != _DYNAMIC_SCALE:
            return updated
        row = OPTIMIZERS[_DYNAMIC_SCALE]
        positional = [a for a in original.args if a.keyword is None]
        try:
            if any(a.star for a in original.args) or len(positional) > len(row.param_names):
                raise ConversionError("*args/**kwargs or too many arguments")
            assert self._module is not None
            sources = {**{n: self._module.code_for_node(a.value) for n, a in zip(row.param_names, positional)},
                       **{a.keyword.value: self._module.code_for_node(a.value)
                          for a in original.args if a.keyword is not None}}
            expr, _ = optax_expression(_DYNAMIC_SCALE, sources)
        except ConversionError as e:
            self.todo(f"{dotted(original.func)}(...): {e}; not converted")
            return updated
        self.imports.update(row.imports)
        self.fixed(f"{dotted(original.func)} -> flax.training.dynamic_scale.DynamicScale")
        return cst.parse_expression(expr).with_changes(lpar=original.lpar, rpar=original.rpar)

    # optim.ModelParamTraversal is flax.traverse_util's class, re-exported
    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self._attrs.add(id(node.attr))
        return True

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        return self._traversal(original, updated)

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        return updated if id(original) in self._attrs else self._traversal(original, updated)

    def _traversal(self, original: cst.BaseExpression, updated: cst.BaseExpression) -> cst.BaseExpression:
        qual = self.resolve(original) if dotted(original) else None
        if qual is None or canonical(qual) != TRAVERSAL:
            return updated
        spelling, module = express(TRAVERSAL_TARGET, self.ctx.facts.imports)
        if module is not None:
            self.imports.add(TRAVERSAL_TARGET.rsplit(".", 1)[0])
        return cst.parse_expression(spelling).with_changes(lpar=original.lpar, rpar=original.rpar)
