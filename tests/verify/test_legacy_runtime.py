"""The legacy runtime: real flax 0.3.6 on current jax through the compat layer."""

import pytest

from linen_upgrade.verify import legacy_env, runner

pytestmark = pytest.mark.legacy

SMOKE = ["nn_smoke.py", "optim_smoke.py", "linen_optim_smoke.py"]


@pytest.mark.parametrize("script", SMOKE)
def test_smoke_program_runs_on_legacy_runtime(legacy_root, fixtures_dir, script):
    res = runner.run_legacy(str(fixtures_dir / "legacy_smoke" / script), timeout=300)
    assert res.ok, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert lines[-1] == "ALL OK", res.stdout
    assert not [l for l in lines if l.startswith("SKIP")], res.stdout


def test_smoke_covers_the_required_features(legacy_root, fixtures_dir):
    text = "\n".join((fixtures_dir / "legacy_smoke" / s).read_text() for s in SMOKE)
    for needle in ["nn.Conv", "nn.BatchNorm", "nn.LayerNorm", "nn.GroupNorm", "nn.Embed", "SelfAttention",
                   "Cache()", "LSTMCell", "GRUCell", "initialize_carry", "lax.scan", "nn.stateful",
                   "nn.stochastic", "nn.Model", "init_by_shape", "MultiOptimizer", "ModelParamTraversal",
                   "jax.jit", "serialization.to_bytes", "jax_utils.replicate", "jax.pmap",
                   "from flax import linen", "optim.Adam", "from flax.deprecated import nn", "import flax.nn"]:
        assert needle in text, needle


def test_legacy_flax_is_the_real_release(legacy_root, tmp_path):
    script = tmp_path / "where.py"
    script.write_text("import flax, flax.version\nprint(flax.__file__)\nprint(flax.version.__version__)\n")
    res = runner.run_legacy(str(script), timeout=120)
    assert res.ok, res.stderr
    path, version = res.stdout.split()
    assert path.startswith(str(legacy_root)) and version == "0.3.6"


def test_importing_a_flax_nn_submodule_keeps_the_functions_of_flax_nn(legacy_root, tmp_path):
    """`from flax.nn.stochastic import make_rng` (long-range-arena's attention files)
    leaves `nn.stochastic` the context manager, not the submodule of that name."""
    script = tmp_path / "sub.py"
    script.write_text(
        "import jax\nfrom flax import nn\nfrom flax.nn.stochastic import make_rng\n"
        "with nn.stochastic(jax.random.PRNGKey(0)):\n    print(make_rng().shape)\n")
    res = runner.run_legacy(str(script), timeout=120)
    assert res.ok, res.stderr
    assert res.stdout.split()[-1] == "(2,)"


def test_jax_util_of_old_jax_is_there_for_legacy_code(legacy_root, tmp_path):
    """`from jax.util import partial` (mlcommons' SSD, many 2020 repos): jax.util left jax in 0.4."""
    script = tmp_path / "ju.py"
    script.write_text(
        "import jax\nimport jax.util\nfrom jax.util import partial, prod, safe_zip\n"
        "print(partial(max, 3)(4), prod((2, 3)), list(safe_zip([1], [2])), jax.util.partial(min, 3)(4))\n")
    res = runner.run_legacy(str(script), timeout=120)
    assert res.ok, res.stderr
    assert res.stdout.split() == ["4", "6", "[(1,", "2)]", "3"]


SCAN_INIT = """
import jax, jax.numpy as jnp, flax
from flax import nn

class Seq(nn.Module):
  def apply(self, xs):
    cell = nn.LSTMCell.shared(name='cell')
    carry = nn.LSTMCell.initialize_carry(jax.random.PRNGKey(0), (xs.shape[0],), 4)
    return flax.jax_utils.scan_in_dim(cell, carry, xs, axis=1)[1]

class Net(nn.Module):
  def apply(self, x):
    self.state('count', (), nn.initializers.zeros)
    return nn.BatchNorm(nn.Dense(x, 4))

_, params = Seq.init(jax.random.PRNGKey(1), jnp.ones((2, 5, 3)))
print(type(params['cell']['ii']['kernel']).__name__, params['cell']['ii']['kernel'].shape)

@jax.jit
def init(key):
  with nn.stateful() as state:
    _, p = Net.init(key, jnp.ones((2, 3)))
  return p, state.as_dict()

p, state = init(jax.random.PRNGKey(0))
print(sorted(p), sorted(state))
"""


def test_params_made_in_a_scan_body_at_init_and_a_jitted_init(legacy_root, tmp_path):
    """flax.nn makes params under `jax.core.eval_context()`: eager for concrete rngs (a cell's
    params created inside `scan_in_dim` at init are arrays, not leaked scan tracers), staged for a
    jitted init's traced rng."""
    script = tmp_path / "scan_init.py"
    script.write_text(SCAN_INIT)
    res = runner.run_legacy(str(script), timeout=180)
    assert res.ok, res.stderr[-3000:]
    assert res.stdout.splitlines()[-2:] == [
        "ArrayImpl (3, 4)", "['BatchNorm_1', 'Dense_0'] ['/', '/BatchNorm_1']"]


def test_import_error_and_timeout_are_structured(legacy_root, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import flax\nimport not_a_real_module_xyz\n")
    res = runner.run_legacy(str(bad), timeout=120)
    assert not res.ok and res.reason == runner.REASON_IMPORT and "not_a_real_module_xyz" in res.detail
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(60)\n")
    res = runner.run_legacy(str(slow), timeout=2)
    assert not res.ok and res.reason == runner.REASON_TIMEOUT and res.wall_s < 30


def _fake_wheel(legacy_root, dest):
    import zipfile
    whl = dest / "flax-0.3.6-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        for f in (legacy_root / "flax").rglob("*.py"):
            zf.write(f, str(f.relative_to(legacy_root)))
    return whl


def test_install_from_wheel_dir_is_idempotent_and_atomic(legacy_root, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _fake_wheel(legacy_root, wheels)
    target = tmp_path / "cache" / "legacy-flax-0.3.6"
    p = legacy_env.install(from_path=wheels, path=target)
    assert p == target and legacy_env.is_installed(target)
    marker = (target / legacy_env.MARKER).read_text()
    assert legacy_env.install(from_path=wheels, path=target) == target
    assert (target / legacy_env.MARKER).read_text() == marker  # not reinstalled
    legacy_env.install(from_path=wheels, path=target, force=True)
    assert (target / legacy_env.MARKER).read_text() != marker
    # no temporary folders left behind
    assert sorted(x.name for x in target.parent.iterdir()) == ["legacy-flax-0.3.6"]


def test_install_errors_are_clear(tmp_path):
    with pytest.raises(legacy_env.LegacyEnvError, match="no flax-0.3.6"):
        legacy_env.install(from_path=tmp_path, path=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cache_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv(legacy_env.CACHE_ENV_VAR, str(tmp_path))
    assert legacy_env.env_path() == tmp_path / "legacy-flax-0.3.6"
    assert legacy_env.info()["installed"] is False


def test_fast_compile_flag_only_on_cpu(monkeypatch):
    monkeypatch.setattr(runner, "_accelerator_present", lambda: False)
    assert runner.FAST_COMPILE_FLAG in runner.platform_env("cpu")["XLA_FLAGS"]
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    assert runner.fast_compile_wanted(None, {})
    assert not runner.fast_compile_wanted("gpu", {})
    assert not runner.fast_compile_wanted(None, {"JAX_PLATFORMS": "cuda"})
    assert not runner.fast_compile_wanted("cpu", {"LINEN_UPGRADE_XLA_FAST_COMPILE": "0"})
    assert not runner.fast_compile_wanted("cpu", {"XLA_FLAGS": "--xla_backend_optimization_level=2"})
    monkeypatch.setattr(runner, "_accelerator_present", lambda: True)
    assert not runner.fast_compile_wanted(None, {})
    assert runner.fast_compile_wanted(None, {"LINEN_UPGRADE_XLA_FAST_COMPILE": "1"})
