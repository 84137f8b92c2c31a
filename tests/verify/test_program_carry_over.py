"""Program mode starts both programs from the same weights and dropout masks:
a seed-guide-style training script (weights from a PRNG key, BatchNorm,
dropout, nn.Model + flax.optim.Adam) and the tool's own upgrade of it."""
import pytest
from click.testing import CliRunner

from linen_upgrade.cli import cli
from linen_upgrade.verify.program import REASON_UNPAIRED, verify_run_variants

LEGACY_NAME = "seed_style_legacy.py"


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory, fixtures_dir):
    """The legacy script and the tool's rewrite of it, side by side."""
    d = tmp_path_factory.mktemp("seed_style")
    src = (fixtures_dir / "programs" / LEGACY_NAME).read_text()
    (d / LEGACY_NAME).write_text(src)
    (d / "upgraded.py").write_text(src)
    r = CliRunner().invoke(cli, ["rewrite", str(d / "upgraded.py")])
    assert "1 rewritten, 0 failed, 0 findings" in r.output, r.output
    text = (d / "upgraded.py").read_text()
    assert "TODO(linen-upgrade)" not in text and "nn.Dropout(rate=0.25" in text
    return d, text


def _variant(d, text, name, old, new):
    assert old in text, old  # the planted change really lands
    (d / name).write_text(text.replace(old, new, 1))
    return str(d / name)


@pytest.mark.legacy
def test_seed_style_program_and_its_upgrade_agree_and_a_planted_change_is_caught(legacy_root, upgraded):
    d, text = upgraded
    rate = _variant(d, text, "rate.py", "nn.Dropout(rate=0.25", "nn.Dropout(rate=0.3")
    good, bad = verify_run_variants(str(d / LEGACY_NAME), [str(d / "upgraded.py"), rate])
    assert good.ok, (good.reason, good.detail, good.mismatches[:3], good.notes)
    assert good.numbers == 12 and good.max_abs_err < 1e-5  # 4 x (step, loss), "pred[0]" and 3 predictions
    assert [(r["legacy_class"], r["upgraded_class"], r["paired"]) for r in good.inits] == [("MLP", "MLP", True)]
    assert good.draws["legacy"]["masks"] == good.draws["upgraded"]["masks"] > 0
    assert not good.notes
    assert bad.status == "differ" and bad.inits[0]["paired"]
    assert bad.mismatches[0].legacy_line.startswith("step 0 loss")


@pytest.mark.legacy
def test_inits_that_cannot_be_paired_are_named(legacy_root, upgraded):
    d, text = upgraded
    # an extra init before the model's: init 1 is a Dense, init 2 has no legacy counterpart
    extra = _variant(d, text, "extra_init.py", "variables = ",
                     "probe = nn.Dense(2).init(jax.random.PRNGKey(5), jnp.zeros((1, 3)))\nvariables = ")
    r = CliRunner().invoke(cli, ["verify", "--run", str(d / LEGACY_NAME), extra])
    assert r.exit_code == 2, r.output
    assert f"ERROR  ({REASON_UNPAIRED})" in r.output
    assert "init 1: legacy init 1 (MLP) does not match the upgraded init's variables" in r.output
    assert "init 2: the legacy program made 1 init(s); this is init 2" in r.output
    assert "0 of 2 init(s) paired" in r.output
