"""Legacy attention ``cache=`` -> Linen ``decode=True``, proven against the real flax 0.3.6.

``fixtures/equivalence/attention_cache_legacy.py`` is rewritten by linen-upgrade
(no hand edits): the ``cache`` parameter of each module becomes a ``decode``
attribute passed on to the attention.  The legacy side
(``attention_cache_decode.py``) runs the full causal pass, then decodes one
position at a time with an ``nn.attention.Cache``; here the rewritten modules,
with the legacy weights carried over by ``keys.py``, do the same with
``decode=True`` and the 'cache' collection.  Compared: the full output, every
decoded step, and the final cache (keys, values and index of every attention).
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from linen_upgrade.config import Config
from linen_upgrade.pipeline import rewrite_text
from linen_upgrade.registry import all_rules

from conftest import FIXTURES, nested

pytestmark = pytest.mark.legacy

HERE = FIXTURES / "equivalence"
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> dict:
    from linen_upgrade.verify import legacy_env, runner

    legacy_env.ensure()
    out = tmp_path_factory.mktemp("cache") / "legacy.npz"
    res = runner.run_legacy(str(HERE / "attention_cache_decode.py"), args=[str(out)], timeout=300)
    assert res.ok, res.stderr[-3000:]
    with np.load(out) as data:
        return dict(data)


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory):
    path = HERE / "attention_cache_legacy.py"
    result = rewrite_text(path.read_bytes(), str(path), Config(), [r.id for r in all_rules()])
    assert result.error is None and result.new is not None
    assert result.findings == [], result.findings
    code = result.new.split(b'"""', 2)[2]  # after the docstring
    assert b"decode=self.decode" in code and b"cache=" not in code
    target = tmp_path_factory.mktemp("upgraded") / "attention_cache_upgraded.py"
    target.write_bytes(result.new)
    spec = importlib.util.spec_from_file_location("attention_cache_upgraded", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_decode_with_cache_matches_legacy(legacy, upgraded):
    import jax
    import jax.numpy as jnp

    from linen_upgrade.keys import compare_structure, convert_variables

    xs = jnp.asarray(legacy["xs"])
    batch, length, _ = xs.shape
    model = upgraded.Decoder(decode=True)
    # Linen sizes the cache from the init inputs: the full length, as legacy initialize_cache
    template = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros(xs.shape))
    legacy_cache = {"/" + path: entry for path, entry in _tree_by_path(legacy, "cache").items()}
    converted = convert_variables(nested(legacy, "params"), legacy_cache, collection="cache", template=template)
    assert compare_structure(converted, template) == []
    params = converted["params"]

    full = upgraded.Decoder().apply({"params": params}, xs)
    np.testing.assert_allclose(full, legacy["full"], rtol=RTOL, atol=ATOL)

    cache = jax.tree_util.tree_map(jnp.zeros_like, converted["cache"])  # a fresh cache, as initialize_cache
    step = jax.jit(lambda c, x: model.apply({"params": params, "cache": c}, x, mutable=["cache"]))
    steps = []
    for i in range(length):
        y, updated = step(cache, xs[:, i:i + 1])
        cache = updated["cache"]
        steps.append(y)
    steps = jnp.concatenate(steps, axis=1)
    np.testing.assert_allclose(steps, legacy["steps"], rtol=RTOL, atol=ATOL)

    want = jax.tree_util.tree_leaves_with_path(converted["cache"])
    got = dict(jax.tree_util.tree_leaves_with_path(cache))
    assert len(want) == len(got) == 3 * 3  # three cached attentions: key, value, index
    for path, value in want:
        np.testing.assert_allclose(np.asarray(got[path]), np.asarray(value).astype(np.asarray(got[path]).dtype),
                                   rtol=RTOL, atol=ATOL, err_msg=jax.tree_util.keystr(path))
    assert all(int(v) == length for p, v in want if jax.tree_util.keystr(p).endswith("['cache_index']"))


def _tree_by_path(data: dict, prefix: str) -> dict:
    """``cache/A/B/cached_key`` -> ``{'A/B': {'cached_key': ...}}`` (legacy state keys)."""
    out: dict = {}
    for key, value in data.items():
        if key.startswith(prefix + "/"):
            path, leaf = key[len(prefix) + 1:].rsplit("/", 1)
            out.setdefault(path, {})[leaf] = value
    return out


POSITION = HERE / "decode_position"


def test_decoding_position_and_tested_cache_match_legacy(tmp_path):
    """``decode_position/model.py``: a position embedding keeping the decoding position in the
    legacy Cache (the idiom of Flax's legacy lm1b/wmt) and blocks that test the cache, with a
    segmentation that the cached attention keeps, upgraded with no hand edits.  The legacy
    driver decodes through an ``nn.attention.Cache`` on flax 0.3.6; a Linen driver
    (``linen_main.py``, what a person writes for the decoding loop: LU102 leaves it a TODO) does
    the same with ``decode=True``; both print the whole sequence's logits, packed and not, and
    every step's, from the same numpy weights (seeded by shape)."""
    import shutil
    import sys

    from linen_upgrade.verify import runner
    from linen_upgrade.verify.program import compare_outputs

    path = POSITION / "model.py"
    result = rewrite_text(path.read_bytes(), str(path), Config(), [r.id for r in all_rules()])
    assert result.error is None and result.findings == [], result.findings
    assert b"self.has_variable('cache', 'cache_index')" in result.new and b"cache=" not in result.new
    (tmp_path / "model.py").write_bytes(result.new)
    shutil.copy(POSITION / "linen_main.py", tmp_path)

    legacy = runner.run_legacy(str(POSITION / "legacy_main.py"), timeout=300)
    assert legacy.ok, f"{legacy.reason}: {legacy.detail}\n{legacy.stderr[-3000:]}"
    modern = runner.run_process([sys.executable, str(tmp_path / "linen_main.py")], side="modern", timeout=300,
                                cwd=str(tmp_path), env=runner.platform_env(None))
    assert modern.ok, f"{modern.reason}: {modern.detail}\n{modern.stderr[-3000:]}"
    compared = compare_outputs(legacy.stdout, modern.stdout, rtol=2e-4)
    assert compared.ok, [(m.line, m.kind, m.legacy_line, m.upgraded_line) for m in compared.mismatches[:3]]
    lines = legacy.stdout.splitlines()
    assert sum(line.startswith("step") for line in lines) == 6
    # the segmentation counts: packed rows attend within their own sequence only
    assert lines[1].startswith("packed") and lines[0].split(" ", 1)[1] != lines[1].split(" ", 1)[1]
    assert compared.numbers >= 3 * (2 * 6 * 11)  # the whole sequence's logits, packed, and each step's
