"""The click commands (CliRunner)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from linen_upgrade.verify.commands import EXECUTES_NOTICE, legacy_env, verify

ROOT = Path(__file__).resolve().parents[2]


def test_commands_import_no_heavy_modules():
    code = ("import linen_upgrade.verify.commands, sys; "
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
