"""Module mode."""
import pytest

from linen_upgrade.verify.module import (inputs_from_init_by_shape, parse_input_spec,
                                         verify_module_variants)


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
    d = fixtures_dir / "modules"
    names = ["cnn_upgraded.py", "cnn_upgraded_no_bias.py", "cnn_upgraded_bn_momentum.py",
             "cnn_upgraded_no_state_update.py"]
    good, no_bias, bn_mom, no_state = verify_module_variants(
        str(d / "cnn_legacy.py"), [str(d / n) for n in names], "CNN")
    assert good.status == "ok", (good.reason, good.detail, good.failed_rows)
    kinds = {(r.mode, r.kind) for r in good.rows}
    assert kinds == {(m, k) for m in ("train", "eval") for k in ("output", "state", "grad")}
    # carried-over legacy variables have exactly the Linen init structure
    assert not [r for r in good.rows if r.kind == "variables"]
    paths = {r.path for r in good.rows}
    assert {"params/GroupNorm_0/scale", "params/Block_0/Dense_0/kernel", "params/hidden/kernel",
            "batch_stats/Block_0/BatchNorm_0/mean"} <= paths

    assert no_bias.status == "differ"
    assert [r.path for r in no_bias.failed_rows] == ["params/hidden/bias"]

    assert bn_mom.status == "differ"
    assert {r.path for r in bn_mom.failed_rows} == {"batch_stats/Block_0/BatchNorm_0/mean",
                                                    "batch_stats/Block_0/BatchNorm_0/var"}

    assert no_state.status == "differ"
    failed = {(r.mode, r.path) for r in no_state.failed_rows}
    assert ("train", "batch_stats/BatchNorm_0/mean") in failed and ("train", "output[0]") in failed
