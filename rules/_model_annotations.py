"""The part of LU202's (model_apply) transformer that rewrites type annotations naming
legacy types: ``model: nn.Model``, ``-> Tuple[flax.nn.Model, flax.nn.Collection]`` ->
``Any``.

A Model is its params pytree now and a Collection the dict of a variable collection;
neither name exists in current Flax, so a signature naming them fails when the module
is imported (annotations are evaluated at ``def`` unless postponed).  ``Any`` says
nothing false and changes nothing at run time.  The annotation is no evidence of what
a value is (the rules decide that by data flow): a parameter annotated so that no call
of the run hands a Model (a library function) keeps its uses as written, and gets a
TODO saying so.  ``isinstance(m, nn.Model)`` keeps LU901's TODO, and so does
``flax.optim.Optimizer`` (whether the optimizer became a TrainState is LU302's call).
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rule import FastTransformer
from linen_upgrade.rules._cst import build_dotted, code, spell_any
from linen_upgrade.rules._usage import MODEL, STATE, UsageTransformer

# legacy types with no current counterpart of the same meaning
LEGACY_TYPES = frozenset({"flax.nn.Model", "flax.nn.Collection", "flax.nn.base.Model", "flax.nn.base.Collection"})


class Annotations(UsageTransformer):
    def leave_Annotation(self, original: cst.Annotation, updated: cst.Annotation) -> cst.Annotation:
        outer = self

        class Replace(FastTransformer):
            def leave_Attribute(self, node: cst.Attribute, new: cst.Attribute) -> cst.BaseExpression:
                return outer._any(node) or new

            def leave_Name(self, node: cst.Name, new: cst.Name) -> cst.BaseExpression:
                return outer._any(node) or new

        new = original.annotation.visit(Replace())
        if new.deep_equals(original.annotation):
            return updated
        spelled = code(original.annotation)
        param = self.a.parent.get(id(original))
        if isinstance(param, cst.Param) and not self._followed(param):
            self.todo(f"{param.name.value} is annotated {spelled}, but this run follows no Model or state into it "
                      "(no call it reads hands one, or calls hand different ones): its uses are converted only "
                      "where a TODO does not say otherwise; check them by hand")
        self.fixed(f"type annotation {spelled}: legacy types -> Any")
        return updated.with_changes(annotation=new)

    def _followed(self, param: cst.Param) -> bool:
        """Does the analysis give this parameter one Model's or state's type (what its uses convert by)?"""
        fn = self.a.parent.get(id(self.a.parent.get(id(param))))
        scope = self.a.scopes.get(id(fn)) if isinstance(fn, cst.FunctionDef) else None
        t = self.a.env.get((id(scope), param.name.value)) if scope is not None else None
        return t is not None and t.kind in (MODEL, STATE)

    def _any(self, node: cst.Name | cst.Attribute) -> cst.BaseExpression | None:
        """``Any`` (as this file can write it) for a node naming a legacy type, else None."""
        if self.resolve(node) not in LEGACY_TYPES:
            return None
        imports = self.ctx.facts.imports  # (the module scope binds imported names too)
        spelled, needed = spell_any(imports, "Any" in self.a.module_scope.bound and "Any" not in imports.aliases)
        self.imports.add(needed)
        return build_dotted(spelled)
