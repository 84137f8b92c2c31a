"""LU303's cheap pre-check (``_batch_stats_plan.may_thread``), read from the LibCST tree before
the module's code is made: the answers of the ``ast`` test it replaced (recorded from it, and
compared on every corpus and fixture file when it moved)."""

import libcst as cst
import pytest

from linen_upgrade.rules._batch_stats_plan import may_thread

CASES = [
    ("x = T.create(a)\nx, s = f(x, s)\n", True),
    ("x = T.create(a)\nx, s = f(*x, s)\n", False),  # *args passes no name
    ("x = T.create(a)\nx, s = f(x, *s)\n", False),
    ("x = T.create(a)\nx, s = f(x, **s)\n", True),  # **kwargs counts, as ast's keywords
    ("x = T.create(a)\nx, s = f(x, k=s)\n", True),
    ("x = y = T.create(a)\ny, s = f(y, s)\n", True),
    ("x = T.create(a)\n(x, s) = f(x, s)\n", True),
    ("x = T.create(a)\n[x, s] = f(x, s)\n", False),  # a list target is not a tuple
    ("x = T.create(a)\nx, *s = f(x, s)\n", False),
    ("x: T = T.create(a)\nx, s = f(x, s)\n", False),  # annotated: not an Assign
    ("x = create(a)\nx, s = f(x, s)\n", False),
    ("x = T.create(a)\nx, s = g = f(x, s)\n", True),  # the first target is the tuple
    ("x = T.create(a)\ng = x, s = f(x, s)\n", False),
    ("x = T.create(a)\nx, s = f(x)\n", False),
    ("x = T.create(a)\nx, s = f(x, s.t)\n", False),
    ("def g():\n    x = T.create(a)\n    x, s = f(x, s)\n", True),
    ("x, s = f(x, s)\nx = T.create(a)\n", True),  # order does not matter
    ("x = T.create(a)\ns, t = f(s, t)\n", False),
    ("x = T.create(a)\nx, s = (f(x, s))\n", True),
    ("x = T.create(a)\nx, s = f(x, s)[0]\n", False),
]


@pytest.mark.parametrize("source,expected", CASES)
def test_may_thread_answers_as_the_ast_test_did(source: str, expected: bool) -> None:
    assert may_thread(cst.parse_module(source)) is expected
