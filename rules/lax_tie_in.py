"""LU403 lax_tie_in: ``lax.tie_in(x, y)`` becomes ``y``.

What it does
    Drops ``jax.lax.tie_in``, which current JAX removed.
Why
    Since omnistaging (jax 0.2) ``tie_in`` returned its second argument
    unchanged; legacy ``flax.nn.attention`` code still called it.
Safe because
    The call was already the identity on ``y``; ``x`` is evaluated for nothing
    but a pure value.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rule import Context, Example, NoChange, Rule, RuleTransformer
from linen_upgrade.rules._cst import call_args_plain


class LaxTieIn(Rule):
    id = "LU403"
    summary = "lax.tie_in(x, y) -> y (an identity since jax 0.2, removed since)"
    examples = [
        Example(
            "from jax import lax\n\nbias = lax.tie_in(x, jnp.zeros(shape))\n",
            "from jax import lax\n\nbias = jnp.zeros(shape)\n",
        ),
        NoChange("def tie_in(a, b):\n    return a\n\ntie_in(1, 2)\n", name="local function"),
    ]


    def transformer(self, ctx: Context) -> RuleTransformer:
        return _Transformer(self, ctx)


class _Transformer(RuleTransformer):
    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if self.resolve(original.func) != "jax.lax.tie_in":
            return updated
        if len(updated.args) != 2 or not call_args_plain(updated) or any(a.keyword for a in updated.args):
            self.todo("lax.tie_in was removed from JAX; it returned its second argument")
            return updated
        self.fixed("lax.tie_in(x, y) -> y")
        value = updated.args[1].value
        if updated.lpar:
            return value.with_changes(lpar=updated.lpar, rpar=updated.rpar)
        return value
