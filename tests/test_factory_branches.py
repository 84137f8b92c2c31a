"""What LU102 reads from a function that returns a module definition in some
branches and a plain function in others (``rules/_factory_branches.py``): the
factory's file and its callers decide from its body alone, so every form it
does not follow must read as None in both (the fixture pairs and the program
normalizer_factory prove the conversions it does)."""
from __future__ import annotations

import libcst as cst
import pytest

from linen_upgrade.engine import facts_for
from linen_upgrade.index import ProjectIndex
from linen_upgrade.rules._factory_branches import read_branches

NORMALIZER = """\
def get_normalizer(kind, train):
    if kind == 'batch':
        return nn.BatchNorm.partial(use_running_average=not train, momentum=0.9)
    elif kind == 'layer':
        return nn.LayerNorm
    def identity(x, name=None):
        return x
    return identity
"""


def _read(body: str):
    source = f"from flax import nn\n\n\n{body}"
    facts = facts_for(source.encode(), "norms.py", "norms")
    fn = cst.parse_module(source).body[-1]
    assert isinstance(fn, cst.FunctionDef)
    return read_branches(fn, facts, ProjectIndex.build([facts]), fn.name.value)


def test_normalizer_factory():
    branches = _read(NORMALIZER)
    assert branches is not None
    assert branches.defs == (("flax.nn.BatchNorm", frozenset({"use_running_average", "momentum"})),
                             ("flax.nn.LayerNorm", frozenset()))
    assert len(branches.plain) == 1


@pytest.mark.parametrize("body", [
    # a generator: calling it returns no definition
    NORMALIZER.replace("    return identity\n", "    yield identity\n    return identity\n"),
    # its own function bound again: what it returns is not that def
    NORMALIZER.replace("    return identity\n", "    identity = None\n    return identity\n"),
    # a decorated function (an @nn.module, say)
    NORMALIZER.replace("    def identity", "    @decorate\n    def identity"),
    # nn bound in the function: not flax's
    NORMALIZER.replace("    if kind == 'batch':", "    nn = registry\n    if kind == 'batch':"),
    # functools.partial could not be written in it
    NORMALIZER.replace("    if kind == 'batch':", "    partial = None\n    if kind == 'batch':"),
    # a registry, a call, a bare return: not followed
    NORMALIZER.replace("return nn.LayerNorm", "return NORMS[kind]"),
    NORMALIZER.replace("return nn.LayerNorm", "return make_layer_norm()"),
    NORMALIZER.replace("return nn.LayerNorm", "return"),
    # a .partial fixing a call input (x) or keywords known at run time
    NORMALIZER.replace("momentum=0.9)", "x=None)"),
    NORMALIZER.replace("momentum=0.9)", "**config)"),
    # one definition in every branch: LU102's single-definition path follows those
    "def batch_norm(train):\n    if train:\n        return nn.BatchNorm.partial(momentum=0.9)\n"
    "    return nn.BatchNorm.partial(momentum=0.9)\n",
    # no module definition at all
    "def activation(kind):\n    def identity(x):\n        return x\n    return identity\n",
], ids=["generator", "rebound", "decorated", "nn-shadowed", "partial-shadowed", "registry", "call",
        "bare-return", "input-fixed", "star-keywords", "one-definition", "no-definition"])
def test_not_followed(body):
    assert _read(body) is None
