"""``linen-upgrade convert-checkpoint``: legacy checkpoints written by the real
flax 0.3.6 (one legacy run writes them all) -> Linen + optax, checked by
running the upgraded model and resuming training; plus refusals and the key /
optimizer-state plumbing on synthetic trees."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from linen_upgrade import checkpoints as ck
from linen_upgrade import keys

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "fixtures" / "checkpoints"
MODEL = f"{FIX / 'upgraded_cnn.py'}:CNN"
MODEL_ARGS = ["--model", MODEL, "--input", "2,8,8,3", "--kwargs", '{"train": false}']
MOMENTUM = 'Momentum:{"learning_rate": 0.05, "beta": 0.9}'


def run(*args: str):
    from linen_upgrade.checkpoints import convert_checkpoint_command
    return CliRunner().invoke(convert_checkpoint_command, [str(a) for a in args])


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def load_upgraded():
    spec = importlib.util.spec_from_file_location("upgraded_cnn_fixture", FIX / "upgraded_cnn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def assert_trees_close(a, b, atol=0.0, rtol=0.0):
    pa, pb = keys.tree_paths(a), keys.tree_paths(b)
    assert sorted(pa) == sorted(pb)
    for p in pa:
        np.testing.assert_allclose(np.asarray(pa[p]), np.asarray(pb[p]), atol=atol, rtol=rtol,
                                   err_msg="/".join(p))


# --------------------------------------------------------------------------- legacy checkpoints


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    """Run fixtures/checkpoints/make_legacy_checkpoints.py once on flax 0.3.6."""
    from linen_upgrade.verify import legacy_env, runner
    try:
        legacy_env.ensure()
    except legacy_env.LegacyEnvError as e:
        pytest.skip(f"legacy runtime unavailable: {e}")
    out = tmp_path_factory.mktemp("legacy_ckpts")
    res = runner.run_legacy(str(FIX / "make_legacy_checkpoints.py"), args=[str(out)], timeout=300)
    assert res.ok, res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def record(legacy):
    from flax import serialization
    return serialization.msgpack_restore((legacy / "record.msgpack").read_bytes())


@pytest.fixture(scope="module")
def converted_momentum(legacy, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "momentum.msgpack"
    r = run(legacy / "momentum_optimizer.msgpack", out, "--state", legacy / "momentum_state.msgpack",
            "--optimizer", MOMENTUM, *MODEL_ARGS)
    assert r.exit_code == 0, r.output
    return out, r.output


def _linen_legacy(record_part, name):
    """A legacy params-shaped tree (or flat state) of the record in Linen names."""
    return keys.convert_variables(record_part[name], record_part.get("state4"))


@pytest.mark.legacy
def test_summary_reports_what_was_found_and_renamed(converted_momentum):
    _, output = converted_momentum
    assert "flax.optim Optimizer over an nn.Model, 12 parameter arrays, step 3" in output
    assert "per-parameter optimizer state: momentum" in output
    assert "nn.Collection, 2 entries (/BatchNorm_1, /BatchNorm_3) -> batch_stats" in output
    for line in ["BatchNorm_1 -> BatchNorm_0", "BatchNorm_3 -> BatchNorm_1", "Conv_2 -> Conv_1",
                 "Dense_4 -> Dense_0"]:
        assert line in output
    assert "head ->" not in output and "Conv_0 ->" not in output
    assert "optimizer Momentum" in output and "(TraceState, EmptyState)" in output
    assert "every path and shape matches" in output
    assert "wrote" in output and "step 3" in output


@pytest.mark.legacy
def test_upgraded_model_reproduces_legacy_eval_outputs(converted_momentum, record):
    import jax.numpy as jnp
    out, _ = converted_momentum
    variables = ck.restore(out)
    assert set(variables) == {"params", "batch_stats", "opt_state", "step"} and variables["step"] == 3
    model = load_upgraded().CNN()
    y = model.apply({"params": variables["params"], "batch_stats": variables["batch_stats"]},
                    jnp.asarray(record["x_eval"]), train=False)
    np.testing.assert_allclose(np.asarray(y), record["momentum"]["y_eval"], atol=2e-6, rtol=1e-5)
    # the running averages carried over (not the init values 0/1)
    assert np.abs(variables["batch_stats"]["BatchNorm_1"]["mean"]).sum() > 0


def _resume_target(params, batch_stats, tx):
    return {"params": params, "batch_stats": batch_stats, "opt_state": tx.init(params), "step": 0}


@pytest.mark.legacy
def test_resume_momentum_next_step_equals_legacy_fourth_step(converted_momentum, record):
    import jax
    import jax.numpy as jnp
    import optax
    out, _ = converted_momentum
    lr = record["lr"]
    tx = optax.sgd(lr, momentum=0.9)
    first = ck.restore(out)
    state = ck.restore(out, _resume_target(first["params"], first["batch_stats"], tx))
    assert isinstance(state["opt_state"][0], optax.TraceState)
    legacy4 = _linen_legacy(record["momentum"], "params4")
    model = load_upgraded().CNN()

    def loss_fn(params, batch_stats):
        y, upd = model.apply({"params": params, "batch_stats": batch_stats}, jnp.asarray(record["x4"]),
                             train=True, mutable=["batch_stats"])
        return jnp.mean((y - jnp.asarray(record["y4"])) ** 2), upd["batch_stats"]

    # end to end: the Linen model computes its own gradients (Momentum does not
    # amplify the rounding noise of BatchNorm-fed biases; Adam would, DESIGN.md)
    (_, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], state["batch_stats"])
    updates, _ = tx.update(grads, state["opt_state"], state["params"])
    params5 = optax.apply_updates(state["params"], updates)
    assert_trees_close(params5, legacy4["params"], atol=1e-6, rtol=1e-5)
    assert_trees_close(new_stats, legacy4["batch_stats"], atol=1e-6, rtol=1e-5)

    # replay of the legacy 4th-step gradients: the optimizer state alone decides
    grads = _linen_legacy(record["momentum"], "grad4")["params"]
    updates, _ = tx.update(grads, state["opt_state"], state["params"])
    assert_trees_close(optax.apply_updates(state["params"], updates), legacy4["params"], atol=1e-7)
    # without the converted momentum the step is visibly different
    updates, _ = tx.update(grads, tx.init(state["params"]), state["params"])
    fresh = optax.apply_updates(state["params"], updates)
    diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in
               zip(jax.tree_util.tree_leaves(fresh), jax.tree_util.tree_leaves(legacy4["params"])))
    assert diff > 1e-3


@pytest.mark.legacy
def test_upgraded_restore_checkpoint_reads_the_converted_file_into_the_train_state(converted_momentum, tmp_path):
    """What LU302 writes for ``optimizer = checkpoints.restore_checkpoint(dir, optimizer)``
    (the TrainState, with LU303's batch_stats field) restores a converted legacy checkpoint."""
    from typing import Any

    import optax
    from flax.training import checkpoints, train_state

    class TrainState(train_state.TrainState):
        batch_stats: Any

    out, _ = converted_momentum
    first = ck.restore(out)
    fresh = TrainState.create(apply_fn=None, params=first["params"], tx=optax.sgd(0.05, momentum=0.9),
                              batch_stats=first["batch_stats"])
    workdir = tmp_path / "ckpts"
    workdir.mkdir()
    (workdir / "checkpoint_3").write_bytes(out.read_bytes())
    state = checkpoints.restore_checkpoint(str(workdir), fresh)
    assert isinstance(state, TrainState) and int(state.step) == 3
    assert_trees_close(state.params, first["params"])
    assert_trees_close(state.batch_stats, first["batch_stats"])
    # the optax state (a tuple of TraceState, EmptyState) holds the converted momentum, not fresh zeros
    import jax
    restored, written = jax.tree_util.tree_leaves(state.opt_state), jax.tree_util.tree_leaves(first["opt_state"])
    assert len(restored) == len(written) == 12
    for a, b in zip(restored, written):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(np.abs(np.asarray(x)).sum() > 0 for x in restored)


@pytest.mark.legacy
def test_resume_adam_replayed_gradients_equal_legacy_fourth_step(legacy, record, tmp_path):
    import optax
    out = tmp_path / "adam.msgpack"
    r = run(legacy / "adam_optimizer.msgpack", out, "--state", legacy / "adam_state.msgpack",
            "--optimizer", "optim.Adam:{\"learning_rate\": 0.001}", *MODEL_ARGS)
    assert r.exit_code == 0, r.output
    tx = optax.adam(1e-3)
    first = ck.restore(out)
    state = ck.restore(out, _resume_target(first["params"], first["batch_stats"], tx))
    adam = state["opt_state"][0]
    assert isinstance(adam, optax.ScaleByAdamState) and int(adam.count) == 3
    grads = _linen_legacy(record["adam"], "grad4")["params"]
    updates, new_opt = tx.update(grads, state["opt_state"], state["params"])
    assert int(new_opt[0].count) == 4
    legacy4 = _linen_legacy(record["adam"], "params4")["params"]
    assert_trees_close(optax.apply_updates(state["params"], updates), legacy4, atol=1e-6)


@pytest.mark.legacy
@pytest.mark.parametrize("name, extra, has_state, step", [
    pytest.param("momentum_optimizer.msgpack", ["--state", "momentum_state.msgpack"], True, 3,
                 id="optimizer + separate Collection file"),
    pytest.param("bundle.msgpack", [], True, 3, id="dict of optimizer, Collection, epoch"),
    pytest.param("model_and_state.msgpack", [], True, 0, id="dict of params and as_dict()"),
    pytest.param("model.msgpack", [], False, 0, id="nn.Model"),
    pytest.param("params.msgpack", [], False, 0, id="params dict"),
    pytest.param("ckpt_dir", [], False, 3, id="save_checkpoint folder"),
])
def test_every_legacy_layout_converts_to_the_same_variables(legacy, converted_momentum, tmp_path,
                                                            name, extra, has_state, step):
    out = tmp_path / "out.msgpack"
    extra = [str(legacy / e) if e.endswith(".msgpack") else e for e in extra]
    model = MODEL_ARGS if has_state else ["--model", f"{FIX / 'upgraded_cnn.py'}:CNN", "--input", "2,8,8,3"]
    holds_optimizer = "optimizer" in name or "bundle" in name or "ckpt_dir" in name
    if holds_optimizer:  # without --optimizer: refused, naming the state it found
        r = run(legacy / name, out, *extra, *model)
        assert r.exit_code == 2 and not out.exists()
        assert "holds flax.optim optimizer state (per-parameter fields: momentum, step 3)" in r.output
        assert "(one of Momentum, LARS)" in r.output and "--drop-optimizer-state" in r.output
        extra = [*extra, "--drop-optimizer-state"]
    r = run(legacy / name, out, *extra, *model)
    if not has_state:  # the model has batch_stats, the checkpoint not: refused, with a hint
        assert r.exit_code == 2 and "--state FILE" in r.output and not out.exists()
        r = run(legacy / name, out, *extra)
    assert r.exit_code == 0, r.output
    got, want = ck.restore(out), ck.restore(converted_momentum[0])
    assert_trees_close(got["params"], want["params"])
    assert got["step"] == step
    if has_state:
        assert_trees_close(got["batch_stats"], want["batch_stats"])
    else:
        assert "batch_stats" not in got
    if holds_optimizer:
        assert "optimizer state (per-parameter fields: momentum, step 3) left out" in r.output
        assert "opt_state" not in got


@pytest.mark.legacy
def test_gradient_descent_over_params_dict(legacy, tmp_path):
    import jax
    import optax
    out = tmp_path / "gd.msgpack"
    r = run(legacy / "gd_optimizer.msgpack", out, "--optimizer", "GradientDescent")
    assert r.exit_code == 0, r.output
    assert "Optimizer over a params dict" in r.output and "step 1" in r.output
    got = ck.restore(out)
    tx = optax.sgd(0.05)
    state = ck.restore(out, {"params": got["params"], "opt_state": tx.init(got["params"]), "step": 0})
    assert jax.tree_util.tree_structure(state["opt_state"]) == \
        jax.tree_util.tree_structure(tx.init(got["params"]))


@pytest.mark.legacy
def test_orbax_and_msgpack_restore_to_the_same_tree(legacy, converted_momentum, tmp_path):
    import jax
    import optax
    orbax_out = tmp_path / "orbax_ckpt"
    r = run(legacy / "bundle.msgpack", f"{orbax_out}/", "--optimizer", MOMENTUM, *MODEL_ARGS)
    assert r.exit_code == 0, r.output
    assert "(orbax)" in r.output and (orbax_out / "_CHECKPOINT_METADATA").exists()
    a, b = ck.restore(converted_momentum[0]), ck.restore(orbax_out)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    assert_trees_close(a, b)
    assert a["step"] == b["step"] == 3
    for leaf_a, leaf_b in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert np.asarray(leaf_a).dtype == np.asarray(leaf_b).dtype
    tx = optax.sgd(0.05, momentum=0.9)
    ta = ck.restore(orbax_out, _resume_target(a["params"], a["batch_stats"], tx))
    assert isinstance(ta["opt_state"][0], optax.TraceState)
    # also readable by Orbax directly
    import orbax.checkpoint as ocp
    with ocp.StandardCheckpointer() as c:
        raw = c.restore(orbax_out.absolute())
    assert sorted(raw) == ["batch_stats", "opt_state", "params", "step"]
    # --format overrides the default chosen from the path
    r = run(legacy / "bundle.msgpack", tmp_path / "plain_name", "--format", "orbax", "--drop-optimizer-state")
    assert r.exit_code == 0 and (tmp_path / "plain_name").is_dir()


@pytest.mark.legacy
@pytest.mark.parametrize("cls, expect", [
    pytest.param("WiderCNN", ["params/Conv_1/kernel: shape (3, 3, 4, 6) (legacy) != (3, 3, 4, 8) "
                              "(upgraded) [legacy Conv_2/kernel]"],
                 id="shapes differ"),
    pytest.param("NoNormCNN", ["batch_stats/BatchNorm_0/mean: not in the upgraded model [legacy BatchNorm_1/mean]",
                               "params/Dense_1/kernel: missing in converted legacy variables",
                               "params/head/kernel: not in the upgraded model"], id="paths differ"),
])
def test_mismatched_model_is_refused_and_nothing_written(legacy, tmp_path, cls, expect):
    out = tmp_path / "out"
    r = run(legacy / "bundle.msgpack", out, "--optimizer", MOMENTUM,
            "--model", f"{FIX / 'upgraded_cnn.py'}:{cls}", "--input", "2,8,8,3")
    assert r.exit_code == 2, r.output
    assert "does not match the upgraded model" in r.output
    for e in expect:
        assert e in r.output
    assert listing(tmp_path) == []


@pytest.mark.legacy
def test_bad_inputs_are_refused_with_nothing_written(legacy, tmp_path):
    from flax import serialization
    data = (legacy / "momentum_optimizer.msgpack").read_bytes()
    bad = tmp_path / "in"
    bad.mkdir()
    cases = {
        "truncated.msgpack": (data[: len(data) // 2], "not a flax msgpack checkpoint, or truncated"),
        "cut_by_one.msgpack": (data[:-1], "truncated"),
        "text.msgpack": (b"this is not msgpack\n", "not a flax msgpack checkpoint"),
        "empty.msgpack": (b"", "empty file"),
        "int.msgpack": (serialization.msgpack_serialize(7), "not a legacy flax checkpoint: the file holds a int"),
        "strings.msgpack": (serialization.msgpack_serialize({"a": "b", "c": {"d": "e"}}),
                            "not a legacy flax checkpoint: no Optimizer"),
        "collection.msgpack": ((legacy / "momentum_state.msgpack").read_bytes(), "with --state"),
    }
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for name, (blob, message) in cases.items():
        (bad / name).write_bytes(blob)
        for out in (out_dir / "x.msgpack", f"{out_dir}/x/"):
            r = run(bad / name, out, "--optimizer", "Momentum")
            assert r.exit_code == 2, (name, r.output)
            assert message in r.output, (name, r.output)
            assert r.output.startswith("error: ")
            assert listing(out_dir) == [], name
    # an already converted checkpoint is not converted again
    good = out_dir / "good.msgpack"
    assert run(legacy / "bundle.msgpack", good, "--drop-optimizer-state").exit_code == 0
    r = run(good, out_dir / "again.msgpack")
    assert r.exit_code == 2 and "Linen/optax checkpoint already" in r.output
    # an Orbax folder as INPUT
    assert run(legacy / "bundle.msgpack", f"{out_dir}/orbax/", "--drop-optimizer-state").exit_code == 0
    r = run(out_dir / "orbax", out_dir / "again.msgpack")
    assert r.exit_code == 2 and "Orbax checkpoint, not a legacy" in r.output
    assert listing(out_dir) == sorted(["good.msgpack", "orbax", *[f"orbax/{p}" for p in listing(out_dir / "orbax")]])


@pytest.mark.legacy
def test_wrong_optimizer_or_state_options_are_refused(legacy, tmp_path):
    out = tmp_path / "out.msgpack"
    r = run(legacy / "momentum_optimizer.msgpack", out, "--optimizer", "Adam")
    assert r.exit_code == 2 and "fields ['grad_ema', 'grad_sq_ema']" in r.output \
        and "(written by Momentum or LARS)" in r.output
    r = run(legacy / "params.msgpack", out, "--optimizer", "Momentum")
    assert r.exit_code == 2 and "holds no optimizer state" in r.output
    r = run(legacy / "bundle.msgpack", out, "--state", legacy / "momentum_state.msgpack")
    assert r.exit_code == 2 and "drop --state" in r.output
    r = run(legacy / "momentum_optimizer.msgpack", out, "--state", legacy / "params.msgpack")
    assert r.exit_code == 2 and "not an nn.Collection state" in r.output
    r = run(legacy / "momentum_optimizer.msgpack", out, "--optimizer", "Momentum:[1]")
    assert r.exit_code == 2 and "must be a JSON object" in r.output
    r = run(legacy / "momentum_optimizer.msgpack", out, "--model", "nope.py:CNN", "--input", "2,8,8,3")
    assert r.exit_code == 2 and "nope.py: no such file" in r.output
    r = run(legacy / "momentum_optimizer.msgpack", out, "--model", MODEL, "--input", "2,8,8,3:float99")
    assert r.exit_code == 2 and "unknown dtype" in r.output
    r = run(legacy / "momentum_optimizer.msgpack", out, "--model", f"{FIX / 'upgraded_cnn.py'}:Nope",
            "--input", "2,8,8,3")
    assert r.exit_code == 2 and "no flax.linen Module named Nope" in r.output
    r = run(legacy / "momentum_optimizer.msgpack", out, "--model", MODEL, "--input", "2,8,8,3",
            "--kwargs", '{"bogus": 1}')
    assert r.exit_code == 2 and "CNN.init failed" in r.output and "bogus" in r.output
    assert listing(tmp_path) == []


@pytest.mark.legacy
def test_force_semantics(legacy, tmp_path):
    src = legacy / "bundle.msgpack"
    # msgpack file
    f = tmp_path / "out.msgpack"
    f.write_bytes(b"keep me")
    r = run(src, f)
    assert r.exit_code == 2 and "exists; use --force" in r.output and f.read_bytes() == b"keep me"
    r = run(src, f, "--force", "--drop-optimizer-state")
    assert r.exit_code == 0 and ck.restore(f)["step"] == 3
    assert oct(f.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    # Orbax folder
    d = tmp_path / "orbax"
    d.mkdir()  # an empty folder made for the output is fine without --force
    assert run(src, d, "--drop-optimizer-state").exit_code == 0 and ck.restore(d)["step"] == 3
    r = run(legacy / "model.msgpack", d)
    assert r.exit_code == 2 and "exists; use --force" in r.output and ck.restore(d)["step"] == 3
    r = run(legacy / "model.msgpack", d, "--force")
    assert r.exit_code == 0 and ck.restore(d)["step"] == 0
    # a folder that is not an Orbax checkpoint is never replaced
    other = tmp_path / "mydata"
    other.mkdir()
    (other / "precious.txt").write_text("x")
    r = run(src, other, "--force", "--drop-optimizer-state")
    assert r.exit_code == 2 and "not an Orbax checkpoint" in r.output
    assert listing(other) == ["precious.txt"]
    # --dry-run writes nothing, even without OUTPUT
    r = run(src, "--dry-run", "--optimizer", "Momentum")
    assert r.exit_code == 0 and "dry run: would write params" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mydata", "orbax", "out.msgpack"]
    # no temporary files left anywhere
    assert not [p for p in tmp_path.rglob("*") if ".lu-tmp" in p.name]


# --------------------------------------------------------------------------- no legacy runtime needed


def _arr(*shape, fill=1.0):
    return np.full(shape, fill, np.float32)


def test_module_imports_no_heavy_dependencies():
    code = ("import linen_upgrade.checkpoints, linen_upgrade.cli, sys; "
            "bad = [m for m in ('jax', 'numpy', 'flax', 'optax', 'orbax', 'msgpack') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(ROOT))


def test_cli_lists_and_dispatches_the_command(tmp_path):
    from linen_upgrade.cli import cli
    r = CliRunner().invoke(cli, ["convert-checkpoint", "--help"])
    assert r.exit_code == 0 and "--optimizer NAME[:JSON]" in r.output and "--model FILE:CLASS" in r.output
    r = CliRunner().invoke(cli, ["convert-checkpoint", str(tmp_path / "missing.msgpack"), "out"])
    assert r.exit_code == 2


@pytest.mark.parametrize("text, expected", [
    pytest.param("Momentum", ("Momentum", {}), id="bare name"),
    pytest.param('optim.adam:{"learning_rate": 0.1}', ("Adam", {"learning_rate": 0.1}), id="prefix, case"),
    pytest.param("flax.optim.LARS:{}", ("LARS", {}), id="flax.optim prefix"),
    pytest.param("MyOptimizerDef", ("MyOptimizerDef", {}), id="unknown names pass through"),
])
def test_parse_optimizer_spec(text, expected):
    assert ck.parse_optimizer_spec(text) == expected


@pytest.mark.parametrize("text", ["Adam:{", "Adam:3", "not a name"])
def test_parse_optimizer_spec_errors(text):
    with pytest.raises(ck.CheckpointError):
        ck.parse_optimizer_spec(text)


def _synthetic_optimizer():
    """Legacy Optimizer state dict over an nn.Model: Conv_0, GroupNorm_1 (legacy (1,1,1,C)
    scale/bias), a param-less BatchNorm_2 ({} params, has state), Block_3/{Dense_0, Dense_1},
    an unnamed .shared() Dense stored as '4', Dense_5; Momentum-like fields, one None leaf
    (MultiOptimizer: unselected) and one WeightNorm-like nested field with {}."""
    params = {
        "Conv_0": {"kernel": _arr(3, 3, 1, 2), "bias": _arr(2)},
        "GroupNorm_1": {"scale": _arr(1, 1, 1, 2, fill=2.0), "bias": _arr(1, 1, 1, 2, fill=3.0)},
        "BatchNorm_2": {},
        "Block_3": {"Dense_0": {"kernel": _arr(2, 2)}, "Dense_1": {"kernel": _arr(2, 2, fill=4.0)}},
        "4": {"kernel": _arr(2, 3)},
        "Dense_5": {"kernel": _arr(3, 1), "bias": _arr(1)},
    }

    def st(path, leaf):
        if path == ("Conv_0", "bias"):
            return None
        if path == ("Dense_5", "kernel"):
            return {"momentum": leaf * 5, "extra": {"inner": leaf * 6, "empty": {}}}
        return {"momentum": leaf * 5}

    def mirror(t, path=()):
        return {k: mirror(v, path + (k,)) if isinstance(v, dict) else st(path + (k,), v) for k, v in t.items()}
    state = {"/BatchNorm_2": {"mean": _arr(2), "var": _arr(2)},
             "/Block_3/Dense_1": {"counter": np.zeros((), np.int32)}}
    opt = {"target": {"params": params},
           "state": {"step": np.asarray(7, np.int32), "param_states": {"params": mirror(params)}}}
    return opt, state


def test_key_rules_apply_to_params_state_and_optimizer_fields(monkeypatch):
    """Also the contract with linen_upgrade.optim_state.optax_state_from_legacy (a fake here)."""
    import types
    opt, state = _synthetic_optimizer()
    ckpt = ck.classify(opt)
    ckpt.state = state
    assert ckpt.kind == "optimizer" and ckpt.step == 7
    seen = {}
    fake = types.ModuleType("linen_upgrade.optim_state")

    def optax_state_from_legacy(name, hyper, legacy_state, params):
        seen.update(name=name, hyper=hyper, legacy_state=legacy_state, params=params)
        return ("opt",)
    fake.optax_state_from_legacy = optax_state_from_legacy
    monkeypatch.setitem(sys.modules, "linen_upgrade.optim_state", fake)
    with pytest.raises(ck.CheckpointError, match=r"shared=\{'4': 'ClassName'\}"):
        ck.convert(ckpt, optimizer=("Momentum", {}))
    conv = ck.convert(ckpt, optimizer=("MultiOptimizer", {"x": 1}), shared={"4": "Dense"})
    tree = conv.tree
    assert tree["opt_state"] == ("opt",)
    assert sorted(tree) == ["batch_stats", "opt_state", "params", "step"] and tree["step"] == 7
    p = tree["params"]
    assert sorted(p) == ["Block_0", "Conv_0", "Dense_0", "Dense_1", "GroupNorm_0"]  # no BatchNorm: {} dropped
    assert p["GroupNorm_0"]["scale"].shape == (2,) and p["Dense_0"]["kernel"].shape == (2, 3)  # '4' -> Dense_0
    assert p["Dense_1"]["kernel"].shape == (3, 1)
    assert sorted(tree["batch_stats"]) == ["BatchNorm_0", "Block_0"]
    assert sorted(tree["batch_stats"]["Block_0"]) == ["Dense_1"]
    assert dict(conv.renames)["4"] == "Dense_0" and dict(conv.renames)["Block_3"] == "Block_0"
    # what optim_state.optax_state_from_legacy receives: Linen keys, legacy fields per leaf
    assert seen["name"] == "MultiOptimizer" and seen["hyper"] == {"x": 1} and seen["params"] is p
    ls = seen["legacy_state"]
    assert ls["step"] == 7
    ps = ls["param_states"]
    assert ps["Conv_0"]["bias"] is None
    assert ps["GroupNorm_0"]["scale"]["momentum"].shape == (2,)           # reshaped like the param
    np.testing.assert_array_equal(ps["GroupNorm_0"]["bias"]["momentum"], np.full(2, 15.0))
    np.testing.assert_array_equal(ps["Block_0"]["Dense_1"]["kernel"]["momentum"], np.full((2, 2), 20.0))
    assert ps["Dense_0"]["kernel"]["momentum"].shape == (2, 3)
    assert ps["Dense_1"]["kernel"]["extra"]["empty"] == {}
    assert ps["Dense_1"]["kernel"]["extra"]["inner"].shape == (3, 1)
    assert sorted(ps["Dense_1"]["bias"]) == ["momentum"]
    # the same module tree as the params, a state at every params leaf
    assert sorted(ps) == sorted(p) and sorted(ps["Block_0"]) == sorted(p["Block_0"])
    assert all(ck._get(ps, path) is not ck._ABSENT for path in keys.tree_paths(p))


def test_field_check_and_hint_without_optimizer():
    opt, state = _synthetic_optimizer()
    opt["state"]["param_states"] = {"params": {k: ({kk: {"grad_ema": vv, "grad_sq_ema": vv}
                                                     for kk, vv in v.items()} if "kernel" in v else v)
                                               for k, v in opt["target"]["params"].items()}}
    opt["target"]["params"] = {k: v for k, v in opt["target"]["params"].items() if "kernel" in v}
    opt["state"]["param_states"]["params"] = {k: v for k, v in opt["state"]["param_states"]["params"].items()
                                              if k in opt["target"]["params"]}
    ckpt = ck.classify({"opt": opt, "epoch": 1})
    assert ckpt.where == "['opt']" and ckpt.ignored == ["epoch"]
    with pytest.raises(ck.CheckpointError, match=r"holds flax.optim optimizer state \(per-parameter fields: "
                       r"grad_ema, grad_sq_ema.*pass --optimizer NAME\[:JSON\] \(one of Adam, LAMB, AdaBelief\)"):
        ck.convert(ckpt, shared={"4": "Dense"})
    conv = ck.convert(ckpt, shared={"4": "Dense"}, drop_optimizer_state=True)
    assert "opt_state" not in conv.tree
    assert any("grad_ema, grad_sq_ema" in n and "left out (--drop-optimizer-state)" in n for n in conv.notes)
    with pytest.raises(ck.CheckpointError, match="exclude each other"):
        ck.convert(ckpt, optimizer=("Adam", {}), shared={"4": "Dense"}, drop_optimizer_state=True)
    with pytest.raises(ck.CheckpointError, match="written by Adam or LAMB or AdaBelief"):
        ck.convert(ckpt, optimizer=("Momentum", {}), shared={"4": "Dense"})


def test_state_prefix_of_named_init_is_detected():
    params = {"Dense_0": {"kernel": _arr(2, 2)}, "BatchNorm_1": {"scale": _arr(2), "bias": _arr(2)}}
    state = {"/net/BatchNorm_1": {"mean": _arr(2), "var": _arr(2)}}
    conv = ck.convert(ck.LegacyCheckpoint("x", "params", params, state=state))
    assert conv.state_prefix == ("net",) and sorted(conv.tree["batch_stats"]) == ["BatchNorm_0"]
    assert any("prefix /net" in n for n in conv.notes)
    conv = ck.convert(ck.LegacyCheckpoint("x", "params", params, state=state), collection="stats",
                      state_prefix=())
    assert sorted(conv.tree["stats"]) == ["net"]


def test_classify_rejects_ambiguous_and_mirrors():
    p = {"Dense_0": {"kernel": _arr(2, 2)}}
    with pytest.raises(ck.CheckpointError, match="ambiguous"):
        ck.classify({"a": {"params": p}, "b": {"params": p}})
    bad = {"target": p, "state": {"step": np.asarray(1), "param_states": {"Dense_0": {}}}}
    with pytest.raises(ck.CheckpointError, match="does not mirror its target; no state for Dense_0/kernel"):
        ck.classify(bad)
    bad = {"target": p, "state": {"step": np.asarray(1.5), "param_states": {"Dense_0": {"kernel": {}}}}}
    with pytest.raises(ck.CheckpointError, match="not an integer"):
        ck.classify(bad)
    with pytest.raises(ck.CheckpointError, match="Linen/optax checkpoint already"):
        ck.classify({"params": p, "batch_stats": {"BatchNorm_0": {"mean": _arr(2)}}})
    assert ck.classify({"params": p, "step": np.asarray(5, np.int32)}).step == 5
    assert ck.classify({"params": p}).kind == "model"


@pytest.mark.parametrize("name, hyper, tx_expr, fields", [
    pytest.param("GradientDescent", {}, "optax.sgd(0.1)", {}, id="GradientDescent"),
    pytest.param("Momentum", {"beta": 0.9}, "optax.sgd(0.1, momentum=0.9)", {"momentum": 2.0}, id="Momentum"),
    pytest.param("Momentum", {"weight_decay": 1e-3},
                 "optax.chain(optax.add_decayed_weights(1e-3), optax.sgd(0.1, momentum=0.9))",
                 {"momentum": 2.0}, id="Momentum+wd"),
    pytest.param("Adam", {}, "optax.adam(0.1)", {"grad_ema": 2.0, "grad_sq_ema": 3.0}, id="Adam"),
    pytest.param("Adam", {"weight_decay": 0.01}, "optax.adamw(0.1, weight_decay=0.01)",
                 {"grad_ema": 2.0, "grad_sq_ema": 3.0}, id="Adam+wd"),
])
def test_optax_state_has_the_structure_of_the_emitted_transform(name, hyper, tx_expr, fields):
    import jax
    import optax
    params = {"Dense_0": {"kernel": _arr(2, 3), "bias": _arr(3)}}
    ps = jax.tree_util.tree_map(lambda x: {f: x * v for f, v in fields.items()}, params)
    state = ck._optax_state(name, hyper, {"step": 4, "param_states": ps}, params)
    tx = eval(tx_expr, {"optax": optax})
    assert jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(tx.init(params))
    leaves = jax.tree_util.tree_leaves(state)
    for f, v in fields.items():
        assert any(np.array_equal(np.asarray(leaf), params["Dense_0"]["kernel"] * v) for leaf in leaves), f
    if name == "Adam":
        assert int(state[0].count) == 4 and np.asarray(state[0].count).dtype == np.int32


def test_write_msgpack_and_orbax_atomically(tmp_path):
    import optax
    params = {"Dense_0": {"kernel": _arr(2, 3)}}
    tree = {"params": params, "opt_state": optax.sgd(0.1, momentum=0.9).init(params), "step": 2}
    a = ck.write_checkpoint(tree, tmp_path / "a.msgpack", "msgpack")
    b = ck.write_checkpoint(tree, tmp_path / "b", "orbax")
    ra, rb = ck.restore(a), ck.restore(b)
    assert_trees_close(ra, rb)
    assert ck.default_format(str(tmp_path / "x") + os.sep) == "orbax"
    assert ck.default_format(str(b)) == "orbax" and ck.default_format(str(a)) == "msgpack"

    def boom(path, sd):
        raise RuntimeError("disk full")
    orig = ck._orbax_save
    ck._orbax_save = boom
    try:
        with pytest.raises(RuntimeError):
            ck.write_checkpoint(tree, tmp_path / "b", "orbax", force=True)
    finally:
        ck._orbax_save = orig
    assert ck.restore(b)["step"] == 2  # the old checkpoint survives a failed replace
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.msgpack", "b"]


def test_replicated_checkpoint_needs_unreplicate(tmp_path):
    from flax import serialization
    opt, _ = _synthetic_optimizer()
    del opt["target"]["params"]["4"], opt["state"]["param_states"]["params"]["4"]

    def rep(t):
        return {k: rep(v) for k, v in t.items()} if isinstance(t, dict) else (
            t if t is None else np.stack([np.asarray(t)] * 2))
    src = tmp_path / "replicated.msgpack"
    src.write_bytes(serialization.msgpack_serialize(rep(opt)))
    out = tmp_path / "out.msgpack"
    r = run(src, out)
    assert r.exit_code == 2 and "use --unreplicate" in r.output and not out.exists()
    r = run(src, out, "--unreplicate", "--drop-optimizer-state")
    assert r.exit_code == 0, r.output
    got = ck.restore(out)
    assert got["step"] == 7 and got["params"]["Dense_0"]["kernel"].shape == (3, 1)
    assert got["params"]["GroupNorm_0"]["scale"].shape == (2,)


def test_self_attention_is_renamed_where_the_upgraded_model_has_it():
    kernel = {"kernel": _arr(4, 2, 2), "bias": _arr(2, 2)}
    attn = {"query": kernel, "key": kernel, "value": kernel,
            "out": {"kernel": _arr(2, 2, 4), "bias": _arr(4)}}
    params = {"Dense_0": {"kernel": _arr(4, 4)}, "MultiHeadDotProductAttention_1": attn}
    ckpt = ck.LegacyCheckpoint("x", "params", params)
    conv = ck.convert(ckpt)
    assert sorted(conv.tree["params"]) == ["Dense_0", "MultiHeadDotProductAttention_0"]
    assert any("uses SelfAttention instead, pass --model" in n for n in conv.notes)
    template = {"params": {"Dense_0": {"kernel": _arr(4, 4)}, "SelfAttention_0": attn}}
    conv = ck.convert(ckpt, template=template)
    assert sorted(conv.tree["params"]) == ["Dense_0", "SelfAttention_0"]
    assert not any("pass --model" in n for n in conv.notes)


def test_collection_comes_from_pyproject_unless_given(tmp_path, monkeypatch):
    from flax import serialization
    params = {"Dense_0": {"kernel": _arr(2, 2)}, "BatchNorm_1": {"scale": _arr(2), "bias": _arr(2)}}
    src = tmp_path / "in.msgpack"
    src.write_bytes(serialization.msgpack_serialize(
        {"params": params, "state": {"/BatchNorm_1": {"mean": _arr(2), "var": _arr(2)}}}))
    (tmp_path / "pyproject.toml").write_text('[tool.linen-upgrade]\nstate-collection = "stats"\n')
    monkeypatch.chdir(tmp_path)
    assert run(src, "a.msgpack").exit_code == 0
    assert sorted(ck.restore(tmp_path / "a.msgpack")) == ["params", "stats", "step"]
    r = run(src, "b.msgpack", "--collection", "batch_stats")
    assert r.exit_code == 0 and "-> batch_stats" in r.output
    assert ck.restore(tmp_path / "b.msgpack")["batch_stats"]["BatchNorm_0"]["mean"].shape == (2,)


def test_template_with_another_collection_name_gets_a_hint():
    params = {"Dense_0": {"kernel": _arr(2, 2)}, "BatchNorm_1": {"scale": _arr(2), "bias": _arr(2)}}
    ckpt = ck.LegacyCheckpoint("x", "params", params, state={"/BatchNorm_1": {"mean": _arr(2), "var": _arr(2)}})
    template = {"params": {"Dense_0": {"kernel": _arr(2, 2)}, "BatchNorm_0": {"scale": _arr(2), "bias": _arr(2)}},
                "stats": {"BatchNorm_0": {"mean": _arr(2), "var": _arr(2)}}}
    with pytest.raises(ck.CheckpointError, match="--collection stats"):
        ck.convert(ckpt, template=template)
    conv = ck.convert(ckpt, template=template, collection="stats")
    assert sorted(conv.tree) == ["params", "stats", "step"]


def test_errors_of_the_optimizer_state_mapping_are_user_errors(monkeypatch):
    import types
    fake = types.ModuleType("linen_upgrade.optim_state")

    def optax_state_from_legacy(name, hyper, legacy_state, params):
        raise ValueError(f"unknown optimizer {name}")
    fake.optax_state_from_legacy = optax_state_from_legacy
    monkeypatch.setitem(sys.modules, "linen_upgrade.optim_state", fake)
    opt, state = _synthetic_optimizer()
    ckpt = ck.classify(opt)
    with pytest.raises(ck.CheckpointError, match="cannot map its state to optax: ValueError: unknown optimizer Zzz"):
        ck.convert(ckpt, optimizer=("Zzz", {}), shared={"4": "Dense"})
