"""Module mode."""
import pytest

from linen_upgrade.verify.module import (ModuleJob, inputs_from_init_by_shape, parse_input_spec,
                                         verify_batch, verify_module_variants)


def test_parse_input_spec():
    assert parse_input_spec("2,8,8,3") == ((2, 8, 8, 3), "float32")
    assert parse_input_spec("4x7:int32") == ((4, 7), "int32")
    with pytest.raises(ValueError):
        parse_input_spec("2,8:complex7")


def test_inputs_from_init_by_shape(tmp_path, fixtures_dir):
    assert inputs_from_init_by_shape(str(fixtures_dir / "modules" / "cnn_legacy.py"), "CNN") == \
        [((2, 8, 8, 3), "float32")]
    f = tmp_path / "m.py"
    f.write_text("SHAPE = (1, 5)\n_, p = Net.partial(k=2).init_by_shape(rng, [(SHAPE, jnp.int32), (1, 5)])\n")
    assert inputs_from_init_by_shape(str(f), "Net") == [((1, 5), "int32"), ((1, 5), "float32")]
    assert inputs_from_init_by_shape(str(f), "Other") is None


@pytest.mark.legacy
def test_cnn_fixture_and_planted_mismatches(legacy_root, fixtures_dir):
    """One legacy run: the good upgrade (5 Momentum steps against optax.sgd) and
    four planted mismatches, each caught and named."""
    d = fixtures_dir / "modules"
    names = ["cnn_upgraded.py", "cnn_upgraded_no_bias.py", "cnn_upgraded_bn_momentum.py",
             "cnn_upgraded_no_state_update.py", "cnn_upgraded_bad_momentum.py"]
    good, no_bias, bn_mom, no_state, bad_mom = verify_module_variants(
        str(d / "cnn_legacy.py"), [str(d / n) for n in names], "CNN", train_steps=5)
    assert good.status == "ok", (good.reason, good.detail, good.failed_rows)
    kinds = {(r.mode, r.kind) for r in good.rows}
    assert kinds == {(m, k) for m in ("train", "eval") for k in ("output", "state", "grad")} | {("optim", "param")}
    # carried-over legacy variables have exactly the Linen init structure
    assert not [r for r in good.rows if r.kind == "variables"]
    paths = {r.path for r in good.rows}
    assert {"params/GroupNorm_0/scale", "params/Block_0/Dense_0/kernel", "params/hidden/kernel",
            "batch_stats/Block_0/BatchNorm_0/mean"} <= paths
    # the optimizer: found in create_optimizer() on both sides, 5 steps, every param compared
    assert good.optimizer["steps"] == 5
    assert "optim.Momentum(learning_rate=learning_rate, beta=0.9)" in good.optimizer["legacy"]
    assert "optax.sgd(learning_rate, momentum=0.9)" in good.optimizer["upgraded"]
    opt_rows = {r.path: r for r in good.rows if r.mode == "optim"}
    assert set(opt_rows) == {r.path for r in good.rows if r.mode == "train" and r.kind == "grad"}
    assert all(r.worst_step in range(1, 6) for r in opt_rows.values())
    # a bias feeding a BatchNorm has a zero true gradient: flagged as noise, not failed
    noisy = {(r.mode, r.path) for r in good.noise_rows}
    assert ("train", "params/Conv_0/bias") in noisy and ("optim", "params/Conv_0/bias") in noisy
    assert ("train", "params/hidden/kernel") not in noisy

    assert no_bias.status == "differ"
    assert [r.path for r in no_bias.failed_rows] == ["params/hidden/bias"]

    assert bn_mom.status == "differ"
    assert {r.path for r in bn_mom.failed_rows} == {"batch_stats/Block_0/BatchNorm_0/mean",
                                                    "batch_stats/Block_0/BatchNorm_0/var"}

    assert no_state.status == "differ"
    failed = {(r.mode, r.path) for r in no_state.failed_rows}
    assert ("train", "batch_stats/BatchNorm_0/mean") in failed and ("train", "output[0]") in failed

    # optax momentum 0.8 against legacy beta=0.9: outputs and gradients agree, the params after
    # the steps do not (step 1 is identical: the trace starts at 0)
    assert bad_mom.status == "differ"
    assert {r.mode for r in bad_mom.failed_rows} == {"optim"}
    worst = max(bad_mom.failed_rows, key=lambda r: r.max_abs)
    assert worst.path.startswith("params/") and worst.worst_step > 1
    assert "params/hidden/kernel" in {r.path for r in bad_mom.failed_rows}


@pytest.mark.legacy
def test_resnet_fixture(legacy_root, fixtures_dir):
    """The guide's ResNet (Module.partial, BatchNorm, a residual block module, a
    train flag) and its Momentum(nesterov, weight_decay) -> optax.chain, in the
    same legacy process as a module that is not in the file."""
    d = fixtures_dir / "modules"
    upgraded = str(d / "resnet_upgraded.py")
    res, missing = verify_batch(str(d / "resnet_legacy.py"), [
        ModuleJob("ResNet", upgraded, train_steps=5), ModuleJob("NoSuchNet", upgraded, [((1, 2), "float32")])])
    assert res.status == "ok", (res.reason, res.detail, res.failed_rows)
    assert res.input_source == "init_by_shape" and res.kwargs == {"num_classes": 10}
    kinds = {(r.mode, r.kind) for r in res.rows}
    assert kinds == {(m, k) for m in ("train", "eval") for k in ("output", "state", "grad")} | {("optim", "param")}
    paths = {r.path for r in res.rows}
    assert {"params/conv_init/kernel", "params/ResNetBlock_2/conv_proj/kernel", "params/ResNetBlock_3/Conv_1/kernel",
            "batch_stats/ResNetBlock_2/norm_proj/mean", "batch_stats/bn_init/var", "params/Dense_0/bias"} <= paths
    assert "optax.chain(optax.add_decayed_weights(1e-4)" in res.optimizer["upgraded"]
    assert missing.status == "error" and "module not found" in missing.reason
    assert missing.legacy is res.legacy  # one legacy process for both


@pytest.mark.legacy
def test_module_level_partial_is_verified(legacy_root, tmp_path):
    """`Small = MLP.partial(features=3)` becomes `Small = partial(MLP, features=3)`:
    the partial is verified as the class with those constructor arguments."""
    (tmp_path / "legacy.py").write_text(
        "from flax import nn\n\n\n"
        "class MLP(nn.Module):\n"
        "    def apply(self, x, features, hidden=4):\n"
        "        x = nn.relu(nn.Dense(x, hidden))\n"
        "        return nn.Dense(x, features)\n\n\n"
        "Small = MLP.partial(features=3)\n")
    (tmp_path / "upgraded.py").write_text(
        "from functools import partial\n\nfrom flax import linen as nn\n\n\n"
        "class MLP(nn.Module):\n"
        "    features: int\n"
        "    hidden: int = 4\n\n"
        "    @nn.compact\n"
        "    def __call__(self, x):\n"
        "        x = nn.relu(nn.Dense(self.hidden)(x))\n"
        "        return nn.Dense(self.features)(x)\n\n\n"
        "Small = partial(MLP, features=3)\n")
    (tmp_path / "upgraded_other.py").write_text(
        (tmp_path / "upgraded.py").read_text().replace("partial(MLP, features=3)", "partial(MLP, features=3, hidden=5)"))
    jobs = [ModuleJob("Small", str(tmp_path / name), [parse_input_spec("4,6")], {"hidden": 2})
            for name in ("upgraded.py", "upgraded_other.py")]
    good, other = verify_batch(str(tmp_path / "legacy.py"), jobs)
    assert good.status == "ok", (good.reason, good.detail, good.failed_rows)
    assert {r.path for r in good.rows if r.kind == "grad"} >= {"params/Dense_0/kernel", "params/Dense_1/bias"}
    # hidden=2 from the job overrides the partial's hidden=5: still the same model
    assert other.status == "ok", (other.reason, other.detail, other.failed_rows)


def test_scalar_output_is_verified(legacy_root, tmp_path):
    """A module returning one number (an energy, a loss: vmc_jax's RBM) is compared:
    its output's random projection is a 0-d array, not a Python float."""
    (tmp_path / "legacy.py").write_text(
        "import jax.numpy as jnp\nfrom flax import nn\n\n\n"
        "class Energy(nn.Module):\n"
        "    def apply(self, x, hidden=3):\n"
        "        return jnp.sum(jnp.tanh(nn.Dense(x, hidden)))\n")
    (tmp_path / "upgraded.py").write_text(
        "import jax.numpy as jnp\nfrom flax import linen as nn\n\n\n"
        "class Energy(nn.Module):\n"
        "    hidden: int = 3\n\n"
        "    @nn.compact\n"
        "    def __call__(self, x):\n"
        "        return jnp.sum(jnp.tanh(nn.Dense(self.hidden)(x)))\n")
    (res,) = verify_batch(str(tmp_path / "legacy.py"),
                          [ModuleJob("Energy", str(tmp_path / "upgraded.py"), [parse_input_spec("4,6")], {})])
    assert res.status == "ok", (res.reason, res.detail, res.failed_rows)
    assert any(r.kind == "output" and r.shape == [] for r in res.rows), res.rows


def test_parameters_made_in_another_dtype_differ(legacy_root, tmp_path):
    """Under x64, legacy's Dense called a user initializer ``init(key, shape)`` (its float32 default);
    an upgrade that lets Linen pass ``param_dtype=float`` makes float64 weights with the same values:
    verify says so (a dtype row), though every number agrees."""
    init = ("import jax\nimport jax.numpy as jnp\n{nn}\n\njax.config.update('jax_enable_x64', True)\n\n\n"
            "def ramp(key, shape, dtype=jnp.float32):\n"
            "    return jnp.linspace(-1.0, 1.0, shape[0] * shape[1], dtype=dtype).reshape(shape)\n\n\n")
    (tmp_path / "legacy.py").write_text(
        init.format(nn="from flax import nn") + "class Net(nn.Module):\n"
        "    def apply(self, x):\n"
        "        return nn.Dense(x, 3, kernel_init=ramp)\n")
    linen = (init.format(nn="from flax import linen as nn") + "class Net(nn.Module):\n"
             "    @nn.compact\n"
             "    def __call__(self, x):\n"
             "        return nn.Dense(3, kernel_init={init}, param_dtype=float, dtype='float32')(x)\n")
    (tmp_path / "exact.py").write_text(linen.format(init="lambda key, shape, dtype=None: ramp(key, shape)"))
    (tmp_path / "float64.py").write_text(linen.format(init="ramp"))
    exact, float64 = verify_batch(str(tmp_path / "legacy.py"), [
        ModuleJob("Net", str(tmp_path / name), [parse_input_spec("4,2:float64")], {})
        for name in ("exact.py", "float64.py")])
    assert exact.status == "ok", (exact.reason, exact.detail, exact.failed_rows)
    assert [(r.kind, r.path) for r in float64.failed_rows] == [("dtype", "params/Dense_0/kernel")], float64.rows
    assert "float32 (legacy) != float64 (upgraded)" in float64.failed_rows[0].note
