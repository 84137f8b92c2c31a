"""Runs that turn jax's 64-bit floats on (``tables.x64``): the converted layers keep the legacy dtypes.

Legacy layers made their parameters in jax's default float (float64 under x64); Linen's in float32
unless ``param_dtype`` says otherwise.  The program ``x64_default_float`` proves the numbers and dtypes
on flax 0.3.6; these tests pin which runs count as x64 and what is written where."""
from __future__ import annotations

from pathlib import Path

import pytest

from linen_upgrade.config import Config
from linen_upgrade.pipeline import run
from linen_upgrade.registry import all_rules

LAYERS = '''\
from flax import nn


def ramp(key, shape, dtype=jnp.float32):
    return jnp.linspace(-1.0, 1.0, shape[0] * shape[1], dtype=dtype).reshape(shape)


class Net(nn.Module):
    def apply(self, x):
        x = nn.Dense(x, 4, kernel_init=ramp)
        shared = nn.Dense.shared(features=3, name='tied')
        x = nn.LayerNorm(shared(nn.Dense(x, 3, dtype=jnp.float64)))
        carry = nn.GRUCell.initialize_carry(nn.make_rng(), (x.shape[0],), 3)
        _, y = nn.GRUCell(carry, shared(x))
        return nn.SelfAttention(y[:, None], num_heads=1)
'''

SWITCHES = {
    "config": 'import jax\njax.config.update("jax_enable_x64", True)\n',
    "config_object": 'from jax.config import config\nconfig.update("jax_enable_x64", True)\n',
    "environment": 'import os\nos.environ["JAX_ENABLE_X64"] = "1"\n',
    "context": 'import jax.experimental\n\nwith jax.experimental.enable_x64():\n    pass\n',
}


def _upgrade(tmp_path: Path, main: str, name: str = "layers.py") -> str:
    """main.py (``main``) imports models.py, which imports layers.py; other.py, the same layers, is
    imported by no file of the run."""
    for layers in ("layers.py", "other.py"):
        (tmp_path / layers).write_text("import jax.numpy as jnp\n" + LAYERS)
    (tmp_path / "models.py").write_text("from layers import Net\n")
    (tmp_path / "main.py").write_text(main + "import models\n")
    result = run(sorted(tmp_path.glob("*.py")), Config(), [r.id for r in all_rules()], jobs=1)
    out = {Path(r.path).name: r for r in result.results}
    assert out[name].error is None and not out[name].findings
    return out[name].new.decode()


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_layers_of_an_x64_run_keep_the_legacy_dtypes(tmp_path, switch):
    """The switch sits in a file that imports the layers through another; every kind of conversion
    gets the attributes."""
    layers = _upgrade(tmp_path, SWITCHES[switch])
    assert "shared = nn.Dense(features=3, name='tied', param_dtype=float, dtype='float32')" in layers
    # a dtype the legacy call gave is kept, and only the parameters' dtype is added
    assert "nn.Dense(3, dtype=jnp.float64, param_dtype=float)(x)" in layers
    assert "nn.LayerNorm(param_dtype=float, dtype='float32')" in layers
    assert "nn.GRUCell(features=3, param_dtype=float, parent=None).initialize_carry(" in layers
    assert "nn.GRUCell(features=carry.shape[-1], param_dtype=float)(carry, shared(x))" in layers
    # legacy attention made float32 parameters under x64 too: only its computation dtype is kept
    assert "nn.MultiHeadDotProductAttention(num_heads=1, deterministic=False, dtype='float32')" in layers
    # legacy called a user initializer init(key, shape): its own float32 default, where Linen would pass
    # param_dtype (program x64_user_initializers)
    assert ("nn.Dense(4, kernel_init=lambda key, shape, dtype=None: ramp(key, shape), param_dtype=float, "
            "dtype='float32')(x)") in layers


def test_runs_without_x64_are_written_as_before(tmp_path):
    layers = _upgrade(tmp_path, 'import jax\njax.config.update("jax_debug_nans", True)\n')
    assert "param_dtype" not in layers and "'float32'" not in layers
    assert "nn.Dense(3, dtype=jnp.float64)(x)" in layers
    assert "nn.Dense(4, kernel_init=ramp)(x)" in layers  # Linen passes float32, the function's default


def test_x64_reaches_only_the_files_an_x64_program_imports(tmp_path):
    """One run over several programs (a monorepo): a file no x64 program imports is written as before."""
    other = _upgrade(tmp_path, SWITCHES["config"], name="other.py")
    assert "param_dtype" not in other and "nn.Dense(3, dtype=jnp.float64)(x)" in other
