"""`linen-upgrade PATH --verify`: rewrite, then verify the legacy modules of the
rewritten files (original bytes on flax 0.3.6, rewritten file on current flax)."""
import textwrap

import pytest
from click.testing import CliRunner

from linen_upgrade.cli import cli
from linen_upgrade.verify import after_rewrite, module as module_mod, runner
from linen_upgrade.verify.module import ModuleResult, TensorRow

LEGACY_SRC = textwrap.dedent("""\
    import jax
    import jax.numpy as jnp
    from flax import nn


    class Block(nn.Module):
        def apply(self, x, features=4):
            return nn.relu(nn.Dense(x, features))


    class MLP(nn.Module):
        def apply(self, x, hidden=8, train=True):
            x = nn.Dense(x, hidden)
            x = nn.BatchNorm(x, use_running_average=not train, momentum=0.9)
            x = nn.relu(x)
            return nn.Dense(x, 2)


    class Head(nn.Module):
        def apply(self, x, classes=3):
            x = Block(x, features=5)
            return nn.log_softmax(nn.Dense(x, classes))


    def create_model(key):
        with nn.stateful() as state:
            _, params = MLP.partial(hidden=6).init_by_shape(key, [((4, 5), jnp.float32)])
        return nn.Model(MLP, params), state
    """)
PYPROJECT = textwrap.dedent("""\
    [tool.linen-upgrade.verify.modules.Head]
    input = ["3,7"]
    kwargs = {classes = 4}
    """)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "model.py").write_text(LEGACY_SRC)
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    return tmp_path


def test_legacy_module_names():
    assert after_rewrite.legacy_module_names(LEGACY_SRC) == ["Block", "MLP", "Head"]
    src = textwrap.dedent("""
        import flax.nn as fnn
        from flax.deprecated.nn import Module
        import flax.linen as ln
        class A(fnn.Module):
            def apply(self, x): return x
        class B(A):
            pass
        class C(Module):
            def helper(self): pass
        class D(ln.Module):
            def apply(self, x): return x
        """)
    assert after_rewrite.legacy_module_names(src) == ["A", "B"]


def _fake_batch(calls, statuses):
    def verify_batch(legacy_py, jobs, **kw):
        upgraded_src = open(jobs[0].upgraded).read()
        calls.append((open(legacy_py).read(), upgraded_src,
                      [(j.module, j.upgraded, j.inputs, j.kwargs, j.input_source) for j in jobs], kw))
        out = []
        for j in jobs:
            st = statuses.get(j.module, "ok")
            r = ModuleResult(j.module, st, inputs=[[list(s), d] for s, d in j.inputs], kwargs=j.kwargs or {},
                             input_source=j.input_source)
            r.rows = [TensorRow("apply", "output", "output[0]", [1], 0.0 if st == "ok" else 1.0, 0.0, st == "ok")]
            out.append(r)
        return out
    return verify_batch


@pytest.mark.parametrize("mode", ["write", "--check", "--diff"])
def test_plumbing_with_a_fake_verifier(project, monkeypatch, mode):
    calls = []
    monkeypatch.setattr(module_mod, "verify_batch", _fake_batch(calls, {}))
    args = ["rewrite", str(project / "model.py"), "--verify", "-j", "1"] + ([] if mode == "write" else [mode])
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "verify executes your code" in r.output
    assert "model.py::Block: skipped: no inputs" in r.output
    assert "model.py::MLP: OK" in r.output and "model.py::Head: OK" in r.output
    assert "2/2 verified modules agree, 1 skipped (no inputs)" in r.output
    (legacy_src, upgraded_src, jobs, kw), = calls  # one batch (one legacy process) per file
    assert legacy_src == LEGACY_SRC  # the pre-rewrite bytes
    assert "from flax import linen as nn" in upgraded_src and "@nn.compact" in upgraded_src
    assert [(m, inp, kwargs, src) for m, _, inp, kwargs, src in jobs] == [
        ("MLP", [((4, 5), "float32")], {"hidden": 6}, "init_by_shape"),
        ("Head", [((3, 7), "float32")], {"classes": 4}, "config")]
    upgraded = jobs[0][1]
    on_disk = (project / "model.py").read_text()
    if mode == "write":
        assert upgraded == str(project / "model.py") and on_disk == upgraded_src
        assert kw["upgraded_paths"] == []
    else:
        assert on_disk == LEGACY_SRC and upgraded != str(project / "model.py")
        assert kw["upgraded_paths"] == [str(project)]
    assert kw["legacy_paths"] == [str(project)]


def test_exit_codes(project, monkeypatch):
    monkeypatch.setattr(module_mod, "verify_batch", _fake_batch([], {"Head": "differ"}))
    r = CliRunner().invoke(cli, ["rewrite", str(project / "model.py"), "--verify", "--check", "-j", "1"])
    assert r.exit_code == 1 and "model.py::Head: DIFFER" in r.output and "some differ" in r.output
    monkeypatch.setattr(module_mod, "verify_batch", _fake_batch([], {"Head": "error"}))
    r = CliRunner().invoke(cli, ["rewrite", str(project / "model.py"), "--verify", "--check", "-j", "1"])
    assert r.exit_code == 2
    # nothing with inputs: all skipped -> could not verify
    (project / "pyproject.toml").write_text("")
    (project / "model.py").write_text(LEGACY_SRC.replace("MLP.partial(hidden=6).init_by_shape", "MLP.init"))
    r = CliRunner().invoke(cli, ["rewrite", str(project / "model.py"), "--verify", "--diff", "-j", "1"])
    assert r.exit_code == 2 and "0/0 verified modules agree, 3 skipped" in r.output
    # no legacy module at all
    (project / "model.py").write_text("import jax\nx = jax.tree_multimap(f, a)\n")
    r = CliRunner().invoke(cli, ["rewrite", str(project / "model.py"), "--verify", "-j", "1"])
    assert r.exit_code == 2 and "nothing verified" in r.output


def test_config_error_exits_2(project):
    (project / "pyproject.toml").write_text('[tool.linen-upgrade.verify]\nplatform = "metal"\n')
    r = CliRunner().invoke(cli, ["rewrite", str(project / "model.py"), "--verify", "--check", "-j", "1"])
    assert r.exit_code == 2 and "platform must be one of" in r.output


@pytest.mark.legacy
def test_rewrite_then_verify_for_real(legacy_root, project, monkeypatch):
    """The current rules rewrite the modules of this file completely; each module
    with inputs is verified, all of them in one legacy process."""
    legacy_runs = []
    real = runner.run_legacy
    monkeypatch.setattr(runner, "run_legacy", lambda *a, **k: legacy_runs.append(a) or real(*a, **k))
    r = CliRunner().invoke(cli, ["rewrite", str(project / "model.py"), "--verify", "-j", "1"])
    assert r.exit_code == 0, r.output
    assert "from flax import linen as nn" in (project / "model.py").read_text()
    assert "model.py::MLP: OK" in r.output and "model.py::Head: OK" in r.output
    assert "inputs 4x5:float32 (from the legacy init_by_shape call); kwargs {\"hidden\": 6}" in r.output
    assert "inputs 3x7:float32 (from [tool.linen-upgrade.verify]); kwargs {\"classes\": 4}" in r.output
    assert "batch_stats/BatchNorm_0/mean" in r.output and "params/Block_0/Dense_0/kernel" in r.output
    assert len(legacy_runs) == 1


@pytest.mark.legacy
def test_rewrite_then_verify_compares_the_optimizer(legacy_root, tmp_path):
    """When the rules turn the file's flax.optim optimizer into optax, --verify also
    replays 5 legacy optimizer steps through it (found automatically)."""
    src = textwrap.dedent("""\
        import jax.numpy as jnp
        from flax import nn, optim


        class MLP(nn.Module):
            def apply(self, x, hidden=8, train=True):
                x = nn.Dense(x, hidden)
                x = nn.BatchNorm(x, use_running_average=not train, momentum=0.9)
                return nn.Dense(nn.relu(x), 2)


        def create_model(key):
            with nn.stateful() as state:
                _, params = MLP.partial(hidden=6).init_by_shape(key, [((4, 5), jnp.float32)])
            return params, state


        optimizer_def = optim.Momentum(learning_rate=0.1, beta=0.9, weight_decay=1e-3)
        """)
    (tmp_path / "train.py").write_text(src)
    r = CliRunner().invoke(cli, ["rewrite", str(tmp_path / "train.py"), "--verify", "--diff", "-j", "1"])
    if "+import optax" not in r.output:
        pytest.skip("the rules do not convert this flax.optim optimizer to optax (yet)")
    assert r.exit_code == 0, r.output
    assert "train.py::MLP: OK" in r.output
    assert "optimizer: 5 steps of legacy `optim.Momentum(learning_rate=0.1, beta=0.9" in r.output
    assert "vs upgraded `optax.chain(" in r.output
    assert "optim  param:params/Dense_1/kernel" in r.output


def test_auto_optimizer_steps_fall_back_when_not_comparable(tmp_path, monkeypatch):
    """Hand-made pair (no rules involved): the optimizer is found in both files, so 5
    steps are asked for; when the legacy optimizer cannot be built, the module is
    verified again without it, and says so."""
    from types import SimpleNamespace
    original = (LEGACY_SRC.replace("from flax import nn", "from flax import nn, optim")
                + "\n\ndef make_opt():\n    return optim.Adam()\n").encode()
    new = b"import optax\nimport flax.linen as nn\ntx = optax.adam(1e-3)\n"
    path = tmp_path / "model.py"
    path.write_bytes(original)
    result = SimpleNamespace(path=str(path), original=original, new=new, error=None, changed=True)
    calls = []

    def verify_batch(legacy_py, jobs, **kw):
        calls.append([(j.module, j.train_steps) for j in jobs])
        out = []
        for j in jobs:
            r = ModuleResult(j.module, "ok", inputs=[[list(s), d] for s, d in j.inputs])
            r.rows = [TensorRow("apply", "output", "output[0]", [1], 0.0, 0.0, True)]
            if j.train_steps:
                r.status, r.reason = "error", "legacy module: error in user code (optimizer-run)"
            out.append(r)
        return out
    monkeypatch.setattr(module_mod, "verify_batch", verify_batch)
    lines = []
    code = after_rewrite.verify_rewritten([result], SimpleNamespace(verify={}, source=None), "diff", lines.append)
    assert code == 0, lines
    assert calls == [[("MLP", 5)], [("MLP", 0)]]
    assert any("the optimizer could not be compared" in line for line in lines)
