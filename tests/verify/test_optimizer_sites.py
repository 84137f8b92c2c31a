"""Finding the optimizer each file builds, for --train-steps (pure ast, no jax)."""
import textwrap

import pytest

from linen_upgrade.verify.optimizer import (OptimizerNotFound, find_legacy_optimizer, find_optax_transform,
                                            parse_optimizer_option)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_legacy_in_function_binds_defaults(tmp_path):
    f = write(tmp_path, "a.py", """
        from flax import optim

        def create_optimizer(model, learning_rate=0.1, *, beta=0.9):
            return optim.Momentum(learning_rate=learning_rate, beta=beta).create(model)
        """)
    site = find_legacy_optimizer(f)
    assert site.name == "Momentum" and site.func == "create_optimizer" and site.line == 5
    assert site.expr == "optim.Momentum(learning_rate=learning_rate, beta=beta)"
    assert site.bindings == {"learning_rate": "0.1", "beta": "0.9"}


@pytest.mark.parametrize("src,name", [
    ("import flax\nopt_def = flax.optim.Adam(1e-3)\n", "Adam"),
    ("from flax.optim import LAMB as L\nopt_def = L(1e-3)\n", "LAMB"),
    ("import flax.optim as fo\nopt = fo.WeightNorm(fo.Adam(1e-3)).create(p)\n", "WeightNorm"),
    ("from flax import optim\nclass MyOpt(optim.OptimizerDef):\n    pass\nd = MyOpt(0.1)\n", "MyOpt"),
])
def test_legacy_spellings(tmp_path, src, name):
    site = find_legacy_optimizer(write(tmp_path, "a.py", src))
    assert site.name == name and site.func is None and site.bindings == {}


def test_legacy_errors(tmp_path):
    with pytest.raises(OptimizerNotFound, match="no flax.optim optimizer"):
        find_legacy_optimizer(write(tmp_path, "a.py", "import optax\ntx = optax.sgd(1.)\n"))
    f = write(tmp_path, "b.py", """
        from flax import optim
        def make(lr):
            return optim.Adam(lr)
        """)
    with pytest.raises(OptimizerNotFound, match="lr.*without a default"):
        find_legacy_optimizer(f)
    f = write(tmp_path, "c.py", """
        from flax import optim
        def make(cfg):
            lr = cfg.lr * 2
            return optim.Adam(lr)
        """)
    with pytest.raises(OptimizerNotFound, match="local variable"):
        find_legacy_optimizer(f)
    # naming the function avoids both
    site = find_legacy_optimizer(f, func="make")
    assert site.call == "make" and site.expr is None
    with pytest.raises(OptimizerNotFound, match="no top-level function nope"):
        find_legacy_optimizer(f, func="nope")


def test_legacy_several_notes_the_choice(tmp_path):
    f = write(tmp_path, "a.py", "from flax import optim\na = optim.Adam(1e-3)\nb = optim.Momentum(0.1)\n")
    site = find_legacy_optimizer(f)
    assert site.name == "Adam" and "2 different" in site.note


def test_optax_outermost_transform_not_schedules_or_helpers(tmp_path):
    f = write(tmp_path, "u.py", """
        import optax as ox
        schedule = ox.warmup_cosine_decay_schedule(0., 1., 10, 100)
        loss = ox.softmax_cross_entropy
        def create_optimizer(params, wd=1e-4):
            tx = ox.chain(ox.add_decayed_weights(wd), ox.sgd(schedule, momentum=0.9))
            return tx, tx.init(params)
        def step(params, updates):
            return ox.apply_updates(params, updates)
        """)
    site = find_optax_transform(f)
    assert site.name == "chain" and site.func == "create_optimizer" and site.bindings == {"wd": "1e-4"}
    assert site.expr.startswith("ox.chain(") and not site.note


def test_optax_prefers_the_legacy_function_name_and_inject(tmp_path):
    f = write(tmp_path, "u.py", """
        import optax
        from optax import adam
        other = optax.sgd(0.5)
        def create_optimizer():
            return optax.inject_hyperparams(optax.adam)(learning_rate=0.1)
        def unused():
            return adam(1.0)
        """)
    assert find_optax_transform(f).name == "sgd"  # first, with a note
    assert "3 different" in find_optax_transform(f).note
    site = find_optax_transform(f, prefer_func="create_optimizer")
    assert site.expr == "optax.inject_hyperparams(optax.adam)(learning_rate=0.1)"
    with pytest.raises(OptimizerNotFound, match="no optax transform"):
        find_optax_transform(write(tmp_path, "n.py", "import optax\nx = optax.apply_updates(a, b)\n"))


def test_parse_optimizer_option():
    assert parse_optimizer_option(None) == (None, None)
    assert parse_optimizer_option("make") == ("make", "make")
    assert parse_optimizer_option("old:new") == ("old", "new")
    assert parse_optimizer_option(":new") == (None, "new")
