"""LU106's copies of flax.nn's array functions, proven against the real flax 0.3.6.

``fixtures/equivalence/nn_functions_legacy.py`` calls ``make_padding_mask``,
``_make_causal_mask``, ``_invert_perm`` and ``dot_product_attention`` through
every import spelling on masks of every form (padding and segment-id masks,
one and two attention axes, explicit ``attention_axis``, one head, batch of
one, under ``jit``, and arguments legacy rejects) and on attention (a bias,
one or two axes, a positional dtype, dropout broadcast or not).  It runs on flax 0.3.6 as it is, and on current
Flax and JAX after linen-upgrade rewrote it (no hand edits): each result must
be the same array, of the same dtype, or the same error.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import FIXTURES, upgrade_file
from linen_upgrade.tables.nn_functions import NN_FUNCTIONS
from linen_upgrade.tables.nn_symbols import NN_SYMBOLS

LEGACY = FIXTURES / "equivalence" / "nn_functions_legacy.py"


def _results(path) -> dict:
    with np.load(path) as data:
        return dict(data)


@pytest.mark.legacy
def test_copied_functions_compute_what_flax_0_3_6_did(tmp_path):
    from linen_upgrade.verify import legacy_env, runner

    legacy_env.ensure()
    legacy = runner.run_legacy(str(LEGACY), args=[str(tmp_path / "legacy.npz")], timeout=300)
    assert legacy.ok, legacy.stderr[-3000:]

    upgraded = upgrade_file(LEGACY, tmp_path)
    text = upgraded.read_text()
    assert not re.search(r"^(from flax\.nn\b|from flax import nn\b|import flax\.nn\b)", text, re.M)
    assert all(f"def {f.__name__}(" in text for f in NN_FUNCTIONS.values())
    modern = runner.run_modern(str(upgraded), args=[str(tmp_path / "modern.npz")], timeout=300)
    assert modern.ok, modern.stderr[-3000:]

    want, got = _results(tmp_path / "legacy.npz"), _results(tmp_path / "modern.npz")
    assert sorted(got) == sorted(want)
    errors = {name for name, v in want.items() if v.dtype.kind == "U"}
    assert 0 < len(errors) < len(want) / 3, errors  # mostly masks: the cases exercise the functions
    for name, value in want.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_every_copied_function_is_a_legacy_symbol_without_linen_name():
    """Where LU106 cannot copy one (its name taken), LU100/LU901 still report it.  Legacy
    ``dot_product_attention`` is copied where it is called (LU106 reports a call it cannot
    copy); a value of it (``attention_fn=``) is Linen's, which Linen attention calls alike."""
    for qual in NN_FUNCTIONS:
        if qual == "flax.nn.dot_product_attention":
            assert NN_SYMBOLS[qual].linen == "dot_product_attention"
            continue
        assert NN_SYMBOLS[qual].linen is None and NN_SYMBOLS[qual].guideline, qual
