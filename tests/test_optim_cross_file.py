"""LU302 across files: a flax.optim optimizer created in one file and handed to
the functions of another (which may not import flax at all) is converted to a
TrainState in both files, or gets a TODO in both -- never one without the
other (issue #6).  The numbers: ``fixtures/programs/cross_file_optimizer``."""
from __future__ import annotations

from pathlib import Path

from linen_upgrade.config import Config
from linen_upgrade.pipeline import run
from linen_upgrade.registry import all_rules

MAIN = '''\
from flax import optim
import steps
def run(params, batches):
    optimizer = optim.Momentum(learning_rate=0.1, beta=0.9).create(params)
    for b in batches:
        optimizer = steps.train_step(optimizer, b)
    return optimizer.target
'''

STEPS = '''\
import jax
def train_step(optimizer, batch):
    grads = jax.grad(lambda p: (p['w'] * batch).sum())(optimizer.target)
    return optimizer.apply_gradient(grads)
'''

MAIN_OUT = '''\
import steps
import optax
from flax.training import train_state
def run(params, batches):
    optimizer = train_state.TrainState.create(
        apply_fn=None,
        params=params,
        tx=optax.sgd(0.1, momentum=0.9),
    )
    for b in batches:
        optimizer = steps.train_step(optimizer, b)
    return optimizer.params
'''

STEPS_OUT = '''\
import jax
def train_step(optimizer, batch):
    grads = jax.grad(lambda p: (p['w'] * batch).sum())(optimizer.params)
    return optimizer.apply_gradients(grads=grads)
'''

TODO = "# TODO(linen-upgrade): LU302 flax.optim optimizer not converted to a TrainState: "


def _upgrade(tmp_path: Path, sources: dict[str, str]) -> dict[str, tuple[str, list[str]]]:
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    result = run(sorted(tmp_path.glob("*.py")), Config(), [r.id for r in all_rules()], jobs=1)
    out = {name: (text, []) for name, text in sources.items()}  # files the run did not read stay as they are
    for r in result.results:
        assert r.error is None, r.error
        out[Path(r.path).name] = ((r.new or r.original).decode(), [f"{f.rule} {f.message}" for f in r.findings])
    return out


def _lu302(findings: list[str]) -> list[str]:
    return [f for f in findings if f.startswith("LU302")]


def test_optimizer_handed_to_a_file_without_flax_converts_both(tmp_path):
    assert "flax" not in STEPS  # the prefilter admits steps.py because main.py uses flax.optim and imports it
    files = _upgrade(tmp_path, {"main.py": MAIN, "steps.py": STEPS})
    assert files["main.py"] == (MAIN_OUT, [])
    assert files["steps.py"] == (STEPS_OUT, [])


def test_cross_file_conversion_is_idempotent(tmp_path):
    files = _upgrade(tmp_path, {"main.py": MAIN, "steps.py": STEPS})
    (tmp_path / "again").mkdir()
    again = _upgrade(tmp_path / "again", {name: text for name, (text, _) in files.items()})
    assert again == files


def test_receiving_function_using_an_unconverted_api_leaves_both_files_with_a_todo(tmp_path):
    steps = STEPS.replace("    return", "    print(optimizer.optimizer_def)\n    return")
    files = _upgrade(tmp_path, {"main.py": MAIN, "steps.py": steps})
    main, main_findings = files["main.py"]
    out, steps_findings = files["steps.py"]
    assert (f"    {TODO}steps.py (steps.train_step() receives this file's optimizer): optimizer.optimizer_def\n"
            "    # TODO(linen-upgrade): LU901") in main
    assert "optimizer.target" in main and "train_state" not in main
    assert out == steps.replace("def train_step", f"{TODO}optimizer.optimizer_def\ndef train_step")
    assert len(_lu302(main_findings)) == 1 and len(_lu302(steps_findings)) == 1


def test_defining_file_that_is_not_converted_leaves_the_receiving_file_with_a_todo(tmp_path):
    main = MAIN.replace("    return optimizer.target", "    return optimizer.state.param_states")
    files = _upgrade(tmp_path, {"main.py": main, "steps.py": STEPS})
    out, findings = files["steps.py"]
    assert out == STEPS.replace(
        "def train_step",
        f"{TODO}main.py (passes its optimizer to train_step() here): optimizer.state.param_states\n"
        "def train_step")
    assert _lu302(findings) == ["LU302 flax.optim optimizer not converted to a TrainState: main.py (passes its "
                                "optimizer to train_step() here): optimizer.state.param_states"]
    assert "optimizer.apply_gradient(grads)" in out
    assert f"{TODO}optimizer.state.param_states" in files["main.py"][0]


def test_another_caller_passing_a_value_this_rule_cannot_follow_blocks_both(tmp_path):
    """other.py hands train_step something this rule does not know to be an optimizer (a
    parameter nobody in the run fills): converting steps.py would break it."""
    other = "import steps\n\n\ndef resume(opt, batch):\n    return steps.train_step(opt, batch)\n"
    files = _upgrade(tmp_path, {"main.py": MAIN, "steps.py": STEPS, "other.py": other})
    assert files["other.py"] == (other, [])
    steps, steps_findings = files["steps.py"]
    # and other.py's resume() returns what train_step() returns to code outside the run
    assert steps_findings == ["LU302 flax.optim optimizer not converted to a TrainState: train_step() is also "
                              "called in other.py with a value for optimizer that this rule cannot follow as an "
                              "optimizer; other.py (uses the optimizer train_step() returns): resume() returns the "
                              "optimizer to code in other files, which this file's conversion cannot reach: convert "
                              "them together"]
    assert "optimizer.apply_gradient(grads)" in steps
    main, main_findings = files["main.py"]
    assert "optim.Momentum" in main
    assert any("steps.py (steps.train_step() receives this file's optimizer): train_step() is also called in "
               "other.py" in f for f in main_findings), main_findings


CHAIN_MAIN = '''\
import jax
from flax import optim

import loop


def main(params, data):
    optimizer = optim.Adam(learning_rate=1e-3).create(params)
    step = jax.jit(loop.step)
    optimizer, loss = step(optimizer, data[0])
    optimizer = loop.run(optimizer, data)
    return optimizer.target, optimizer.state.step, loss
'''

CHAIN_LOOP = '''\
import jax

import update


def step(optimizer, batch):
    loss, grads = jax.value_and_grad(lambda p: (p * batch).sum())(optimizer.target)
    return update.apply(optimizer, grads), loss


def run(optimizer, data):
    for batch in data:
        optimizer, _ = step(optimizer, batch)
    return optimizer
'''

CHAIN_UPDATE = '''\
def apply(opt, grads):
    return opt.apply_gradient(grads)
'''


def test_optimizer_passed_on_through_a_chain_of_files_through_jit_and_in_tuples(tmp_path):
    files = _upgrade(tmp_path, {"main.py": CHAIN_MAIN, "loop.py": CHAIN_LOOP, "update.py": CHAIN_UPDATE})
    assert all(findings == [] for _, findings in files.values()), files
    main = files["main.py"][0]
    assert "        tx=optax.adam(1e-3),\n" in main
    assert "    return optimizer.params, optimizer.step, loss\n" in main
    loop = files["loop.py"][0]
    assert "jax.value_and_grad(lambda p: (p * batch).sum())(optimizer.params)" in loop
    assert "import optax" not in loop and "train_state" not in loop
    assert files["update.py"][0] == "def apply(opt, grads):\n    return opt.apply_gradients(grads=grads)\n"


def test_function_of_another_file_passed_around_as_a_value_blocks_both(tmp_path):
    main = MAIN.replace("        optimizer = steps.train_step(optimizer, b)",
                        "        optimizer = apply_all(steps.train_step, optimizer, b)") + (
        "\n\ndef apply_all(fn, optimizer, b):\n    return fn(optimizer, b)\n")
    files = _upgrade(tmp_path, {"main.py": main, "steps.py": STEPS})
    main_out, main_findings = files["main.py"]
    assert "optim.Momentum" in main_out and "optimizer.target" in main_out
    assert any("fn(...), which this rule cannot follow" in f for f in main_findings), main_findings
    assert files["steps.py"] == (STEPS, [])  # nothing passes it an optimizer it can see: left alone


def test_optimizer_passed_to_a_function_outside_the_run_gets_a_todo(tmp_path):
    main = MAIN.replace("import steps", "import trainer_lib")
    main = main.replace("steps.train_step(optimizer, b)", "trainer_lib.train_step(optimizer, b)")
    out, findings = _upgrade(tmp_path, {"main.py": main})["main.py"]
    assert "optimizer = optim.Momentum" in out
    assert _lu302(findings) == ["LU302 flax.optim optimizer not converted to a TrainState: the optimizer is "
                                "passed to trainer_lib.train_step(...), which this rule cannot follow"]


def test_checkpoint_of_the_optimizer_converts_with_a_todo_naming_convert_checkpoint(tmp_path):
    main = ("from flax import optim\nfrom flax.training import checkpoints\n\n\n"
            "def run(params, workdir):\n"
            "    optimizer = optim.Adam(learning_rate=0.1).create(params)\n"
            "    optimizer = checkpoints.restore_checkpoint(workdir, target=optimizer)\n"
            "    checkpoints.save_checkpoint(workdir, optimizer, 0)\n"
            "    return optimizer.target\n")
    out, findings = _upgrade(tmp_path, {"main.py": main})["main.py"]
    assert "train_state.TrainState.create(" in out and "return optimizer.params" in out
    # one finding, where old checkpoints are read
    (finding,) = _lu302(findings)
    assert finding.startswith("LU302 the optimizer is a TrainState now") and "`linen-upgrade convert-checkpoint`" in finding
    assert out.index("convert-checkpoint") < out.index("restore_checkpoint") < out.index("save_checkpoint")


def test_state_dict_of_the_optimizer_leaves_it_legacy(tmp_path):
    main = ("from flax import optim, serialization\n\n\n"
            "def run(params):\n"
            "    optimizer = optim.Adam(learning_rate=0.1).create(params)\n"
            "    return serialization.to_state_dict(optimizer)['target']\n")
    out, findings = _upgrade(tmp_path, {"main.py": main})["main.py"]
    assert "optimizer = optim.Adam" in out
    (finding,) = _lu302(findings)
    assert "flax.serialization.to_state_dict(...) of the optimizer" in finding
    assert "`linen-upgrade convert-checkpoint`" in finding


def test_reading_calls_and_preserving_calls_stay_converted(tmp_path):
    main = MAIN.replace("    return optimizer.target",
                        "    print(optimizer)\n    host = jax.device_get(optimizer)\n    return host.target")
    out, findings = _upgrade(tmp_path, {"main.py": "import jax\n" + main, "steps.py": STEPS})["main.py"]
    assert findings == []
    assert "    print(optimizer)\n    host = jax.device_get(optimizer)\n    return host.params\n" in out


def test_per_step_hyper_parameters_across_files(tmp_path):
    """The step of one file gives the learning rate, the definition of the other is wrapped in
    optax.inject_hyperparams (the numbers: fixtures/programs/learning_rate_across_files)."""
    steps = STEPS.replace("apply_gradient(grads)", "apply_gradient(grads, learning_rate=0.01, beta=0.5)")
    files = _upgrade(tmp_path, {"main.py": MAIN, "steps.py": steps})
    assert files["main.py"] == (MAIN_OUT.replace("tx=optax.sgd(0.1, momentum=0.9)",
                                                 "tx=optax.inject_hyperparams(optax.sgd)(0.1, momentum=0.9)"), [])
    out, findings = files["steps.py"]
    assert findings == []
    assert "    return _apply_gradients_with(optimizer, grads, learning_rate=0.01, momentum=0.5)\n" in out
    assert out.startswith("import jax\n\n\ndef _apply_gradients_with(state, grads, **hyperparams):\n")
    (tmp_path / "again").mkdir()
    assert _upgrade(tmp_path / "again", {name: text for name, (text, _) in files.items()}) == files


def test_per_step_hyper_parameters_at_some_steps_of_the_files_only_block_both(tmp_path):
    """Legacy uses the definition's value at the step of main.py that gives none, and the
    injected one would stay there: neither file converts."""
    steps = STEPS.replace("apply_gradient(grads)", "apply_gradient(grads, learning_rate=0.01)")
    main = MAIN.replace("    return optimizer.target", "    optimizer = optimizer.apply_gradient(optimizer.target)\n"
                        "    return optimizer.target")
    files = _upgrade(tmp_path, {"main.py": main, "steps.py": steps})
    assert "optim.Momentum" in files["main.py"][0]
    assert "apply_gradient(grads, learning_rate=0.01)" in files["steps.py"][0]
    for name in ("main.py", "steps.py"):
        assert any("apply_gradient with hyper-parameters at some calls and without at others" in f
                   for f in _lu302(files[name][1])), files[name][1]


def test_definition_without_learning_rate_needs_one_at_every_step_of_the_files(tmp_path):
    main = MAIN.replace("optim.Momentum(learning_rate=0.1, beta=0.9)", "optim.Momentum(beta=0.9)")
    given = _upgrade(tmp_path, {"main.py": main,
                                "steps.py": STEPS.replace("apply_gradient(grads)",
                                                          "apply_gradient(grads, learning_rate=0.01)")})
    assert "tx=optax.inject_hyperparams(optax.sgd)(0.0, momentum=0.9)" in given["main.py"][0]
    assert given["main.py"][1] == [] and given["steps.py"][1] == []
    (tmp_path / "none").mkdir()
    files = _upgrade(tmp_path / "none", {"main.py": main, "steps.py": STEPS})
    assert "optim.Momentum(beta=0.9)" in files["main.py"][0] and "apply_gradient(grads)" in files["steps.py"][0]
    assert any("Momentum() without learning_rate" in f for f in _lu302(files["steps.py"][1])), files["steps.py"][1]


MAKE = "from flax import optim\n\n\ndef make(params):\n    return optim.Adam(0.1).create(params)\n"


def test_optimizer_returned_to_another_file_converts_both(tmp_path):
    """The opposite direction: a function creating an optimizer for other files, which
    follow it like their own (a call whose result is dropped needs nothing)."""
    user = "import make\n\n\ndef train(params, g):\n    opt = make.make(params)\n    make.make(params)\n" \
           "    opt = opt.apply_gradient(g)\n    return opt.target\n"
    files = _upgrade(tmp_path, {"make.py": MAKE, "user.py": user})
    assert "tx=optax.adam(0.1)" in files["make.py"][0] and files["make.py"][1] == []
    assert files["user.py"] == (user.replace("apply_gradient(g)", "apply_gradients(grads=g)")
                                .replace("opt.target", "opt.params"), [])
    again = _upgrade(tmp_path, {name: text for name, (text, _) in files.items()})
    assert again == files


def test_optimizer_returned_to_another_file_that_cannot_follow_it_blocks_both(tmp_path):
    user = "import make\n\n\ndef train(params, g):\n    opt = make.make(params)\n    opt.make_fresh = 1\n" \
           "    return opt.apply_gradient(g)\n"
    files = _upgrade(tmp_path, {"make.py": MAKE, "user.py": user})
    assert "optim.Adam(0.1).create(params)" in files["make.py"][0]
    assert any("user.py (uses the optimizer make() returns): train() returns the optimizer to code in other files"
               in f for f in files["make.py"][1])
    assert files["user.py"] == (user, [])


def test_function_returning_an_optimizer_passed_around_as_a_value_blocks_both(tmp_path):
    user = "import make\n\n\ndef train(params, factory=make.make):\n    opt = factory(params)\n" \
           "    return opt.target\n"
    files = _upgrade(tmp_path, {"make.py": MAKE, "user.py": user})
    assert "optim.Adam(0.1).create(params)" in files["make.py"][0]
    assert any("user.py passes make around as a value: the optimizers it returns cannot be followed" in f
               for f in files["make.py"][1])
    assert files["user.py"] == (user, [])


def test_index_reaches_the_files_an_optimizer_may_be_handed_to(tmp_path):
    (tmp_path / "main.py").write_text(CHAIN_MAIN)
    (tmp_path / "loop.py").write_text(CHAIN_LOOP)
    (tmp_path / "update.py").write_text(CHAIN_UPDATE)
    (tmp_path / "unrelated.py").write_text("import jax\n")
    from linen_upgrade import pipeline

    captured = {}
    original = pipeline._init_worker

    def spy(index, config, rule_ids):
        captured["index"] = index
        original(index, config, rule_ids)
    pipeline._init_worker = spy
    try:
        run(sorted(tmp_path.glob("*.py")), Config(), [r.id for r in all_rules()], jobs=1)
    finally:
        pipeline._init_worker = original
    index = captured["index"]
    assert index.optim_reach == {"main", "loop", "update"}
    assert set(index.paths) == {"main", "loop", "update"}


PMAP_MAIN = '''\
import functools

import jax
from flax import jax_utils, optim

import steps


def run(params, batches):
    optimizer = jax_utils.replicate(optim.GradientDescent(learning_rate=0.1).create(params))
    p_step = functools.partial(jax.pmap, axis_name='batch')(steps.train_step)
    for b in batches:
        optimizer = p_step(optimizer, b)
    return jax_utils.unreplicate(optimizer).target
'''

PMAP_STEPS = '''\
import jax


def train_step(optimizer, batch):
    grads = jax.grad(lambda p: (p['w'] * batch).sum())(optimizer.target)
    return optimizer.apply_gradient(jax.lax.pmean(grads, 'batch'))
'''


def test_optimizer_replicated_and_pmapped_across_files(tmp_path):
    files = _upgrade(tmp_path, {"main.py": PMAP_MAIN, "steps.py": PMAP_STEPS})
    main, main_findings = files["main.py"]
    assert main_findings == [] and files["steps.py"][1] == []
    assert "    optimizer = jax_utils.replicate(train_state.TrainState.create(" in main
    assert "    return jax_utils.unreplicate(optimizer).params\n" in main
    assert files["steps.py"][0] == PMAP_STEPS.replace("optimizer.target", "optimizer.params").replace(
        "optimizer.apply_gradient(jax.lax.pmean(grads, 'batch'))",
        "optimizer.apply_gradients(grads=jax.lax.pmean(grads, 'batch'))")


def test_legacy_replicate_method_cannot_cross_files(tmp_path):
    """Legacy ``optimizer.replicate()`` averages the gradients inside apply_gradient, which
    happens in the other file: the mean would have to be written there."""
    main = PMAP_MAIN.replace("jax_utils.replicate(optim.GradientDescent(learning_rate=0.1).create(params))",
                             "optim.GradientDescent(learning_rate=0.1).create(params).replicate()")
    steps = PMAP_STEPS.replace("jax.lax.pmean(grads, 'batch')", "grads")
    files = _upgrade(tmp_path, {"main.py": main, "steps.py": steps})
    assert files["steps.py"][0].startswith("import jax\n\n\n" + TODO + "main.py (passes its optimizer to "
                                           "train_step() here): optimizer.replicate()")
    assert "optimizer.apply_gradient(grads)" in files["steps.py"][0]
    assert ".replicate()" in files["main.py"][0] and len(_lu302(files["main.py"][1])) == 1


def test_todos_in_both_files_are_not_repeated_on_a_second_run(tmp_path):
    steps = STEPS.replace("    return", "    print(optimizer.optimizer_def)\n    return")
    files = _upgrade(tmp_path, {"main.py": MAIN, "steps.py": steps})
    (tmp_path / "again").mkdir()
    again = _upgrade(tmp_path / "again", {name: text for name, (text, _) in files.items()})
    assert {n: t for n, (t, _) in again.items()} == {n: t for n, (t, _) in files.items()}
    assert again["steps.py"][0].count("TODO(linen-upgrade): LU302") == 1


USER_DEF = '''\
import jax.numpy as jnp
from flax import optim, struct


@struct.dataclass
class _Hyper:
    step_size: float


class HalfStep(optim.OptimizerDef):
    def __init__(self, step_size):
        super().__init__(_Hyper(step_size))

    def init_param_state(self, param):
        return ()

    def apply_param_gradient(self, step, hyper_params, param, state, grad):
        return param - 0.5 * hyper_params.step_size * grad, state
'''

USES_DEF = '''\
import jax.numpy as jnp
import halfstep

optimizer = halfstep.HalfStep(0.1).create(jnp.ones(3))
optimizer = optimizer.apply_gradient(jnp.ones(3))
'''


def test_user_optimizer_def_used_where_no_rule_runs_keeps_its_base_with_a_todo(tmp_path):
    """A file that uses the class but not flax.optim is not converted (its ``.create`` stays):
    the class stays an OptimizerDef with a TODO instead of silently losing ``.create``."""
    files = _upgrade(tmp_path, {"halfstep.py": USER_DEF, "train.py": USES_DEF})
    out, findings = files["halfstep.py"]
    assert "class HalfStep(optim.OptimizerDef):" in out and "super().__init__(_Hyper(step_size))" in out
    assert any(f.startswith("LU301 HalfStep: used by train.py, where no rule converts it") for f in findings)
    assert files["train.py"] == (USES_DEF, [])
    # where the user file uses flax.optim, both convert: the class and optax_from_optimizer_def(...)
    (tmp_path / "with_optim").mkdir()
    files = _upgrade(tmp_path / "with_optim", {"halfstep.py": USER_DEF,
                                               "train.py": "from flax import optim\n" + USES_DEF})
    assert "class HalfStep:" in files["halfstep.py"][0]
    assert "optax_from_optimizer_def(halfstep.HalfStep(0.1))" in files["train.py"][0]


def test_class_keeping_the_optimizer_in_an_attribute_used_by_another_file_stays_legacy(tmp_path):
    trainer = "from flax import optim\n\n\nclass Trainer:\n    def __init__(self, params):\n" \
              "        self.optimizer = optim.Adam(0.1).create(params)\n"
    main = "import trainer\n\n\ndef train(params):\n    t = trainer.Trainer(params)\n    return t.optimizer.target\n"
    files = _upgrade(tmp_path, {"trainer.py": trainer, "main.py": main})
    assert "optim.Adam(0.1).create(params)" in files["trainer.py"][0]
    assert any("Trainer keeps the optimizer in self.optimizer and is used in other files" in f
               for f in files["trainer.py"][1])
    assert files["main.py"] == (main, [])


def test_a_package_keeps_the_legacy_optimizers_it_re_exports(tmp_path):
    """``from flax.optim import Adam`` in a package's ``__init__.py`` offers ``pkg.Adam``
    to code outside the run: it stays, with LU901's TODO (dropped, ``pkg.Adam`` and
    ``from pkg import *`` failed with no finding; nestordemeure/flaxOptimizers)."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from flax.optim import Adam, Momentum as SGDM\n")
    (pkg / "helpers.py").write_text("from flax.optim import Adam\n\nSCALE = 2.0\n")
    result = run(sorted(pkg.glob("*.py")), Config(), [r.id for r in all_rules()], jobs=1)
    out = {Path(r.path).name: ((r.new or r.original).decode(), [f.rule for f in r.findings])
           for r in result.results}
    assert out["__init__.py"] == (
        "# TODO(linen-upgrade): LU901 flax.optim is gone: its uses need optax\n"
        "from flax.optim import Adam, Momentum as SGDM\n", ["LU901"])
    assert out["helpers.py"] == ("\nSCALE = 2.0\n", [])  # a plain module: an unused import goes


MAKER = "def make(opt_def, params):\n    return opt_def.create(params)\n"


def test_a_definition_handed_to_another_files_function_stays_legacy_with_a_todo(tmp_path):
    # models.make calls .create on it, which no rule converts with it: before, main.py got
    # optax.adam(...) and the upgraded program failed there (no attribute 'create'), no finding
    main = ("from flax import optim\nimport models\n\n\ndef run(params):\n    d = optim.Momentum(0.1)\n"
            "    return models.make(optim.Adam(0.05), params), models.make(d, params)\n")
    files = _upgrade(tmp_path, {"main.py": main, "models.py": MAKER})
    out, findings = files["main.py"]
    assert "optim.Adam(0.05)" in out and "optim.Momentum(0.1)" in out and "import optax" not in out
    assert [f for f in findings if f.startswith("LU301")] == [
        "LU301 optim.Momentum(...) is passed as d to models.make() of another file of the run, whose code "
        "(.create, apply_gradient, ...) this rule does not convert with it: convert them together by hand; "
        "optax form: optax.sgd(0.1, momentum=0.9)",
        "LU301 optim.Adam(...) is passed to models.make() of another file of the run, whose code (.create, "
        "apply_gradient, ...) this rule does not convert with it: convert them together by hand; optax form: "
        "optax.adam(0.05)"]
    todo = ("LU302 opt_def (parameter of make()) is a flax.optim definition main.py keeps legacy (LU301's TODO "
            "there), so its .create(...) and the optimizer code after it stay legacy here: convert them together "
            "by hand")
    assert files["models.py"] == (MAKER.replace("    return", f"    # TODO(linen-upgrade): {todo}\n    return"),
                                  [todo])


def test_a_module_level_definition_other_files_use_stays_legacy_with_a_todo(tmp_path):
    defs = ("from flax import optim\n\nMOMENTUM = optim.Momentum(0.5, beta=0.8)\n\n\n"
            "def local(params):\n    return MOMENTUM.create(params).target\n")
    models = "import defs\n\n\ndef make(params):\n    return defs.MOMENTUM.create(params)\n"
    files = _upgrade(tmp_path, {"defs.py": defs, "models.py": models})
    out, findings = files["defs.py"]
    assert "MOMENTUM = optim.Momentum(0.5, beta=0.8)" in out and "MOMENTUM.create(params)" in out
    assert [f for f in findings if f.startswith(("LU301", "LU302"))] == [
        "LU301 optim.Momentum(...) is used as MOMENTUM by models of the run, whose code (.create, "
        "apply_gradient, ...) this rule does not convert with it: convert them together by hand; optax form: "
        "optax.sgd(0.5, momentum=0.8)",
        "LU302 flax.optim optimizer not converted to a TrainState: MOMENTUM holds an optimizer definition that "
        "other files of the run use"]
    assert files["models.py"][1] == [
        "LU302 defs.MOMENTUM is a flax.optim definition defs.py keeps legacy (LU301's TODO there), so its "
        ".create(...) and the optimizer code after it stay legacy here: convert them together by hand"]
