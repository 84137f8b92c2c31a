"""Every ``flax.optim`` optimizer definition: the optax expression that
reproduces its update exactly, and where its state goes.

One row per legacy class (``flax.optim.<Name>``, canonical spelling).  A row
holds the legacy signature (names in positional order, default *source*), the
optax expression as templates, and the state mapping read by
``linen_upgrade.optim_state``.  Facts and measurements:
``shared/reference/api_mapping.md`` §3; each row is proven against flax 0.3.6
by ``tests/test_optimizers.py``.

Templates
    ``{arg}`` is replaced by the source of the legacy argument (the user's
    expression, or the legacy default).  ``[...]`` is an optional segment: it
    is dropped when every argument in it provably equals the value in the
    variant's ``omit`` (the optax default of that slot), so the output reads
    ``optax.sgd(0.1, momentum=0.9)`` rather than spelling every default.  A
    row's variants are tried in order; one applies when each of its ``when``
    conditions is provable from literals (``weight_decay == 0``); the last
    variant has none and is right for every value, so a non-literal argument
    never produces a wrong expression, only a longer one.
State mapping
    ``state`` maps an optax state class name to ``{field: legacy field}``:
    ``'@step'`` is ``OptimizerState.step``, ``'-x'`` the negated field ``x``,
    ``'*'`` the whole legacy ``param_states`` tree (restored into the field's
    structure).  A ``count`` field not named here is the step too.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Mapping

REQUIRED = object()  # a legacy parameter without which the row cannot be converted


@dataclass(frozen=True)
class Variant:
    template: str
    when: Mapping[str, object] = field(default_factory=dict)  # legacy arg -> literal it must equal
    omit: Mapping[str, object] = field(default_factory=dict)  # legacy arg -> value that drops its [...]
    helpers: tuple[str, ...] = ()  # names in HELPERS


@dataclass(frozen=True)
class OptimizerRow:
    # legacy signature, positional order: (name, default source or REQUIRED)
    params: tuple[tuple[str, object], ...]
    variants: tuple[Variant, ...] = ()
    state: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    status: str = "auto"  # "auto" | "manual"
    guideline: str = ""
    imports: tuple[str, ...] = ("optax",)  # modules the expression names
    # per-step hyper-parameters (``apply_gradient(g, beta1=...)``): optax function the
    # expression calls -> {legacy name: the keyword of that function with the same meaning},
    # for ``optax.inject_hyperparams``; ``learning_rate`` is the same everywhere
    hyper: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.params)


@dataclass(frozen=True)
class Helper:
    """A custom transform copied into the user's file (source of ``objects``
    in ``linen_upgrade.optax_legacy``, in this order)."""

    objects: tuple[str, ...]
    imports: tuple[str, ...] = ()  # modules the copied source needs at module level

    @property
    def source(self) -> str:
        return _source_of(self.objects)


@lru_cache(maxsize=None)
def _source_of(objects: tuple[str, ...]) -> str:
    from linen_upgrade import optax_legacy
    return "\n\n".join(inspect.getsource(getattr(optax_legacy, o)).rstrip() + "\n" for o in objects)


HELPERS: dict[str, Helper] = {
    "scale_by_legacy_adagrad": Helper(("scale_by_legacy_adagrad",)),
    "scale_by_legacy_lamb_trust_ratio": Helper(("scale_by_legacy_lamb_trust_ratio",)),
    "scale_by_legacy_lars": Helper(("scale_by_legacy_lars",)),
    "legacy_adafactor": Helper(("legacy_adafactor",)),
    "weight_norm": Helper(("WeightNormState", "weight_norm"), imports=("typing",)),
    "traversal_labels": Helper(("traversal_labels",)),
    "optax_from_optimizer_def": Helper(("ParamUpdateState", "from_param_update", "from_apply_gradient",
                                        "PerStepState", "optax_from_optimizer_def"),
                                       imports=("typing",)),
    "LegacyLAMB": Helper(("LegacyLAMBHyperParams", "LegacyLAMBParamState", "LegacyLAMB"), imports=("typing",)),
    "legacy_compute_gradient": Helper(("legacy_compute_gradient",)),
}


@dataclass(frozen=True)
class BaseClass:
    """A ``flax.optim`` definition a user class may derive from when it has its own update:
    the plain class (``base``, a helper) it derives from instead, which gives the same
    ``__init__`` and ``init_param_state``, and the classes of the legacy module it may name
    (canonical legacy name -> the class copied in with it)."""

    base: str
    names: Mapping[str, str] = field(default_factory=dict)


BASES: dict[str, BaseClass] = {
    "flax.optim.LAMB": BaseClass("LegacyLAMB", {"flax.optim._LAMBHyperParams": "LegacyLAMBHyperParams",
                                                 "flax.optim._LAMBParamState": "LegacyLAMBParamState"}),
}


def helper_imports(sources: Iterable[str]) -> set[str]:
    """The modules the helpers of these sources need (no helper's source is read for none)."""
    wanted = set(sources)
    return {m for h in HELPERS.values() if h.source in wanted for m in h.imports} if wanted else set()


_LR = ("learning_rate", REQUIRED)
_ADAM_OMIT = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
_ADAFACTOR_ARGS = (
    "[, min_dim_size_to_factor={min_dim_size_to_factor}][, decay_rate={decay_rate}]"
    "[, decay_offset={step_offset}][, multiply_by_parameter_scale={multiply_by_parameter_scale}]"
    "[, clipping_threshold={clipping_threshold}][, momentum={beta1}][, dtype_momentum={dtype_momentum}]"
    "[, weight_decay_rate={weight_decay_rate}][, eps={epsilon1}][, factored={factored}]"
)
_ADAFACTOR_OMIT = {
    "min_dim_size_to_factor": 128, "decay_rate": 0.8, "step_offset": 0,
    "multiply_by_parameter_scale": True, "clipping_threshold": 1.0, "beta1": None,
    "dtype_momentum": "jnp.float32", "weight_decay_rate": None, "epsilon1": 1e-30, "factored": True,
    "epsilon2": 1e-3,
}
_GUIDE = "https://flax.readthedocs.io/en/latest/guides/converting_and_upgrading/optax_update_guide.html"

OPTIMIZERS: dict[str, OptimizerRow] = {
    "flax.optim.GradientDescent": OptimizerRow(
        params=(_LR,),
        variants=(Variant("optax.sgd({learning_rate})"),),
    ),
    # the decay goes *before* the momentum trace (after it: max|d| 0.017)
    "flax.optim.Momentum": OptimizerRow(
        params=(_LR, ("beta", "0.9"), ("weight_decay", "0"), ("nesterov", "False")),
        variants=(
            Variant("optax.sgd({learning_rate}, momentum={beta}[, nesterov={nesterov}])",
                    when={"weight_decay": 0}, omit={"nesterov": False}),
            Variant("optax.chain(optax.add_decayed_weights({weight_decay}), "
                    "optax.sgd({learning_rate}, momentum={beta}[, nesterov={nesterov}]))",
                    omit={"nesterov": False}),
        ),
        state={"TraceState": {"trace": "momentum"}},
        hyper={"optax.sgd": {"beta": "momentum"}},
    ),
    # legacy decay is decoupled and lr-scaled, like adamw (whose default wd is 1e-4, not 0)
    "flax.optim.Adam": OptimizerRow(
        params=(_LR, ("beta1", "0.9"), ("beta2", "0.999"), ("eps", "1e-8"), ("weight_decay", "0.0")),
        variants=(
            Variant("optax.adam({learning_rate}[, b1={beta1}][, b2={beta2}][, eps={eps}])",
                    when={"weight_decay": 0}, omit=_ADAM_OMIT),
            Variant("optax.adamw({learning_rate}[, b1={beta1}][, b2={beta2}][, eps={eps}], "
                    "weight_decay={weight_decay})", omit=_ADAM_OMIT),
        ),
        state={"ScaleByAdamState": {"count": "@step", "mu": "grad_ema", "nu": "grad_sq_ema"}},
        hyper={"optax.adam": {"beta1": "b1", "beta2": "b2", "eps": "eps"},
               "optax.adamw": {"beta1": "b1", "beta2": "b2", "eps": "eps", "weight_decay": "weight_decay"}},
    ),
    # optax.adagrad starts G at 0.1 and puts eps inside the sqrt (max|d| 0.21)
    "flax.optim.Adagrad": OptimizerRow(
        params=(_LR, ("eps", "1e-8")),
        variants=(Variant("optax.chain(scale_by_legacy_adagrad([eps={eps}]), "
                          "optax.scale_by_learning_rate({learning_rate}))",
                          omit={"eps": 1e-8}, helpers=("scale_by_legacy_adagrad",)),),
        state={"ScaleByRssState": {"sum_of_squares": "G"}},
    ),
    # optax puts eps inside the sqrt unless told (max|d| 0.031)
    "flax.optim.RMSProp": OptimizerRow(
        params=(_LR, ("beta2", "0.9"), ("eps", "1e-8"), ("centered", "False")),
        variants=(Variant("optax.rmsprop({learning_rate}[, decay={beta2}][, eps={eps}], eps_in_sqrt=False"
                          "[, centered={centered}])",
                          omit={"beta2": 0.9, "eps": 1e-8, "centered": False}),),
        state={"ScaleByRmsState": {"nu": "v"}, "ScaleByRStdDevState": {"mu": "mg", "nu": "v"}},
        hyper={"optax.rmsprop": {"beta2": "decay", "eps": "eps"}},
    ),
    # optax.lamb moves zero parameters (trust ratio 1 where legacy had 0)
    "flax.optim.LAMB": OptimizerRow(
        params=(_LR, ("beta1", "0.9"), ("beta2", "0.999"), ("weight_decay", "0"), ("eps", "1e-6")),
        variants=(
            Variant("optax.chain(optax.scale_by_adam([b1={beta1}][, b2={beta2}], eps={eps}), "
                    "scale_by_legacy_lamb_trust_ratio(), optax.scale_by_learning_rate({learning_rate}))",
                    when={"weight_decay": 0}, omit={"beta1": 0.9, "beta2": 0.999},
                    helpers=("scale_by_legacy_lamb_trust_ratio",)),
            Variant("optax.chain(optax.scale_by_adam([b1={beta1}][, b2={beta2}], eps={eps}), "
                    "optax.add_decayed_weights({weight_decay}), scale_by_legacy_lamb_trust_ratio(), "
                    "optax.scale_by_learning_rate({learning_rate}))",
                    omit={"beta1": 0.9, "beta2": 0.999}, helpers=("scale_by_legacy_lamb_trust_ratio",)),
        ),
        state={"ScaleByAdamState": {"count": "@step", "mu": "grad_ema", "nu": "grad_sq_ema"}},
    ),
    # optax traces the negated, lr-scaled update: the momentum changes sign
    "flax.optim.LARS": OptimizerRow(
        params=(_LR, ("beta", "0.9"), ("weight_decay", "0"), ("trust_coefficient", "0.001"),
                ("eps", "0"), ("nesterov", "False")),
        variants=(
            Variant("optax.lars({learning_rate}[, trust_coefficient={trust_coefficient}][, eps={eps}]"
                    "[, momentum={beta}][, nesterov={nesterov}])",
                    when={"weight_decay": 0},
                    omit={"trust_coefficient": 0.001, "eps": 0, "beta": 0.9, "nesterov": False}),
            # optax.lars takes the trust ratio of |g + wd p|, legacy |g| + wd |p| (max|d| 2e-5)
            Variant("optax.chain(scale_by_legacy_lars({weight_decay}[, trust_coefficient={trust_coefficient}]"
                    "[, eps={eps}]), optax.scale_by_learning_rate({learning_rate}), "
                    "optax.trace(decay={beta}[, nesterov={nesterov}]))",
                    omit={"trust_coefficient": 0.001, "eps": 0, "nesterov": False},
                    helpers=("scale_by_legacy_lars",)),
        ),
        state={"TraceState": {"trace": "-momentum"}},
    ),
    # renames beta1 -> momentum, step_offset -> decay_offset, epsilon1 -> eps;
    # optax fixes epsilon2 at 1e-3 (another value: max|d| 2e-4)
    "flax.optim.Adafactor": OptimizerRow(
        params=(_LR, ("factored", "True"), ("multiply_by_parameter_scale", "True"), ("beta1", "None"),
                ("decay_rate", "0.8"), ("step_offset", "0"), ("clipping_threshold", "1.0"),
                ("weight_decay_rate", "None"), ("min_dim_size_to_factor", "128"), ("epsilon1", "1e-30"),
                ("epsilon2", "1e-3"), ("dtype_momentum", "jnp.float32")),
        variants=(
            Variant("optax.adafactor({learning_rate}" + _ADAFACTOR_ARGS + ")",
                    when={"epsilon2": 1e-3}, omit=_ADAFACTOR_OMIT),
            Variant("legacy_adafactor({learning_rate}[, factored={factored}]"
                    "[, multiply_by_parameter_scale={multiply_by_parameter_scale}][, beta1={beta1}]"
                    "[, decay_rate={decay_rate}][, step_offset={step_offset}]"
                    "[, clipping_threshold={clipping_threshold}][, weight_decay_rate={weight_decay_rate}]"
                    "[, min_dim_size_to_factor={min_dim_size_to_factor}][, epsilon1={epsilon1}], "
                    "epsilon2={epsilon2}[, dtype_momentum={dtype_momentum}])",
                    omit=_ADAFACTOR_OMIT, helpers=("legacy_adafactor",)),
        ),
        state={"FactoredState": {"count": "@step", "v_row": "v_row", "v_col": "v_col", "v": "v"},
               "EmaState": {"count": "@step", "ema": "m"}},
    ),
    # optax.adadelta(weight_decay=) decays before the scaling (coupled, max|d| 0.1)
    "flax.optim.Adadelta": OptimizerRow(
        params=(_LR, ("rho", "0.9"), ("eps", "1e-6"), ("weight_decay", "0.0")),
        variants=(
            Variant("optax.adadelta({learning_rate}[, rho={rho}][, eps={eps}])",
                    when={"weight_decay": 0}, omit={"rho": 0.9, "eps": 1e-6}),
            Variant("optax.chain(optax.scale_by_adadelta([rho={rho}][, eps={eps}]), "
                    "optax.add_decayed_weights({weight_decay}), optax.scale_by_learning_rate({learning_rate}))",
                    omit={"rho": 0.9, "eps": 1e-6}),
        ),
        state={"ScaleByAdaDeltaState": {"e_g": "sq_avg", "e_x": "acc_delta"}},
        hyper={"optax.adadelta": {"rho": "rho", "eps": "eps"}},
    ),
    # one legacy eps is both optax's eps and eps_root; optax.adabelief has no decay
    "flax.optim.AdaBelief": OptimizerRow(
        params=(_LR, ("beta1", "0.9"), ("beta2", "0.999"), ("eps", "1e-16"), ("weight_decay", "0.0")),
        variants=(
            Variant("optax.adabelief({learning_rate}[, b1={beta1}][, b2={beta2}][, eps={eps}, eps_root={eps}])",
                    when={"weight_decay": 0}, omit={"beta1": 0.9, "beta2": 0.999, "eps": 1e-16}),
            Variant("optax.chain(optax.scale_by_belief([b1={beta1}][, b2={beta2}][, eps={eps}, eps_root={eps}]), "
                    "optax.add_decayed_weights({weight_decay}), optax.scale_by_learning_rate({learning_rate}))",
                    omit={"beta1": 0.9, "beta2": 0.999, "eps": 1e-16}),
        ),
        state={"ScaleByBeliefState": {"count": "@step", "mu": "grad_ema", "nu": "grad_sq_ema"}},
    ),
    # wrapped_optimizer: the optax expression of the wrapped definition
    "flax.optim.WeightNorm": OptimizerRow(
        params=(("wrapped_optimizer", REQUIRED), ("wn_decay", "0"), ("wn_eps", "1e-8")),
        variants=(Variant("weight_norm({wrapped_optimizer}[, wn_decay={wn_decay}][, wn_eps={wn_eps}])",
                          omit={"wn_decay": 0, "wn_eps": 1e-8}, helpers=("weight_norm",)),),
    ),
    # built by multi_transform_expression: one group per (traversal, optimizer)
    # pair, unselected parameters frozen (legacy left them as they were)
    "flax.optim.MultiOptimizer": OptimizerRow(params=()),
    # not an optax transform: the class moved, same fields and value_and_grad
    "flax.optim.DynamicScale": OptimizerRow(
        params=(("growth_factor", "2.0"), ("backoff_factor", "0.5"), ("growth_interval", "2000"),
                ("fin_steps", "0"), ("scale", "65536.0")),
        variants=(Variant("flax.training.dynamic_scale.DynamicScale([growth_factor={growth_factor}]"
                          "[, backoff_factor={backoff_factor}][, growth_interval={growth_interval}]"
                          "[, fin_steps={fin_steps}][, scale={scale}])",
                          omit={"growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                                "fin_steps": 0, "scale": 65536.0}),),
        imports=("flax.training.dynamic_scale",),
    ),
    # a user subclass (rules/_optim_user.py): ``definition`` is the source of the
    # constructor call; its own bodies run unchanged in from_param_update / from_apply_gradient
    "flax.optim.OptimizerDef": OptimizerRow(
        params=(("definition", REQUIRED),),
        variants=(Variant("optax_from_optimizer_def({definition})", helpers=("optax_from_optimizer_def",)),),
        state={"ParamUpdateState": {"step": "@step", "param_states": "*"}},
        guideline="make it a plain class keeping init_param_state/apply_param_gradient (or its own "
                  "apply_gradient) and self.hyper_params, and use optax_from_optimizer_def(instance) "
                  "(linen_upgrade/optax_legacy.py), or write an optax.GradientTransformation",
    ),
}

MULTI = "flax.optim.MultiOptimizer"
OPTIMIZER_DEF = "flax.optim.OptimizerDef"
USER_DEF_HELPER = "optax_from_optimizer_def"  # what a user OptimizerDef instance is wrapped in
TRAVERSAL = "flax.optim.ModelParamTraversal"
TRAVERSAL_TARGET = "flax.traverse_util.ModelParamTraversal"
FROZEN_LABEL = "frozen"
# optimizer definitions whose result is an optax GradientTransformation
TRANSFORMS = frozenset(q for q, r in OPTIMIZERS.items()
                       if r.status == "auto" and q != "flax.optim.DynamicScale")


def hyper_names(qual: str, optax_function: str) -> dict[str, str]:
    """Legacy per-step hyper-parameter -> keyword of ``optax_function`` (the
    plain optax call the row's expression is) with the same meaning."""
    return {"learning_rate": "learning_rate", **OPTIMIZERS[qual].hyper.get(optax_function, {})}


class ConversionError(ValueError):
    """The arguments do not allow a faithful optax expression."""


class MissingLearningRate(ConversionError):
    """No learning rate in the definition: legacy took it at each ``apply_gradient``.
    Where every step gives it, the transform is made with ``PER_STEP_LEARNING_RATE``,
    which the step's value replaces (``optax.inject_hyperparams``) before it is used."""


PER_STEP_LEARNING_RATE = "0.0"


def row_for(name: str) -> tuple[str, OptimizerRow]:
    qual = name if name.startswith("flax.optim.") else f"flax.optim.{name}"
    try:
        return qual, OPTIMIZERS[qual]
    except KeyError:
        raise ConversionError(f"{name} is not a flax.optim optimizer definition") from None


def _literal(source: str) -> tuple[bool, object]:
    try:
        return True, ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def _equals(source: str, value: object) -> bool:
    """Does the argument ``source`` provably equal ``value``?"""
    if isinstance(value, str):  # a dotted default such as jnp.float32
        return "".join(source.split()) == value
    ok, lit = _literal(source)
    if not ok:
        return False
    if value is None or lit is None:
        return lit is value
    if isinstance(value, bool) or isinstance(lit, bool):
        return type(lit) is type(value) and lit == value
    return isinstance(lit, (int, float)) and lit == value


def render(template: str, args: Mapping[str, str], omit: Mapping[str, object]) -> str:
    """Fill ``{arg}``; drop ``[...]`` segments whose arguments all equal ``omit``."""
    out: list[str] = []

    def emit(text: str) -> None:
        if text.startswith(", ") and out and out[-1].endswith("("):
            text = text[2:]
        if text:
            out.append(text)

    def fill(text: str) -> tuple[str, list[str]]:
        parts, names, i = [], [], 0
        while i < len(text):
            if text[i] == "{":
                j = text.index("}", i)
                names.append(text[i + 1:j])
                parts.append(args[text[i + 1:j]])
                i = j + 1
            else:
                j = text.find("{", i)
                j = len(text) if j < 0 else j
                parts.append(text[i:j])
                i = j
        return "".join(parts), names

    i = 0
    while i < len(template):
        if template[i] == "[":
            j = template.index("]", i)
            segment, names = fill(template[i + 1:j])
            if not all(n in omit and _equals(args[n], omit[n]) for n in names):
                emit(segment)
            i = j + 1
        else:
            j = template.find("[", i)
            j = len(template) if j < 0 else j
            text, _ = fill(template[i:j])
            emit(text)
            i = j
    return "".join(out)


def bind(name: str, kwargs_source: Mapping[str, str]) -> dict[str, str]:
    """The source of every legacy parameter: the given ones, else the defaults."""
    qual, row = row_for(name)
    short = qual.rsplit(".", 1)[1]
    unknown = sorted(set(kwargs_source) - set(row.param_names))
    if unknown:
        raise ConversionError(f"{short}() has no argument {', '.join(unknown)}")
    args: dict[str, str] = {}
    for pname, default in row.params:
        source = kwargs_source.get(pname)
        if default is REQUIRED and (source is None or _equals(source, None)):
            if pname == "learning_rate":
                raise MissingLearningRate(f"{short}() without learning_rate, which legacy read from each "
                                          "apply_gradient(..., learning_rate=): converted where every step of "
                                          "this file gives one; else the optax transform takes it, as a number "
                                          "or a schedule")
            raise ConversionError(f"{short}() without {pname}")
        args[pname] = str(default) if source is None else source
    return args


def optax_expression(name: str, kwargs_source: Mapping[str, str]) -> tuple[str, list[str]]:
    """The optax expression for ``flax.optim.<name>(**kwargs)`` and the source
    of the helpers it calls.

    ``kwargs_source`` maps legacy argument names to source text (positional
    arguments already named).  For ``WeightNorm``, ``wrapped_optimizer`` is
    the *optax* source of the wrapped definition (and its helpers are the
    caller's to add); for ``MultiOptimizer`` see
    :func:`multi_transform_expression`.  Raises :class:`ConversionError`.
    """
    qual, row = row_for(name)
    if qual == MULTI:
        return multi_transform_expression(_multi_pairs(kwargs_source))
    if row.status != "auto":
        raise ConversionError(row.guideline)
    args = bind(qual, kwargs_source)
    for variant in row.variants:
        if all(_equals(args[k], v) for k, v in variant.when.items()):
            return render(variant.template, args, variant.omit), [HELPERS[h].source for h in variant.helpers]
    raise AssertionError(f"{qual}: no unconditional variant")  # the table's last variant has no `when`


def _multi_pairs(kwargs_source: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs = []
    i = 0
    while f"traversal_{i}" in kwargs_source:
        if f"optimizer_{i}" not in kwargs_source:
            raise ConversionError(f"MultiOptimizer: traversal_{i} without optimizer_{i}")
        pairs.append((kwargs_source[f"traversal_{i}"], kwargs_source[f"optimizer_{i}"]))
        i += 1
    if len(kwargs_source) != 2 * i:
        raise ConversionError("MultiOptimizer takes traversal_<i>/optimizer_<i> pairs")
    return pairs


def group_labels(traversals: list[str]) -> list[str]:
    """A label per traversal: its variable name where that is a unique
    identifier, else ``group<i>``."""
    labels = []
    for i, t in enumerate(traversals):
        ok = t.isidentifier() and t != FROZEN_LABEL and traversals.count(t) == 1 and not t.startswith("group")
        labels.append(t if ok else f"group{i}")
    return labels


def multi_transform_expression(pairs: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """``MultiOptimizer((traversal, opt), ...)``: ``pairs`` of the source of a
    traversal (or its filter function) and the optax source of its optimizer."""
    if not pairs:
        raise ConversionError("MultiOptimizer() without optimizers")
    labels = group_labels([t for t, _ in pairs])
    transforms = ", ".join(f"{label!r}: {tx}" for label, (_, tx) in zip(labels, pairs))
    groups = ", ".join(f"{label}={t}" for label, (t, _) in zip(labels, pairs))
    expr = (f"optax.multi_transform({{{transforms}, {FROZEN_LABEL!r}: optax.set_to_zero()}}, "
            f"traversal_labels({groups}))")
    return expr, [HELPERS["traversal_labels"].source]
