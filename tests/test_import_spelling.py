"""Where the rewrite may write an import's alias: only names bound at the file's top.

An alias imported inside one function resolves there (the rules read that function right), but
``express`` must not write it anywhere else (NameError; programs ``import_inside_a_function`` and
``collections_name_at_top`` run it end to end)."""
import ast

from linen_upgrade.resolve import import_map
from linen_upgrade.rules._cst import express

SOURCE = """\
import jax
if jax:
    import numpy as np
try:
    from functools import partial
except ImportError:
    pass


def report(y):
    import jax.numpy as jnp
    from typing import Any
    return jnp.round(y)


class Holder:
    import dataclasses as dc
"""


def test_imports_inside_functions_and_classes_resolve_but_are_not_spelled():
    imports = import_map(ast.parse(SOURCE))
    assert imports.resolve_dotted("jnp.round") == "jax.numpy.round"  # still read where it is bound
    assert imports.nested == frozenset({"jnp", "Any", "dc"})
    assert express("jax.numpy.zeros", imports) == ("jax.numpy.zeros", None)
    assert express("numpy.ones", imports) == ("np.ones", None)  # bound in a top-level `if`
    assert express("functools.partial", imports) == ("partial", None)  # in a top-level `try`
    assert express("dataclasses.field", imports) == ("dataclasses.field", "dataclasses")


def test_an_alias_bound_at_the_top_and_in_a_function_is_spelled():
    imports = import_map(ast.parse("import jax.numpy as jnp\n\ndef f():\n    import jax.numpy as jnp\n"))
    assert imports.nested == frozenset()
    assert express("jax.numpy.zeros", imports) == ("jnp.zeros", None)
