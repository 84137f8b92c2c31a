"""LU901 legacy_leftovers: report legacy API that no rule converted.

What it does
    After the converting rules, marks each statement that still uses a
    ``flax.nn`` symbol with no Linen name (``nn.Model``, ``nn.stateful``, ...,
    or a legacy internal such as ``nn.base._ModuleFrame``),
    any ``flax.optim`` name, a legacy module class that still defines
    ``apply``, or ``.partial``/``.shared``/``.init_by_shape``/... on a legacy
    module, with ``# TODO(linen-upgrade): LU901 ...`` and a report finding.
    Also a ``flax.optim`` name or a legacy built-in module (``Dense``) reached
    through a package of the run that re-exports it (``from layers import
    Dense``): its calls keep the legacy form, which no rule splits there.
Why
    ``flax.nn`` imports become ``flax.linen`` imports (LU100); code the tool
    did not convert must not pass silently as if it were upgraded.
Changes nothing else
    It only adds comments; a re-run finds its comments and adds none.
"""

from __future__ import annotations

import os

import libcst as cst

from linen_upgrade.analysis.identity import EXTERNAL_PACKAGES
from linen_upgrade.applicability import LEGACY_ONLY_METHODS
from linen_upgrade.resolve import canonical, dotted
from linen_upgrade.rule import Context, Example, NoChange, Rule, RuleTransformer
from linen_upgrade.rules._cst import PARTIALS
from linen_upgrade.rules.nn_imports import shadowed_by_params
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES
from linen_upgrade.tables.nn_symbols import NN_SYMBOLS

_MODULE_CLASS_METHODS = frozenset({"partial", "shared", "init", "init_by_shape", "call",
                                   "create", "create_by_shape"})


class LegacyLeftovers(Rule):
    id = "LU901"
    order = 90
    summary = "Mark legacy flax.nn / flax.optim code that no rule converted (report only)"
    examples = [
        Example(
            "from flax import nn\n\nmodel = nn.Model(CNN, params)\n",
            "from flax import nn\n\n"
            "# TODO(linen-upgrade): LU901 flax.nn.Model is not converted: pass params explicitly: "
            "`M(...).apply({'params': params}, x)`\nmodel = nn.Model(CNN, params)\n",
        ),
        NoChange("from flax import linen as nn\n\nclass M(nn.Module):\n    def apply(self, x):\n"
                 "        return x\n", name="a linen module may have a method called apply"),
    ]


    def transformer(self, ctx: Context) -> RuleTransformer:
        return _Transformer(self, ctx)


class _Transformer(RuleTransformer):
    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__(rule, ctx)
        # per function (module level first): local name -> the legacy module it holds
        self._frames: list[dict[str, str]] = [{}]
        self._called: set[int] = set()  # inner calls of m(...)(x): they build a Linen module
        self._keywords: set[int] = set()  # f(make_rng=...): a keyword names no object
        # class name -> the file defining it (relative to this one: the report reads the same in any
        # checkout), for every legacy module class of the run
        self._legacy_names: dict[str, str] = {}
        here = os.path.dirname(os.path.abspath(ctx.path))
        for qual in sorted(ctx.index.modules):
            module, _, cls = qual.rpartition(".")
            path = ctx.index.paths.get(module)
            self._legacy_names.setdefault(cls, os.path.relpath(path, here) if path else qual)

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        # a parameter, and what reads it, is no import: also one a rule added (LU104's make_rng)
        self._shadowed = shadowed_by_params(node)
        # modules the converting rules imported (``import functools`` for the partials they
        # write): the file's facts predate them, and their attributes are no legacy modules
        self._added_imports = {
            dotted(a.asname.name) if a.asname else dotted(a.name).partition(".")[0]
            for stmt in node.body if isinstance(stmt, cst.SimpleStatementLine)
            for s in stmt.body if isinstance(s, cst.Import) for a in s.names
        } - set(self.ctx.facts.imports.aliases)
        return True

    def visit_Import(self, node: cst.Import) -> bool:
        for alias in node.names:
            if canonical(dotted(alias.name) or "").startswith("flax.optim"):
                self.todo("flax.optim is gone: its uses need optax")
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        module = dotted(node.module) if node.module and not node.relative else None
        if module and not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                if canonical(f"{module}.{dotted(alias.name)}").startswith("flax.optim"):
                    self.todo("flax.optim is gone: its uses need optax")
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        legacy = any(self.is_legacy_class(b.value) for b in node.bases)
        if legacy and any(isinstance(s, cst.FunctionDef) and s.name.value == "apply"
                          for s in node.body.body):
            self.todo(f"{node.name.value} is a legacy flax.nn module (it defines apply): "
                      "convert it to dataclass attributes + __call__")
        builtin = next((q for b in node.bases if (q := self.resolve(b.value)) in BUILTIN_MODULES), None)
        if builtin is not None and self.resolve_class(node.name) not in self.ctx.index.linen_subclasses:
            # class StdConv(nn.Conv) defining more than a param that hands its arguments on
            self.todo(f"{node.name.value} subclasses the legacy built-in {builtin}, whose Linen namesake is a "
                      "dataclass with another API: rewrite it as a Linen module by hand")
            self._frames[0][node.name.value] = f"the subclass {node.name.value} of {builtin}"
        return True

    def visit_Assign(self, node: cst.Assign) -> bool:
        # group_norm = GroupNorm; conv = StdConv.partial(bias=False): a legacy module under a local name
        source = self._legacy_value(node.value)
        if source is not None:
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    self._frames[-1][target.target.value] = source
        return True

    def _legacy_value(self, value: cst.BaseExpression) -> str | None:
        if isinstance(value, cst.IfExp):  # conv = nn.ConvTranspose if up else nn.Conv
            either = [v for v in (self._legacy_value(value.body), self._legacy_value(value.orelse)) if v]
            return " or ".join(either) or None
        if isinstance(value, cst.Call) and self.resolve(value.func) in PARTIALS and value.args:
            value = value.args[0].value  # functools.partial(nn.Dense, features=3)
        elif isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) \
                and value.func.attr.value in ("partial", "shared"):
            value = value.func.value
        local = self._legacy_local(value.value) if isinstance(value, cst.Name) else None
        if local is not None:
            return local
        qual = self.resolve_class(value)
        if qual in BUILTIN_MODULES or self._legacy_module_or_alias(qual):
            return qual
        return None

    def _legacy_module_or_alias(self, qual: str | None) -> bool:
        """A legacy module class of the run, or a module-level ``.partial`` of one (``ResNet50``)."""
        if not qual:
            return False
        alias = self.ctx.index.partial_alias(qual)
        target = alias[0] if alias is not None else qual
        return target in BUILTIN_MODULES or self.ctx.index.is_legacy_module(target)

    def _legacy_local(self, name: str) -> str | None:
        return next((f[name] for f in reversed(self._frames) if name in f), None)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._frames.append({})
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self._frames.pop()
        return updated

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        if dotted(node) is None:
            return True
        head: cst.BaseExpression = node
        while isinstance(head, cst.Attribute):
            head = head.value
        shadowed = id(head) in self._shadowed  # a parameter: no import, only what a value it may hold calls
        qual = self.resolve(node) if not shadowed else None
        if qual:
            self._check(qual, dotted(node))
        if not shadowed and node.attr.value in _MODULE_CLASS_METHODS and (
                self._legacy_module_or_alias(self.resolve_class(node.value))):
            self.todo(f"{dotted(node)}: legacy Module.{node.attr.value} "
                      "is not converted")
        elif self._untraced_module_method(node):
            self.todo(f"{dotted(node)}: legacy Module.{node.attr.value} on a value this run cannot trace to a "
                      "module class (a registry entry, a parameter, a factory's result): convert it by hand")
        return False

    def _untraced_module_method(self, node: cst.Attribute) -> bool:
        """``model.init_by_shape`` where ``model`` came from ``MODELS[name]``: the
        definition converted elsewhere, this use stays legacy.  Only methods no
        other library spells so, in the legacy files this rule reads)."""
        if self.resolve_class(node.value) is not None or (
                isinstance(node.value, cst.Name) and node.value.value in self._added_imports):
            return False  # an import or a class of this file: the checks above say what it is
        return node.attr.value in LEGACY_ONLY_METHODS

    def visit_Arg(self, node: cst.Arg) -> bool:
        if node.keyword is not None:
            self._keywords.add(id(node.keyword))
        return True

    def visit_Name(self, node: cst.Name) -> bool:
        qual = self.resolve(node) if id(node) not in self._keywords and id(node) not in self._shadowed else None
        if qual:
            self._check(qual)
        return False

    def visit_Call(self, node: cst.Call) -> bool:
        local = self._legacy_local(node.func.value) if isinstance(node.func, cst.Name) else None
        if isinstance(node.func, cst.Call):
            self._called.add(id(node.func))
        elif local is not None and id(node) not in self._called \
                and any(not a.keyword and not a.star for a in node.args):
            self.todo(f"{node.func.value}(...) calls {local} in the legacy form "
                      f"(inputs first), and this run did not convert the call: write "
                      f"{node.func.value}(<attributes>)(<inputs>)")
        qual = self.resolve(node.func)
        builtin = self.ctx.index.builtin_subclasses.get(qual) if qual not in self.ctx.index.linen_subclasses else None
        if builtin is not None and local is None and id(node) not in self._called \
                and qual.rpartition(".")[0] != self.ctx.facts.module_name:
            # layers.StdConv(x, ...) of another file, where StdConv(nn.Conv) stays legacy (a TODO there)
            self.todo(f"{dotted(node.func)}(...) calls {qual}, a subclass of the legacy built-in {builtin} "
                      "that stays legacy in its file: convert the class and this call together")
        name = qual.rpartition(".")[2] if qual else ""
        if (name in self._legacy_names and not self.ctx.index.is_legacy_module(qual)
                and qual.rpartition(".")[0] not in self.ctx.index.paths
                and qual.partition(".")[0] not in EXTERNAL_PACKAGES):
            # the run converts a legacy class of this name; if this is it, the call must convert too
            self.todo(f"{dotted(node.func)} resolves to `{qual}`, outside this run, while the run converts "
                      f"a legacy module `{name}` ({self._legacy_names[name]}): if it is that class, "
                      "convert this call as well")
        return True

    def _check(self, qual: str, spelled: str | None = None) -> None:
        """``spelled``: the attribute chain naming it (``nn.linear._conv_dimension_numbers``),
        which LU100 rewrites only through a row of the table (an imported name gets LU100's TODO)."""
        if qual.startswith("flax.optim"):
            self.todo(f"{qual} is not converted: flax.optim is gone, use optax")
            return
        defined = self.ctx.index.canonical(qual)
        if defined != qual and defined.startswith("flax.optim"):
            # ``optlib.Momentum``: a package of the run re-exports the legacy optimizer
            self.todo(f"{qual} is {defined} (re-exported by a file of the run), not converted: "
                      "flax.optim is gone, use optax")
            return
        if defined != qual and defined in BUILTIN_MODULES:
            # ``from layers import Dense``: the re-export becomes Linen's Dense, its calls here
            # keep the legacy form (inputs first), which no rule splits through a re-export
            short = defined.rpartition(".")[2]
            self.todo(f"{qual} is {defined} (re-exported by a file of the run), whose calls keep the legacy "
                      f"form here: import it from flax.linen and write {short}(<attributes>)(<inputs>)")
            return
        if defined != qual and defined.startswith("flax.nn."):
            row = NN_SYMBOLS.get(".".join(defined.split(".")[:3]))
            if row is not None and row.linen is None:  # ``from common import stateful``
                self.todo(f"{qual} is {defined} (re-exported by a file of the run), not converted: {row.guideline}")
                return
        parts = qual.split(".")
        if parts[:2] != ["flax", "nn"] or len(parts) < 3:
            return
        row = NN_SYMBOLS.get(".".join(parts[:3]))
        if row is not None and row.linen is None:
            self.todo(f"{'.'.join(parts[:3])} is not converted: {row.guideline}")
        elif row is None and spelled is not None:  # a legacy internal: flax.linen has no such name
            self.todo(f"{spelled} ({qual}) is not part of flax.linen: rewrite it by hand")
