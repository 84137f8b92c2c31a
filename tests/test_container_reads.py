"""LU101 and a list or dict attribute handed to a function of another file of the run
(rules/_usage_reads.py): the module converts when that function only reads the parameter
it fills (index, iterate, measure, membership, ``is None``, a jax function), or returns
it as is to the very name the caller passed; anything else, or a function the run does
not hold, keeps the class legacy with a TODO. Proven on flax 0.3.6 by the program
container_read_by_other_file."""
from __future__ import annotations

from pathlib import Path

import pytest

from linen_upgrade.config import Config
from linen_upgrade.pipeline import run
from linen_upgrade.registry import all_rules

MAIN = '''\
import jax
import jax.numpy as jnp
from flax import nn

import helpers


class Net(nn.Module):
    def apply(self, x, widths):
        {use}
        return nn.Dense(x, 2)


y, params = Net.init(jax.random.PRNGKey(0), jnp.ones((1, 3)), widths=[3, 2])
'''

READS = {
    "indexed and iterated": ("def f(w):\n    return [v for v in w][0] + w[-1] + len(w)\n", "n = helpers.f(widths)"),
    "membership and is None": ("def f(w, k):\n    if w is None or k in w:\n        return 1\n    return 0\n",
                               "n = helpers.f(widths, 3)"),
    "a jax function": ("import jax.numpy as jnp\n\n\ndef f(w):\n    return jnp.sum(jnp.asarray(w))\n",
                       "n = helpers.f(widths)"),
    "by keyword, rebound there": ("def f(n, w=None):\n    if w is None:\n        w = [1] * n\n    return w\n",
                                  "widths = helpers.f(2, w=widths)"),
}
MORE = {
    "mutated": ("def f(w):\n    w.append(1)\n    return len(w)\n", "n = helpers.f(widths)"),
    "extended in place": ("def f(w):\n    w += [1]\n    return len(w)\n", "n = helpers.f(widths)"),
    "compared": ("def f(w):\n    return w == [3, 2]\n", "n = helpers.f(widths)"),
    "stored": ("SEEN = []\n\n\ndef f(w):\n    SEEN.append(w)\n", "helpers.f(widths)"),
    "item assigned": ("def f(w):\n    w[0] = 1\n", "helpers.f(widths)"),
    "passed on": ("import other\n\n\ndef f(w):\n    return other.g(w)\n", "n = helpers.f(widths)"),
    "aliased": ("def f(w):\n    v = w\n    return len(v)\n", "n = helpers.f(widths)"),
    "closed over": ("def f(w):\n    def g():\n        return len(w)\n    return g()\n", "n = helpers.f(widths)"),
    "returned to another name": ("def f(w):\n    return w\n", "other = helpers.f(widths)"),
    "returned in a tuple": ("def f(w):\n    return w, 1\n", "widths, n = helpers.f(widths)"),
    "a builtin rebound there": ("def len(w):\n    return w.pop()\n\n\ndef f(w):\n    return len(w)\n",
                                "n = helpers.f(widths)"),
    "decorated": ("import functools\n\n\n@functools.lru_cache()\ndef f(w):\n    return len(w)\n",
                  "n = helpers.f(widths)"),
    "defined twice": ("def f(w):\n    return len(w)\n\n\nf = print\n", "n = helpers.f(widths)"),
    "a star argument": ("def f(*w):\n    return len(w)\n", "n = helpers.f(*widths)"),
    "not in the run": ("", "n = helpers.missing(widths)"),
}


def _lu101(tmp_path: Path, helper: str, use: str) -> list[str]:
    (tmp_path / "helpers.py").write_text(helper)
    (tmp_path / "main.py").write_text(MAIN.format(use=use))
    result = run(sorted(tmp_path.glob("*.py")), Config(), [r.id for r in all_rules()], jobs=1)
    found = []
    for r in result.results:
        assert r.error is None, r.error
        found += [f.message for f in r.findings if f.rule == "LU101" and Path(r.path).name == "main.py"]
    return found


@pytest.mark.parametrize("case", sorted(READS))
def test_function_of_another_file_reading_the_attribute(tmp_path, case):
    assert _lu101(tmp_path, *READS[case]) == []


@pytest.mark.parametrize("case", sorted(MORE))
def test_function_doing_more_keeps_the_todo(tmp_path, case):
    found = _lu101(tmp_path, *MORE[case])
    assert any("does more than read it" in m for m in found), found
