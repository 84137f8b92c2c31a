"""Legacy constructs as ``linen-upgrade status`` counts them, one row per kind.

Each row is a regular expression over code whose comments and strings are
blanked out (``linen_upgrade.constructs.code_only``), and the rule that
converts it.  A spelling that is ambiguous outside Flax code (``optim.Adam(``
is also ``torch.optim``, ``def apply(self`` is also a pandas-like helper) is
``flax_only``: it counts only in files whose code names ``flax``.  A match is
counted once: ``flax.nn.Model`` is a ``flax.nn`` path, not also an
``nn.Model``.  The same rows find legacy code in notebook lines the rules
never see (shell lines, magics, cells of other languages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from linen_upgrade.tables.jax_renames import JAX_INDEX_OPS, JAX_RENAMES


@dataclass(frozen=True)
class Construct:
    kind: str
    pattern: re.Pattern[str]
    rule: str  # the rule that converts it (or marks it, LU901)
    flax_only: bool = False


def _row(kind: str, pattern: str, rule: str, flax_only: bool = False) -> Construct:
    return Construct(kind, re.compile(pattern, re.MULTILINE), rule, flax_only)


# not after a dot or a word character: ``nn.Model`` but not ``flax.nn.Model`` or ``xnn.Model``
_START = r"(?<![\w.])"


def _package(name: str) -> str:
    """``from flax import nn`` (also in a list, not ``linen as nn``),
    ``import flax.nn``, ``from flax.nn.x import y`` and ``flax.nn.X`` in code."""
    listed = rf"\bfrom\s+flax(?:\.deprecated)?\s+import\s+\(?\s*(?:\w+(?:\s+as\s+\w+)?\s*,\s*)*{name}\b"
    return rf"{listed}|{_START}flax\.(?:deprecated\.)?{name}\b"


LEGACY_CONSTRUCTS: tuple[Construct, ...] = (
    _row("flax.nn", _package("nn"), "LU100"),
    _row("flax.optim", _package("optim"), "LU301"),
    _row("def apply(self", r"^[ \t]+def[ \t]+apply[ \t]*\(\s*self\b", "LU101", flax_only=True),
    _row("Module.partial(", rf"{_START}(?:nn\.)?[A-Z]\w*\.partial\(", "LU103", flax_only=True),
    _row("Module.shared(", rf"{_START}(?:nn\.)?[A-Z]\w*\.shared\(", "LU103", flax_only=True),
    _row("self.state(", rf"{_START}self\.state\(", "LU104", flax_only=True),
    _row("nn.module_method", rf"{_START}nn\.module_method\b", "LU105"),
    _row("nn.make_rng(", rf"{_START}nn\.make_rng\(", "LU104"),
    _row(".init_by_shape(", r"\.(?:init|create)_by_shape\(", "LU201"),
    _row("nn.Model", rf"{_START}nn\.Model\b", "LU202"),
    _row("nn.stateful(", rf"{_START}nn\.stateful\(", "LU202"),
    _row("nn.stochastic(", rf"{_START}nn\.stochastic\(", "LU202"),
    _row("nn.Collection", rf"{_START}nn\.Collection\b", "LU202"),
    _row("nn.capture_module_outputs(", rf"{_START}nn\.capture_module_outputs\(", "LU202"),
    _row("optim.<Optimizer>(", rf"{_START}optim\.[A-Z]\w*\(", "LU301", flax_only=True),
    _row(".apply_gradient(", r"\.apply_gradient\(", "LU302"),
    # removed JAX names, written out in full (``jax.tree_multimap``)
    *(_row(name, _START + re.escape(name) + r"\b", "LU402" if name in JAX_INDEX_OPS else "LU401")
      for name in (*JAX_RENAMES, *JAX_INDEX_OPS)),
    _row("lax.tie_in", rf"{_START}(?:jax\.)?lax\.tie_in\b", "LU403"),
)

# a file is a Flax file when its code (not a comment or a string) names flax
FLAX_NAME = re.compile(rf"{_START}flax\b")
