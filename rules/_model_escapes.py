"""The part of LU202's (model_apply) transformer that marks where a Model
(now its params pytree) escapes what the rules follow: passed to code of
another file or class that does not apply it, put into a dict, set, list or
attribute, or a loop over Models mixed with other values.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.analysis import identity
from linen_upgrade.resolve import dotted
from linen_upgrade.rules._cst import code
from linen_upgrade.rules._usage import (CAPTURE, CLASS, CONFLICT, FUNC, INSTANCE, MODEL, OPTIM, TRUNC, TUPLE,
                                        UsageTransformer, conflict_message, element, external_param, unwrap_func)
from linen_upgrade.rules._usage_external import external_analysis, external_return, followed_callback, module_file
from linen_upgrade.rules._usage_types import FOREIGN, RECORD, RECORDS, UNKNOWN

# methods that put a value into a container (where the rules no longer follow it)
_CONTAINER_METHODS = frozenset({"append", "extend", "insert", "add", "update", "setdefault", "put"})
# calls handing their other arguments to a function they are given (jax.lax.scan(step, (model, h), xs),
# map(f, models)): the analysis does not follow them into it (a Model as the function itself is
# _model_values'); the built-ins by their plain names
_FUNCTION_CALLERS = frozenset({"jax.lax.scan", "jax.lax.fori_loop", "jax.lax.while_loop", "jax.lax.cond",
                               "jax.lax.switch", "jax.lax.associative_scan", "jax.lax.map", "jax.lax.custom_root",
                               "functools.reduce", "map", "filter"})
# built-ins calling the key= function they are given with the items (sorted(models, key=f))
_KEYED = frozenset({"sorted", "max", "min"})
_SCAN = "jax.lax.scan"
# built-ins reading a Model's attributes by a name given as a value (getattr(model, 'params'))
_REFLECTION = frozenset({"getattr", "hasattr", "setattr", "vars"})


def _defining(a, name: str) -> str | None:
    """``Class.name`` of the first plain class of ``a``'s file defining the method ``name``, or None."""
    return next((f"{a.plain_classes[c].name.value}.{name}" for c, methods in a.methods.items()
                 if name in methods and c in a.plain_classes), None)


def _holds_optimizer(t) -> bool:
    return t is not None and (t.kind == OPTIM or t.kind == TUPLE and any(_holds_optimizer(i) for i in t.items))


def _field(owner) -> bool:
    """An attribute of an instance of a class of this file (followed like a variable)."""
    return owner is not None and owner.kind == INSTANCE


class Escapes(UsageTransformer):
    """TODOs where a Model leaves the values the usage analysis follows; LU202's
    transformer calls ``_check_escapes`` on every call it leaves."""

    def _unread_file(self, qual: str | None) -> bool:
        """Does ``qual`` name a function of a file of the run with no flax in it (whose facts the run
        took at most to follow optimizers, ``optim_reach``)?  Nothing there turns ``model.params``
        into ``params``, nor is it typed here (``Analysis._global_ty``)."""
        table = identity.current()
        module = qual.rpartition(".")[0] if qual else ""
        return bool(module) and table is not None and table.path(module) is not None \
            and module not in self.ctx.index.flax_modules

    def _check_escapes(self, call: cst.Call) -> None:
        """A Model handed to code this tool does not follow is a params pytree there too: say so."""
        positions = [a for a in call.args if a.keyword is None]
        for a in call.args:
            t = self.a.type_at(a.value)
            if t is not None and t.kind == CAPTURE:
                self.todo("captured module outputs are Linen intermediates now, nested by Linen names "
                          "{'Dense_0': {'__call__': (y,)}}, not flat '/Dense_0' keys: read them by hand")
                continue
            if not self.a.carries_model(t):
                self._check_model_function(call, a, t)
                continue
            scope = self.a.scope_of[id(call)]
            qual = self.a.qual(call.func, scope) if isinstance(call.func, (cst.Name, cst.Attribute)) else None
            callee = unwrap_func(self.a.type_at(call.func))
            where = None
            if a.star:  # f(*args): which parameter gets it is not followed
                where = f"{dotted(call.func) or 'a function'} unpacked ({a.star}{code(a.value)})"
            elif (why := self._overridden(call, scope)) is not None:
                where = f"{dotted(call.func)} ({why}: which one runs is not followed)"
            elif (why := self._untyped_method(call, scope, t)) is not None:
                where = f"{dotted(call.func) or code(call.func)} ({why})"
            elif (rest := self._into_rest(call, scope, a)) is not None:
                where = f"{dotted(call.func) or 'a function'} (its parameter {rest}, which is not followed)"
            elif self._partial_of_external(call, scope, a, t):
                where = (f"{dotted(call.args[0].value)} through functools.partial (another file, where what a "
                         "partial fixes is not followed)")
            elif callee is not None and callee.kind == CONFLICT and FUNC in callee.items:
                which = f"{conflict_message(callee)}: which one runs is not followed"
                where = f"{dotted(call.func) or code(call.func)} ({which})"
            elif callee is not None and callee.kind == FUNC and callee.func[0] == "external":
                position = next((i for i, p in enumerate(positions) if p is a), None)
                got = external_param(self.a, callee.func[1], position,
                                     a.keyword.value if a.keyword is not None else None)
                if got is not None and got.kind == CONFLICT:
                    where = f"{callee.func[1]} (another file, where that parameter is {conflict_message(got)})"
                elif not self.ctx.index.modules:  # the usage rules rewrite it only for its own legacy names
                    where = f"{callee.func[1]} (another file, which a run with no legacy module class may not rewrite)"
                elif got is None or got.kind != t.kind or not self.a.carries_model(got):
                    where = f"{callee.func[1]} (another file, where it is not followed as a Model)"
            elif callee is None and self._unread_file(qual):
                where = f"{qual} (another file, which this run does not read: it uses no flax)"
            elif qual in RECORDS or callee is not None and callee.kind == CLASS and callee.func[0] == RECORD:
                where = f"{dotted(call.func)} (a record, whose fields are not followed)"
            elif qual is not None and any(qual == self.a.class_qual(c.name) for c in self.ctx.facts.classes) \
                    and not (callee is not None and callee.kind == CLASS
                             and "__init__" in self.a.methods.get(callee.func[1], {})):
                where = f"the class {qual.rpartition('.')[2]}"
            elif callee is None and qual is None and isinstance(call.func, cst.Name) \
                    and (t.kind != CONFLICT or UNKNOWN in t.items) \
                    and scope.lookup(call.func.value) is not None and not self._import_alias(call.func, scope):
                # a name of this file the analysis gives no function (a namedtuple, a parameter, a factory's result)
                where = f"{call.func.value} (a value of this file not followed as a function)"
            elif (qual or self.a.builtin(call, scope)) in _FUNCTION_CALLERS and a is not call.args[0] \
                    and not self._loop_init(call, scope, a) or self.a.builtin(call, scope) in _KEYED:
                where = f"{qual or dotted(call.func)} (its function's parameters are not followed)"
            elif self.a.builtin(call, scope) == "callable" and t.kind in (MODEL, TRUNC, CONFLICT):
                self.todo("callable() of a Model (now its params dict) is False: a Linen module is applied by "
                          "M().apply({'params': ...}, x): decide by hand what this check stands for")
                continue
            elif self.a.builtin(call, scope) in _REFLECTION:
                self.todo(f"{call.func.value}() of a Model (now its params): its attributes are gone (model.params "
                          "is the params themselves, a method is M().apply(..., method=M.name)): read it by hand")
                continue
            if where:
                what = "a Model (now its params)" if t.kind in (MODEL, TRUNC, CONFLICT) \
                    else "a value holding a Model (now its params)"
                self.todo(f"{what} is passed to {where}: apply the Linen module there with {{'params': ...}}")
            elif callee is None and isinstance(call.func, cst.Attribute) and call.func.attr.value in _CONTAINER_METHODS:
                self.todo(f"a Model (now its params) is put into a container (.{call.func.attr.value}): "
                          "apply the Linen module where it is read, with {'params': ...}")

    def _followed_loop(self, call: cst.Call, scope) -> cst.BaseExpression | None:
        """The initial value of ``lax.while_loop(cond, body, init)`` whose functions the analysis
        follows the carry into (``Analysis.loop_carry``), and of a ``lax.scan`` whose function returns
        no legacy value beside it (its stacked ys are not followed), or None."""
        loop = self.a.loop_carry(call, scope)
        if loop is None or self.a.qual(call.func, scope) == _SCAN and any(self._legacy_ys(fn) for fn, _ in loop[0]):
            return None
        return loop[1]

    def _legacy_ys(self, fn) -> bool:
        """Does a scan's function return a legacy value other than in its carry (``return carry, y``)?"""
        out = self.a.rets.get(id(fn))
        if not self.a.carries_legacy(out):
            return False
        return not (out.kind == TUPLE and len(out.items) == 2) or self.a.carries_legacy(out.items[1])

    def _loop_init(self, call: cst.Call, scope, a: cst.Arg) -> bool:
        return self._followed_loop(call, scope) is a.value

    def _loop_of_legacy(self, call: cst.Call, scope) -> bool:
        """A followed loop (``_followed_loop``) whose initial value holds a legacy value: its
        functions' results are the carry, of that value's type."""
        init = self._followed_loop(call, scope)
        return init is not None and self.a.carries_legacy(self.a.type_at(init))

    def _into_rest(self, call: cst.Call, scope, a: cst.Arg) -> str | None:
        """``first(model)`` where ``def first(*models)`` (or a keyword a ``**kwargs`` takes): the
        analysis gives only named parameters their arguments, so the callee's ``*models``/``**kw``
        holding a Model is not followed.  The starred parameter, or None."""
        target, args, offset = self.a._callee(call, scope)
        if not isinstance(target, (cst.FunctionDef, cst.Lambda)) or any(x.star for x in call.args):
            return None
        params = target.params
        named = [p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)]
        if a.keyword is not None:
            star = params.star_kwarg
            return f"**{star.name.value}" if star is not None and a.keyword.value not in named else None
        position = next((i for i, x in enumerate(x for x in args if x.keyword is None) if x is a), None)
        star = params.star_arg
        if position is None or not isinstance(star, cst.Param):
            return None
        return f"*{star.name.value}" if position + offset >= len(params.posonly_params) + len(params.params) \
            else None

    def _check_model_function(self, call: cst.Call, a: cst.Arg, t) -> None:
        """``registry.build(kind, create_model, ...)``: a function of this file whose result is a Model
        (now its params) handed to code that calls it where the rules do not follow its result (another
        file's helper that does more than return its call, a file this run does not read, ``map``):
        what that code returns of it is the params now, with no finding there."""
        f = unwrap_func(t)
        if f is None or f.kind != FUNC or a.star:
            return
        if f.func[0] == "plain":
            fn = self.a.funcs.get(f.func[1])
            result = self.a.rets.get(f.func[1])
            if not isinstance(fn, cst.FunctionDef) or not self.a.carries_legacy(result):
                return
            name = fn.name.value
        elif f.func[0] == "external":  # a.create_model, a function of another file
            result = external_return(self.a, f.func[1])
            if not self.a.carries_legacy(result):
                return
            name = f.func[1]
        else:
            return
        what = "a Model (now its params)" if self.a.carries_model(result) else "an optimizer (now a TrainState)"
        back = "the params, not a Model" if self.a.carries_model(result) else "a TrainState, not an optimizer"
        scope = self.a.scope_of[id(call)]
        qual = self.a.qual(call.func, scope) if isinstance(call.func, (cst.Name, cst.Attribute)) else None
        callee = unwrap_func(self.a.type_at(call.func))
        where = None
        if callee is not None and callee.kind == FUNC and callee.func[0] == "external":
            if not followed_callback(self.a, callee.func[1], call, scope, a):
                where = f"{callee.func[1]} (another file, where what it returns of its calls is not followed)"
            elif _holds_optimizer(result):  # LU302 does not follow an optimizer back through the helper
                what, back = "an optimizer (now a TrainState)", "a TrainState, not an optimizer"
                where = f"{callee.func[1]} (another file, which hands back what it returns: its optimizer uses here " \
                        "are not converted)"
        elif callee is None and self._unread_file(qual):
            where = f"{qual} (another file, which this run does not read: it uses no flax)"
        elif ((qual or self.a.builtin(call, scope)) in _FUNCTION_CALLERS or self.a.builtin(call, scope) in _KEYED) \
                and not any(self.a.carries_model(self.a.type_at(x.value)) for x in call.args) \
                and not self._loop_of_legacy(call, scope):
            # (a Model among the other arguments, jax.lax.while_loop(cond, body, (model, ...)), has its TODO)
            where = f"{qual or dotted(call.func)} (what it makes of its function's results is not followed)"
        if where:
            self.todo(f"{name} returns {what} and is passed to {where}: what comes back of its calls there "
                      f"is {back}: convert its uses by hand (apply the Linen module with {{'params': ...}})")

    def _partial_of_external(self, call: cst.Call, scope, a: cst.Arg, t) -> bool:
        """``functools.partial(stats.count, model)``: the other file's seeds (``external_seeds``) come
        from its functions' direct calls only, so what a partial fixes there is seen only where a direct
        call hands that parameter the same kind of Model too."""
        if not call.args or a is call.args[0] or not self.a._is_partial(call, scope):
            return False
        inner = unwrap_func(self.a.type_at(call.args[0].value))
        if inner is None or inner.kind != FUNC or inner.func[0] != "external":
            return False
        positions = [x for x in call.args[1:] if x.keyword is None]
        position = next((i for i, p in enumerate(positions) if p is a), None)
        got = external_param(self.a, inner.func[1], position, a.keyword.value if a.keyword is not None else None)
        return got is None or got.kind != t.kind or not self.a.carries_model(got)

    def _import_alias(self, name: cst.Name, scope) -> bool:
        """``broadcast = jax_utils.replicate``: a name bound only to imported names (library code,
        which a Model is handed to as anywhere else)."""
        found = scope.lookup(name.value)
        sources = [(s, source) for s, bound, source, _ in self.a.bindings if s is found and bound == name.value]
        return bool(sources) and all(source[0] == "expr" and isinstance(source[1], (cst.Name, cst.Attribute))
                                     and self.a.qual(source[1], s) is not None for s, source in sources)

    def _held(self, values) -> bool:
        return any(id(v) in self.a.scope_of and self.a.carries_model(self.a.type_at(v)) for v in values)

    def visit_Dict(self, node: cst.Dict) -> None:
        if self._held(v for e in node.elements if isinstance(e, cst.DictElement) for v in (e.key, e.value)):
            self.todo("a Model (now its params) is put into a dict: apply the Linen module where it is read, "
                      "with {'params': ...}")

    def visit_Set(self, node: cst.Set) -> None:
        if self._held(e.value for e in node.elements):
            self.todo("a Model (now its params) is put into a set: apply the Linen module where it is read, "
                      "with {'params': ...}")

    def visit_For(self, node: cst.For) -> None:
        """A loop over a tuple/list of Models of one module is followed (``element``); others not."""
        each = element(self.a.type_at(node.iter))
        if self._held([node.iter]) and (each is None or each.kind == CONFLICT):
            self.todo("a loop over Models (now their params) and other values: apply the Linen module to "
                      "each by hand, with {'params': ...}")

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self.visit_For(node)  # type: ignore[arg-type]

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        t = self.a.type_at(original.value) if id(original) in self.a.scope_of else None
        if t is not None and t.kind == MODEL and any(
                isinstance(target.target, cst.Subscript) or (isinstance(target.target, cst.Attribute) and not _field(
                    self.a.type_at(target.target.value))) for target in original.targets):
            self.todo("a Model (now its params) is stored in an attribute or container: "
                      "apply the Linen module where it is read, with {'params': ...}")
        return super().leave_Assign(original, updated)

    def _untyped_method(self, call: cst.Call, scope, t) -> str | None:
        """``actor.act(model, x)`` where ``actor`` is an instance of another file's class (or a record),
        or a value the analysis gives no type (a registry's or a factory's result, a parameter) while a
        plain class of this file defines ``act``: the method that runs is not followed, nor the Model
        ``t`` it is handed (``def act(self, model, x): model(x)`` would call the params).  Why, or None
        (an import's function, a library's value; an instance keeping Models in its fields, which has
        its TODO where the Models went in; ``.create(model)``, an optimizer the analysis follows)."""
        func = call.func
        if not isinstance(func, cst.Attribute) or self.a.qual(func, scope) is not None or t.kind == INSTANCE \
                or self.a.ty(func, scope) is not None:  # (a function the analysis follows the Model into)
            return None
        made = self.a.ty(call, scope)
        if made is not None and made.kind == OPTIM:  # optimizer_def.create(model): followed as an optimizer
            return None
        owner = self.a.ty(func.value, scope)
        if owner is not None and owner.kind == INSTANCE and owner.func[0] in (FOREIGN, RECORD):
            return "a method of a record or of an instance of another file's class, where the Model is not followed"
        if owner is not None and owner.kind == INSTANCE and owner.func[0] == CLASS \
                and self.a.lineage.method(owner.func[1], func.attr.value) is None \
                and func.attr.value in self.a.fields(owner):  # self.policy_fn = fns[name]
            return f"the function its field {func.attr.value} holds, which the rules do not follow"
        if owner is not None:
            return None
        mine = _defining(self.a, func.attr.value)
        if mine is not None:
            return f"a method of a value the rules do not follow; {mine} of this file may be the one called"
        theirs = self._imported_method(func.attr.value)
        if theirs is not None:
            return f"a method of a value the rules do not follow; {theirs} of the run may be the one called"
        return None

    def _imported_method(self, name: str) -> str | None:
        """``module.Class.name`` of a plain class defining method ``name`` in a file of the run this
        file imports (an instance from its registry or factory may be of that class), or None."""
        if not self.a.path or not self.a.facts.module_name:
            return None
        for target in sorted(set(self.ctx.facts.imports.aliases.values())):
            for module in (target, target.rpartition(".")[0]):
                file = module_file(self.a.path, self.a.facts.module_name, module) if module else None
                other = external_analysis(file, module, self.ctx.index) if file is not None else None
                found = _defining(other, name) if other is not None else None
                if found is not None:
                    return f"{module}.{found}"
        return None

    def _overridden(self, call: cst.Call, scope) -> str | None:
        """Why ``obj.run(model)`` may run one of several methods: several classes of ``obj``'s family
        define it, or ``obj`` holds instances of different classes (``judge`` given ``Mean()``, ``Peak()``)."""
        func = call.func
        owner = self.a.ty(func.value, scope) if isinstance(func, cst.Attribute) else None
        if owner is not None and owner.kind == CONFLICT and INSTANCE in owner.items:
            return "a method of a value holding instances of different classes"
        if owner is not None and owner.kind == INSTANCE and owner.func[0] == CLASS \
                and self.a.lineage.overrides(owner.func[1], func.attr.value):  # type: ignore[union-attr]
            return "a method several classes of this file define"
        return None
