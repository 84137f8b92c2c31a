"""User subclasses of ``flax.optim.OptimizerDef``, for LU301
(optim_constructors) and LU302 (optim_train_state).

A subclass that only defines ``__init__`` (setting its hyper-parameters
through ``OptimizerDef.__init__``), ``init_param_state`` and
``apply_param_gradient`` becomes a plain class (``super().__init__(hp)`` ->
``self.hyper_params = hp``), and every instance used as an optimizer
definition becomes ``optax_from_optimizer_def(instance)``: the row
``flax.optim.OptimizerDef`` of ``linen_upgrade/tables/optimizers.py``, which
runs the class's own per-parameter bodies as ``Optimizer.apply_gradient``
did.  A class overriding the whole-tree ``apply_gradient(hyper_params,
params, state, grads)`` (with ``init_param_state``) keeps it, and the
transform runs it instead; the legacy ``OptimizerState(step, param_states)``
it builds becomes the transform's ``ParamUpdateState``, the same fields.
``Scan.qual`` names the constructor calls of such classes by that row.
Anything else the class takes from the base (overriding ``init_state``,
calling ``super().apply_gradient``, ``self.update_hyper_params``,
``state_dict``, ...) is not what the transform runs: the class and its
instances keep a TODO.

A subclass of a built-in definition of ``BASES`` (``flax.optim.LAMB``) with
its own ``apply_param_gradient`` (not ``apply_gradient``) takes only
``__init__`` and ``init_param_state`` from it: it derives from the plain
class of the table instead (copied into the file), which has both, with the
same signature; its ``super().__init__(...)`` stays, and the legacy module's
classes it names (``lamb._LAMBParamState``) become the copied ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import libcst as cst

from linen_upgrade import engine
from linen_upgrade.facts import FileFacts
from linen_upgrade.resolve import canonical, dotted
from linen_upgrade.rule import Context, FastTransformer, FastVisitor
from linen_upgrade.rules._cst import kwarg
from linen_upgrade.tables.optimizers import BASES, OPTIMIZER_DEF, BaseClass
from linen_upgrade.transformer import bound_names

# OptimizerDef API that optax_from_optimizer_def does not run: overriding or calling it changes the update
_BASE_API = frozenset({"init_state", "apply_gradient", "update_hyper_params", "create", "state_dict",
                       "restore_state"})
_OWN = ("init_param_state", "apply_param_gradient")
# a whole-tree update the class may override: from_apply_gradient runs it (its state: ParamUpdateState)
_WHOLE_TREE = "apply_gradient"
_STATE = "flax.optim.OptimizerState"
_STATE_FIELDS = ("step", "param_states")
# a file without one of these words defines no subclass of OptimizerDef or of a BASES class
_BASE_NAMES = ("OptimizerDef", *(q.rpartition(".")[2] for q in BASES))


def _plain_signature(fn: cst.FunctionDef, count: int) -> bool:
    params = fn.params
    return (len(params.params) == count and not params.posonly_params and not params.kwonly_params
            and not isinstance(params.star_arg, cst.Param) and params.star_kwarg is None)


_LOCAL: dict[int, tuple[FileFacts, frozenset[str]]] = {}


def user_defs(facts: FileFacts) -> frozenset[str]:
    """Classes of the file deriving from ``flax.optim.OptimizerDef`` (also through another of them)."""
    cached = _LOCAL.get(id(facts))
    if cached is not None and cached[0] is facts:
        return cached[1]
    if len(_LOCAL) > 256:
        _LOCAL.clear()
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for c in facts.classes:
            if c.name not in found and any(canonical(b) in (OPTIMIZER_DEF, *BASES) or b in found
                                           for b in c.bases):
                found.add(c.name)
                changed = True
    _LOCAL[id(facts)] = facts, frozenset(found)
    return _LOCAL[id(facts)][1]


# (the run's index, module -> what _other_file read): a new index (held, so its id is never
# reused) is a new run, and what the last one read is dropped
_OTHER_FILES: list = [None, {}]


def _other_file(ctx: Context, module: str) -> tuple[frozenset[str], cst.Module, Callable] | None:
    """The user definitions of another file of the run, and its tree (read once per run)."""
    if _OTHER_FILES[0] is not ctx.index:
        _OTHER_FILES[:] = [ctx.index, {}]
    read = _OTHER_FILES[1]
    if module not in read:
        path = ctx.index.paths.get(module)
        try:
            data = Path(path).read_bytes() if path and path.endswith(".py") else None
            if data is None or not any(n.encode() in data for n in _BASE_NAMES):
                read[module] = None
            else:
                facts = engine.facts_for(data, path, module)  # type: ignore[arg-type]
                engine.decode(data, path)  # type: ignore[arg-type]  # a SourceError where it cannot be decoded
                tree = engine.tree_of(path, data, ctx.index)  # type: ignore[arg-type]
                read[module] = user_defs(facts), tree, facts.imports.resolve
        except (OSError, ValueError, engine.SourceError, cst.ParserSyntaxError):
            read[module] = None
    return read[module]


def is_user_def(node: cst.BaseExpression, qual: str | None, ctx: Context) -> bool:
    """Does ``node`` (resolved to ``qual``) name a user subclass of OptimizerDef?"""
    if qual is None:
        return isinstance(node, cst.Name) and node.value in user_defs(ctx.facts)
    module, _, name = qual.rpartition(".")
    if module == ctx.facts.module_name or module not in ctx.index.paths:
        return False
    other = _other_file(ctx, module)
    return other is not None and name in other[0]


def definition_problem(call: cst.Call, ctx: Context, module: cst.Module) -> str | None:
    """Why the user definition ``call`` constructs has no optax form here (None: it has one)."""
    qual = ctx.facts.imports.resolve(call.func)
    if qual is not None and canonical(qual) == OPTIMIZER_DEF:
        return "flax.optim.OptimizerDef itself has no update rule: subclass it"
    if qual is None:
        defs, tree, resolve, name = user_defs(ctx.facts), module, ctx.facts.imports.resolve, dotted(call.func) or ""
    else:
        other = _other_file(ctx, qual.rpartition(".")[0])
        assert other is not None
        (defs, tree, resolve), name = other, qual.rpartition(".")[2]
    return _chain_problem(name, defs, tree, resolve)


def _chain_problem(name: str, defs: frozenset[str], tree: cst.Module, resolve) -> str | None:
    """The problem of class ``name`` or of the user definitions it derives from."""
    classes = {s.name.value: s for s in tree.body if isinstance(s, cst.ClassDef)}
    seen: set[str] = set()
    while name in classes and name not in seen:
        seen.add(name)
        node = classes[name]
        problem = class_problem(node, defs, resolve)
        if problem is not None:
            return f"{name}: {problem}"
        parents = [b.value.value for b in node.bases if isinstance(b.value, cst.Name) and b.value.value in defs]
        if not parents:
            return None
        name = parents[0]
    return None if name in seen else f"{name} is not a top-level class of its file"


def _is_base(node: cst.BaseExpression, resolve: Callable) -> bool:
    """Does the base ``node`` name flax.optim.OptimizerDef (or a class of ``BASES``)?"""
    qual = resolve(node)
    return qual is not None and (canonical(qual) == OPTIMIZER_DEF or canonical(qual) in BASES)


def builtin_base(node: cst.ClassDef, resolve: Callable) -> BaseClass | None:
    """The row of ``BASES`` the class derives from directly, else None."""
    for b in node.bases:
        qual = resolve(b.value)
        if qual is not None and canonical(qual) in BASES:
            return BASES[canonical(qual)]
    return None


def class_problem(node: cst.ClassDef, defs: frozenset[str], resolve) -> str | None:
    """Why the class cannot become a plain class run by ``optax_from_optimizer_def``
    (``defs``: the user definitions of its file; ``resolve``: its file's name resolution)."""
    direct = [i for i, b in enumerate(node.bases) if _is_base(b.value, resolve)]
    if node.keywords or any(b.star for b in node.bases):
        return "class keywords or *bases"
    if direct and direct[0] != 0:
        return "OptimizerDef is not its first base (super() would reach another base first)"
    methods = {s.name.value: s for s in node.body.body if isinstance(s, cst.FunctionDef)}
    overridden = sorted(set(methods) & (_BASE_API - {_WHOLE_TREE}))
    if overridden:
        return f"overrides OptimizerDef.{', '.join(overridden)}, which the optax transform does not run"
    whole_tree = methods.get(_WHOLE_TREE)
    if whole_tree is not None and not _plain_signature(whole_tree, 5):
        return f"its {_WHOLE_TREE} does not take (self, hyper_params, params, state, grads)"
    builtin = builtin_base(node, resolve)
    if len(direct) > 1:
        return "derives from two flax.optim definitions"
    if builtin is not None and (whole_tree is not None or _OWN[1] not in methods):
        return (f"overrides {_WHOLE_TREE}" if whole_tree is not None else f"does not define {_OWN[1]}") \
            + f" (only {builtin.base}'s __init__ and {_OWN[0]} are copied in, for its own {_OWN[1]})"
    if direct and builtin is None and not all(m in methods for m in (_OWN[:1] if whole_tree is not None
                                                                      else _OWN)):
        return ("does not define init_param_state" if whole_tree is not None
                else "does not define init_param_state and apply_param_gradient")
    states = _StateUses(resolve, whole_tree)
    node.body.visit(states)
    if states.other:
        return (f"uses flax.optim.OptimizerState otherwise than building its {_WHOLE_TREE}'s new state "
                "from (step, param_states)")
    uses = _BaseUses()
    node.body.visit(uses)
    if uses.api:
        return f"uses OptimizerDef.{', '.join(sorted(uses.api))}, which the optax transform does not have"
    if not direct:
        return None
    if builtin is not None:  # its base keeps __init__: only super().__init__(...) reaches it
        return "super() used beyond super().__init__(...)" if uses.supers - {"__init__"} else None
    init = methods.get("__init__")
    if init is None:
        return None  # OptimizerDef.__init__(self, hyper_params) is copied in
    if base_init_calls(node, defs, resolve, outside_init=True):
        return "calls OptimizerDef.__init__ outside __init__"
    calls = base_init_calls(init, defs, resolve)
    if len(calls) != 1 and not (not calls and _sets_hyper_params(init)):
        return "hyper_params not set by exactly one OptimizerDef.__init__(hyper_params) statement in __init__"
    if uses.supers - {"__init__"}:
        return "super() used beyond super().__init__(hyper_params)"
    return None


class _StateUses(FastVisitor):
    """The class's uses of ``OptimizerState``: only ``OptimizerState(step, param_states)`` in
    the overriding ``apply_gradient`` whose ``state`` parameter is never rebound, which
    ``convert_class`` writes ``state.replace(step=..., param_states=...)`` (the transform's state)."""

    def __init__(self, resolve, whole_tree: cst.FunctionDef | None) -> None:
        super().__init__()
        self.resolve, self.whole_tree = resolve, whole_tree
        self.other = False
        self._in: list[bool] = []
        self._calls: set[int] = set()  # funcs of the convertible calls

    def visit_FunctionDef(self, fn: cst.FunctionDef) -> None:
        self._in.append(fn is self.whole_tree and not _rebinds(fn, fn.params.params[3].name.value))

    def leave_FunctionDef(self, fn: cst.FunctionDef) -> None:
        self._in.pop()

    def visit_Call(self, node: cst.Call) -> None:
        if self._in and self._in[-1] and state_fields(node, self.resolve) is not None:
            self._calls.add(id(node.func))

    def _seen(self, node: cst.BaseExpression) -> bool:
        if id(node) not in self._calls and canonical(self.resolve(node) or "") == _STATE:
            self.other = True
            return False
        return True

    def visit_Name(self, node: cst.Name) -> None:
        self._seen(node)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        return self._seen(node)


def state_fields(call: cst.Call, resolve) -> dict[str, cst.BaseExpression] | None:
    """``OptimizerState(a, param_states=b)`` -> its two fields; None for anything else."""
    if canonical(resolve(call.func) or "") != _STATE or any(a.star for a in call.args):
        return None
    fields = {name: a.value for name, a in zip(_STATE_FIELDS, call.args) if a.keyword is None}
    for a in call.args:
        if a.keyword is not None:
            if a.keyword.value in fields or a.keyword.value not in _STATE_FIELDS:
                return None
            fields[a.keyword.value] = a.value
    return fields if len(fields) == len(_STATE_FIELDS) and len(call.args) == len(fields) else None


def _rebinds(fn: cst.FunctionDef, name: str) -> bool:
    return bool(bound_names(fn.body, frozenset({name})))  # the body: the parameter itself binds it


class _BaseUses(FastVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.api: set[str] = set()
        self.supers: set[str] = set()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        value = node.value
        if isinstance(value, cst.Name) and value.value == "self" and node.attr.value in _BASE_API:
            self.api.add(node.attr.value)
        if isinstance(value, cst.Call) and dotted(value.func) == "super":
            self.supers.add(node.attr.value)
            if node.attr.value in _BASE_API:
                self.api.add(node.attr.value)


def _base_init(stmt: cst.BaseStatement, defs: frozenset[str], resolve) -> cst.Arg | None:
    """The hyper_params argument of a ``super().__init__(hp)`` /
    ``OptimizerDef.__init__(self, hp)`` statement, else None."""
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Expr) and isinstance(stmt.body[0].value, cst.Call)):
        return None
    call = stmt.body[0].value
    func = call.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "__init__"):
        return None
    args = [a for a in call.args]
    if isinstance(func.value, cst.Call) and dotted(func.value.func) == "super":
        pass
    elif _is_base(func.value, resolve) and args and args[0].keyword is None:
        args = args[1:]
    else:
        return None
    if len(args) != 1 or args[0].star or (args[0].keyword is not None and args[0].keyword.value != "hyper_params"):
        return None
    return args[0]


def base_init_calls(node: cst.CSTNode, defs: frozenset[str], resolve, outside_init: bool = False) -> list[cst.Arg]:
    found: list[cst.Arg] = []

    class Find(FastVisitor):
        def visit_FunctionDef(self, fn: cst.FunctionDef) -> bool:
            return not (outside_init and fn.name.value == "__init__")

        def visit_SimpleStatementLine(self, stmt: cst.SimpleStatementLine) -> bool:
            arg = _base_init(stmt, defs, resolve)
            if arg is not None:
                found.append(arg)
            return False
    node.visit(Find())
    return found


def _sets_hyper_params(init: cst.FunctionDef) -> bool:
    """``self.hyper_params = ...`` (a class converted already)."""
    found = False

    class Find(FastVisitor):
        def visit_AssignTarget(self, t: cst.AssignTarget) -> None:
            nonlocal found
            found = found or dotted(t.target) == "self.hyper_params"
    init.visit(Find())
    return found


_BASE_INIT = "def __init__(self, hyper_params):\n    self.hyper_params = hyper_params\n"


def _is_docstring(stmt: cst.BaseStatement) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 \
        and isinstance(stmt.body[0], cst.Expr) and isinstance(stmt.body[0].value, (cst.SimpleString,
                                                                                   cst.ConcatenatedString))


def convert_class(node: cst.ClassDef, defs: frozenset[str], resolve) -> cst.ClassDef:
    """Drop the OptimizerDef base; ``super().__init__(hp)`` -> ``self.hyper_params = hp``
    (no ``__init__``: the base's, copied in).  A subclass of a ``BASES`` class derives
    from its plain class instead (see ``_derive_from_plain``)."""
    builtin = builtin_base(node, resolve)
    if builtin is not None:
        return _derive_from_plain(node, builtin, resolve)
    if not any(isinstance(s, cst.FunctionDef) and s.name.value == "__init__" for s in node.body.body):
        body = list(node.body.body)
        at = 1 if body and _is_docstring(body[0]) else 0
        init = cst.parse_statement(_BASE_INIT)
        if at:
            init = init.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        if at < len(body) and not body[at].leading_lines:
            body[at] = body[at].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        node = node.with_changes(body=node.body.with_changes(body=[*body[:at], init, *body[at:]]))
    bases = [b for b in node.bases if not _is_base(b.value, resolve)]
    if bases:
        bases[-1] = bases[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        node = node.with_changes(bases=bases)
    else:
        node = node.with_changes(bases=[], lpar=cst.MaybeSentinel.DEFAULT, rpar=cst.MaybeSentinel.DEFAULT)

    class Rewrite(FastTransformer):
        this = "self"

        state: str | None = None  # the state parameter of the overriding apply_gradient

        def visit_FunctionDef(self, fn: cst.FunctionDef) -> bool:
            if fn.name.value == "__init__" and fn.params.params:
                Rewrite.this = fn.params.params[0].name.value
            if fn.name.value == _WHOLE_TREE:
                Rewrite.state = fn.params.params[3].name.value
            return True

        def leave_FunctionDef(self, original, updated):
            if original.name.value == _WHOLE_TREE:
                Rewrite.state = None
            return updated

        def leave_Call(self, original, updated):
            # the state an overriding apply_gradient builds: the transform's, with the same fields
            fields = state_fields(updated, resolve)
            if fields is None or Rewrite.state is None:
                return updated
            return cst.Call(func=cst.Attribute(cst.Name(Rewrite.state), cst.Name("replace")),
                            args=[kwarg(f, fields[f]) for f in _STATE_FIELDS])

        def leave_SimpleStatementLine(self, original, updated):
            arg = _base_init(original, defs, resolve)
            if arg is None:
                return updated
            code = cst.Module([]).code_for_node(arg.value)
            new = cst.parse_statement(f"{Rewrite.this}.hyper_params = {code}\n")
            return updated.with_changes(body=new.body)  # type: ignore[attr-defined]
    return node.visit(Rewrite())


def _derive_from_plain(node: cst.ClassDef, builtin: BaseClass, resolve) -> cst.ClassDef:
    """The legacy base (and the legacy classes named in the body) -> the plain classes
    copied in: the same ``__init__`` and ``init_param_state``; the rest is the class's own."""
    names = {q: builtin.base for q in BASES if BASES[q] is builtin} | dict(builtin.names)

    attrs: set[int] = set()  # the .attr Name of every Attribute: not a name of its own

    class Rename(FastTransformer):
        def visit_Attribute(self, node: cst.Attribute) -> bool:
            attrs.add(id(node.attr))
            return canonical(resolve(node) or "") not in names

        def leave_Attribute(self, original, updated):
            return self._renamed(original, updated)

        def leave_Name(self, original, updated):
            return updated if id(original) in attrs else self._renamed(original, updated)

        def _renamed(self, original, updated):
            new = names.get(canonical(resolve(original) or ""))
            return updated if new is None else cst.Name(new, lpar=original.lpar, rpar=original.rpar)
    return node.visit(Rename())
