"""LU401 jax_renames: JAX names legacy code used that current JAX moved or removed.

What it does
    Renames uses and imports of ``jax.tree_multimap``, ``jax.tree_*``,
    ``jax.util.partial``, ``jax.experimental.optimizers``/``stax``,
    ``DeviceArray`` spellings and the rest of
    ``linen_upgrade/tables/jax_renames.py``.
Why
    Upgraded Flax code runs on current JAX; one removed name stops the whole
    program before any Flax change matters.
Safe because
    Every row is a pure rename: same arguments, same result.  Names are
    matched through the file's imports, so a local ``tree_map`` is untouched.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rule import Context, Example, NoChange, Rule, RuleTransformer
from linen_upgrade.tables.jax_renames import JAX_RENAMES
from linen_upgrade.rules._cst import add_import, build_dotted, express, rename_imported_modules


class JaxRenames(Rule):
    id = "LU401"
    summary = "Removed JAX names (jax.tree_multimap, jax.tree_*, jax.util.partial, ...) to their current homes"
    examples = [
        Example(
            "import jax\n\nnew = jax.tree_multimap(lambda a, b: a + b, x, y)\n",
            "import jax\n\nnew = jax.tree_util.tree_map(lambda a, b: a + b, x, y)\n",
            name="attribute",
        ),
        Example(
            "from jax import tree_multimap, jit\n",
            "from jax import jit\nfrom jax.tree_util import tree_map as tree_multimap\n",
            name="from-import keeps the local name",
        ),
        Example(
            "from jax.util import partial\n",
            "from functools import partial\n",
            name="jax.util.partial",
        ),
        NoChange("def tree_multimap(f, *xs):\n    return f(*xs)\n\ntree_multimap(g, a)\n", name="local name"),
    ]


    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        transformer = _Transformer(self, ctx)
        module = module.visit(transformer)
        for name in sorted(transformer.needed_imports):
            module = add_import(module, name)
        return module


def _split_qual(qual: str) -> tuple[str, str]:
    module, _, name = qual.rpartition(".")
    return module, name


class _Transformer(RuleTransformer):
    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__(rule, ctx)
        self.needed_imports: set[str] = set()

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        new = JAX_RENAMES.get(self.resolve(original) or "")
        if new is None:
            return updated
        spelled, needed = express(new, self.ctx.facts.imports)
        if needed:
            self.needed_imports.add(needed)
        self.fixed(f"{self.resolve(original)} -> {new}")
        return build_dotted(spelled).with_changes(lpar=updated.lpar, rpar=updated.rpar)

    def leave_Import(self, original: cst.Import, updated: cst.Import) -> cst.Import:
        return rename_imported_modules(updated, lambda old, alias: JAX_RENAMES.get(old), self.fixed)

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine,
                                  updated: cst.SimpleStatementLine):
        if len(updated.body) != 1 or not isinstance(updated.body[0], cst.ImportFrom):
            return updated
        stmt = updated.body[0]
        if isinstance(stmt.names, cst.ImportStar) or stmt.relative:
            return updated
        module = cst.helpers.get_full_name_for_node(stmt.module) if stmt.module else ""
        keep, moved = [], []
        for alias in stmt.names:
            name = alias.name.value if isinstance(alias.name, cst.Name) else ""
            new = JAX_RENAMES.get(f"{module}.{name}")
            if new is None:
                keep.append(alias)
                continue
            local = alias.asname.name.value if alias.asname else name  # type: ignore[union-attr]
            new_module, new_name = _split_qual(new)
            asname = None if local == new_name else cst.AsName(name=cst.Name(local))
            moved.append(cst.SimpleStatementLine(body=[cst.ImportFrom(
                module=build_dotted(new_module),  # type: ignore[arg-type]
                names=[cst.ImportAlias(name=cst.Name(new_name), asname=asname)])]))
            self.fixed(f"from {module} import {name} -> {new}")
        if not moved:
            return updated
        if not keep:
            first = moved[0].with_changes(leading_lines=updated.leading_lines,
                                          trailing_whitespace=updated.trailing_whitespace)
            return cst.FlattenSentinel([first, *moved[1:]])
        keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return cst.FlattenSentinel([updated.with_changes(body=[stmt.with_changes(names=keep)]), *moved])
