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
    place with a TODO; one the file used and whose every use the rules
    converted goes (``from flax.nn.stochastic import make_rng``, where LU104
    gave the helpers drawing ``make_rng()`` a ``make_rng`` parameter: a
    parameter is not the import), unless another file of the run imports
    it from this one or ``__all__`` names it.
Star imports
    ``from flax.nn import *`` (or of ``flax.optim``, or a submodule) is left
    with a TODO: the names it brings are not converted.  Every name the file
    reads that nothing in it binds (it may come from there: ``Dense(x, 3)``,
    ``relu``, ``initializers.ones``) gets a TODO at its statement, since the
    class around it may be Linen now.  Only in a file this rule reads (one
    that also names ``flax.nn``); a file whose only legacy import is a star
    import is left as it is, with no finding.
"""

from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper, ScopeProvider

from linen_upgrade.resolve import canonical, dotted
from linen_upgrade.rule import Context, Example, FastVisitor, NoChange, Rule, RuleTransformer
from linen_upgrade.tables.nn_symbols import NN_NAMESPACE_MODULES, NN_SYMBOLS
from linen_upgrade.rules._cst import build_dotted, rename_imported_modules

_LEGACY_ROOTS = ("flax.nn", "flax.deprecated.nn")
# the legacy packages whose names a star import brings unconverted
_STAR_ROOTS = ("flax.nn", "flax.optim")
_STAR = ("the names it brings are not converted (a legacy class's body may be Linen now around them): "
         "write `from flax import nn` (or optim) and `nn.<name>`, then run again")
_FREE = ("{name} is bound nowhere in this file: it may come from {stars}, whose names are not "
         "converted: write `{pkg}.{name}` with `from flax import {pkg}`, then run again")


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
    def visit_Module(self, node: cst.Module) -> bool:
        shadowed = shadowed_by_params(node)
        names = _Uses(shadowed)
        node.visit(names)
        self._used = names.found | _listed_in_all(node)
        self._stars = _legacy_stars(node)
        self._free = _free_names(node) if self._stars else set()
        return super().visit_Module(node)

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) in self._free:
            pkg = "optim" if canonical(self._stars[0]).startswith("flax.optim") else "nn"
            stars = " or ".join(f"`from {star} import *`" for star in self._stars)
            self.todo(_FREE.format(name=node.value, stars=stars, pkg=pkg))

    def _still_needed(self, local: str) -> bool:
        """Does the file still name its import ``local``, or another file of the run import it from here?"""
        return local in self._used or bool(
            self.ctx.index.referrers.get(f"{self.ctx.facts.module_name}.{local}"))

    # -- dotted uses -----------------------------------------------------------
    def visit_Attribute(self, node: cst.Attribute) -> bool:
        # a whole Name/Attribute chain is handled at its top (leave_Attribute)
        return dotted(node) is None

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        name = dotted(original)
        if name is not None:
            head: cst.BaseExpression = original
            while isinstance(head, cst.Attribute):
                head = head.value
            self.visit_Name(head)  # type: ignore[arg-type]
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
        if isinstance(stmt.names, cst.ImportStar) and not stmt.relative and stmt.module is not None \
                and _star_root(stmt.module):
            self.todo(f"from {dotted(stmt.module)} import *: {_STAR}")
        if isinstance(stmt.names, cst.ImportStar) or stmt.relative or stmt.module is None:
            return updated
        module = cst.helpers.get_full_name_for_node(stmt.module) or ""
        cmodule = canonical(module)
        keep: list[cst.ImportAlias] = []
        to_linen: list[cst.ImportAlias] = []  # from flax.linen import ...
        to_sub: dict[str, list[cst.ImportAlias]] = {}  # from flax.linen.<submodule> import ...
        as_linen: list[str] = []  # from flax import linen as <name>
        dropped: list[str] = []  # legacy names nothing names any more
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
            elif self.ctx.facts.name_counts.get(qual) and not self._still_needed(local):
                dropped.append(local)
            else:
                keep.append(alias)
                guideline = row.guideline if row else "not part of flax.linen"
                self.todo(f"{qual} has no flax.linen equivalent: {guideline}")
        if dropped:
            self.fixed(f"from {module} import {', '.join(dropped)}: nothing names it any more")
            if not (keep or to_linen or to_sub or as_linen):
                return cst.RemoveFromParent()
        if not (to_linen or to_sub or as_linen):
            return updated.with_changes(body=[stmt.with_changes(names=_commas(keep))]) if dropped else updated
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


def _star_root(module: cst.BaseExpression) -> bool:
    qual = canonical(dotted(module) or "")
    return any(qual == r or qual.startswith(r + ".") for r in _STAR_ROOTS)


class _Stars(FastVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        if isinstance(node.names, cst.ImportStar) and not node.relative and node.module is not None \
                and _star_root(node.module):
            self.found.append(dotted(node.module) or "")
        return False


def _legacy_stars(module: cst.Module) -> list[str]:
    """The legacy packages this file star-imports, as written (``flax.nn``)."""
    stars = _Stars()
    module.visit(stars)
    return stars.found


def _free_names(module: cst.Module) -> set[int]:
    """The ``Name`` nodes read in ``module`` that nothing in it binds (nor a builtin, nor a module
    attribute such as ``__file__``)."""
    scopes = MetadataWrapper(module, unsafe_skip_copy=True).resolve(ScopeProvider)
    free: set[int] = set()
    for scope in {s for s in scopes.values() if s is not None}:
        for access in scope.accesses:
            if not access.referents and isinstance(access.node, cst.Name) \
                    and not (access.node.value.startswith("__") and access.node.value.endswith("__")):  # __file__
                free.add(id(access.node))
    return free


def _commas(aliases: list[cst.ImportAlias]) -> list[cst.ImportAlias]:
    """Separators rebuilt: the last alias of a moved list must not keep its comma."""
    return [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in aliases]


def _listed_in_all(module: cst.Module) -> set[str]:
    """The strings of a top-level ``__all__ = [...]``: a star import reads those names."""
    found: set[str] = set()
    for stmt in module.body:
        for small in stmt.body if isinstance(stmt, cst.SimpleStatementLine) else ():
            if isinstance(small, (cst.Assign, cst.AugAssign)) and isinstance(small.value, (cst.List, cst.Tuple)) \
                    and any(isinstance(t, cst.Name) and t.value == "__all__" for t in (
                        [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target])):
                found |= {e.value.evaluated_value for e in small.value.elements
                          if isinstance(e.value, cst.SimpleString)}  # type: ignore[misc]
    return found


def _params(params: cst.Parameters) -> list[cst.Param]:
    star = [p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)]
    return [*params.posonly_params, *params.params, *star, *params.kwonly_params]


class _ParamShadows(FastVisitor):
    """``shadowed_by_params``: defaults, annotations and decorators are read in the enclosing scope."""

    def __init__(self) -> None:
        super().__init__()
        self.found: set[int] = set()
        self._bound: list[set[str]] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        for d in node.decorators:
            d.visit(self)
        if node.returns is not None:
            node.returns.visit(self)
        return self._scope(node.params, node.body)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return self._scope(node.params, node.body)

    def _scope(self, params: cst.Parameters, body: cst.CSTNode) -> bool:
        for p in _params(params):
            for part in (p.default, p.annotation):
                if part is not None:
                    part.visit(self)
            self.found.add(id(p.name))
        self._bound.append({p.name.value for p in _params(params)})
        body.visit(self)
        self._bound.pop()
        return False

    def visit_Name(self, node: cst.Name) -> None:
        if any(node.value in bound for bound in self._bound):
            self.found.add(id(node))


def shadowed_by_params(node: cst.CSTNode) -> set[int]:
    """The ``Name`` nodes in ``node`` that a parameter of a function or lambda binds: the
    parameter's own name and the names in its body that read it (they are not an import)."""
    shadows = _ParamShadows()
    node.visit(shadows)
    return shadows.found


class _Uses(FastVisitor):
    """The names a module reads or writes outside import statements, keywords, attribute names
    and ``def``/``class`` names, less those a parameter binds (``shadowed_by_params``)."""

    def __init__(self, shadowed: set[int]) -> None:
        super().__init__()
        self.shadowed = shadowed
        self.found: set[str] = set()

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        for part in (*node.decorators, node.params, node.body, *([node.returns] if node.returns else [])):
            part.visit(self)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        for part in (*node.decorators, *node.bases, *node.keywords, node.body):
            part.visit(self)
        return False

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) not in self.shadowed:
            self.found.add(node.value)
