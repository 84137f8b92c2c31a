"""LU100 nn_imports: ``flax.nn`` imports and dotted uses to ``flax.linen``.

What it does
    ``from flax import nn`` -> ``from flax import linen as nn``;
    ``import flax.nn as nn`` -> ``import flax.linen as nn``;
    ``from flax.nn import Dense`` -> ``from flax.linen import Dense``;
    ``flax.nn.Dense`` -> ``flax.linen.Dense``; ``nn.base.Module`` ->
    ``nn.Module``; ``flax.deprecated.nn`` likewise.  Names are looked up in
    ``linen_upgrade/tables/nn_symbols.py``.
Why
    ``flax.nn`` is gone from current Flax; the local alias is kept so the code
    that uses it does not move.
Runs last
    Every other rule recognises legacy code by these imports, so they change
    after all rules have run.  A symbol with no Linen name (``nn.Model``,
    ``nn.stateful``, ...) that no rule removed stays imported from the old
    place with a TODO.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.resolve import canonical, dotted
from linen_upgrade.rule import Context, Example, NoChange, Rule, RuleTransformer
from linen_upgrade.tables.nn_symbols import NN_NAMESPACE_MODULES, NN_SYMBOLS
from linen_upgrade.rules._cst import build_dotted, rename_imported_modules

_LEGACY_ROOTS = ("flax.nn", "flax.deprecated.nn")


def _is_legacy_nn(qual: str) -> bool:
    return qual == "flax.nn" or qual.startswith("flax.nn.")


class NnImports(Rule):
    id = "LU100"
    order = 100
    summary = "flax.nn / flax.deprecated.nn imports and dotted uses -> flax.linen"
    examples = [
        Example("from flax import nn\n", "from flax import linen as nn\n", name="from flax import nn"),
        Example("import flax.nn as nn\n", "import flax.linen as nn\n", name="import as"),
        Example("from flax.deprecated import nn\n", "from flax import linen as nn\n", name="deprecated"),
        Example(
            "import flax\n\nact = flax.nn.relu\n",
            "import flax\n\nact = flax.linen.relu\n",
            name="dotted use",
        ),
        Example(
            "from flax.nn import Dense, initializers\n",
            "from flax.linen import Dense, initializers\n",
            name="names",
        ),
        NoChange("from flax import linen as nn\n\nclass M(nn.Module):\n    pass\n", name="modern linen"),
        NoChange("import torch.nn as nn\n\nnn.Module.apply(m, f)\n", name="torch"),
    ]


    def transformer(self, ctx: Context) -> RuleTransformer:
        return _Transformer(self, ctx)


class _Transformer(RuleTransformer):
    # -- dotted uses -----------------------------------------------------------
    def visit_Attribute(self, node: cst.Attribute) -> bool:
        # a whole Name/Attribute chain is handled at its top (leave_Attribute)
        return dotted(node) is None

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        name = dotted(original)
        qual = self.resolve(original) if name else None
        if not qual or not _is_legacy_nn(qual) or qual == "flax.nn":
            if qual == "flax.nn" and name and self._root_target(name) == "flax":
                return self._replace(updated, f"{name.split('.')[0]}.linen")
            return updated
        head = name.split(".")[0]  # type: ignore[union-attr]
        target = self._root_target(name)  # type: ignore[arg-type]
        if target == "flax":
            linen = f"{head}.linen"
        elif target == "flax.nn" or target in NN_NAMESPACE_MODULES:
            linen = head
        else:  # bound to a symbol: the import carries the change
            return updated
        parts = qual.split(".")
        row = NN_SYMBOLS.get(".".join(parts[:3]))
        if row is None or row.linen is None:
            return updated
        new = ".".join([linen, row.linen, *parts[3:]])
        return updated if new == name else self._replace(updated, new)

    def _root_target(self, name: str) -> str:
        return canonical(self.ctx.facts.imports.aliases.get(name.split(".")[0], ""))

    def _replace(self, updated: cst.Attribute, new: str) -> cst.BaseExpression:
        self.fixed(f"{cst.helpers.get_full_name_for_node(updated)} -> {new}")
        return build_dotted(new).with_changes(lpar=updated.lpar, rpar=updated.rpar)

    # -- imports ---------------------------------------------------------------
    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def leave_Import(self, original: cst.Import, updated: cst.Import) -> cst.Import:
        def new_name(old: str, alias: cst.ImportAlias) -> str | None:
            qual = canonical(old)
            if not _is_legacy_nn(qual):
                return None
            if alias.asname is not None and qual in NN_NAMESPACE_MODULES:
                return "flax.linen"
            return "flax.linen" + qual[len("flax.nn"):]

        return rename_imported_modules(updated, new_name, self.fixed)

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine,
                                  updated: cst.SimpleStatementLine):
        if len(updated.body) != 1 or not isinstance(updated.body[0], cst.ImportFrom):
            return updated
        stmt = updated.body[0]
        if isinstance(stmt.names, cst.ImportStar) or stmt.relative or stmt.module is None:
            return updated
        module = cst.helpers.get_full_name_for_node(stmt.module) or ""
        cmodule = canonical(module)
        keep: list[cst.ImportAlias] = []
        to_linen: list[cst.ImportAlias] = []  # from flax.linen import ...
        to_sub: dict[str, list[cst.ImportAlias]] = {}  # from flax.linen.<submodule> import ...
        as_linen: list[str] = []  # from flax import linen as <name>
        for alias in stmt.names:
            name = alias.name.value if isinstance(alias.name, cst.Name) else ""
            local = alias.asname.name.value if alias.asname else name  # type: ignore[union-attr]
            qual = canonical(f"{module}.{name}")
            if cmodule in ("flax", "flax.deprecated") and qual == "flax.nn":
                as_linen.append(local)
            elif not _is_legacy_nn(cmodule):
                keep.append(alias)
            elif cmodule == "flax.nn.initializers":
                to_sub.setdefault("flax.linen.initializers", []).append(alias)
            elif qual in NN_NAMESPACE_MODULES:
                as_linen.append(local)
            elif (row := NN_SYMBOLS.get(qual)) is not None and row.linen is not None:
                # a name of a flax.linen submodule (``linear.default_kernel_init``) is imported from it
                sub, _, short = row.linen.rpartition(".")
                asname = None if local == short else cst.AsName(name=cst.Name(local))
                new = cst.ImportAlias(name=cst.Name(short), asname=asname)
                if sub:
                    to_sub.setdefault(f"flax.linen.{sub}", []).append(new)
                else:
                    to_linen.append(new)
            else:
                keep.append(alias)
                guideline = row.guideline if row else "not part of flax.linen"
                self.todo(f"{qual} has no flax.linen equivalent: {guideline}")
        if not (to_linen or to_sub or as_linen):
            return updated
        self.fixed(f"from {module} import ... -> flax.linen")
        new_stmts: list[cst.BaseSmallStatement] = []
        if as_linen and cmodule == "flax":
            # ``from flax import nn, optim`` -> ``from flax import linen as nn, optim``
            new_stmts.append(stmt.with_changes(names=_commas([
                *(cst.ImportAlias(name=cst.Name("linen"), asname=cst.AsName(name=cst.Name(n)))
                  for n in as_linen), *keep])))
            as_linen = []
        elif keep:
            new_stmts.append(stmt.with_changes(names=_commas(keep)))
        for local in as_linen:
            new_stmts.append(cst.ImportFrom(module=cst.Name("flax"), names=[cst.ImportAlias(
                name=cst.Name("linen"), asname=cst.AsName(name=cst.Name(local)))]))
        if to_linen:
            new_stmts.append(cst.ImportFrom(module=build_dotted("flax.linen"), names=_commas(to_linen)))
        for sub, aliases in to_sub.items():
            new_stmts.append(cst.ImportFrom(module=build_dotted(sub), names=_commas(aliases)))
        lines = [cst.SimpleStatementLine(body=[s]) for s in new_stmts]
        lines[0] = lines[0].with_changes(leading_lines=updated.leading_lines,
                                         trailing_whitespace=updated.trailing_whitespace)
        return cst.FlattenSentinel(lines)


def _commas(aliases: list[cst.ImportAlias]) -> list[cst.ImportAlias]:
    """Separators rebuilt: the last alias of a moved list must not keep its comma."""
    return [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in aliases]
