"""LU301 optim_constructors: ``flax.optim`` optimizer definitions become the optax transform with the same update.

What it does
    Rewrites the constructor of every ``flax.optim`` optimizer definition
    (``optim.Adam(learning_rate=0.1, weight_decay=1e-4)`` ->
    ``optax.adamw(0.1, weight_decay=1e-4)``), by the rows of
    ``linen_upgrade/tables/optimizers.py``: by semantics, not by name, with
    ``optax.chain`` and small custom transforms where optax's namesake
    differs.  The custom transforms are copied into the file once, after the
    imports; ``import optax`` is added.  ``WeightNorm`` and ``MultiOptimizer``
    (-> ``optax.multi_transform`` with labels from the traversals, unselected
    parameters frozen) convert with the definitions they wrap.
    ``optim.DynamicScale`` -> ``flax.training.dynamic_scale.DynamicScale``;
    ``optim.ModelParamTraversal`` -> ``flax.traverse_util.ModelParamTraversal``.
    A ``flax.optim`` import nothing uses any more is removed.
Why
    ``flax.optim`` is gone from current Flax; optax replaced it.  Several
    optax namesakes differ (``optax.adagrad``'s accumulator, ``rmsprop``'s eps,
    ``lamb`` on zero parameters, ``adamw``'s default decay, ...); every row is
    proven against flax 0.3.6 for 20 steps (``tests/test_optimizers.py``).
Left alone (with a TODO)
    A definition whose value reaches ``.create``, ``apply_gradient`` or other
    ``OptimizerDef`` API -- directly, through a variable, a function's return
    value or a keyword of that name -- keeps its legacy form here: LU302
    (optim_train_state) converts it together with the optimizer code around
    it, into a ``TrainState``; where LU302 cannot, the TODO names the optax
    expression.  So does one returned by a function this file never
    calls (its callers are elsewhere, out of sight).  Also ``*args``/``**kwargs``, unknown arguments, a
    missing ``learning_rate`` (given to ``apply_gradient`` instead) and
    subclasses of ``OptimizerDef``.
"""

from __future__ import annotations

import ast

from dataclasses import dataclass
from functools import lru_cache

import libcst as cst

from linen_upgrade.resolve import canonical, dotted
from linen_upgrade.rule import Context, Example, FastTransformer, FastVisitor, NoChange, Rule, RuleTransformer
from linen_upgrade.tables.optimizers import (HELPERS, MULTI, OPTIMIZERS, TRANSFORMS, TRAVERSAL,
                                             TRAVERSAL_TARGET, ConversionError, optax_expression,
                                             row_for)
from linen_upgrade.rules._cst import add_import, drop_from_imports, express

# OptimizerDef API: a definition used through it must stay a flax.optim object
_LEGACY_ATTRS = frozenset({"create", "init_state", "apply_gradient", "apply_param_gradient",
                           "init_param_state", "update_hyper_params", "hyper_params",
                           "restore_state", "state_dict"})
_DYNAMIC_SCALE = "flax.optim.DynamicScale"
_WEIGHT_NORM = "flax.optim.WeightNorm"
_WIDTH = 88  # black's line length


class OptimConstructors(Rule):
    id = "LU301"
    summary = "flax.optim optimizer definitions -> the optax transform with the same update rule"
    examples = [
        Example(
            "from flax import optim\n\ntx = optim.Adam(learning_rate=0.1, weight_decay=1e-4)\n",
            "import optax\n\ntx = optax.adamw(0.1, weight_decay=1e-4)\n",
        ),
        Example(
            "import flax.optim as optim\n\ntx = optim.RMSProp(lr, centered=True)\n",
            "import optax\n\ntx = optax.rmsprop(lr, eps_in_sqrt=False, centered=True)\n",
            name="optax default differs",
        ),
        Example(
            "from flax import optim\n\noptimizer = optim.Momentum(0.1).create(params)\n",
            "from flax import optim\n\n"
            "# TODO(linen-upgrade): LU301 optim.Momentum(...) feeds flax.optim code that is not converted "
            "(.create, apply_gradient, ...): convert them together; optax form: optax.sgd(0.1, momentum=0.9)\n"
            "optimizer = optim.Momentum(0.1).create(params)\n",
            name="used with create: left for the optimizer code",
        ),
        NoChange("import optax\n\ntx = optax.adam(1e-3)\n", name="already optax"),
    ]

    def applies(self, ctx: Context) -> bool:
        return ctx.facts.references("flax.optim")

    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        scan = _Scan(ctx)
        module.visit(scan)
        plan = _plan(scan, module)
        transformer = _Transformer(self, ctx, plan)
        module = module.visit(transformer)
        for name in sorted(transformer.imports):
            module = add_import(module, name)
        if transformer.helpers:
            module = _insert_helpers(module, transformer.helpers)
        return _drop_unused_optim_imports(module, ctx)


# -- where each definition's value goes ---------------------------------------
@dataclass
class _Ctor:
    node: cst.Call
    qual: str
    ancestors: tuple[cst.CSTNode, ...]
    function: str | None  # the innermost enclosing def
    call_index: int  # among all calls, in source order (see _call_starts)


class _Scan(FastVisitor):
    """One pass over the original tree: the constructor calls with their
    ancestors, and every name the OptimizerDef API is used through."""

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.calls = 0
        self.stack: list[cst.CSTNode] = []
        self.functions: list[str] = []
        self.ctors: list[_Ctor] = []
        self.legacy_names: set[str] = set()  # X in X.create(...) (last component)
        self.legacy_funcs: set[str] = set()  # f in f(...).create(...)
        self.call_assigns: list[tuple[set[str], str]] = []  # X = f(...)
        self.returns: list[tuple[str, str]] = []  # (function, name) for `return name`
        self.params: dict[str, list[str]] = {}  # function -> positional parameter names
        self.called: set[str] = set()  # last component of every callee

    def qual(self, node: cst.CSTNode) -> str | None:
        q = self.ctx.facts.imports.resolve(node)
        return canonical(q) if q else None

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Call):
            self.called.add(_last(node.func))
            self.calls += 1
        if isinstance(node, cst.Call) and self.qual(node.func) in TRANSFORMS | {MULTI}:
            self.ctors.append(_Ctor(node, self.qual(node.func) or "", tuple(self.stack),
                                    self.functions[-1] if self.functions else None, self.calls - 1))
        elif isinstance(node, cst.Attribute) and node.attr.value in _LEGACY_ATTRS:
            if isinstance(node.value, cst.Call):
                self.legacy_funcs.add(_last(node.value.func))
            elif dotted(node.value):
                self.legacy_names.add(_last(node.value))
        elif isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
            self.call_assigns.append(({_last(t.target) for t in node.targets}, _last(node.value.func)))
        elif isinstance(node, cst.Return) and isinstance(node.value, cst.Name) and self.functions:
            self.returns.append((self.functions[-1], node.value.value))
        elif isinstance(node, cst.FunctionDef):
            self.functions.append(node.name.value)
            self.params[node.name.value] = [p.name.value for p in (*node.params.posonly_params,
                                                                    *node.params.params)]
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()
        if isinstance(original_node, cst.FunctionDef):
            self.functions.pop()


def _last(node: cst.CSTNode) -> str:
    name = dotted(node)
    return name.rsplit(".", 1)[-1] if name else ""


@dataclass
class _Outcome:
    expr: str | None = None  # the optax source, when the call converts
    helpers: tuple[str, ...] = ()
    todo: str | None = None
    indent: str = ""  # leading whitespace of the call's first line
    column: int = 0


def _plan(scan: _Scan, module: cst.Module) -> dict[int, _Outcome]:
    """id(call) -> outcome, for the outermost constructor calls."""
    ctor_ids = {id(c.node) for c in scan.ctors}
    roots = [c for c in scan.ctors if not any(id(a) in ctor_ids for a in c.ancestors)]
    taken = _names_taken(module, scan.ctx)
    converted: dict[int, tuple[str, tuple[str, ...]] | str] = {}
    for c in roots:
        try:
            expr, helpers = _convert(c.node, scan, module)
            clash = sorted(n for h in helpers for n in _helper_objects(h) if n in taken)
            if clash:
                raise ConversionError(f"this file defines its own {', '.join(clash)}: "
                                      "rename it to make room for the helper")
            converted[id(c.node)] = expr, helpers
        except ConversionError as e:
            converted[id(c.node)] = str(e)
    assigned: dict[str, list[_Ctor]] = {}
    for c in roots:
        for name in _assign_targets(c):
            assigned.setdefault(name, []).append(c)
    legacy_names, legacy_funcs = set(scan.legacy_names), set(scan.legacy_funcs)
    # a function no code here calls is called from other files, out of sight
    legacy_funcs |= set(scan.params) - scan.called
    blocked: set[int] = {id(c.node) for c in roots if isinstance(converted[id(c.node)], str)}
    changed = True
    while changed:  # to a fixpoint: each rule below only ever adds
        before = (len(blocked), len(legacy_names), len(legacy_funcs))
        for targets, func in scan.call_assigns:
            if targets & legacy_names:
                legacy_funcs.add(func)
        for func, name in scan.returns:
            if func in legacy_funcs:
                legacy_names.add(name)
        for c in roots:
            if id(c.node) in blocked:
                legacy_names.update(_optimizer_slot_names(c.node, scan))
            elif _reaches_legacy(c, scan, legacy_names, legacy_funcs) or any(
                    not assigned.get(n) or any(id(o.node) in blocked for o in assigned[n])
                    for n in _optimizer_slot_names(c.node, scan)):
                blocked.add(id(c.node))
        for group in assigned.values():  # one variable: all its definitions, or none
            if any(id(c.node) in blocked for c in group):
                blocked.update(id(c.node) for c in group)
        changed = before != (len(blocked), len(legacy_names), len(legacy_funcs))
    plan: dict[int, _Outcome] = {}
    code = module.code
    lines = code.splitlines()
    starts: list[tuple[int, int]] | None = None
    for c in roots:
        shown = module.code_for_node(c.node.func)
        result = converted[id(c.node)]
        if isinstance(result, str):
            plan[id(c.node)] = _Outcome(todo=f"{shown}(...): {result}; not converted")
        elif id(c.node) in blocked:
            expr, helpers = result
            extra = (f" with {', '.join(_helper_names(helpers))} from linen_upgrade/optax_legacy.py"
                     if helpers else "")
            plan[id(c.node)] = _Outcome(todo=(
                f"{shown}(...) feeds flax.optim code that is not converted (.create, apply_gradient, "
                f"...): convert them together; optax form: {' '.join(expr.split())}{extra}"))
        else:
            if starts is None:
                starts = _call_starts(code, scan.calls)
            line_no, column = starts[c.call_index]
            line = lines[line_no - 1]
            plan[id(c.node)] = _Outcome(*result, indent=line[:len(line) - len(line.lstrip())],
                                        column=column)
    return plan


@lru_cache(maxsize=None)
def _helper_objects(helper_source: str) -> dict[str, str]:
    """The functions/classes a helper defines, with their code."""
    return {s.name.value: cst.Module([]).code_for_node(s.with_changes(leading_lines=[])).strip()
            for s in cst.parse_module(helper_source).body if isinstance(s, (cst.FunctionDef, cst.ClassDef))}


def _names_taken(module: cst.Module, ctx: Context) -> set[str]:
    """Module-level names bound to something other than our helper of that name."""
    ours = {name: code for h in HELPERS.values() for name, code in _helper_objects(h.source).items()}
    taken = set(ctx.facts.imports.aliases)
    for stmt in module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            code = cst.Module([]).code_for_node(stmt.with_changes(leading_lines=[])).strip()
            if ours.get(stmt.name.value) != code:
                taken.add(stmt.name.value)
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                for target in getattr(small, "targets", ()):
                    if isinstance(target.target, cst.Name):
                        taken.add(target.target.value)
    return taken


def _assign_targets(c: _Ctor) -> set[str]:
    parent = c.ancestors[-1] if c.ancestors else None
    if isinstance(parent, cst.Assign) and parent.value is c.node:
        return {_last(t.target) for t in parent.targets} - {""}
    if isinstance(parent, cst.AnnAssign) and parent.value is c.node:
        return {_last(parent.target)} - {""}
    return set()


def _call_starts(code: str, expected: int) -> list[tuple[int, int]]:
    """(line, column) of every call in ``code`` in source order -- the order a
    LibCST traversal meets them (outer call first when two start together).
    ``ast`` gives positions for a fraction of LibCST's PositionProvider cost."""
    tree = ast.parse(code)
    calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)),
                   key=lambda n: (n.lineno, n.col_offset, -(n.end_lineno or 0), -(n.end_col_offset or 0)))
    assert len(calls) == expected, "ast and LibCST disagree on the calls of this file"
    lines = code.splitlines()
    # ast columns count UTF-8 bytes, LibCST's count characters
    return [(n.lineno, len(lines[n.lineno - 1].encode("utf-8")[:n.col_offset].decode("utf-8", "replace")))
            for n in calls]


def _reaches_legacy(c: _Ctor, scan: _Scan, legacy_names: set[str], legacy_funcs: set[str]) -> bool:
    """Is the definition's value visibly used through the OptimizerDef API?"""
    parent = c.ancestors[-1] if c.ancestors else None
    if isinstance(parent, cst.Attribute):
        return True
    if _assign_targets(c) & legacy_names:
        return True
    if c.function in legacy_funcs and any(isinstance(a, cst.Return) for a in c.ancestors):
        return True  # in what the function returns
    if isinstance(parent, cst.Arg) and len(c.ancestors) >= 2 and isinstance(c.ancestors[-2], cst.Call):
        call = c.ancestors[-2]
        if parent.keyword is not None:
            return parent.keyword.value in legacy_names
        positional = [a for a in call.args if a.keyword is None and not a.star]
        params = scan.params.get(_last(call.func), [])
        if parent in positional and positional.index(parent) < len(params):
            return params[positional.index(parent)] in legacy_names
    return False


def _optimizer_slot_names(call: cst.Call, scan: _Scan) -> set[str]:
    """Variables passed where a wrapper (WeightNorm, MultiOptimizer) takes a definition."""
    return {n.value for n in _optimizer_slots(call, scan) if isinstance(n, cst.Name)}


def _optimizer_slots(call: cst.Call, scan: _Scan) -> list[cst.BaseExpression]:
    qual = scan.qual(call.func)
    if qual == _WEIGHT_NORM:
        for i, a in enumerate(call.args):
            if (a.keyword is None and i == 0 and not a.star) or (
                    a.keyword is not None and a.keyword.value == "wrapped_optimizer"):
                return [a.value]
    if qual == MULTI:
        return [a.value.elements[1].value for a in call.args
                if isinstance(a.value, (cst.Tuple, cst.List)) and len(a.value.elements) == 2]
    return []


# -- one definition -> optax source --------------------------------------------
def _convert(call: cst.Call, scan: _Scan, module: cst.Module) -> tuple[str, tuple[str, ...]]:
    qual = scan.qual(call.func) or ""
    _, row = row_for(qual)
    if any(a.star for a in call.args):
        raise ConversionError("*args/**kwargs hide its arguments")
    helpers: list[str] = []
    sources: dict[str, str] = {}
    if qual == MULTI:
        for i, a in enumerate(call.args):
            pair = a.value
            if (a.keyword is not None or not isinstance(pair, (cst.Tuple, cst.List))
                    or len(pair.elements) != 2 or any(isinstance(e, cst.StarredElement) for e in pair.elements)):
                raise ConversionError("each argument must be a literal (traversal, optimizer) pair")
            sources[f"traversal_{i}"] = _traversal_source(pair.elements[0].value, scan, module)
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
            if qual == _WEIGHT_NORM and name == "wrapped_optimizer":
                sources[name], hs = _slot_source(a.value, scan, module)
                helpers += hs
            else:
                _no_definitions_inside(a.value, scan)
                sources[name] = module.code_for_node(a.value).strip()
    expr, hs = optax_expression(qual, sources)
    return expr, tuple(dict.fromkeys([*helpers, *hs]))


def _slot_source(node: cst.BaseExpression, scan: _Scan, module: cst.Module) -> tuple[str, list[str]]:
    if isinstance(node, cst.Call) and scan.qual(node.func) in TRANSFORMS | {MULTI}:
        expr, helpers = _convert(node, scan, module)
        return expr, list(helpers)
    if isinstance(node, cst.Name):  # checked in _plan: bound to converted definitions only
        return node.value, []
    raise ConversionError("the wrapped optimizer must be a flax.optim definition or a variable bound to one")


def _traversal_source(node: cst.BaseExpression, scan: _Scan, module: cst.Module) -> str:
    """An inline ``ModelParamTraversal(filter)`` is passed as its filter (the
    class is deprecated in current Flax); anything else as it is."""
    _no_definitions_inside(node, scan)
    if isinstance(node, cst.Call) and scan.qual(node.func) in (TRAVERSAL, TRAVERSAL_TARGET):
        if len(node.args) == 1 and not node.args[0].star and (
                node.args[0].keyword is None or node.args[0].keyword.value == "filter_fn"):
            return module.code_for_node(node.args[0].value).strip()
    return module.code_for_node(node).strip()


def _no_definitions_inside(node: cst.CSTNode, scan: _Scan) -> None:
    class Find(FastVisitor):
        def visit_Call(self, call: cst.Call) -> bool:
            if scan.qual(call.func) in TRANSFORMS | {MULTI}:
                raise ConversionError("a flax.optim definition inside an argument")
            return True
    node.visit(Find())


def _helper_names(sources: tuple[str, ...]) -> list[str]:
    by_source = {h.source: name for name, h in HELPERS.items()}
    return [by_source.get(s, "?") for s in sources]


# -- the rewrite ---------------------------------------------------------------
class _Transformer(RuleTransformer):
    def __init__(self, rule: Rule, ctx: Context, plan: dict[int, _Outcome]) -> None:
        super().__init__(rule, ctx)
        self.plan = plan
        self.imports: set[str] = set()
        self.helpers: list[str] = []
        self._attrs: set[int] = set()  # the .attr Name of every Attribute

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        if any(canonical(self.resolve(b.value) or "") in OPTIMIZERS for b in node.bases):
            self.todo(f"{node.name.value}: {OPTIMIZERS['flax.optim.OptimizerDef'].guideline}")
        return True

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        outcome = self.plan.get(id(original))
        if outcome is None:
            return self._dynamic_scale(original, updated)
        if outcome.todo:
            self.todo(outcome.todo)
            return updated
        assert outcome.expr is not None
        self.imports.add("optax")
        by_source = {h.source: h for h in HELPERS.values()}
        for src in outcome.helpers:
            if src not in self.helpers:
                self.helpers.append(src)
            self.imports.update(by_source[src].imports)
        self.fixed(f"{dotted(original.func)}(...) -> {' '.join(outcome.expr.split())}")
        new = _format(cst.parse_expression(outcome.expr), outcome.indent, outcome.column)
        new = new.visit(self)  # renames traversals inside
        return new.with_changes(lpar=original.lpar, rpar=original.rpar)

    def _dynamic_scale(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        qual = self.resolve(original.func)
        if qual is None or canonical(qual) != _DYNAMIC_SCALE:
            return updated
        row = OPTIMIZERS[_DYNAMIC_SCALE]
        positional = [a for a in original.args if a.keyword is None]
        try:
            if any(a.star for a in original.args) or len(positional) > len(row.param_names):
                raise ConversionError("*args/**kwargs or too many arguments")
            assert self._module is not None
            sources = {**{n: self._module.code_for_node(a.value) for n, a in zip(row.param_names, positional)},
                       **{a.keyword.value: self._module.code_for_node(a.value)
                          for a in original.args if a.keyword is not None}}
            expr, _ = optax_expression(_DYNAMIC_SCALE, sources)
        except ConversionError as e:
            self.todo(f"{dotted(original.func)}(...): {e}; not converted")
            return updated
        self.imports.update(row.imports)
        self.fixed(f"{dotted(original.func)} -> flax.training.dynamic_scale.DynamicScale")
        return cst.parse_expression(expr).with_changes(lpar=original.lpar, rpar=original.rpar)

    # optim.ModelParamTraversal is flax.traverse_util's class, re-exported
    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self._attrs.add(id(node.attr))
        return True

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        return self._traversal(original, updated)

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        return updated if id(original) in self._attrs else self._traversal(original, updated)

    def _traversal(self, original: cst.BaseExpression, updated: cst.BaseExpression) -> cst.BaseExpression:
        qual = self.resolve(original) if dotted(original) else None
        if qual is None or canonical(qual) != TRAVERSAL:
            return updated
        spelling, module = express(TRAVERSAL_TARGET, self.ctx.facts.imports)
        if module is not None:
            self.imports.add(TRAVERSAL_TARGET.rsplit(".", 1)[0])
        return cst.parse_expression(spelling).with_changes(lpar=original.lpar, rpar=original.rpar)


def _newline(indent: str) -> cst.ParenthesizedWhitespace:
    return cst.ParenthesizedWhitespace(first_line=cst.TrailingWhitespace(), empty_lines=[], indent=False,
                                       last_line=cst.SimpleWhitespace(indent))


def _format(node: cst.BaseExpression, indent: str, column: int, depth: int = 0) -> cst.BaseExpression:
    """One argument a line, indented from the line the call starts on, where
    the expression does not fit in the line."""
    if column + len(cst.Module([]).code_for_node(node)) <= _WIDTH:
        return node
    inner, closing = _newline(indent + "    " * (depth + 1)), _newline(indent + "    " * depth)
    column = len(indent) + 4 * (depth + 1)
    if isinstance(node, cst.Call) and node.args:
        args = [a.with_changes(value=_format(a.value, indent, column + len(_keyword(a)), depth + 1),
                               comma=cst.Comma(whitespace_after=inner if i < len(node.args) - 1 else closing))
                for i, a in enumerate(node.args)]
        return node.with_changes(whitespace_before_args=inner, args=args)
    if isinstance(node, cst.Dict) and node.elements:
        elements = [e.with_changes(value=_format(e.value, indent, column + 4 + len(_key(e)), depth + 1),
                                   comma=cst.Comma(whitespace_after=inner if i < len(node.elements) - 1
                                                   else closing))
                    for i, e in enumerate(node.elements)]
        return node.with_changes(lbrace=cst.LeftCurlyBrace(whitespace_after=inner), elements=elements)
    return node


def _keyword(arg: cst.Arg) -> str:
    return f"{arg.keyword.value}=" if arg.keyword is not None else ""


def _key(element: cst.BaseDictElement) -> str:
    key = getattr(element, "key", None)
    return cst.Module([]).code_for_node(key) + ": " if key is not None else ""


def _is_header(stmt: cst.CSTNode) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    return all(isinstance(s, (cst.Import, cst.ImportFrom)) or (
        isinstance(s, cst.Expr) and isinstance(s.value, (cst.SimpleString, cst.ConcatenatedString)))
        for s in stmt.body)


def _insert_helpers(module: cst.Module, helpers: list[str]) -> cst.Module:
    """The custom transforms, once each, after the leading imports."""
    defined = {s.name.value for s in module.body if isinstance(s, (cst.FunctionDef, cst.ClassDef))}
    new: list[cst.BaseStatement] = []
    for src in helpers:
        for stmt in cst.parse_module(src).body:
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and stmt.name.value not in defined:
                defined.add(stmt.name.value)
                new.append(stmt.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()]))
    if not new:
        return module
    body = list(module.body)
    at = 0
    while at < len(body) and _is_header(body[at]):
        at += 1
    if at < len(body):
        blank = 0
        for line in body[at].leading_lines:
            if line.comment is not None:
                break
            blank += 1
        if blank < 2:
            body[at] = body[at].with_changes(
                leading_lines=[cst.EmptyLine()] * (2 - blank) + list(body[at].leading_lines))
    return module.with_changes(body=[*body[:at], *new, *body[at:]])


# -- imports nothing uses any more ---------------------------------------------
class _Uses(FastVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.dotted: set[str] = set()
        self._attrs: set[int] = set()

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self._attrs.add(id(node.attr))
        name = dotted(node)
        if name:
            self.dotted.add(name)
        return True

    def visit_Name(self, node: cst.Name) -> bool:
        if id(node) not in self._attrs:
            self.names.add(node.value)
        return False


def _is_optim(target: str) -> bool:
    target = canonical(target)
    return target == "flax.optim" or target.startswith("flax.optim.")


def _drop_unused_optim_imports(module: cst.Module, ctx: Context) -> cst.Module:
    """``flax.optim`` does not exist in current Flax: an import of it that
    nothing uses any more must go, or the upgraded file cannot be imported."""
    uses = _Uses()
    module.visit(uses)
    unused = {target for local, target in ctx.facts.imports.aliases.items()
              if _is_optim(target) and local not in uses.names}
    module = drop_from_imports(module, unused)
    optim_dotted = any(d == "flax.optim" or d.startswith("flax.optim.") for d in uses.dotted)

    class DropImports(FastTransformer):
        def on_visit(self, node: cst.CSTNode) -> bool:
            # imports are statements: no need to walk into expressions (most of a tree)
            return not isinstance(node, cst.BaseExpression) and super().on_visit(node)

        def leave_Import(self, original: cst.Import, updated: cst.Import):
            keep = []
            for orig, alias in zip(original.names, updated.names):
                name = dotted(alias.name) or ""
                local = alias.asname.name.value if alias.asname else None  # type: ignore[union-attr]
                if _is_optim(name) and local is not None and local not in uses.names:
                    continue
                if _is_optim(name) and local is None and not optim_dotted:
                    if "flax" in uses.names and not _other_flax_import(module, orig):
                        alias = alias.with_changes(name=cst.Name("flax"))  # it also bound `flax`
                    else:
                        continue
                keep.append(alias)
            if not keep:
                return cst.RemoveFromParent()
            keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(names=keep)

    return module.visit(DropImports())


def _other_flax_import(module: cst.Module, this: cst.ImportAlias) -> bool:
    """Does another ``import flax...`` statement bind ``flax``?"""
    found = False

    class Find(FastVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            # imports are statements: expressions (most of a tree) cannot hold one
            return not isinstance(node, cst.BaseExpression) and super().on_visit(node)

        def visit_ImportAlias(self, node: cst.ImportAlias) -> bool:
            nonlocal found
            name = dotted(node.name) or ""
            if node is not this and node.asname is None and name.split(".")[0] == "flax" and not _is_optim(name):
                found = True
            return False

        def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
            return False
    module.visit(Find())
    return found
