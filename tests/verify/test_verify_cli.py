"""The click commands (CliRunner)."""
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from linen_upgrade.verify.commands import EXECUTES_NOTICE, legacy_env, verify

ROOT = Path(__file__).resolve().parents[2]


def test_commands_import_no_heavy_modules():
    code = ("import linen_upgrade.verify.commands, linen_upgrade.verify.after_rewrite, sys; "
            "bad = [m for m in ('jax', 'numpy', 'flax') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(ROOT))


def test_legacy_env_path_and_info(monkeypatch, tmp_path):
    monkeypatch.setenv("LINEN_UPGRADE_CACHE", str(tmp_path))
    r = CliRunner().invoke(legacy_env, ["path"])
    assert r.exit_code == 0 and r.output.strip() == str(tmp_path / "legacy-flax-0.3.6")
    r = CliRunner().invoke(legacy_env, ["info", "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.output)["installed"] is False


def test_usage_errors_exit_2(tmp_path):
    r = CliRunner().invoke(verify, ["a.py", "b.py"])
    assert r.exit_code == 2


def test_missing_inputs_exit_2(tmp_path):
    a = tmp_path / "a.py"
    a.write_text("x = 1\n")
    r = CliRunner().invoke(verify, [str(a), str(a), "--module", "Net"])
    assert r.exit_code == 2 and "missing inputs" in r.output


@pytest.mark.legacy
def test_verify_run_ok_and_module_differ(legacy_root):
    d = ROOT / "fixtures" / "verify"
    r = CliRunner().invoke(verify, ["--run", str(d / "programs" / "mlp_bn_legacy.py"),
                                    str(d / "programs" / "mlp_bn_upgraded.py")])
    assert r.exit_code == 0, r.output
    assert EXECUTES_NOTICE in r.output and "program: OK" in r.output
    r = CliRunner().invoke(verify, [str(d / "modules" / "cnn_legacy.py"),
                                    str(d / "modules" / "cnn_upgraded_no_bias.py"),
                                    "--module", "CNN", "--input", "2,8,8,3:float32", "--format", "json"])
    assert r.exit_code == 1, r.output
    out = json.loads(r.stdout)
    res = out["results"][0]
    assert res["status"] == "differ" and [x["path"] for x in res["rows"] if not x["ok"]] == ["params/hidden/bias"]


@pytest.mark.legacy
def test_import_error_in_user_code_exit_2(legacy_root, tmp_path):
    a = tmp_path / "a.py"
    a.write_text("import flax\nimport no_such_module_abc\n")
    r = CliRunner().invoke(verify, [str(a), str(a), "--module", "Net", "--input", "1,2"])
    assert r.exit_code == 2 and "import error in user code" in r.output, r.output


def _adam_project(tmp_path, module_table):
    for name in ("mlp_adam_legacy.py", "mlp_adam_upgraded.py"):
        shutil.copy(ROOT / "fixtures" / "verify" / "modules" / name, tmp_path / name)
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""\
        [tool.linen-upgrade.verify]
        train-steps = 5

        [tool.linen-upgrade.verify.modules.MLP]
        """) + module_table)
    return str(tmp_path / "mlp_adam_legacy.py"), str(tmp_path / "mlp_adam_upgraded.py")


def test_no_inputs_anywhere_exit_2(tmp_path):
    legacy, upgraded = _adam_project(tmp_path, "")
    r = CliRunner().invoke(verify, [legacy, upgraded, "--module", "MLP"])
    assert r.exit_code == 2 and "missing inputs" in r.output and "[tool.linen-upgrade.verify.modules.MLP]" in r.output


def test_config_errors_exit_2(tmp_path):
    legacy, upgraded = _adam_project(tmp_path, 'input = ["2,5"]\nbatch = 3\n')
    r = CliRunner().invoke(verify, [legacy, upgraded, "--module", "MLP"])
    assert r.exit_code == 2 and "unknown key 'batch'" in r.output


@pytest.mark.legacy
def test_adam_train_steps_with_inputs_from_config(legacy_root, tmp_path):
    """flax.optim.Adam vs optax.adam over 5 steps; inputs, kwargs, steps and the
    optimizer functions all from [tool.linen-upgrade.verify]."""
    legacy, upgraded = _adam_project(tmp_path, textwrap.dedent("""\
        input = ["6,5:float32"]
        kwargs = {hidden = 6}
        optimizer = "make_optimizer"
        """))
    r = CliRunner().invoke(verify, [legacy, upgraded, "--module", "MLP", "--format", "json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"][0]
    assert res["status"] == "ok" and res["input_source"] == "config" and res["kwargs"] == {"hidden": 6}
    assert res["optimizer"]["steps"] == 5 and res["optimizer"]["legacy"].startswith("make_optimizer()")
    rows = {(x["mode"], x["path"]): x for x in res["rows"]}
    assert rows[("train", "params/Dense_0/kernel")]["shape"] == [5, 6]
    opt = {p: x for (m, p), x in rows.items() if m == "optim"}
    assert set(opt) == {"params/Dense_0/kernel", "params/Dense_0/bias", "params/BatchNorm_0/scale",
                        "params/BatchNorm_0/bias", "params/head/kernel", "params/head/bias"}
    assert all(x["ok"] for x in opt.values())
    # the bias feeding the BatchNorm: gradient noise, flagged in both comparisons
    assert opt["params/Dense_0/bias"]["noise"] and rows[("train", "params/Dense_0/bias")]["noise"]
    assert not opt["params/head/kernel"]["noise"]
