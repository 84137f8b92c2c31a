"""LU402 jax_index_ops: ``jax.ops.index_update(x, idx, y)`` becomes ``x.at[idx].set(y)``.

What it does
    Rewrites ``jax.ops.index_update/add/mul/min/max`` into the ``.at[]``
    methods (table ``JAX_INDEX_OPS``), unwrapping ``jax.ops.index[...]``.
Why
    ``jax.ops.index_*`` were removed in jax 0.3.2; ``x.at[idx]`` is the
    functional-update form that replaced them, with the same semantics.
Safe because
    The arguments keep their order of evaluation except ``idx`` and ``x``
    when both have side effects, which index expressions do not.  Calls with
    ``*args``/``**kwargs`` or unknown keywords get a TODO.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rule import Context, Example, NoChange, Rule, RuleTransformer
from linen_upgrade.tables.jax_renames import JAX_INDEX_OPS
from linen_upgrade.rules._cst import call_args_plain, drop_from_imports, needs_parens, strip_comma

# keywords the .at[] methods accept as well
_PASSTHROUGH = frozenset({"indices_are_sorted", "unique_indices"})


class JaxIndexOps(Rule):
    id = "LU402"
    summary = "jax.ops.index_update/add/mul/min/max(x, idx, y) -> x.at[idx].set/add/...(y)"
    examples = [
        Example(
            "import jax\n\nx = jax.ops.index_update(x, jax.ops.index[0, :], 1.0)\n",
            "import jax\n\nx = x.at[0, :].set(1.0)\n",
        ),
        Example(
            "from jax import ops\n\ny = ops.index_add(a + b, i, v)\n",
            "from jax import ops\n\ny = (a + b).at[i].add(v)\n",
            name="operand needing parentheses",
        ),
        NoChange("x = x.at[0].set(1.0)\n", name="already current"),
    ]


    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        transformer = _Transformer(self, ctx)
        module = module.visit(transformer)
        if not transformer.left:
            # every use is gone: an import of a removed function would fail
            module = drop_from_imports(module, set(JAX_INDEX_OPS))
        return module


class _Transformer(RuleTransformer):
    left = 0  # calls that could not be converted

    def _index(self, expr: cst.BaseExpression) -> list[cst.SubscriptElement] | None:
        """The subscript elements of ``jax.ops.index[...]``/``np.index_exp[...]``, if it is one."""
        if isinstance(expr, cst.Subscript) and self.resolve(expr.value) in (
                "jax.ops.index", "jax.numpy.index_exp", "numpy.index_exp"):
            return list(expr.slice)
        return None

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        qual = self.resolve(original.func)
        method = JAX_INDEX_OPS.get(qual or "")
        if method is None:
            return updated
        positional = [a for a in updated.args if a.keyword is None]
        keywords = [a for a in updated.args if a.keyword is not None]
        if (not call_args_plain(updated) or len(positional) != 3
                or any(k.keyword.value not in _PASSTHROUGH for k in keywords)):  # type: ignore[union-attr]
            self.todo(f"{qual} was removed from JAX; use x.at[idx].{method}(y)")
            self.left += 1
            return updated
        x, idx, y = (a.value for a in positional)
        elements = self._index(idx) or [cst.SubscriptElement(slice=cst.Index(value=idx))]
        if needs_parens(x):
            x = x.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        at = cst.Subscript(value=cst.Attribute(value=x, attr=cst.Name("at")), slice=elements)
        args = [strip_comma(cst.Arg(value=y)), *keywords]
        args = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in args]
        self.fixed(f"{qual}(x, idx, y) -> x.at[idx].{method}(y)")
        return cst.Call(func=cst.Attribute(value=at, attr=cst.Name(method)), args=args,
                        lpar=updated.lpar, rpar=updated.rpar)
