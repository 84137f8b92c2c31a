"""flax.optim -> optax: every row of ``linen_upgrade/tables/optimizers.py`` proven
against the real flax 0.3.6.

One legacy subprocess (``fixtures/optim/legacy_trajectories.py``) runs every
case for STEPS steps from fixed parameters and gradients (numpy seeds, float32)
and writes them with the trajectories to an ``.npz``.  Here each case's legacy
source goes through *all* rules (``rewrite_text``), the result is executed, and
the optax transform it defines replays the same gradients.

Tolerance: ``rtol=1e-5`` with ``atol=1e-6``.  The two sides evaluate the same
formula in a different order (``lr * g / d`` vs ``lr * (g / d)``, decay folded
into the update, ``p + (new - p)`` for WeightNorm), so each step differs by a
few float32 ulps of the *update*; entries of parameters near zero have no
relative precision to spare, hence the absolute floor.  Measured over 20 steps:
max|d| <= 1.2e-6 (0 for GradientDescent, Momentum and plain Adadelta), never more
than 7% of the allowed difference.
"""
from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from linen_upgrade.config import Config
from linen_upgrade.pipeline import rewrite_text
from linen_upgrade.registry import all_rules
from linen_upgrade.tables.optimizers import (HELPERS, OPTIMIZERS, ConversionError, optax_expression,
                                             render)

from conftest import FIXTURES, nested

STEPS = 20
RTOL, ATOL = 1e-5, 1e-6
PRELUDE = "import jax.numpy as jnp\nfrom flax import optim, traverse_util\n\n"
SCHED = "def sched(step):\n    return 0.01 * jnp.minimum(1.0, (step + 1) / 5.0) * jnp.cos(0.05 * step)\n\n"


def _ctor(name: str, hyper: dict) -> str:
    def value(v: Any) -> str:
        return _ctor(*v) if isinstance(v, tuple) else repr(v)
    return f"optim.{name}(" + ", ".join(f"{k}={value(v)}" for k, v in hyper.items()) + ")"


@dataclass
class Case:
    id: str
    name: str
    hyper: dict
    params: str = "small"
    prelude: str = ""  # legacy source run before `tx = ...`
    ctor: str = ""  # the constructor source, when not derived from name + hyper
    schedule: bool = False  # legacy: apply_gradient(g, learning_rate=sched(step))
    kind: str = "optimizer"
    extra: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        return self.prelude + "tx = " + (self.ctor or _ctor(self.name, self.hyper)) + "\n"


def _sched(step):  # the same function as SCHED, for the state conversion's hyper
    import jax.numpy as jnp
    return 0.01 * jnp.minimum(1.0, (step + 1) / 5.0) * jnp.cos(0.05 * step)


_MULTI_PRELUDE = ("kernels = traverse_util.ModelParamTraversal(lambda path, _: 'kernel' in path)\n"
                  "biases = traverse_util.ModelParamTraversal(lambda path, _: 'bias' in path)\n")
_CUSTOM_DEF = '''
@flax.struct.dataclass
class _HyperParams:
    learning_rate: float
    beta: float
    clip: float


class ClippedMomentum(optim.OptimizerDef):
    """A user OptimizerDef (the kind real code has): momentum on clipped gradients."""

    def __init__(self, learning_rate, beta=0.9, clip=1.0):
        super().__init__(_HyperParams(learning_rate, beta, clip))

    def init_param_state(self, param):
        return {"momentum": jnp.zeros_like(param)}

    def apply_param_gradient(self, step, hyper_params, param, state, grad):
        grad = jnp.clip(grad, -hyper_params.clip, hyper_params.clip)
        momentum = hyper_params.beta * state["momentum"] + grad
        return param - hyper_params.learning_rate * momentum, {"momentum": momentum}

'''

CASES = [
    Case("sgd", "GradientDescent", {"learning_rate": 0.1}),
    Case("momentum", "Momentum", {"learning_rate": 0.1}),
    Case("momentum_nesterov", "Momentum", {"learning_rate": 0.1, "beta": 0.8, "nesterov": True}),
    Case("momentum_wd", "Momentum", {"learning_rate": 0.1, "weight_decay": 1e-2}),
    Case("momentum_wd_nesterov", "Momentum", {"learning_rate": 0.1, "weight_decay": 1e-2, "nesterov": True}),
    Case("adam", "Adam", {"learning_rate": 0.01}),
    Case("adam_wd", "Adam", {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6,
                             "weight_decay": 1e-2}),
    Case("adagrad", "Adagrad", {"learning_rate": 0.1}),
    Case("rmsprop", "RMSProp", {"learning_rate": 0.01}),
    Case("rmsprop_centered", "RMSProp", {"learning_rate": 0.01, "centered": True}),
    # every case's dense/bias starts at ZERO: legacy LAMB never moves it, optax.lamb would
    Case("lamb", "LAMB", {"learning_rate": 0.01}),
    Case("lamb_wd", "LAMB", {"learning_rate": 0.01, "weight_decay": 1e-2}),
    Case("lars", "LARS", {"learning_rate": 0.1}),
    Case("lars_nesterov", "LARS", {"learning_rate": 0.1, "nesterov": True}),
    Case("lars_wd", "LARS", {"learning_rate": 0.1, "weight_decay": 1e-2, "eps": 1e-9}),
    Case("adafactor", "Adafactor", {"learning_rate": 0.01}, params="big"),
    Case("adafactor_momentum_wd", "Adafactor", {"learning_rate": 0.01, "beta1": 0.9,
                                                "weight_decay_rate": 1e-3, "clipping_threshold": None},
         params="big"),
    Case("adafactor_epsilon2", "Adafactor", {"learning_rate": 0.01, "epsilon2": 1e-2, "factored": False,
                                             "decay_rate": 0.5}),
    Case("adadelta", "Adadelta", {"learning_rate": 1.0}),
    Case("adadelta_wd", "Adadelta", {"learning_rate": 1.0, "weight_decay": 1e-2}),
    Case("adabelief", "AdaBelief", {"learning_rate": 0.01}),
    Case("adabelief_eps", "AdaBelief", {"learning_rate": 0.01, "eps": 1e-8}),  # optax splits eps/eps_root
    Case("adabelief_wd", "AdaBelief", {"learning_rate": 0.01, "eps": 1e-8, "weight_decay": 1e-2}),
    # lr 0.005: with random gradients the kernels' direction norms grow every step,
    # and at lr >= 0.01 the dynamics turn ill-conditioned (legacy itself reaches NaN at 0.1)
    Case("weight_norm_momentum", "WeightNorm", {"wrapped_optimizer": ("Momentum", {"learning_rate": 0.005})}),
    Case("weight_norm_adam", "WeightNorm", {"wrapped_optimizer": ("Adam", {"learning_rate": 0.01}),
                                            "wn_decay": 1e-3}),
    Case("multi", "MultiOptimizer", {"traversals_and_optimizers": [
        (lambda path, _: "kernel" in path, ("Momentum", {"learning_rate": 0.1, "nesterov": True})),
        (lambda path, _: "bias" in path, ("Adam", {"learning_rate": 0.01}))]},
        prelude=_MULTI_PRELUDE,
        ctor="optim.MultiOptimizer((kernels, optim.Momentum(0.1, nesterov=True)), (biases, optim.Adam(0.01)))"),
    Case("multi_inline_filters", "MultiOptimizer", {"traversals_and_optimizers": [
        (lambda path, _: path.startswith("/dense/"), ("LAMB", {"learning_rate": 0.01, "weight_decay": 1e-2})),
        (lambda path, _: path.startswith("/conv/"), ("Adagrad", {"learning_rate": 0.1}))]},
        # (legacy also calls the filters on per-parameter *states*: real filters look at the path only)
        ctor="optim.MultiOptimizer((optim.ModelParamTraversal(lambda path, _: path.startswith('/dense/')), "
             "optim.LAMB(0.01, weight_decay=1e-2)), (optim.ModelParamTraversal(filter_fn=lambda path, _: "
             "path.startswith('/conv/')), optim.Adagrad(0.1)))"),
    Case("schedule_sgd", "GradientDescent", {"learning_rate": _sched}, prelude=SCHED,
         ctor="optim.GradientDescent(learning_rate=sched)", schedule=True),
    Case("schedule_momentum_wd", "Momentum", {"learning_rate": _sched, "weight_decay": 1e-3}, prelude=SCHED,
         ctor="optim.Momentum(learning_rate=sched, weight_decay=1e-3)", schedule=True),
    Case("schedule_adam_wd", "Adam", {"learning_rate": _sched, "weight_decay": 1e-2}, prelude=SCHED,
         ctor="optim.Adam(learning_rate=sched, weight_decay=1e-2)", schedule=True),
    Case("schedule_lars", "LARS", {"learning_rate": _sched}, prelude=SCHED,
         ctor="optim.LARS(learning_rate=sched)", schedule=True),
    Case("schedule_lamb", "LAMB", {"learning_rate": _sched}, prelude=SCHED,
         ctor="optim.LAMB(learning_rate=sched)", schedule=True),
    Case("schedule_adafactor", "Adafactor", {"learning_rate": _sched}, prelude=SCHED, params="big",
         ctor="optim.Adafactor(learning_rate=sched)", schedule=True),
    Case("custom_optimizer_def", "OptimizerDef", {}, prelude="import flax\n" + _CUSTOM_DEF,
         ctor="ClippedMomentum(0.1, beta=0.8, clip=2.0)"),
    Case("dynamic_scale", "DynamicScale", {}, kind="dynamic_scale"),
]
BY_ID = {c.id: c for c in CASES}
TABLE_CASES = [c for c in CASES if c.kind == "optimizer" and c.name != "OptimizerDef"]
ALL_IDS = [r.id for r in all_rules()]


# -- the legacy side: one subprocess for everything -----------------------------
@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> dict[str, np.ndarray]:
    from linen_upgrade.verify import legacy_env, runner
    legacy_env.ensure()
    tmp = tmp_path_factory.mktemp("optim")
    cases = []
    for c in CASES:
        if c.kind == "dynamic_scale":
            source = "ds = optim.DynamicScale(growth_interval=3, scale=2.0 ** 10)\n"
        else:
            source = PRELUDE + c.source
        cases.append({"id": c.id, "source": source, "params": c.params, "schedule": c.schedule,
                      "kind": c.kind})
    (tmp / "cases.json").write_text(json.dumps({"steps": STEPS, "cases": cases}))
    res = runner.run_legacy(str(FIXTURES / "optim" / "legacy_trajectories.py"),
                            args=[str(tmp / "cases.json"), str(tmp / "out.npz")], timeout=300)
    assert res.ok, res.stderr[-3000:]
    with np.load(tmp / "out.npz") as data:
        return dict(data)


def _at(tree: dict, t: int):
    import jax
    import jax.numpy as jnp
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x[t]), tree)


def _upgraded(source: str) -> tuple[str, dict]:
    """The source through every rule, and the namespace it defines when run."""
    result = rewrite_text(source.encode("utf-8"), "case.py", Config(), ALL_IDS)
    assert result.error is None, result.error
    code = result.new.decode("utf-8") if result.new is not None else source
    module = types.ModuleType("upgraded_case")  # dataclasses look their module up in sys.modules
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, "upgraded_case.py", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return code, module.__dict__


def _assert_close(actual, expected, what: str) -> None:
    import jax
    for (path, a), e in zip(jax.tree_util.tree_flatten_with_path(actual)[0],
                            jax.tree_util.tree_leaves(expected)):
        assert np.all(np.isfinite(e)), f"{what}: legacy is not finite at {jax.tree_util.keystr(path)}"
        np.testing.assert_allclose(np.asarray(a), e, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{what} {jax.tree_util.keystr(path)}")


# -- the proofs -----------------------------------------------------------------
@pytest.mark.legacy
@pytest.mark.parametrize("case", [c for c in CASES if c.kind == "optimizer"], ids=lambda c: c.id)
def test_emitted_optax_matches_legacy_trajectory(case: Case, legacy):
    import jax
    import jax.numpy as jnp
    import optax

    # runs on current flax: an import of flax.optim left behind would fail here
    code, namespace = _upgraded(PRELUDE + case.source)
    assert "TODO(linen-upgrade)" not in code, code
    tx = namespace["tx"]
    params = jax.tree_util.tree_map(jnp.asarray, nested(legacy, f"params/{case.params}"))
    grads = nested(legacy, f"grads/{case.params}")
    trajectory = nested(legacy, f"{case.id}/traj")
    state = tx.init(params)
    for t in range(STEPS):
        updates, state = tx.update(_at(grads, t), state, params)
        params = optax.apply_updates(params, updates)
        _assert_close(params, _at(trajectory, t + 1), f"{case.id} step {t + 1}")


@pytest.mark.legacy
def test_dynamic_scale_matches_legacy(legacy):
    import jax.numpy as jnp

    code, namespace = _upgraded(PRELUDE + "ds = optim.DynamicScale(growth_interval=3, scale=2.0 ** 10)\n")
    assert "flax.training.dynamic_scale.DynamicScale(" in code, code
    ds = namespace["ds"]
    ref = nested(legacy, "dynamic_scale/ds")
    rng = np.random.RandomState(2)
    p = jnp.asarray(rng.normal(size=(7,)), jnp.float32)
    for t, x in enumerate(ref["x"]):
        def loss_fn(q, x=x):
            return jnp.sum((jnp.asarray(q, jnp.float16) * jnp.float16(x)) ** 2)
        ds, finite, loss, grad = ds.value_and_grad(loss_fn)(p)
        p = p - 0.01 * jnp.where(finite, grad, 0.)
        assert (float(ds.scale), int(ds.fin_steps), bool(finite)) == (
            float(ref["scale"][t]), int(ref["fin_steps"][t]), bool(ref["finite"][t])), t
        np.testing.assert_allclose(np.asarray(p), ref["p"][t], rtol=RTOL, atol=ATOL)
        if finite:
            np.testing.assert_allclose(np.asarray(grad), ref["grad"][t], rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(float(loss), float(ref["loss"][t]), rtol=RTOL)
    # the run exercised growth and backoff
    assert not ref["finite"].all() and ref["finite"].any() and len(set(ref["scale"].tolist())) > 2


@pytest.mark.legacy
@pytest.mark.parametrize("case", TABLE_CASES, ids=lambda c: c.id)
def test_resume_from_legacy_state(case: Case, legacy):
    """Legacy: 3 steps -> flax.serialization.to_bytes(optimizer).  Here:
    msgpack_restore -> optax_state_from_legacy -> the 4th step == legacy's 4th."""
    import flax.serialization
    import optax

    from linen_upgrade.optim_state import build_transform, optax_state_from_legacy

    grads = nested(legacy, f"grads/{case.params}")
    trajectory = nested(legacy, f"{case.id}/traj")
    restored = flax.serialization.msgpack_restore(legacy[f"{case.id}/state_bytes"].tobytes())
    assert int(restored["state"]["step"]) == 3
    params = _at(trajectory, 3)
    state = optax_state_from_legacy(case.name, case.hyper, restored["state"], params)
    tx = build_transform(case.name, case.hyper)
    updates, state = tx.update(_at(grads, 3), state, params)
    _assert_close(optax.apply_updates(params, updates), _at(trajectory, 4), f"{case.id} resumed step 4")


@pytest.mark.legacy
def test_resume_user_optimizer_def(legacy):
    """A user OptimizerDef's legacy state (per-parameter dicts) -> ParamUpdateState;
    the upgraded class, built with the same arguments, takes the 4th step."""
    import optax

    from linen_upgrade.optim_state import build_transform, optax_state_from_legacy

    case = BY_ID["custom_optimizer_def"]
    code, namespace = _upgraded(PRELUDE + case.source)
    assert "class ClippedMomentum:" in code, code
    hyper = {"definition": namespace["ClippedMomentum"](0.1, beta=0.8, clip=2.0)}
    trajectory = nested(legacy, f"{case.id}/traj")
    params = _at(trajectory, 3)
    state = optax_state_from_legacy(case.name, hyper, flax_restore(legacy, case.id), params)
    assert int(state.step) == 3
    updates, _ = build_transform(case.name, hyper).update(_at(nested(legacy, "grads/small"), 3), state, params)
    _assert_close(optax.apply_updates(params, updates), _at(trajectory, 4), "custom resumed step 4")


@pytest.mark.legacy
def test_resume_renames_module_keys(legacy):
    """The legacy state's module keys renamed on the way (a callable, or a keys.KeyMap)."""
    import jax
    import optax

    from linen_upgrade import keys
    from linen_upgrade.optim_state import build_transform, optax_state_from_legacy

    case = BY_ID["adam_wd"]
    restored = flax_restore(legacy, case.id)
    # legacy auto-names: one counter per parent; Linen: one per class
    legacy_names = {"dense": "Dense_1", "conv": "Conv_0", "vec": "vec"}
    legacy_state = {"step": restored["state"]["step"],
                    "param_states": {legacy_names[k]: v for k, v in restored["state"]["param_states"].items()}}
    trajectory = nested(legacy, f"{case.id}/traj")
    linen_names = {"dense": "Dense_0", "conv": "Conv_0", "vec": "vec"}
    params = {linen_names[k]: v for k, v in _at(trajectory, 3).items()}
    key_map = keys.build_key_map({legacy_names[k]: v for k, v in _at(trajectory, 3).items()})
    for rename in (key_map, lambda tree: {k.replace("Dense_1", "Dense_0"): v for k, v in tree.items()}):
        state = optax_state_from_legacy(case.name, case.hyper, legacy_state, params, rename=rename)
        tx = build_transform(case.name, case.hyper)
        updates, _ = tx.update({linen_names[k]: v for k, v in _at(nested(legacy, "grads/small"), 3).items()},
                               state, params)
        expected = {linen_names[k]: v for k, v in _at(trajectory, 4).items()}
        new = optax.apply_updates(params, updates)
        assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(expected)
        _assert_close(new, expected, "renamed")


@pytest.mark.legacy
@pytest.mark.parametrize("case_id", ["momentum_wd", "weight_norm_adam", "multi"])
def test_resume_without_learning_rate(case_id, legacy):
    """A constant learning rate does not shape the state: checkpoint conversion
    may leave it out (legacy code often passed it to apply_gradient)."""
    import copy

    import optax

    from linen_upgrade.optim_state import build_transform, optax_state_from_legacy

    case = BY_ID[case_id]
    hyper = copy.deepcopy({k: v for k, v in case.hyper.items() if k != "learning_rate"})
    for spec in [hyper.get("wrapped_optimizer")] + [o for _, o in hyper.get("traversals_and_optimizers", [])]:
        if spec:
            spec[1].pop("learning_rate")
    trajectory = nested(legacy, f"{case.id}/traj")
    params = _at(trajectory, 3)
    state = optax_state_from_legacy(case.name, hyper, flax_restore(legacy, case.id), params)
    updates, _ = build_transform(case.name, case.hyper).update(_at(nested(legacy, "grads/small"), 3), state, params)
    _assert_close(optax.apply_updates(params, updates), _at(trajectory, 4), f"{case.id} without lr")


def flax_restore(legacy: dict, case_id: str) -> dict:
    import flax.serialization
    return flax.serialization.msgpack_restore(legacy[f"{case_id}/state_bytes"].tobytes())


# -- the table itself (no legacy runtime needed) ----------------------------------
def test_every_row_has_a_proof():
    proven = {f"flax.optim.{c.name}" for c in CASES}
    assert set(OPTIMIZERS) <= proven, set(OPTIMIZERS) - proven
    for name in ("Momentum", "Adam", "LARS", "Adadelta", "AdaBelief", "LAMB", "Adafactor"):
        variants = {c.id for c in CASES if c.name == name}
        assert len(variants) >= 2, f"{name}: every variant of the row needs a case"


@pytest.mark.parametrize("qual,row", sorted(OPTIMIZERS.items()), ids=lambda x: x if isinstance(x, str) else "")
def test_templates_name_existing_optax_api(qual, row):
    import re

    import optax
    for variant in row.variants:
        for name in re.findall(r"optax\.(\w+)", variant.template):
            assert hasattr(optax, name), f"{qual}: optax.{name} missing in optax {optax.__version__}"
        for kw in re.findall(r"optax\.(\w+)\(", variant.template):
            assert callable(getattr(optax, kw))
        for h in variant.helpers:
            assert h in HELPERS and h in variant.template


def test_helpers_are_self_contained():
    """Copied into a user's file they need nothing but their own imports."""
    for name, helper in HELPERS.items():
        namespace: dict = {"typing": __import__("typing")} if "typing" in helper.imports else {}
        exec(compile(helper.source, name, "exec"), namespace)
        assert name in namespace


@pytest.mark.parametrize("name,kwargs,expected", [
    ("Momentum", {"learning_rate": "0.1"}, "optax.sgd(0.1, momentum=0.9)"),
    ("Momentum", {"learning_rate": "lr", "weight_decay": "wd"},
     "optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, momentum=0.9))"),
    ("Adam", {"learning_rate": "0.1", "weight_decay": "0.0"}, "optax.adam(0.1)"),
    ("Adam", {"learning_rate": "0.1", "weight_decay": "1e-4", "beta2": "0.98"},
     "optax.adamw(0.1, b2=0.98, weight_decay=1e-4)"),
    ("RMSProp", {"learning_rate": "0.1"}, "optax.rmsprop(0.1, eps_in_sqrt=False)"),
    ("LARS", {"learning_rate": "0.1", "nesterov": "True"}, "optax.lars(0.1, nesterov=True)"),
    ("Adafactor", {"learning_rate": "lr", "beta1": "0.9", "step_offset": "100"},
     "optax.adafactor(lr, decay_offset=100, momentum=0.9)"),
    ("Adafactor", {"learning_rate": "lr", "epsilon2": "eps2"}, "legacy_adafactor(lr, epsilon2=eps2)"),
    ("AdaBelief", {"learning_rate": "0.1", "eps": "1e-8"}, "optax.adabelief(0.1, eps=1e-8, eps_root=1e-8)"),
    ("DynamicScale", {}, "flax.training.dynamic_scale.DynamicScale()"),
    ("OptimizerDef", {"definition": "MyOpt(0.1)"}, "optax_from_optimizer_def(MyOpt(0.1))"),
], ids=lambda x: x if isinstance(x, str) and x[0].isupper() else "")
def test_optax_expression(name, kwargs, expected):
    assert optax_expression(name, kwargs)[0] == expected


@pytest.mark.parametrize("name,kwargs,message", [
    ("Adam", {}, "without learning_rate"),
    ("Adam", {"learning_rate": "None"}, "without learning_rate"),
    ("Adam", {"learning_rate": "0.1", "amsgrad": "True"}, "no argument amsgrad"),
    ("WeightNorm", {}, "without wrapped_optimizer"),
    ("OptimizerDef", {}, "without definition"),
    ("Shampoo", {"learning_rate": "0.1"}, "not a flax.optim optimizer"),
])
def test_optax_expression_refuses(name, kwargs, message):
    with pytest.raises(ConversionError, match=message):
        optax_expression(name, kwargs)


def test_render_drops_only_template_commas():
    omit = {"a": 1, "b": 2}
    assert render("f([a={a}][, b={b}], c={c})", {"a": "1", "b": "2", "c": "x"}, omit) == "f(c=x)"
    assert render("f([a={a}][, b={b}])", {"a": "1", "b": "(3, 4)", "c": ""}, omit) == "f(b=(3, 4))"
    assert render("f(x[, b={b}])", {"b": "b2"}, omit) == "f(x, b=b2)"


def test_hyper_names_are_parameters_of_the_optax_function():
    """Per-step hyper-parameters (``apply_gradient(g, beta1=...)``) go to
    ``optax.inject_hyperparams`` under these names: each must be a numeric
    parameter of that optax function (proven per form in test_optim_train_state)."""
    import inspect

    import optax

    from linen_upgrade.tables.optimizers import OPTIMIZERS, hyper_names

    for qual, row in OPTIMIZERS.items():
        for function, names in row.hyper.items():
            assert set(names) <= set(row.param_names), qual
            params = inspect.signature(getattr(optax, function.split(".", 1)[1])).parameters
            for legacy, new in hyper_names(qual, function).items():
                assert new in params, (qual, function, legacy, new)
