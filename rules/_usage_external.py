"""The usage analysis across the files of the run: the return types of
functions of other files (``models.create_model``), and what the other files
pass to this file's top-level functions (``external_seeds``: the files the
index lists as referring to them, read at a bounded depth), so a Model handed
over by ``train.py`` is applied in ``models.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import libcst as cst

from linen_upgrade.analysis import identity
from linen_upgrade.engine import SourceError, decode, facts_for, tree_of
from linen_upgrade.index import ProjectIndex
from linen_upgrade.rules._cst import express
from linen_upgrade.rules._usage_types import (CLASS, CONFLICT, DEF, ELSEWHERE, FOREIGN, FUNC, INSTANCE, MODEL, OPAQUE,
                                              OPTIM, RECORD, STATE, TRUNC, TUPLE, UNNAMED, UNWRITABLE, Ty, chosen,
                                              conflict, join, unnamed, unwrap_func)
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES

if TYPE_CHECKING:
    from linen_upgrade.rules._usage_analysis import Analysis

# how far the reading of other files goes: a file's own analysis is depth 0; the files whose
# functions it calls are read at depth 1 (their return types), and the files calling this one's
# functions at depth 2 (what they pass, ``seeds``), which read their callees' returns at depth 3
_MAX_DEPTH = 3


def module_file(path: str, own_module: str, module: str) -> Path | None:
    table = identity.current()
    if table is not None and table.name(path):  # the run names its files by path
        found = table.path(module)
        return Path(found) if found else None
    here = Path(path).resolve().parent
    for _ in range(max(0, len(own_module.split(".")) - 1)):
        here = here.parent
    base = here.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


# this run's readings of other files, per worker: (the run's index, (path, module) -> its tree and
# facts, (path, module, depth) -> its analysis, id(analysis) -> it and its calls of other files' functions
# (``_calls_out``)).  A run reads its files before any is written; a new index (held here, so its id
# is never reused) is a new run, and everything read before is dropped
_RUN: list = [None, {}, {}, {}]


def external_analysis(file: Path, module: str, index: ProjectIndex, depth: int = 1) -> Analysis | None:
    from linen_upgrade.rules._usage_analysis import Analysis  # which reads other files through this module

    if _RUN[0] is not index:
        _RUN[:] = [index, {}, {}, {}]
    parsed, analyses = _RUN[1], _RUN[2]
    key = (str(file), module, depth)
    if key not in analyses:
        if key[:2] not in parsed:  # the same tree and facts at every depth
            try:
                text = file.read_text(encoding="utf-8")
                data = file.read_bytes()
                facts = facts_for(data, str(file), module)
                # the run's tree of the file (LibCST decodes its bytes as engine.decode does) where
                # that is this text: not with a BOM, CRLF line ends or another encoding's cookie
                tree = tree_of(str(file), data, index) if decode(data, str(file)) == text else cst.parse_module(text)
                parsed[key[:2]] = (tree, facts)
            except (OSError, UnicodeDecodeError, SyntaxError, SourceError, cst.ParserSyntaxError):
                parsed[key[:2]] = None
        found = parsed[key[:2]]
        try:
            analyses[key] = Analysis(*found, index, str(file), depth=depth) if found else None
        except (OSError, UnicodeDecodeError, SyntaxError, cst.ParserSyntaxError):
            analyses[key] = None
    return analyses[key]


def analysis_of(path: str, own_module: str, index: ProjectIndex, qual: str, depth: int = 1) -> Analysis | None:
    """The analysis of the file of the run that defines ``qual`` (``models.create_model``), as the
    file at ``path`` (module ``own_module``) finds it, read at ``depth``."""
    module = qual.rpartition(".")[0]
    file = module_file(path, own_module, module) if module else None
    return external_analysis(file, module, index, depth) if file is not None else None


def _reading(a: Analysis, qual: str, depth: int) -> Analysis | None:
    return analysis_of(a.path, a.facts.module_name, a.index, qual, depth)


def external_return(a: Analysis, qual: str, call: cst.Call | None = None, scope=None) -> Ty | None:
    """The result type of a function defined in another file of the run;
    only what can be written in this file (module definitions with literal
    keywords, a definition chosen at run time as a value) comes back, and
    what it made from a run-time definition of a parameter is seen with
    what ``call`` passes there (``Analysis.rebind``)."""
    if a.depth >= _MAX_DEPTH or not a.path or not a.facts.module_name:
        return None
    name = qual.rpartition(".")[2]
    other = _reading(a, qual, a.depth + 1)
    if other is None:
        return None
    fn = other.top_level_function(name)
    if fn is None:  # models.Trainer(...): an instance of a plain class there, with the Models its fields keep
        cls = other.class_nodes.get(name)
        made = other.env.get((id(other.module_scope), name))
        if cls is None and made is not None and made.kind == CLASS and made.func[0] == RECORD:
            return Ty(INSTANCE, func=(RECORD, qual))  # recs.Box(...), Box = collections.namedtuple(...) there
        return _seed(a, other, Ty(INSTANCE, func=(CLASS, id(cls)))) if cls is not None \
            and id(cls) in other.plain_classes else None
    if call is None:
        return _portable(other.rets.get(id(fn)))
    handed = _handed_functions(a, other, fn, call, scope)
    if handed:  # get_model(name, create_model, ...): what it returns of its calls of create_model is ours
        fscope = other.scopes[id(fn)]
        typed = None
        for s, e in other.returns.get(id(fn), []):
            target = handed.get(e.func.value) if isinstance(e, cst.Call) and isinstance(e.func, cst.Name) \
                and s.lookup(e.func.value) is fscope else None
            typed = join(typed, a.rets.get(id(target)) if target is not None else _portable(other.ty(e, s)))
        return typed
    fscope = other.scopes[id(fn)]

    def elsewhere(t: Ty | None) -> Ty | None:
        handed = _handed_back(other, fscope, call, t)
        return _returned(a, other, t) if handed is None else a.ty(handed, scope)
    return a.rebind(other.rets.get(id(fn)), fscope, call, scope, 0, elsewhere)


def _handed_back(other: Analysis, fscope, call: cst.Call, t: Ty | None) -> cst.BaseExpression | None:
    """The argument of ``call`` whose optimizer ``other``'s function returns: the one optimizer
    parameter there has the type the function returns, of classes unnamed there (``opt =
    train.step(opt, batch)``, ``return optimizer.apply_gradient(g)``): what comes back is what the
    caller handed over, typed as there."""
    if t is None or t.kind != OPTIM or t.ref is None or t.ref.qual not in UNNAMED.values():
        return None
    params = [p for p in fscope.params if other.env.get((id(fscope), p)) == t]
    if len(params) != 1:
        return None
    return next((x.value for slot, x in _slots(call, fscope.params) if slot == params[0]), None)


def _returned(a: Analysis, other: Analysis, t: Ty | None) -> Ty | None:
    """What ``other``'s function returns, as this file sees it (``_portable``); an instance of a plain
    class there that keeps no Model is a record here (``recs.snapshot()`` returning a dataclass), which
    a Model meeting it at a parameter makes a conflict."""
    if t is not None and t.kind == INSTANCE and t.func and t.func[0] == CLASS:
        seen = _seed(a, other, t)
        return seen if seen is not None and seen.func[0] == RECORD else None
    return _portable(t)


def _slots(call: cst.Call, params: list[str] | None = None) -> list[tuple[int | str, cst.Arg]]:
    """The arguments of ``call`` by the slot they fill: a position (or, given ``params``, the
    parameter's name there) or a keyword; none after an unpacked ``*args`` (not followed)."""
    unpacked = next((i for i, x in enumerate(call.args) if x.star), len(call.args))
    positional = [x for x in call.args[:unpacked] if x.keyword is None]
    slots: list[tuple[int | str, cst.Arg]] = [
        (params[i] if params is not None else i, x) for i, x in enumerate(positional)
        if params is None or i < len(params)]
    return slots + [(x.keyword.value, x) for x in call.args if x.keyword is not None and not x.star]


def _handed_functions(a: Analysis, other: Analysis, fn: cst.FunctionDef, call: cst.Call,
                      scope) -> dict[str, cst.FunctionDef]:
    """The parameters of ``other``'s function ``fn`` that ``call`` (in ``a``) fills with a top-level
    function of ``a``, where ``fn`` does nothing with them but call them (a callback:
    ``train_utils.get_model(model_type, create_model, ...)`` calling ``create_model_fn(Net, ...)``)."""
    fscope = other.scopes[id(fn)]
    found = {}
    for param, x in _slots(call, fscope.params):
        name = x.value.value if isinstance(x.value, cst.Name) else None
        target = a.top_level_function(name) if name and scope.lookup(name) is a.module_scope \
            and a.module_scope.bound.get(name) == 1 else None
        if target is not None and isinstance(param, str) and fscope.bound.get(param) == 1 \
                and _only_called(fn, param):
            found[param] = target
    return found


def followed_callback(a: Analysis, qual: str, call: cst.Call, scope, arg: cst.Arg) -> bool:
    """Does ``arg`` of ``call`` (``qual``, a function of another file) hand over a function of this
    file that the other file only calls and returns the result of (``_handed_functions``), so that
    what ``call`` returns is typed as what that function returns (``external_return``)?"""
    module, _, name = qual.rpartition(".")
    if not module or module not in a.index.flax_modules or not a.path or not a.facts.module_name:
        return False
    other = _reading(a, qual, 1)
    fn = other.top_level_function(name) if other is not None else None
    if other is None or fn is None:
        return False
    handed = _handed_functions(a, other, fn, call, scope)
    return any(x is arg and param in handed for param, x in _slots(call, other.scopes[id(fn)].params))


def _only_called(fn: cst.FunctionDef, name: str) -> bool:
    """Does ``fn`` use its parameter ``name`` only to return what calling it returns
    (``return create_model_fn(...)``)?  Then what ``fn`` returns of it is the callback's own
    result, which the caller's file types (``external_return``)."""
    class Uses(cst.CSTVisitor):
        def __init__(self) -> None:
            self.all = self.returned = self.nested = 0

        def visit_Name(self, node: cst.Name) -> None:
            self.all += node.value == name

        # a return of a function defined in fn (``def later(): return create_fn(...)``, fn returning
        # ``later``) is not fn's: what fn returns is then another function
        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            self.nested += 1

        def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
            self.nested -= 1

        def visit_ClassDef(self, node: cst.ClassDef) -> None:
            self.nested += 1

        def leave_ClassDef(self, node: cst.ClassDef) -> None:
            self.nested -= 1

        def visit_Return(self, node: cst.Return) -> None:
            self.returned += not self.nested and isinstance(node.value, cst.Call) \
                and isinstance(node.value.func, cst.Name) and node.value.func.value == name

    uses = Uses()
    fn.body.visit(uses)
    return uses.all == uses.returned


def _handed_seeds(a: Analysis) -> dict[tuple[str, int | str], Ty | None]:
    """What other files' functions pass to this file's top-level functions that this file hands
    them as callbacks (``get_model(model_type, create_model, ...)``, which calls
    ``create_model_fn(transformer.TransformerEncoder, model_kwargs, ...)``): a module class there
    is a definition chosen at run time here, held by the parameter (no class is named)."""
    seeds: dict[tuple[str, int | str], Ty | None] = {}
    for scope, call in a.calls:
        qual = a.qual(call.func, scope) if isinstance(call.func, (cst.Name, cst.Attribute)) else None
        module, _, name = (qual or "").rpartition(".")
        if not module or module == a.facts.module_name or module not in a.index.flax_modules:
            continue
        other = _reading(a, qual, 2)  # type: ignore[arg-type]
        fn = other.top_level_function(name) if other is not None else None
        if other is None or fn is None:
            continue
        fscope = other.scopes[id(fn)]
        for param, target in _handed_functions(a, other, fn, call, scope).items():
            for s, inner in other.calls:
                if not isinstance(inner.func, cst.Name) or inner.func.value != param or s.lookup(param) is not fscope:
                    continue
                for slot, x in _slots(inner):
                    t = other.ty(x.value, s)
                    if t is not None and t.kind == DEF and t.ref is not None and not t.ref.choices:
                        t = Ty(DEF, chosen(t.ref, t.ref))  # held by the parameter: no class is named
                    key = (target.name.value, slot)
                    seeds[key] = join(seeds.get(key), _seed(a, other, t))
    return seeds


def external_registry(a: Analysis, qual: str) -> Ty | None:
    """What an entry of another file's module-level registry of module definitions is
    (``models.KNOWN_MODELS[name]``, ``Analysis.registry``), as this file can use it."""
    if a.depth >= _MAX_DEPTH or not a.path or not a.facts.module_name:
        return None
    other = _reading(a, qual, a.depth + 1)
    return _portable(other.registry(qual.rpartition(".")[2])) if other is not None else None


def external_param(a: Analysis, qual: str, position: int | None, keyword: str | None) -> Ty | None:
    """The type the other file gives a parameter of its function: from the calls in that file and
    what the files of the run that call it pass (the same seeds that file's own rewrite uses)."""
    if a.depth > 0 or not a.path or not a.facts.module_name:
        return None
    other = _reading(a, qual, 1)
    fn = other.top_level_function(qual.rpartition(".")[2]) if other is not None else None
    if other is None or fn is None:
        return None
    scope = other.scopes[id(fn)]
    param = keyword if keyword is not None else (
        scope.params[position] if position is not None and position < len(scope.params) else None)
    return other.env.get((id(scope), param)) if param else None


def external_seeds(a: Analysis) -> dict[tuple[str, int | str], Ty | None]:
    """What the other files of the run pass to this file's top-level functions
    (``models.predict(model, x)`` in train.py): (function, position or
    keyword) -> the joined type, as this file can write it.  Both files read
    the same seeds (``external_param``), so the caller passes the params
    exactly where this file applies them."""
    module = a.facts.module_name
    if a.depth > 1 or not a.path or not module:
        return {}
    names = {f.name.value for f in a.funcs.values() if isinstance(f, cst.FunctionDef)
             and a.scope_of.get(id(f)) is a.module_scope}
    callers = sorted({c for n in names for c in a.index.referrers.get(f"{module}.{n}", ())})
    seeds: dict[tuple[str, int | str], Ty | None] = {}
    for caller in callers:
        file = module_file(a.path, module, caller)
        other = external_analysis(file, caller, a.index, depth=2) if file is not None else None
        if other is None:
            continue
        for scope, call, name in _calls_out(other).get(module, ()):
            if name not in names:
                continue
            position = 0
            for arg in call.args:
                slot: int | str = arg.keyword.value if arg.keyword is not None else position
                position += arg.keyword is None
                seeds[(name, slot)] = join(seeds.get((name, slot)), _seed(a, other, other.ty(arg.value, scope)))
    for key, t in _handed_seeds(a).items():
        seeds[key] = join(seeds.get(key), t)
    return seeds


def _calls_out(other: Analysis) -> dict[str, list[tuple[object, cst.Call, str]]]:
    """The calls in ``other`` (a reading of a caller, kept for the run: ``external_analysis``) of
    functions of other files, without an unpacked argument: their module -> (scope, call, function
    name).  Listed once per reading, not again for each analysis of each file it calls."""
    kept = _RUN[3].get(id(other))
    if kept is not None and kept[0] is other:
        return kept[1]
    found: dict[str, list[tuple[object, cst.Call, str]]] = {}
    for scope, call in other.calls:
        t = unwrap_func(other.ty(call.func, scope))
        if t is None or t.kind != FUNC or t.func[0] != "external" or any(arg.star for arg in call.args):
            continue
        owner, _, name = t.func[1].rpartition(".")
        found.setdefault(owner, []).append((scope, call, name))
    _RUN[3][id(other)] = (other, found)  # (held: its id is no other's while the run lasts)
    return found


def _seed(a: Analysis, other: Analysis, t: Ty | None, nested: bool = True) -> Ty | None:
    """A type ``other`` hands to this file, as this file can use it: a module
    definition (or a Model of one) it can spell, else a conflict (a TODO at
    its uses, and at the call in the other file); an instance of one of
    ``other``'s classes with the Models it keeps in its fields."""
    if t is None:
        return None
    if t.kind == TUPLE:
        items = tuple(_seed(a, other, i, nested) for i in t.items)
        return Ty(TUPLE, items=items) if any(items) else None
    if t.kind == INSTANCE and nested and t.func[0] != FOREIGN:
        fields = tuple(sorted((k, f) for k, v in other.fields(t).items()
                              if (f := _seed(a, other, v, False)) is not None))
        cls = other.plain_classes.get(t.func[1])
        if not fields or cls is None:  # a record: no Model, but no Model either where one meets it
            return Ty(INSTANCE, func=(RECORD, other.class_qual(cls.name.value) if cls is not None else other.path))
        return Ty(INSTANCE, items=fields, func=(FOREIGN, other.class_qual(cls.name.value)))
    if t.kind == DEF and t.ref is not None and t.ref.choices:
        return Ty(DEF, t.ref.without_var())  # a value there: module() wherever it is held, no class named
    if t.kind == OPTIM and t.ref is None:  # an optimizer of a Model whose class that reading did not see
        return unnamed(OPTIM, UNWRITABLE)
    if t.kind in (MODEL, TRUNC, DEF, OPTIM) and t.ref is not None:  # (an optimizer: its target's Model)
        qual = t.ref.qual
        writable = t.ref.portable and (qual in BUILTIN_MODULES or qual.rpartition(".")[0] == a.facts.module_name
                                       or express(qual, a.facts.imports)[1] is None)
        if writable:
            return Ty(t.kind, t.ref.without_var(), t.items)
        why = ELSEWHERE if not t.ref.portable else UNWRITABLE
        return unnamed(t.kind, why) if t.kind in (MODEL, OPTIM) else conflict(t.kind, why)  # its params convert
    if t.kind == STATE:
        return Ty(STATE, t.ref.without_var() if t.ref is not None else None)
    if t.kind == CONFLICT and (MODEL in t.items or TRUNC in t.items) or t.kind == OPAQUE:
        return t  # (a library's value: no legacy value, and no Model where one meets it)
    return None


def _portable(t: Ty | None) -> Ty | None:
    if t is None:
        return None
    if t.kind == TUPLE:
        return Ty(TUPLE, items=tuple(_portable(i) for i in t.items))
    if t.kind in (MODEL, OPTIM, DEF) and t.ref is not None:
        if t.kind == DEF and t.ref.choices:
            return Ty(DEF, t.ref.without_var())  # a value here: module() wherever it is held, no class named
        if t.ref.portable or t.ref.qual in UNNAMED.values():  # (a Model that file could not name either)
            return Ty(t.kind, t.ref.without_var())
        return unnamed(MODEL, ELSEWHERE) if t.kind == MODEL else conflict(t.kind, ELSEWHERE)
    if t.kind == INSTANCE and t.func[0] == RECORD or t.kind == OPAQUE:
        return t  # a record (a namedtuple there), a library's value: no legacy value, and no Model where one meets it
    return t if t.kind == STATE else None
