"""rules/_usage_reads.py: which parameters a function of another file only reads (index,
iterate, measure, membership, ``is None``, truth, a builtin reader or a jax function), or
also returns as is; anything else (mutation, a store, an alias, a closure, other code) is
more than reading."""
from __future__ import annotations

import ast

import pytest

from linen_upgrade.rules._usage_reads import READ, RETURNED, _File, _reads

CASES = {
    "indexed and iterated": ("def f(w):\n    return [v for v in w][0] + w[-1] + len(w)\n", READ),
    "membership and is None": ("def f(w, k):\n    if w is None or k in w:\n        return 1\n    return 0\n", READ),
    "read methods": ("def f(w):\n    return sorted(w.keys()), w.get('a', 1)\n", READ),
    "a jax function": ("import jax.numpy as jnp\n\n\ndef f(w):\n    return jnp.sum(jnp.asarray(w))\n", READ),
    "a jax keyword": ("from jax import lax\n\n\ndef f(x, w):\n    return lax.pad(x, 0.0, padding_config=w)\n", READ),
    "truth": ("def f(w):\n    if not w:\n        return 0\n    return 1\n", READ),
    "returned or rebuilt": ("def f(n, w=None):\n    if w is None:\n        w = [1] * n\n    return w\n", RETURNED),
    "mutated": ("def f(w):\n    w.append(1)\n", None),
    "extended in place": ("def f(w):\n    w += [1]\n", None),
    "compared": ("def f(w):\n    return w == [3, 2]\n", None),
    "compared by identity": ("def f(w, v):\n    return w is v\n", None),
    "stored": ("SEEN = []\n\n\ndef f(w):\n    SEEN.append(w)\n", None),
    "item assigned": ("def f(w):\n    w[0] = 1\n", None),
    "item deleted": ("def f(w):\n    del w[0]\n", None),
    "passed on": ("import other\n\n\ndef f(w):\n    return other.g(w)\n", None),
    "jax.tree_util": ("import jax\n\n\ndef f(w):\n    return jax.tree_util.tree_leaves(w)\n", None),
    "aliased": ("def f(w):\n    v = w\n    return len(v)\n", None),
    "or": ("def f(w):\n    return len(w or [])\n", None),
    "closed over": ("def f(w):\n    def g():\n        return len(w)\n    return g()\n", None),
    "in a lambda": ("def f(w):\n    return (lambda: w)()\n", None),
    "returned in a tuple": ("def f(w):\n    return w, 1\n", None),
    "a builtin rebound": ("def len(w):\n    return w.pop()\n\n\ndef f(w):\n    return len(w)\n", None),
    "unpacked into a call": ("def f(w):\n    return max(*w)\n", None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_parameter_reads(case):
    source, expected = CASES[case]
    file = _File(source.encode())
    fn = next(s for s in file.tree.body if isinstance(s, ast.FunctionDef) and s.name == "f")
    assert _reads(fn, "w", file) == expected
