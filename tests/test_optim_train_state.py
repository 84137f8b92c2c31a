"""LU302: legacy training loops around a flax.optim Optimizer, upgraded to a
TrainState, print the numbers flax 0.3.6 prints.

Each program runs once on the real legacy release (``runner.run_legacy``) and,
after every rule, on current flax/optax; the printed losses, steps and
parameters agree to rtol 1e-5.  Covered: ``.create`` inline and through a
definition variable inside a helper returning the optimizer, ``jax.jit``,
``.target``, ``.state.step``, ``.replace(target=...)``, and
``apply_gradient(g, learning_rate=schedule(step))`` (->
``optax.inject_hyperparams``), with Momentum (nesterov, weight decay) and Adam
(weight decay).
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from linen_upgrade.config import Config
from linen_upgrade.pipeline import rewrite_text
from linen_upgrade.registry import all_rules

RTOL = 1e-5

TEMPLATE = '''
import jax
import jax.numpy as jnp
import numpy as np
from flax import optim


def lr_fn(step):
    return 0.05 * 0.5 ** (step // 3)


def make_optimizer(params):
    optimizer_def = {ctor}
    optimizer = optimizer_def.create(params)
    return optimizer


@jax.jit
def train_step(optimizer, x, y):
    def loss_fn(p):
        return jnp.mean((x @ p['w'] + p['b'] - y) ** 2)
    loss, grad = jax.value_and_grad(loss_fn)(optimizer.target)
    {update}
    return optimizer, loss


def main():
    rs = np.random.RandomState(0)
    x = jnp.asarray(rs.randn(16, 3), jnp.float32)
    y = jnp.asarray(rs.randn(16, 2), jnp.float32)
    params = {{'w': jnp.asarray(rs.randn(3, 2), jnp.float32), 'b': jnp.zeros((2,), jnp.float32)}}
    optimizer = make_optimizer(params)
    for _ in range(8):
        optimizer, loss = train_step(optimizer, x, y)
        print('step', int(optimizer.state.step), 'loss', float(loss))
    optimizer = optimizer.replace(target=jax.tree_util.tree_map(lambda p: p * 0.5, optimizer.target))
    optimizer, loss = train_step(optimizer, x, y)
    print('final', int(optimizer.state.step), float(loss), [float(v) for v in optimizer.target['w'].ravel()])


main()
'''
PLAIN = "optimizer = optimizer.apply_gradient(grad)"
SCHEDULED = "optimizer = optimizer.apply_gradient(grad, learning_rate=lr_fn(optimizer.state.step))"
CASES = {
    "momentum": ("optim.Momentum(learning_rate=0.05, beta=0.8, weight_decay=1e-2, nesterov=True)", PLAIN),
    "adam": ("optim.Adam(learning_rate=0.05, weight_decay=1e-2)", PLAIN),
    "momentum_scheduled": ("optim.Momentum(learning_rate=0.05, beta=0.8, nesterov=True)", SCHEDULED),
    "adam_scheduled": ("optim.Adam(learning_rate=0.1, weight_decay=1e-3)", SCHEDULED),
    "sgd_scheduled": ("optim.GradientDescent(learning_rate=0.1)", SCHEDULED),
}


def _source(case: str) -> str:
    ctor, update = CASES[case]
    return TEMPLATE.format(ctor=ctor, update=update)


def _upgrade(source: str) -> str:
    result = rewrite_text(source.encode("utf-8"), "main.py", Config(), [r.id for r in all_rules()])
    assert result.error is None, result.error
    return result.new.decode("utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_upgraded_code_has_no_leftovers(case):
    code = _upgrade(_source(case))
    assert "TODO(linen-upgrade)" not in code, code
    assert "flax.optim" not in code and "from flax import optim" not in code, code
    assert "TrainState.create(" in code
    assert ("inject_hyperparams" in code) == (CASES[case][1] == SCHEDULED), code


@pytest.mark.legacy
@pytest.mark.parametrize("case", sorted(CASES))
def test_upgraded_loop_prints_the_legacy_numbers(case, tmp_path):
    from linen_upgrade.verify import legacy_env, runner
    from linen_upgrade.verify.program import compare_outputs

    legacy_env.ensure()
    source = _source(case)
    (tmp_path / "legacy.py").write_text(source)
    (tmp_path / "upgraded.py").write_text(_upgrade(source))
    legacy = runner.run_legacy(str(tmp_path / "legacy.py"), timeout=300)
    assert legacy.ok, legacy.stderr[-3000:]
    modern = subprocess.run([sys.executable, str(tmp_path / "upgraded.py")], capture_output=True, text=True,
                            timeout=300, env=runner.platform_env(None))
    assert modern.returncode == 0, modern.stderr[-3000:]
    compared = compare_outputs(legacy.stdout, modern.stdout, rtol=RTOL)
    assert compared.ok, "\n".join(f"line {m.line}: {m.kind}: legacy {m.legacy_line!r} / upgraded "
                                  f"{m.upgraded_line!r}" for m in compared.mismatches)
    assert compared.numbers >= 9 * 2
