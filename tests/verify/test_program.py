"""Program mode."""
import pytest

from linen_upgrade.verify.program import compare_outputs, tokenize, verify_run_variants


def test_tokenize():
    assert tokenize("step 3 loss 0.25 Dense_0 float32 [1e-3, -2.5]") == [
        "step", 3.0, "loss", 0.25, "Dense_0 float32 [", 1e-3, ",", -2.5, "]"]


def test_compare_outputs_tolerance_and_text():
    assert compare_outputs("loss 1.0\n", "loss 1.0001\n", rtol=2e-4).ok
    r = compare_outputs("loss 1.0\nacc 0.5\n", "loss 1.0\nacc 0.6\n")
    assert not r.ok and (r.mismatches[0].line, r.mismatches[0].token) == (2, 1)
    r = compare_outputs("loss 1.0\n", "cost 1.0\n")
    assert r.mismatches[0].kind == "text"
    assert compare_outputs("a\n", "a\nb\n").mismatches[0].kind == "extra line"


@pytest.mark.legacy
def test_verify_run_fixture_programs(legacy_root, fixtures_dir):
    d = fixtures_dir / "programs"
    good, bad, nostate = verify_run_variants(str(d / "mlp_bn_legacy.py"), [
        str(d / "mlp_bn_upgraded.py"), str(d / "mlp_bn_upgraded_bad_momentum.py"),
        str(d / "mlp_bn_upgraded_no_state_update.py")])  # the legacy script runs once
    assert good.legacy is bad.legacy is nostate.legacy
    assert good.ok, (good.reason, good.detail, good.mismatches[:3])
    assert good.numbers >= 15
    assert bad.status == "differ"
    first = bad.mismatches[0]
    assert first.kind == "number" and first.legacy_line.startswith("step 2 loss")
    assert nostate.status == "differ" and "running mean" in nostate.mismatches[0].legacy_line
