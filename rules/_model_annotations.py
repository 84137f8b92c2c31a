"""The part of LU202's (model_apply) transformer that rewrites type annotations naming
legacy types: ``model: nn.Model``, ``-> Tuple[flax.nn.Model, flax.nn.Collection]`` ->
``Any``.

A Model is its params pytree now and a Collection the dict of a variable collection;
neither name exists in current Flax, so a signature naming them fails when the module
is imported (annotations are evaluated at ``def`` unless postponed).  ``Any`` says
nothing false and changes nothing at run time.  The annotation is no evidence of what
a value is (the rules decide that by data flow): a parameter annotated so that no call
of the run hands a Model (a library function) keeps its uses as written, and gets a
TODO saying so.  A type alias (``MaskFn = Callable[[flax.nn.Model, float], Mask]``: an
assignment of a subscript of a ``typing``, ``typing_extensions`` or ``collections.abc`` name)
gets ``Any`` in its type positions too (not in ``Literal[...]`` nor ``Annotated``'s metadata;
not a ``Union``/``Optional`` with a legacy member, which ``isinstance`` may read); other type
expressions are values (``isinstance(m, nn.Model)``, ``nn.Model(M, params)``) and
keep LU901's TODO, and so does ``flax.optim.Optimizer`` (whether the optimizer became a
TrainState is LU302's call).  A file naming legacy types so is walked even where nothing
else is there for LU202 (``names_legacy_type``).
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from linen_upgrade.rule import FastTransformer, FastVisitor
from linen_upgrade.rules._cst import build_dotted, code, spell_any
from linen_upgrade.rules._usage import MODEL, OPTIM, STATE, UsageTransformer
from linen_upgrade.rules._usage_analysis import Analysis
from linen_upgrade.rules._usage_types import MODEL_TYPES

# legacy types with no current counterpart of the same meaning
LEGACY_TYPES = MODEL_TYPES | {"flax.nn.Collection", "flax.nn.base.Collection"}
# the legacy optimizer's type, as an annotation names it (LU302 rewrites the annotation)
OPTIMIZER_TYPES = frozenset({"flax.optim.Optimizer", "flax.optim.base.Optimizer"})


class Annotations(UsageTransformer):
    def leave_Annotation(self, original: cst.Annotation, updated: cst.Annotation) -> cst.Annotation:
        outer = self

        class Replace(FastTransformer):
            def leave_Attribute(self, node: cst.Attribute, new: cst.Attribute) -> cst.BaseExpression:
                return outer._any(node) or new

            def leave_Name(self, node: cst.Name, new: cst.Name) -> cst.BaseExpression:
                return outer._any(node) or new

        param = self.a.parent.get(id(original))
        if isinstance(param, cst.Param) and self.resolve(original.annotation) in OPTIMIZER_TYPES \
                and not self._followed(param, (OPTIM,)) and _calls_target_model(self._function_of(param), param):
            self.todo(f"{param.name.value} is annotated {code(original.annotation)}, but this run follows no "
                      "optimizer into it (no call it reads hands one): a call of the Model its .target holds "
                      "(directly or in a function it is handed to) stays as written; "
                      "convert it by hand (the Model is its params now: apply the Linen module to them)")
        new = original.annotation.visit(Replace())
        if new.deep_equals(original.annotation):
            return updated
        spelled = code(original.annotation)
        if isinstance(param, cst.Param) and not self._followed(param):
            self.todo(f"{param.name.value} is annotated {spelled}, but this run follows no Model or state into it "
                      "(no call it reads hands one, or calls hand different ones): its uses are converted only "
                      "where a TODO does not say otherwise; check them by hand")
        self.fixed(f"type annotation {spelled}: legacy types -> Any")
        return updated.with_changes(annotation=new)

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        return self._alias(super().leave_Assign(original, updated))

    def leave_AnnAssign(self, original: cst.AnnAssign, updated: cst.AnnAssign) -> cst.AnnAssign:
        return self._alias(super().leave_AnnAssign(original, updated))

    def _alias(self, updated: cst.Assign | cst.AnnAssign) -> cst.Assign | cst.AnnAssign:
        """``MaskFn = Callable[[flax.nn.Model], Mask]`` -> ``Callable[[Any], Mask]``."""
        if not isinstance(updated, (cst.Assign, cst.AnnAssign)) or not isinstance(updated.value, cst.Subscript):
            return updated
        new = _alias_typed(updated.value, self.resolve, self._spelled_any)
        if new is updated.value:
            return updated
        self.fixed(f"type alias {code(updated.value)}: legacy types -> Any")
        return updated.with_changes(value=new)

    def _followed(self, param: cst.Param, kinds: tuple[str, ...] = (MODEL, STATE)) -> bool:
        """Does the analysis give this parameter one type of ``kinds`` (what its uses convert by)?"""
        fn = self._function_of(param)
        scope = self.a.scopes.get(id(fn)) if fn is not None else None
        t = self.a.env.get((id(scope), param.name.value)) if scope is not None else None
        return t is not None and t.kind in kinds

    def _function_of(self, param: cst.Param) -> cst.FunctionDef | None:
        fn = self.a.parent.get(id(self.a.parent.get(id(param))))
        return fn if isinstance(fn, cst.FunctionDef) else None

    def _any(self, node: cst.Name | cst.Attribute) -> cst.BaseExpression | None:
        """``Any`` (as this file can write it) for a node naming a legacy type, else None."""
        return self._spelled_any() if self.resolve(node) in LEGACY_TYPES else None

    def _spelled_any(self) -> cst.BaseExpression:
        imports = self.ctx.facts.imports  # (the module scope binds imported names too)
        spelled, needed = spell_any(imports, "Any" in self.a.module_scope.bound and "Any" not in imports.aliases)
        self.imports.add(needed)
        return build_dotted(spelled)


def _calls_target_model(fn: cst.FunctionDef | None, param: cst.Param) -> bool:
    """Does ``fn`` call the Model ``param``'s ``.target`` holds: ``param.target(x)``, or, where
    ``param.target`` is read, a call of a parameter of a function or lambda defined in ``fn``
    (``def loss_fn(model): model(x)``, handed ``param.target`` by ``jax.grad(loss_fn)``)?"""
    if fn is None:
        return False
    name = param.name.value
    reads, direct, inner = False, False, False

    def target(node: cst.BaseExpression) -> bool:
        return isinstance(node, cst.Attribute) and node.attr.value == "target" \
            and isinstance(node.value, cst.Name) and node.value.value == name

    class _Calls(FastVisitor):
        def __init__(self) -> None:
            self.params: list[frozenset[str]] = []

        def visit_Attribute(self, node: cst.Attribute) -> None:
            nonlocal reads
            reads = reads or target(node)

        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            self.params.append(_names(node.params))

        def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
            self.params.pop()

        def visit_Lambda(self, node: cst.Lambda) -> None:
            self.params.append(_names(node.params))

        def leave_Lambda(self, node: cst.Lambda) -> None:
            self.params.pop()

        def visit_Call(self, node: cst.Call) -> None:
            nonlocal direct, inner
            direct = direct or target(node.func)
            inner = inner or isinstance(node.func, cst.Name) and any(node.func.value in p for p in self.params)

    fn.body.visit(_Calls())
    return direct or reads and inner


def _params(params: cst.Parameters) -> tuple[cst.Param, ...]:
    return (*params.posonly_params, *params.params, *params.kwonly_params)


def _names(params: cst.Parameters) -> frozenset[str]:
    return frozenset(p.name.value for p in _params(params))


def typed(expr: cst.BaseExpression, resolve: Callable[[cst.CSTNode], str | None],
          any_: Callable[[], cst.BaseExpression]) -> cst.BaseExpression:
    """``expr`` with ``any_()`` for each legacy type in a type position of a typing subscript
    (``Callable[[flax.nn.Model], X]``, ``Dict[str, nn.Collection]``); ``expr`` itself if none."""
    if isinstance(expr, (cst.Name, cst.Attribute)):
        return any_() if resolve(expr) in LEGACY_TYPES else expr
    if isinstance(expr, cst.List):  # Callable's parameter list
        elements = [e.with_changes(value=typed(e.value, resolve, any_)) for e in expr.elements]
        changed = any(n.value is not e.value for n, e in zip(elements, expr.elements))
        return expr.with_changes(elements=elements) if changed else expr
    if not isinstance(expr, cst.Subscript):
        return expr
    qual = resolve(expr.value) or ""
    module, _, name = qual.rpartition(".")
    if module not in _TYPING_MODULES or name == "Literal":  # Literal[...] holds values
        return expr
    types = 1 if name == "Annotated" else len(expr.slice)  # Annotated's metadata are values
    elements = [e.with_changes(slice=e.slice.with_changes(value=typed(e.slice.value, resolve, any_)))
                if i < types and isinstance(e.slice, cst.Index) else e for i, e in enumerate(expr.slice)]
    if all(n.slice.value is e.slice.value for n, e in zip(elements, expr.slice)):  # type: ignore[attr-defined]
        return expr
    return expr.with_changes(slice=elements)


_TYPING_MODULES = frozenset({"typing", "typing_extensions", "collections.abc"})


def _alias_typed(value: cst.BaseExpression, resolve: Callable[[cst.CSTNode], str | None],
                 any_: Callable[[], cst.BaseExpression]) -> cst.BaseExpression:
    """``typed`` for the value of an assignment, except a union with a legacy type as a member
    (``Kinds = Union[nn.Model, nn.Collection]``): ``isinstance(x, Kinds)`` worked (Python 3.10+),
    ``isinstance(x, Any)`` raises, and the uses of the alias name no legacy type to be marked at."""
    if isinstance(value, cst.Subscript) and (resolve(value.value) or "").rpartition(".")[2] in ("Union", "Optional") \
            and any(isinstance(e.slice, cst.Index) and resolve(e.slice.value) in LEGACY_TYPES for e in value.slice):
        return value
    return typed(value, resolve, any_)


def names_legacy_type(module: cst.Module, a: Analysis) -> bool:
    """Does ``module`` name a legacy type in an annotation or a type alias (what ``Annotations``
    rewrites, or where it may say an optimizer's Model is not followed), where nothing else may be there for LU202 (a library function ``f(model: nn.Model)``)?"""
    if not (LEGACY_TYPES | OPTIMIZER_TYPES) & a.facts.qualnames:
        return False
    resolve = a.facts.imports.resolve
    found = False

    class _Types(FastVisitor):
        annotation = 0

        def visit_Annotation(self, node: cst.Annotation) -> None:
            self.annotation += 1

        def leave_Annotation(self, node: cst.Annotation) -> None:
            self.annotation -= 1

        def visit_Name(self, node: cst.Name) -> None:
            self._name(node)

        def visit_Attribute(self, node: cst.Attribute) -> None:
            self._name(node)

        def _name(self, node: cst.Name | cst.Attribute) -> None:
            nonlocal found
            found = found or self.annotation > 0 and resolve(node) in LEGACY_TYPES

        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            nonlocal found
            found = found or any(p.annotation is not None and resolve(p.annotation.annotation) in OPTIMIZER_TYPES
                                 and _calls_target_model(node, p) for p in _params(node.params))

        def visit_Assign(self, node: cst.Assign) -> None:
            self._alias(node.value)

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            if node.value is not None:
                self._alias(node.value)

        def _alias(self, value: cst.BaseExpression) -> None:
            nonlocal found
            found = found or isinstance(value, cst.Subscript) and _alias_typed(value, resolve, cst.Ellipsis) is not value

    module.visit(_Types())
    return found
