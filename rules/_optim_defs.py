"""flax.optim optimizer definitions of one file, shared by LU301
(optim_constructors) and LU302 (optim_train_state): where each constructor
call is and what the OptimizerDef API is used through (``Scan``, one pass
over the original tree), and the optax source of one definition
(``convert``, by the rows of ``linen_upgrade/tables/optimizers.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from linen_upgrade.resolve import canonical, dotted
from linen_upgrade.rule import Context, FastVisitor
from linen_upgrade.rules._optim_user import definition_problem, is_user_def
from linen_upgrade.tables.optimizers import (MULTI, OPTIMIZER_DEF, TRANSFORMS, TRAVERSAL, TRAVERSAL_TARGET,
                                             USER_DEF_HELPER, ConversionError, optax_expression, row_for)

# OptimizerDef API: a definition used through it must stay a flax.optim object
LEGACY_ATTRS = frozenset({"create", "init_state", "apply_gradient", "apply_param_gradient",
                          "init_param_state", "update_hyper_params", "hyper_params",
                          "restore_state", "state_dict"})
WEIGHT_NORM = "flax.optim.WeightNorm"


# -- where each definition's value goes ---------------------------------------
@dataclass
class Ctor:
    node: cst.Call
    qual: str
    ancestors: tuple[cst.CSTNode, ...]
    function: str | None  # the innermost enclosing def
    call_index: int  # among all calls, in source order (see _optim_plan._call_starts)


class Scan(FastVisitor):
    """One pass over the original tree: the constructor calls with their
    ancestors, and every name the OptimizerDef API is used through."""

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.calls = 0
        self.stack: list[cst.CSTNode] = []
        self.functions: list[str] = []
        self.ctors: list[Ctor] = []
        self.legacy_names: set[str] = set()  # X in X.create(...) (last component)
        self.legacy_funcs: set[str] = set()  # f in f(...).create(...)
        self.call_assigns: list[tuple[set[str], str]] = []  # X = f(...)
        self.returns: list[tuple[str, str]] = []  # (function, name) for `return name`
        self.params: dict[str, list[str]] = {}  # function -> positional parameter names
        self.constructors: set[str] = set()  # classes of the file with an ``__init__`` (in ``params``)
        # X in ``obj.field = X`` / ``table[k] = X``: kept under another name, where no name follows it
        self.stored: set[str] = set()
        self.called: set[str] = set()  # last component of every callee
        # (kind, X, callee, position or keyword) for g(..., X, ...): kind 'name' for a variable X,
        # 'call' for X(...) -- a definition may reach g's parameter through it
        self.passed: list[tuple[str, str, str, int | str]] = []
        # (kind, X, qualified callee, position or keyword) of those calling a function of another
        # file of the run
        self.passed_out: list[tuple[str, str, str, int | str]] = []

    def qual(self, node: cst.CSTNode) -> str | None:
        """The canonical name ``node`` resolves to; a user subclass of
        OptimizerDef is named by that row (``_optim_user``)."""
        q = self.ctx.facts.imports.resolve(node)
        if isinstance(node, (cst.Name, cst.Attribute)) and is_user_def(node, q, self.ctx):
            return OPTIMIZER_DEF
        return canonical(q) if q else None

    def on_visit(self, node: cst.CSTNode) -> bool:
        # exact types (``type(node) is``): a failed ``isinstance`` against LibCST's classes costs an
        # ``ABCMeta.__instancecheck__``, five of them for most nodes of the file here
        kind = type(node)
        if kind is cst.Call:
            self.called.add(last_name(node.func))
            self.calls += 1
            self._record_passed(node)
            if self.qual(node.func) in TRANSFORMS | {MULTI} and not self._converted_already():
                self.ctors.append(Ctor(node, self.qual(node.func) or "", tuple(self.stack),
                                       self.functions[-1] if self.functions else None, self.calls - 1))
        elif kind is cst.Attribute and node.attr.value in LEGACY_ATTRS:
            if isinstance(node.value, cst.Call):
                self.legacy_funcs.add(last_name(node.value.func))
            elif dotted(node.value):
                self.legacy_names.add(last_name(node.value))
        elif kind is cst.Assign and isinstance(node.value, cst.Call):
            self.call_assigns.append(({last_name(t.target) for t in node.targets}, last_name(node.value.func)))
        elif kind is cst.Assign and isinstance(node.value, cst.Name) \
                and any(not isinstance(t.target, cst.Name) for t in node.targets):
            self.stored.add(node.value.value)
        elif kind is cst.Return and isinstance(node.value, cst.Name) and self.functions:
            self.returns.append((self.functions[-1], node.value.value))
        elif kind is cst.FunctionDef:
            self.functions.append(node.name.value)
            params = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
            if self._method_of() is not None and not any(
                    dotted(d.decorator) == "staticmethod" for d in node.decorators):
                params = params[1:]  # called as obj.method(...) or Class(...): no self among the arguments
            self.params[node.name.value] = params
            if node.name.value == "__init__" and self._method_of() is not None:
                # `Trainer(params, optim.Adam(...))` hands the definition to __init__ (issue 16)
                self.params[self._method_of()] = params
                self.constructors.add(self._method_of())  # type: ignore[arg-type]
        self.stack.append(node)
        return True

    def other_file_function(self, call: cst.Call) -> str | None:
        """The qualified name of the function of another file of the run ``call`` calls."""
        qual = self.ctx.facts.imports.resolve(call.func)
        own = self.ctx.facts.module_name
        if qual and qual in self.ctx.index.referrers and not (own and qual.startswith(f"{own}.")):
            return qual
        return None

    def _record_passed(self, call: cst.Call) -> None:
        callee = last_name(call.func)
        elsewhere = self.other_file_function(call)
        position = 0
        for a in call.args:
            if a.star:
                break
            where: int | str = a.keyword.value if a.keyword is not None else position
            if a.keyword is None:
                position += 1
            if isinstance(a.value, cst.Name):
                self.passed.append(("name", a.value.value, callee, where))
            elif isinstance(a.value, cst.Call) and last_name(a.value.func):
                self.passed.append(("call", last_name(a.value.func), callee, where))
            else:
                continue
            if elsewhere:
                self.passed_out.append((*self.passed[-1][:2], elsewhere, where))  # type: ignore[arg-type]

    def _method_of(self) -> str | None:
        """The class whose body the node being visited sits in directly."""
        if len(self.stack) >= 2 and isinstance(self.stack[-1], cst.IndentedBlock) \
                and isinstance(self.stack[-2], cst.ClassDef):
            return self.stack[-2].name.value
        return None

    def _converted_already(self) -> bool:
        """A user definition's constructor inside ``optax_from_optimizer_def(...)``
        (LU301 ran before LU302) is an optax transform already."""
        return len(self.stack) >= 2 and isinstance(self.stack[-1], cst.Arg) \
            and isinstance(self.stack[-2], cst.Call) and dotted(self.stack[-2].func) == USER_DEF_HELPER

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()
        if type(original_node) is cst.FunctionDef:
            self.functions.pop()


def last_name(node: cst.CSTNode) -> str:
    name = dotted(node)
    return name.rsplit(".", 1)[-1] if name else ""


# -- one definition -> optax source --------------------------------------------
def convert(call: cst.Call, scan: Scan, module: cst.Module,
            learning_rate: str | None = None) -> tuple[str, tuple[str, ...]]:
    """``learning_rate``: the source to use where the definition gives none (or None)."""
    qual = scan.qual(call.func) or ""
    _, row = row_for(qual)
    if any(a.star for a in call.args) and qual != OPTIMIZER_DEF:  # a user class's instance is made as written
        raise ConversionError("*args/**kwargs hide its arguments")
    helpers: list[str] = []
    sources: dict[str, str] = {}
    if qual == OPTIMIZER_DEF:  # a user subclass: its instance, built once
        problem = definition_problem(call, scan.ctx, module)
        if problem is not None:
            raise ConversionError(problem)
        _no_definitions_inside(call.args, scan)
        sources["definition"] = module.code_for_node(call).strip()
    elif qual == MULTI:
        for i, a in enumerate(call.args):
            pair = a.value
            if (a.keyword is not None or not isinstance(pair, (cst.Tuple, cst.List))
                    or len(pair.elements) != 2 or any(isinstance(e, cst.StarredElement) for e in pair.elements)):
                raise ConversionError("each argument must be a literal (traversal, optimizer) pair")
            sources[f"traversal_{i}"] = traversal_source(pair.elements[0].value, scan, module)
            sources[f"optimizer_{i}"], hs = _slot_source(pair.elements[1].value, scan, module)
            helpers += hs
    else:
        names = row.param_names
        positional = [a for a in call.args if a.keyword is None]
        if len(positional) > len(names):
            raise ConversionError(f"more than {len(names)} positional arguments")
        given: dict[str, cst.Arg] = dict(zip(names, positional))
        for a in call.args:
            if a.keyword is not None:
                if a.keyword.value in given:
                    raise ConversionError(f"{a.keyword.value} given twice")
                given[a.keyword.value] = a
        for name, a in given.items():
            if qual == WEIGHT_NORM and name == "wrapped_optimizer":
                sources[name], hs = _slot_source(a.value, scan, module)
                helpers += hs
            else:
                _no_definitions_inside(a.value, scan)
                sources[name] = module.code_for_node(a.value).strip()
        if learning_rate is not None and sources.get("learning_rate", "None") == "None":
            sources["learning_rate"] = learning_rate
    expr, hs = optax_expression(qual, sources)
    return expr, tuple(dict.fromkeys([*helpers, *hs]))


def _slot_source(node: cst.BaseExpression, scan: Scan, module: cst.Module) -> tuple[str, list[str]]:
    if isinstance(node, cst.Call) and scan.qual(node.func) in TRANSFORMS | {MULTI}:
        expr, helpers = convert(node, scan, module)
        return expr, list(helpers)
    if isinstance(node, cst.Name):  # checked in _optim_plan: bound to converted definitions only
        return node.value, []
    raise ConversionError("the wrapped optimizer must be a flax.optim definition or a variable bound to one")


def traversal_source(node: cst.BaseExpression, scan: Scan, module: cst.Module) -> str:
    """An inline ``ModelParamTraversal(filter)`` is passed as its filter (the
    class is deprecated in current Flax); anything else as it is."""
    _no_definitions_inside(node, scan)
    if isinstance(node, cst.Call) and scan.qual(node.func) in (TRAVERSAL, TRAVERSAL_TARGET):
        if len(node.args) == 1 and not node.args[0].star and (
                node.args[0].keyword is None or node.args[0].keyword.value == "filter_fn"):
            return module.code_for_node(node.args[0].value).strip()
    return module.code_for_node(node).strip()


def _no_definitions_inside(node: cst.CSTNode | Sequence[cst.CSTNode], scan: Scan) -> None:
    class Find(FastVisitor):
        def visit_Call(self, call: cst.Call) -> bool:
            if scan.qual(call.func) in TRANSFORMS | {MULTI}:
                raise ConversionError("a flax.optim definition inside an argument")
            return True
    for n in node if isinstance(node, Sequence) else [node]:
        n.visit(Find())
