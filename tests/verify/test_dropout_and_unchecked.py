"""Verdicts a user can trust (issue 13, items 1 and 2): dropout compared in
train mode with the same masks on both sides, and no pass on a comparison
that checked (almost) nothing."""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from linen_upgrade.cli import cli
from linen_upgrade.verify import modern_module_driver as modern
from linen_upgrade.verify import same_draws
from linen_upgrade.verify.commands import verify
from linen_upgrade.verify.module import DEFAULT_BATCH, ModuleJob, raise_batch_of_one, verify_batch


def test_matched_draws_keyed_by_order_and_shape_and_restored():
    import jax
    import types

    class Source:  # stands in for the rng source of a flax (legacy _PRNGFrame, Linen Scope)
        def make_rng(self):
            return jax.random.PRNGKey(99)

    rnd = types.ModuleType("fake_random")  # a module that has never resolved `bernoulli` (a proxy)
    real = jax.random.bernoulli

    def one_pass():
        with same_draws.matched_draws([jax.random, rnd], [(Source, "make_rng")]) as drawn:
            masks = [np.asarray(rnd.bernoulli(None, 0.5, (6, 7))),
                     np.asarray(jax.random.bernoulli(None, 0.5, (6, 7))),
                     np.asarray(jax.random.bernoulli(None, 0.25, (3,)))]
            keys = [np.asarray(Source().make_rng()) for _ in range(2)]
        return masks, keys, drawn.as_dict()
    (m1, k1, d1), (m2, k2, d2) = one_pass(), one_pass()
    assert d1 == d2 == {"masks": 3, "keys": 2}
    for a, b in zip(m1 + k1, m2 + k2):  # a second pass draws the same sequence
        np.testing.assert_array_equal(a, b)
    assert not (m1[0] == m1[1]).all()  # the n-th draw, not the shape alone, picks the mask
    assert 0.3 < m1[0].mean() < 0.7 and m1[2].dtype == bool
    assert not (k1[0] == k1[1]).all() and not (k1[0] == np.asarray(jax.random.PRNGKey(99))).all()
    # nothing stays patched
    assert jax.random.bernoulli is real and "bernoulli" not in vars(rnd)
    assert (np.asarray(Source().make_rng()) == np.asarray(jax.random.PRNGKey(99))).all()


def test_batch_of_one_raised():
    assert raise_batch_of_one([((1, 16), "float32"), ((1,), "int32")]) == (
        [((DEFAULT_BATCH, 16), "float32"), ((DEFAULT_BATCH,), "int32")], True)
    # a batch already above one, or inputs that do not agree on a batch of one: as given
    assert raise_batch_of_one([((4, 16), "float32")]) == ([((4, 16), "float32")], False)
    assert raise_batch_of_one([((1, 16), "float32"), ((5,), "int32")])[1] is False


def test_perturbed_params():
    from linen_upgrade.verify.legacy_module_driver import perturb
    params = {"bias": np.zeros(50, np.float32), "scale": np.ones(50, np.float32),
              "kernel": np.random.RandomState(0).randn(40, 50).astype(np.float32) * 0.2,
              "table": np.arange(6, dtype=np.int32)}
    out = perturb(params, 0.1, seed=3)
    assert {k: v.dtype for k, v in out.items()} == {k: v.dtype for k, v in params.items()}
    np.testing.assert_array_equal(out["table"], params["table"])  # integers as they are
    assert 0.05 < out["bias"].std() < 0.2 and 0.05 < out["scale"].std() < 0.2
    assert abs(out["scale"].mean() - 1) < 0.05
    change = out["kernel"] - params["kernel"]
    assert 0.01 < change.std() < 0.03  # 10% of the kernel's spread (0.2)
    for k in params:  # the same noise for the same seed
        np.testing.assert_array_equal(perturb(params, 0.1, seed=3)[k], out[k])


def _row(kind, ok=True):
    return {"kind": kind, "ok": ok, "note": ""}


def test_degenerate_rows_are_not_checked():
    zeros, ramp = np.zeros((2, 3)), np.arange(6.0).reshape(2, 3)
    r = _row("grad")
    modern.mark_degenerate(r, zeros, zeros)
    assert r["unchecked"] == "gradient is zero on both sides"
    r = _row("output")
    modern.mark_degenerate(r, np.full((1, 4), 0.5), np.full((1, 4), 0.5))
    assert r["unchecked"].startswith("output is constant on both sides")
    for kind, a, b, ok in [("grad", ramp, ramp, True), ("output", ramp, ramp, True),
                           ("output", np.array([3.0]), np.array([3.0]), True),   # one element: not "constant"
                           ("output", zeros, zeros + 1, False)]:                # different constants: a DIFF
        r = _row(kind, ok)
        modern.mark_degenerate(r, a, b)
        assert "unchecked" not in r, (kind, a, b)


def test_unpaired_draws_are_named():
    same = {"masks": 2, "keys": 3}
    assert modern.draws_differ(same, dict(same), "0.10.2", "0.10.2") is None
    assert "legacy drew 2 dropout masks, upgraded 1" in modern.draws_differ(same, {"masks": 1, "keys": 3},
                                                                              "0.10.2", "0.10.2")
    assert "legacy asked for 3 rng keys, upgraded 2" in modern.draws_differ(same, {"masks": 2, "keys": 2},
                                                                              "0.10.2", "0.10.2")
    # numbers the module draws itself come from jax: another jax on the legacy side may draw others
    assert "jax 0.2.17 (legacy)" in modern.draws_differ(same, dict(same), "0.2.17", "0.10.2")
    assert modern.draws_differ({"masks": 2, "keys": 2}, {"masks": 2, "keys": 2}, "0.2.17", "0.10.2") is None


@pytest.fixture(scope="module")
def mlp(tmp_path_factory, fixtures_dir):
    """The fixture script and its upgrade by the tool (nothing left to a person)."""
    d = tmp_path_factory.mktemp("mlp")
    legacy = d / "mlp_legacy.py"
    shutil.copy(fixtures_dir / "modules" / "mlp_dropout_legacy.py", legacy)
    upgraded = d / "mlp_upgraded.py"
    shutil.copy(legacy, upgraded)
    r = CliRunner().invoke(cli, [str(upgraded), "--exit-zero-even-if-changed", "--jobs", "1"])
    assert r.exit_code == 0 and "1 rewritten, 0 failed, 0 findings left for manual work" in r.output, r.output
    text = upgraded.read_text()
    assert "TODO(linen-upgrade)" not in text and "nn.Dropout(rate=0.5" in text
    return legacy, upgraded


def _cli(*args):
    r = CliRunner().invoke(verify, [str(a) for a in args])
    return r.exit_code, r.stdout


@pytest.mark.legacy
def test_dropout_on_agrees_and_rate_change_is_caught(legacy_root, mlp, tmp_path):
    legacy, upgraded = mlp
    code, out = _cli(legacy, upgraded, "--module", "MLP", "--input", "8,16")
    assert code == 0 and "module MLP: OK" in out, out
    assert "train 1 dropout mask(s)" in out
    planted = tmp_path / "mlp_planted.py"
    planted.write_text(upgraded.read_text().replace("nn.Dropout(rate=0.5", "nn.Dropout(rate=0.4"))
    # one legacy process: the planted file, and the default inputs (init_by_shape's batch of 1 raised)
    bad, default = verify_batch(str(legacy), [ModuleJob("MLP", str(planted), [((8, 16), "float32")]),
                                              ModuleJob("MLP", str(upgraded))])
    assert bad.status == "differ" and bad.draws["train"]["masks"] == 1
    failed = {(r.mode, r.path) for r in bad.failed_rows}
    assert ("train", "output[0]") in failed and ("train", "params/Dense_1/kernel") in failed
    assert not {m for m, _ in failed} - {"train"}  # dropout is off in eval mode: all agree there
    assert default.status == "ok", (default.reason, default.detail, default.failed_rows)
    assert default.input_source == "init_by_shape" and default.inputs == [[[DEFAULT_BATCH, 16], "float32"]]
    assert len(default.unchecked_rows) <= 1  # at most the bias feeding the BatchNorm (rounding noise)


@pytest.mark.legacy
def test_batch_of_one_is_not_a_pass(legacy_root, mlp):
    legacy, upgraded = mlp
    code, out = _cli(legacy, upgraded, "--module", "MLP", "--input", "1,16", "--format", "json")
    assert code == 1, out
    res = json.loads(out)["results"][0]
    assert res["reason"] == "too little checked" and "--allow-unchecked" in res["detail"]
    assert not [r for r in res["rows"] if not r["ok"]]  # nothing differs: it was not checked
    # BatchNorm over one example: its output is its bias, whatever comes in; eval mode (running
    # averages) checks those tensors, train mode cannot
    unchecked = {(r["mode"], r["path"]): r["unchecked"] for r in res["rows"] if r["unchecked"]}
    assert unchecked[("train", "params/Dense_0/kernel")] == "gradient is zero on both sides"
    assert unchecked[("train", "params/BatchNorm_0/scale")] == "gradient is zero on both sides"
    n_train = sum(r["mode"] == "train" for r in res["rows"])
    assert all(m == "train" for m, _ in unchecked) and len(unchecked) * 4 > n_train
    assert f"train: {len(unchecked)} of {n_train}" in res["detail"]

    code, out = _cli(legacy, upgraded, "--module", "MLP", "--input", "1,16", "--allow-unchecked")
    assert code == 0 and "module MLP: OK" in out, out
    assert "not checked: gradient is zero on both sides" in out and f"{len(unchecked)} not checked" in out


def test_a_gradient_off_by_rounding_of_the_largest_gradient_passes_with_a_note():
    """A layer before a BatchNorm: its gradient (1e-3) is mostly cancelled, so float32 rounding of a
    backward pass whose largest gradient is 5 leaves it 1.5e-6 off -- a pass, said in a note; 1e-4
    off is not rounding."""
    legacy = np.full((4, 2), 1.5e-3, np.float32)
    row = modern.compare(legacy, legacy + 1.5e-6, 1e-5, 1e-6)
    assert not row["ok"]
    modern.within_gradient_rounding(row, 5.0, 1e-5, 1e-6)
    assert row["ok"] and "within rounding of the largest gradient" in row["note"]
    wrong = modern.compare(legacy, legacy + 1e-4, 1e-5, 1e-6)
    modern.within_gradient_rounding(wrong, 5.0, 1e-5, 1e-6)
    assert not wrong["ok"] and wrong["note"] == ""
