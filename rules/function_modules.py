"""LU107 function_modules: ``@nn.module def F(x, features)`` -> ``class F(nn.Module): def apply(self, x, features)``.

What it does
    A module-level function decorated with ``flax.nn.module`` alone becomes
    the legacy class that decorator made of it, which legacy Flax documents
    as exactly equivalent; the module rules then convert that class (LU101,
    LU102, ...) with its calls, ``.partial``/``.shared``, ``init`` and
    ``nn.Model`` uses in every file of the run (the index knows it as a
    legacy module: ``facts.function_module``).
Why
    Linen has no function modules: a module is a dataclass with an
    ``@nn.compact __call__``.
Not converted (TODO)
    A function module with other decorators, a parameter named ``self``, one
    defined inside a function or a class, or one whose class LU101 would
    leave legacy (a ``**kwargs`` it cannot split): LU901 marks it.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rule import Context, Example, Rule, RuleTransformer
from linen_upgrade.rules._modules import spec_for_qual


class FunctionModules(Rule):
    id = "LU107"
    summary = "@nn.module function modules -> the legacy class they stand for, then converted like one"
    order = -2  # before every module rule: they convert the class
    examples = [
        Example(
            "from flax import nn\n\n\n@nn.module\ndef DenseLayer(x, features):\n"
            "    return nn.relu(nn.Dense(x, features))\n",
            "from flax import nn\n\n\nclass DenseLayer(nn.Module):\n    def apply(self, x, features):\n"
            "        return nn.relu(nn.Dense(x, features))\n",
        ),
    ]

    def transformer(self, ctx: Context) -> RuleTransformer:
        return _Transformer(self, ctx)


class _Transformer(RuleTransformer):
    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # only module-level definitions (the index knows no others)

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        if not any(c.function and c.name == original.name.value for c in self.ctx.facts.classes):
            return updated
        module = self.ctx.facts.module_name
        spec = spec_for_qual(f"{module}.{original.name.value}" if module else original.name.value, self.ctx.index)
        if spec is None or spec.problem:
            return updated  # LU101 would leave the class legacy: the function stays as written (LU901's TODO)
        decorator = original.decorators[0].decorator
        if self.resolve(decorator) not in ("flax.nn.module", "flax.deprecated.nn.module"):
            return updated
        base = decorator.with_changes(attr=cst.Name("Module")) if isinstance(decorator, cst.Attribute) else None
        if base is None:  # ``from flax.nn import module``: no dotted base to write
            self.todo("@module: write the class `class F(nn.Module)` with `def apply(self, ...)` by hand")
            return updated
        params = updated.params  # ``self`` first (LibCST writes the comma after it when more follow)
        first = "posonly_params" if params.posonly_params else "params"
        params = params.with_changes(**{first: [cst.Param(cst.Name("self")), *getattr(params, first)]})
        apply = updated.with_changes(decorators=[], name=cst.Name("apply"), params=params, leading_lines=[])
        self.fixed(f"@module def {original.name.value} -> class {original.name.value}(Module) with apply")
        return cst.ClassDef(
            name=original.name, bases=[cst.Arg(base)],
            body=cst.IndentedBlock([apply]),
            leading_lines=updated.leading_lines + original.decorators[0].leading_lines)
