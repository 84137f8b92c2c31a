"""What the usage rules (LU2xx) share: which values of top-level code are
legacy module definitions, ``nn.Model`` objects, optimizers holding one, or
``nn.Collection`` state, and how a legacy call site becomes a Linen
``init``/``apply``.

Typing
    A small flow-insensitive inference over one file, across the files of
    the run (``_usage_analysis``, ``_usage_external``).
Representation after the rewrite
    A ``Model`` becomes its params pytree (``nn.Model(M, params)`` ->
    ``params``): names keep their meaning for ``jit``/``grad``/helpers, and a
    legacy optimizer created from it holds exactly that pytree, which is the
    contract with the optimizer rules (``optimizer.target`` is the params).
Contexts
    ``with nn.stateful(...)`` / ``nn.stochastic(...)`` blocks are resolved
    statically: each init/apply inside gets ``batch_stats``/``mutable``/
    ``rngs``; a block is unwrapped once nothing inside needs it any more.
Modules
    ``_usage_types`` (the types), ``_usage_scopes`` and ``_usage_analysis``
    (the inference), ``_usage_external`` (across files), ``_usage_paths``
    (legacy module paths -> Linen paths), ``_usage_frames`` (with blocks),
    ``_usage_calls`` (constructor/call arguments), ``_usage_sites`` (the
    init/apply calls); this module: the entry points and the transformer base.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.analysis import identity
from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, FastVisitor, Rule, RuleTransformer
from linen_upgrade.rules._cst import (add_import, build_dotted, comma_list, express, kwarg, needs_parens,
                                      with_keyword_only)
from linen_upgrade.rules._initializers import Initializers, initializer_slots
from linen_upgrade.rules._modules import inputs_fixable
from linen_upgrade.rules._optim_edit import insert_helpers
from linen_upgrade.rules._usage_analysis import Analysis
from linen_upgrade.rules._usage_calls import split_usage, string
from linen_upgrade.rules._usage_external import external_param, external_return
from linen_upgrade.rules._usage_frames import Frame, count_sites, key_draws, parse_with, read_by_key
from linen_upgrade.rules._usage_paths import COLLECTION_METHODS, LEAF_READERS, legacy_key
from linen_upgrade.rules._usage_scopes import Scope
from linen_upgrade.rules._usage_types import (CAPTURE, CLASS, CONFLICT, DEF, ELSEWHERE, FOREIGN, FUNC, INSTANCE, MODEL,
                                              OPTIM, STATE, TRUNC, TUPLE, UNNAMED, UNWRITABLE, VARIABLES, ModuleRef, Ty,
                                              conflict, conflict_message, element, join, unwrap_func)
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES

# what the usage rules (and the optimizer rules) import from here
__all__ = [
    "CAPTURE", "CLASS", "COLLECTION_METHODS", "CONFLICT", "DEF", "ELSEWHERE", "FOREIGN", "FUNC", "INSTANCE",
    "LEAF_READERS", "MODEL", "OPTIM", "STATE", "TRUNC", "TUPLE", "UNWRITABLE", "VARIABLES",
    "Analysis", "Frame", "ModuleRef", "Scope", "Ty", "UsageTransformer",
    "analysis_of", "conflict", "conflict_message", "count_sites", "element", "external_param",
    "external_return", "join", "kwarg", "legacy_key", "parens", "parse_with", "split_usage", "string",
    "unwrap", "unwrap_func", "UsageRule",
]

_BARRIER = "function"


class UsageTransformer(RuleTransformer):
    """Shared machinery: the analysis, the with-frames, statement edits, names, imports.

    ``owns`` are the site kinds the rule converts; a block is unwrapped by the
    rule that converts its last site.
    """

    owns: frozenset[str] = frozenset()

    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__(rule, ctx)
        self.a: Analysis
        # with-frames; None for an unrelated with statement, _BARRIER for a function body
        self.frames: list[Frame | str | None] = []
        self.retarget: dict[int, cst.BaseAssignTargetExpression] = {}
        self.pre: dict[int, list[cst.BaseStatement]] = {}
        self.post: dict[int, list[cst.BaseStatement]] = {}
        self.imports: set[tuple[str, str | None]] = set()
        self.subscripts: dict[int, cst.BaseExpression] = {}
        self.helpers: dict[str, str] = {}  # name -> source of a function emitted once into the file
        self._initializers: Initializers | None = None
        self._carried: dict | None | bool = False  # carried_apply_fns(), once computed
        # a function's TrainState given its module by the caller: id(call) -> the name holding it;
        # id(expression making it unnamed) -> the name it is bound to there
        self.threads: dict[int, str] = {}
        self.inline_names: dict[int, str] = {}
        # functions given a TrainState's apply_fn by their callers (threaded_apply_fns), once computed
        self._threaded: dict[int, tuple[str, str]] | None = None
        self.apply_sites: dict[int, tuple[str, str, str]] = {}  # id(call) -> (how, optimizer, keyword)

    # -- setup -------------------------------------------------------------------
    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self.a = analysis_of(node, self.ctx)
        return True

    def fresh(self, base: str, at: cst.CSTNode) -> str:
        """A name unused in the function (or module) around ``at`` and at module level."""
        scope = self.a.scopes.get(id(at)) if isinstance(at, cst.FunctionDef) else self.a.scope_of.get(id(at))
        while scope is not None and scope.parent is not None and not isinstance(scope.node, cst.FunctionDef):
            scope = scope.parent
        return self.a.fresh((scope or self.a.module_scope).node, base)

    def spell(self, qual: str) -> cst.BaseExpression | None:
        """How this file writes the Linen class of a legacy module (None: it cannot import it)."""
        row = BUILTIN_MODULES.get(qual)
        if row is not None:
            qual = f"flax.nn.{row.linen}"
        elif any(qual == self.a.class_qual(c.name) for c in self.ctx.facts.classes):
            return cst.Name(qual.rpartition(".")[2])
        spelled, needed = express(qual, self.ctx.facts.imports)
        table = identity.current()
        module, _, name = qual.rpartition(".")
        if needed and table is not None and table.path(module) is not None:
            # a module of the run no import here names: imported as this file's imports would
            # write it, not by its run name (``repo-a.models`` when the run holds several folders)
            written = table.import_name(self.ctx.path, module)
            if written is None:
                return None
            spelled, needed = f"{written}.{name}", written.partition(".")[0]
        if needed:
            self.imports.add((needed, None))
        return build_dotted(spelled)

    def finish(self, module: cst.Module) -> cst.Module:
        module = insert_helpers(module, list(self.helpers.values()))
        for name, obj in sorted(self.imports, key=lambda x: (x[0], x[1] or "")):
            module = add_import(module, name, obj)
        return module

    # -- frames --------------------------------------------------------------------
    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.frames.append(_BARRIER)  # a function body runs later, outside the with
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.frames.pop()
        threaded = (self._threaded or {}).get(id(original))
        if threaded is not None:  # eval_step(model, batch, *, apply_fn): its callers hand it over
            updated = updated.with_changes(params=with_keyword_only(updated.params, threaded[1]))
        return updated

    def visit_With(self, node: cst.With) -> bool:
        frame = parse_with(node, self.a) if id(node) in self.a.scope_of else None
        if frame is not None:
            frame.sites, kinds = count_sites(node.body, self.a)
            if frame.state_given and frame.mutable and frame.sites > 1 and frame.problem is None:
                frame.problem = ("several module calls (or one in a loop) share one nn.stateful block: each "
                                 "Linen apply returns its own updates; convert them by hand")
            if frame.rng is not None and frame.sites > 1 and frame.problem is None:
                frame.problem = ("several module calls (or one in a loop) share one nn.stochastic block: legacy "
                                 "drew a fresh rng for each, rngs={'dropout': rng} gives each the same one (the "
                                 "same dropout masks): split the rng per call by hand")
            if frame.capture_name is not None and frame.problem is None and (
                    frame.sites > 1 or kinds - {"model", "method", "call"}):
                frame.problem = ("nn.capture_module_outputs around several module calls (or an init): each "
                                 "Linen apply(..., capture_intermediates=True) returns its own intermediates")
            if frame.capture_name is not None and frame.problem is None and not read_by_key(node, frame, self.a):
                frame.problem = ("the captured outputs are used other than by a literal key "
                                 "(outputs['/Dense_0'] or .as_dict()['/Dense_0']): Linen intermediates are "
                                 "nested by Linen names, {'Dense_0': {'__call__': (y,)}}; convert by hand")
            frame.kinds = kinds
        self.frames.append(frame)
        return True

    def _functions(self) -> frozenset[str]:
        """The names of this file's functions, at any depth (the analysis has a scope for each)."""
        return frozenset(s.node.name.value for s in self.a.scopes.values() if isinstance(s.node, cst.FunctionDef))

    def leave_With(self, original: cst.With, updated: cst.With):
        frame = self.frames.pop()
        if not isinstance(frame, Frame):
            return updated
        kinds = frame.kinds
        if frame.problem:
            if kinds & self.owns or (not kinds and "model" in self.owns):
                self.todo(frame.problem)
            return updated
        if frame.sites == 0:
            draws = key_draws(original, frame, self.a) if "model" in self.owns and not any(
                isinstance(f, Frame) for f in self.frames) else None
            if draws is not None and updated.body is original.body:  # nothing inside was rewritten
                return self._drawn(updated, frame, draws)
            if "model" in self.owns:
                calls = _callees(original.body)
                functions = [n for n, c in calls if dotted(c) in self._functions()][:3]
                values = [n for n, c in calls if self.resolve(c) is None and dotted(c) not in self._functions()][:3]
                if functions:  # the model is most likely applied inside one of them (jax.grad(loss_fn), a step)
                    self.todo(f"the module calls this block reaches are made inside {', '.join(functions)}(...), "
                              "which this rule does not follow: pass batch_stats/mutable=/rngs= to the apply "
                              "there and return the updated state")
                elif values:
                    what = "a value" if len(values) == 1 else "values"
                    self.todo(f"this block calls {', '.join(f'{v}(...)' for v in values)}: {what} this rule cannot "
                              "trace to an nn.Model or a module definition (a parameter, a field, a factory's "
                              "result): pass batch_stats/mutable=/rngs= to the apply by hand")
                else:
                    self.todo("no module call inside this block: the state/rng it sets reaches an init/apply "
                              "elsewhere; pass batch_stats/mutable=/rngs= to that call")
            return updated
        if frame.done < frame.sites:
            return updated
        self.fixed("with nn.stateful/nn.stochastic -> variables/mutable/rngs")
        return unwrap(updated)

    def _drawn(self, updated: cst.With, frame: Frame, draws: list[cst.Call]) -> cst.FlattenSentinel:
        """A block that only draws keys (``key_draws``) -> its body, the n-th ``nn.make_rng()`` the
        key folded with n, as legacy's stochastic frame counted its draws."""
        spelled, needed = express("jax.random.fold_in", self.ctx.facts.imports)
        if needed:
            self.imports.add((needed, None))
        order = {id(c): n for n, c in enumerate(draws, start=1)}
        key = frame.rng

        class _Fold(cst.CSTTransformer):
            def leave_Call(self, original: cst.Call, new: cst.Call) -> cst.BaseExpression:
                n = order.get(id(original))
                return new if n is None else cst.Call(build_dotted(spelled), [
                    cst.Arg(key, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),  # type: ignore[arg-type]
                    cst.Arg(cst.Integer(str(n)))])

        self.fixed("with nn.stochastic(key): nn.make_rng() -> jax.random.fold_in(key, n)")
        return unwrap(updated.with_changes(body=updated.body.visit(_Fold())))

    def context(self) -> tuple[Frame | None, Frame | None, str | None]:
        """(innermost stateful frame, innermost stochastic frame, problem) of the site being left."""
        stateful = stochastic = None
        for frame in reversed(self.frames):
            if frame == _BARRIER:
                break
            if not isinstance(frame, Frame):
                continue
            if frame.problem:
                return None, None, frame.problem
            if stateful is None and frame.state_given:
                stateful = frame
            if stochastic is None and frame.rng is not None:
                stochastic = frame
        return stateful, stochastic, None

    def capture(self) -> Frame | None:
        """The innermost nn.capture_module_outputs frame of the site being left."""
        for frame in reversed(self.frames):
            if frame == _BARRIER:
                break
            if isinstance(frame, Frame) and frame.capture_name is not None:
                return frame
        return None

    def converted(self) -> None:
        for frame in reversed(self.frames):
            if frame == _BARRIER:
                break
            if isinstance(frame, Frame):
                frame.done += 1

    def rngs(self, params_rng: cst.BaseExpression | None, stochastic: Frame | None) -> cst.BaseExpression | None:
        if stochastic is None:
            return params_rng
        elements = []
        if params_rng is not None:
            elements.append((string("params"), params_rng))
        elements.append((string(self.ctx.config.rng_kind), stochastic.rng))
        return cst.Dict([cst.DictElement(k, v) for k, v in elements])

    # -- statement edits -------------------------------------------------------------
    def enclosing(self, node: cst.CSTNode, kind: type) -> cst.CSTNode | None:
        parent = self.a.parent.get(id(node))
        return parent if isinstance(parent, kind) else None

    def statement_of(self, node: cst.CSTNode) -> cst.SimpleStatementLine | None:
        p = self.a.parent.get(id(node))
        while p is not None and not isinstance(p, cst.BaseStatement):
            p = self.a.parent.get(id(p))
        return p if isinstance(p, cst.SimpleStatementLine) else None

    def _conditional(self, node: cst.CSTNode, stmt: cst.CSTNode) -> bool:
        """Is ``node`` evaluated only sometimes (or later) within its statement?"""
        p = self.a.parent.get(id(node))
        while p is not None and p is not stmt:
            if isinstance(p, (cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp,
                              cst.IfExp, cst.BooleanOperation)):
                return True
            p = self.a.parent.get(id(p))
        return False

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        target = self.retarget.pop(id(original), None)
        if target is None:
            return updated
        return updated.with_changes(targets=[cst.AssignTarget(target=target)])

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript) -> cst.BaseExpression:
        return self.subscripts.pop(id(original), updated)

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        pre = self.pre.pop(id(original), [])
        post = self.post.pop(id(original), [])
        if not pre and not post:
            return updated
        if pre:
            pre[0] = pre[0].with_changes(leading_lines=updated.leading_lines)
            updated = updated.with_changes(leading_lines=[])
        return cst.FlattenSentinel([*pre, updated, *post])

    def add_post(self, call: cst.CSTNode, code: str) -> None:
        stmt = self.statement_of(call)
        assert stmt is not None
        self.post.setdefault(id(stmt), []).append(cst.parse_statement(code))

    # -- constructors ------------------------------------------------------------------
    def constructor(self, ref: ModuleRef, at: cst.CSTNode, args: list[cst.Arg]
                    ) -> tuple[cst.Call | None, list[cst.Arg], str | None]:
        """``Ctor(attrs)`` for a legacy call of ``ref`` with legacy ``args`` at
        ``at``, and the call inputs; or the reason it cannot be written."""
        if ref.choices:
            return self._chosen_constructor(ref, at, args)
        why = next((w for w, qual in UNNAMED.items() if qual == ref.qual), None)
        if why is not None:  # a Model another file hands in or returns
            return None, [], f"a call of {conflict_message(conflict(MODEL, why))}: convert by hand"
        spec = self.a.spec(ref.qual)
        if spec is None:
            return None, [], f"{ref.qual}: its apply signature is unknown (a module of another run?)"
        scope = self.a.scope_of.get(id(at))
        bound: dict[str, cst.BaseExpression] = {}
        holder = _holder(ref, scope, self.a)
        if holder is not None:
            func: cst.BaseExpression = holder
            # the partial holds its attributes, and the inputs it fixed when LU201 made it a subclass taking them
            fixed_inputs = {k: v for k, v in ref.kwargs if k in spec.inputs}
            positional = any(k == "*" and not v.startswith("**") for k, v in ref.kwargs)  # LU201 leaves it legacy
            if fixed_inputs and (positional or not inputs_fixable(ref.qual, self.ctx.index)):
                return None, [], f"{_CODE(holder)} fixes call inputs ({', '.join(fixed_inputs)}): pass them by hand"
        elif not self._class_visible(ref.qual, scope):
            return None, [], (f"{ref.qual.rpartition('.')[2]} is a class defined inside a function or class, "
                              "not visible here: apply its Linen module where it is defined, or move the class to "
                              "the module level")
        elif ref.portable or (ref.file_names is not None and scope is not None and all(
                self.a.module_name_here(n, scope) for n in ref.file_names)):
            # literals, or this file's module-level names seen here; through another file's partial
            # alias, that holds its own keywords
            func = self.spell(ref.alias[0] if ref.alias else ref.qual)
            if func is None:
                return None, [], f"{ref.qual.rpartition('.')[2]}'s file cannot be imported from here by any name: " \
                    "apply its Linen module where it can"
            held = ref.alias[1] if ref.alias else frozenset()
            bound = {k: cst.parse_expression(v) for k, v in ref.kwargs if k not in held}
        elif ref.opt_var is not None and scope is not None and _visible(ref.opt_var, scope, self.a) \
                and self.carried_apply_fns() or self._threaded_param(at, scope):
            return self._chosen_constructor(ref, at, args)  # the TrainState (or its apply_fn) carries its module
        else:
            return None, [], ("the module definition here is a .partial with non-literal keywords made "
                              "elsewhere: build the Linen module where they are known")
        # what a partial variable (or alias) fixed is not passed again (not even a changed default)
        fixed = frozenset(k for k, _ in ref.kwargs) if not bound else (ref.alias[1] if ref.alias else frozenset())
        ctor, inputs, problem = split_usage(args, spec, bound, fixed)
        if problem:
            return None, [], problem
        ctor = self.adapt_initializers(ctor, ref.qual, spec.legacy, at)
        return cst.Call(func=func, args=comma_list(ctor)), inputs, None

    def _class_visible(self, qual: str, scope: Scope | None) -> bool:
        """Is ``qual``, when it is a class of this file, bound as that class where ``scope`` reads it
        (a class defined in a function is a local of that function)?"""
        name = qual.rpartition(".")[2]
        if scope is None or not any(qual == self.a.class_qual(c.name) for c in self.ctx.facts.classes):
            return True
        found = scope.lookup(name)
        if found is None:
            return False
        held = self.a.env.get((id(found), name))  # `Block = make_block()`, the class a function returns
        if held is not None and held.kind == DEF and held.ref is not None and held.ref.qual == qual \
                and not held.ref.kwargs:
            return True
        return any(s is found and n == name and source[0] == "class" for s, n, source, _ in self.a.bindings)

    def _chosen_constructor(self, ref: ModuleRef, at: cst.CSTNode, args: list[cst.Arg]
                            ) -> tuple[cst.Call | None, list[cst.Arg], str | None]:
        """``module()`` for a definition chosen at run time, held by ``module``: LU201 made each
        choice a class or a ``functools.partial`` of one, so the call is the Linen instance; only
        when every choice splits the legacy arguments into the same call inputs (and no attribute)."""
        scope = self.a.scope_of.get(id(at))
        holder_expr = _holder(ref, scope, self.a)
        held = holder_expr is not None
        # else the TrainState this Model is the target of, when every one made of such a Model carries its module
        carried = not held and ref.opt_var is not None and scope is not None \
            and _visible(ref.opt_var, scope, self.a) and bool(self.carried_apply_fns())
        threaded = None if held or carried else self._threaded_param(at, scope)
        if not held and not carried and threaded is None:
            return None, [], ("the module definition is chosen at run time (partials of several classes) and no "
                              "name bound once to it is visible here: hand the Linen module to this function and "
                              "apply it (module.apply), or carry it in the TrainState (apply_fn=module.apply)")
        holder = _CODE(holder_expr) if held else threaded or f"{ref.opt_var[1]}.apply_fn"  # type: ignore[index]
        splits: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
        inputs: list[cst.Arg] = []
        for choice in ref.choices or (ref.without_var(),):
            spec = self.a.spec(choice.qual)
            which = f"{choice.qual.rpartition('.')[2]}, " + (
                f"one of the modules {holder} may hold" if ref.choices else f"the module {holder} holds")
            if spec is None or spec.problem:
                return None, [], f"{which}, needs converting by hand"
            fixed = frozenset(k for k, _ in choice.kwargs)
            # ``**config``: LU201's _module_partial checks when it runs that every key is an attribute
            positional = any(k == "*" and not v.startswith("**") for k, v in choice.kwargs)
            # fixed inputs: LU201 made the partial a subclass taking them (_with_call_inputs), where it can
            if positional or fixed & spec.inputs and not inputs_fixable(choice.qual, self.ctx.index):
                return None, [], (f"{which}, is a .partial fixing positional arguments or call inputs: pass them "
                                  "where the module is applied")
            ctor, inputs, problem = split_usage(args, spec, {}, fixed)
            if problem:
                return None, [], f"{which}: {problem}"
            splits.add((tuple(map(_CODE, ctor)), tuple(map(_CODE, inputs))))
        if len(splits) != 1 or next(iter(splits))[0]:
            return None, [], (f"the modules {holder} may hold split this call's arguments differently "
                              "(or it passes constructor attributes): apply each by hand")
        if carried:  # the apply function itself (apply_call writes it as it is)
            return cst.Attribute(cst.Name(ref.opt_var[1]), cst.Name("apply_fn")), inputs, None  # type: ignore
        if threaded:
            return cst.Name(threaded), inputs, None  # type: ignore[return-value]
        return cst.Call(func=holder_expr), inputs, None  # type: ignore[arg-type]

    def _threaded_param(self, at: cst.CSTNode, scope: Scope | None) -> str | None:
        """The keyword-only parameter of the top-level function around ``at`` that its callers give
        the apply_fn of the TrainState whose target ``at`` calls, when ``at`` calls that parameter."""
        if scope is None or "model" not in self.owns or not isinstance(at, cst.Call) \
                or not isinstance(at.func, cst.Name):
            return None
        fscope = scope
        while fscope.parent is not None and fscope.parent is not self.a.module_scope:
            fscope = fscope.parent
        threaded = self.threaded_apply_fns().get(id(fscope.node))
        if threaded is None or scope.lookup(at.func.value) is not fscope or at.func.value != threaded[0]:
            return None
        return threaded[1]

    def threaded_apply_fns(self) -> dict[int, tuple[str, str]]:
        """Top-level functions applying a Model handed in a parameter, of a module chosen at run time
        (or a .partial whose keywords only its maker knows) that no name there holds
        (``eval_step(model, batch)``, called as ``p_eval_step(optimizer.target, batch)``): id(function)
        -> (that parameter, the keyword-only parameter its callers give the apply function).  Each call
        passes ``X.target`` of an optimizer ``X`` whose TrainState carries its module
        (``apply_fn=X.apply_fn``), or a Model whose definition a name ``module`` holds there
        (``apply_fn=module().apply``: the module next to the params); ``jax.pmap``/``jax.jit`` of the
        function, after the one such ``X`` is bound, wraps it in ``functools.partial(f,
        apply_fn=X.apply_fn)`` (``apply_sites``)."""
        if self._threaded is not None:
            return self._threaded
        self._threaded = {}
        for fid, fn in self.a.funcs.items():
            fscope = self.a.scopes[fid]
            # a decorated function (@jax.jit) would be handed a function as an argument to trace
            if not isinstance(fn, cst.FunctionDef) or fscope.parent is not self.a.module_scope or fn.decorators \
                    or self.ctx.index.referrers.get(f"{self.ctx.facts.module_name}.{fn.name.value}") \
                    or fn.params.star_kwarg is not None:
                continue
            for slot, param in enumerate(fscope.params):
                t = self.a.env.get((id(fscope), param))
                # a run-time choice, or a .partial whose keywords only its maker knows: no name here spells it;
                # the parameter not rebound (``if other is not None: model = other``: another Model)
                if t is None or t.kind != MODEL or t.ref is None or not t.ref.held \
                        or t.ref.def_var is not None and _visible(t.ref.def_var, fscope, self.a) \
                        or fscope.bound.get(param) != 1 or not self._applies_param(param, fscope):
                    continue
                sites = self._apply_fn_sites(fn, slot)
                if sites is not None:
                    keyword = self.fresh("apply_fn", fn)
                    self._threaded[fid] = (param, keyword)
                    self.apply_sites.update({k: (*v, keyword) for k, v in sites.items()})
                break
        return self._threaded

    def _applies_param(self, param: str, fscope: Scope) -> bool:
        """Is the Model in ``param`` called in its function (``model(x)``, ``model.decode(x)``), not only
        handed on (``optimizer_def.create(model)``)?"""
        for s, c in self.a.calls:
            func = c.func.value if isinstance(c.func, cst.Attribute) else c.func
            if isinstance(func, cst.Name) and func.value == param and s.lookup(param) is fscope \
                    and _within(s, fscope):
                return True
        return False

    def _apply_fn_sites(self, fn: cst.FunctionDef, slot: int) -> dict[int, tuple[str, str]] | None:
        """The calls of ``fn`` to edit (see ``threaded_apply_fns``): id(call) -> (how, the apply
        function it hands over); None when one cannot be."""
        name, a = fn.name.value, self.a
        direct, wrappers = [], []
        for s, c in a.calls:
            if s.lookup(name) is not a.module_scope:
                continue
            if isinstance(c.func, cst.Name) and c.func.value == name:
                direct.append((s, c))
            elif a.qual(c.func, s) in ("jax.pmap", "jax.jit") and c.args and c.args[0].keyword is None \
                    and isinstance(c.args[0].value, cst.Name) and c.args[0].value.value == name:
                wrappers.append((s, c))
        if _references(a.module_scope.node, name) != 1 + len(direct) + len(wrappers):
            return None  # passed on, partially applied, read: not every call is seen here
        optimizers: set[str] = set()
        given: dict[int, str] = {}
        named = False  # a Model handed over whose definition a name holds (not an optimizer's target)
        calls = [(s, c) for s, c in a.calls if a._callee(c, s)[0] is fn]
        for s, c in calls:
            _, args, offset = a._callee(c, s)
            positional = [x.value for x in args if x.keyword is None]
            arg = positional[slot - offset] if 0 <= slot - offset < len(positional) else None
            if arg is None or any(x.star for x in args):
                return None
            if isinstance(arg, cst.Attribute) and arg.attr.value == "target" and isinstance(arg.value, cst.Name):
                t = a.ty(arg.value, s)
                if t is None or t.kind != OPTIM or not self.carried_apply_fns():
                    return None
                optimizers.add(arg.value.value)
                given[id(c)] = f"{arg.value.value}.apply_fn"
                continue
            t = a.ty(arg, s)  # a Model whose definition a name (or a field, self.module_def) holds here
            holder = _holder(t.ref, s, a) if t is not None and t.kind == MODEL and t.ref is not None else None
            if holder is None:
                return None
            given[id(c)] = f"{_CODE(holder)}().apply"
            named = True
        sites: dict[int, tuple[str, str]] = {id(c): ("keyword", given[id(c)]) for _, c in direct}
        if wrappers and (len(optimizers) != 1 or named):
            return None  # the wrapped function gets one apply function, bound once
        for s, c in wrappers:
            opt = next(iter(optimizers))
            found = s.lookup(opt)
            if found is None or not any(b is found and n == opt and source[0] == "expr"
                                        and self._before(source[1], c, s) for b, n, source, _ in a.bindings):
                return None
            sites[id(c)] = ("partial", f"{opt}.apply_fn")
        return sites

    def carried_apply_fns(self) -> dict[tuple[tuple[str, ...], str], str | None] | None:
        """Each ``opt_def.create(model)`` of a Model of a definition chosen at run time, where a
        name holding the definition is visible: (enclosing functions, ``model``) -> that module's
        apply, for LU302's ``TrainState.create(apply_fn=...)``; None when one such create has no
        such name, a target other than a name, or a key two modules share (then no TrainState
        can be trusted to carry it)."""
        if self._carried is not False:
            return self._carried  # type: ignore[return-value]
        found: dict[tuple[tuple[str, ...], str], str | None] | None = {}
        for scope, call in self.a.calls:
            if not (isinstance(call.func, cst.Attribute) and call.func.attr.value == "create"):
                continue
            t = self.a.ty(call, scope)
            if t is None or t.kind != OPTIM or t.ref is None or not t.ref.held:
                continue
            target = self.a.arg(call, 0, "target")
            var = t.ref.def_var
            if not isinstance(target, cst.Name):
                found = None
                break
            if var is not None and _visible(var, scope, self.a):
                value = f"{var[1]}().apply"
            elif self._thread(scope):
                value = "None"  # each caller gives the TrainState its module (self.threads)
            else:
                found = None
                break
            key = (enclosing_names(call, self.a.parent), target.value)
            found[key] = value if found.get(key, value) == value else None
        if found is not None and None in found.values():
            found = None  # one name given two definitions' Models in one function: which one is unknown
        if not found:
            self.threads.clear()
            self.inline_names.clear()
        self._carried = found
        return found

    def _thread(self, scope: Scope) -> bool:
        """An optimizer made where its definition is not visible, in a top-level function ``F`` that
        returns it (``create_optimizer(model)``) and that only this file calls, directly, each time
        where the definition is held by a name, or made by an expression of the caller's body before
        the call: the caller's ``F(...)`` becomes ``F(...).replace(apply_fn=module().apply)`` (the
        expression bound with ``(module := make_module())``).  Notes those edits; False if one cannot
        be made."""
        fn = scope.node
        if not isinstance(fn, cst.FunctionDef) or scope.parent is not self.a.module_scope:
            return False
        ret = self.a.rets.get(id(fn))
        if ret is None or ret.kind != OPTIM or ret.ref is None or not ret.ref.held \
                or self.ctx.index.referrers.get(f"{self.ctx.facts.module_name}.{fn.name.value}"):
            return False
        calls = [(s, c) for s, c in self.a.calls if isinstance(c.func, cst.Name) and c.func.value == fn.name.value
                 and s.lookup(fn.name.value) is self.a.module_scope]
        if _references(self.a.module_scope.node, fn.name.value) != len(calls) + 1:
            return False  # F is also passed on, wrapped or read: not every optimizer it makes is seen here
        if any(self._applies_inside(s, c) for s, c in self.a.calls if _within(s, scope)):
            return False  # F's own TrainState has no apply_fn until F returns it
        edits: dict[int, str] = {}
        for s, c in calls:
            t = self.a.ty(c, s)
            ref = t.ref if t is not None and t.kind == OPTIM else None
            if ref is None or not ref.held:
                return False
            if ref.def_var is not None and _visible(ref.def_var, s, self.a):
                edits[id(c)] = ref.def_var[1]
                continue
            expr = self.a.inline_defs.get(ref.def_expr) if ref.def_expr is not None else None
            if expr is None or not self._before(expr, c, s):
                return False
            if id(expr) not in self.inline_names:
                self.inline_names[id(expr)] = self.fresh("module", expr)
            edits[id(c)] = self.inline_names[id(expr)]
        self.threads.update(edits)
        return True

    def _applies_inside(self, scope: Scope, call: cst.Call) -> bool:
        """Is ``call`` a module application, or does it hand a Model or an optimizer to a function
        of this file (a step that may apply it)?"""
        if self.a.site(call) is not None:
            return True
        if self.a._callee(call, scope)[0] is None:
            return False
        types = (self.a.ty(a.value, scope) for a in call.args)
        return any(t is not None and t.kind in (MODEL, OPTIM) for t in types)

    def _before(self, expr: cst.CSTNode, call: cst.Call, scope: Scope) -> bool:
        """Does ``expr`` surely run before ``call``, in the body of the same function (its statement
        earlier in the same block, not in a lambda, comprehension or condition)?"""
        first, then = self.statement_of(expr), self.statement_of(call)
        block = self.a.parent.get(id(first)) if first is not None else None
        if first is None or then is None or block is not self.a.parent.get(id(then)) \
                or self.a.scope_of.get(id(expr)) is not scope or not isinstance(scope.node, cst.FunctionDef) \
                or self._conditional(expr, first) or not isinstance(block, cst.IndentedBlock):
            return False
        body = list(block.body)
        return body.index(first) < body.index(then)

    def adapt_initializers(self, args: list[cst.Arg], qual: str, legacy: tuple[str, ...],
                           at: cst.CSTNode) -> list[cst.Arg]:
        """Legacy ``init(key, shape)`` user initializers passed to a built-in's
        initializer, or to a parameter of ``qual`` that reaches one, wrapped for
        Linen (``_initializers``)."""
        if self._initializers is None:
            self._initializers = Initializers(self.ctx)
        hidden: dict[str, cst.BaseExpression | None] = {}
        scope = self.a.scope_of.get(id(at))
        while scope is not None and scope is not self.a.module_scope:
            hidden.update({name: None for name in scope.bound if name not in hidden})
            scope = scope.parent
        slots = initializer_slots(legacy, self.ctx.index.legacy_module(qual))
        args, wrapped = self._initializers.adapt(args, slots, hidden)
        for w in wrapped:
            self.fixed(f"legacy initializer {w} wrapped for Linen's init(key, shape, dtype)")
        return args



_LAST: list = [None, None]  # (module, its analysis): the next rule reuses it when nothing changed


def analysis_of(module: cst.Module, ctx: Context) -> Analysis:
    if _LAST[0] is not module:
        _LAST[:] = [module, Analysis(module, ctx.facts, ctx.index, ctx.path,
                                     state_collection=ctx.config.state_collection)]
    return _LAST[1]


class UsageRule(Rule):
    """What the usage rules (LU201, LU202) share: where they apply, and a walk
    only when the file's analysis found something for them.  A subclass gives
    ``transformer()`` (a ``UsageTransformer``)."""


    def relevant(self, module: cst.Module, a: Analysis) -> bool:
        """Anything for this rule in ``module`` (else the file is not walked again)?"""
        return a.relevant()

    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        if not self.relevant(module, analysis_of(module, ctx)):
            return module
        t = self.transformer(ctx)
        assert isinstance(t, UsageTransformer)
        return t.finish(module.visit(t))


_CODE = cst.Module([]).code_for_node


def enclosing_names(node: cst.CSTNode, parent: dict[int, cst.CSTNode]) -> tuple[str, ...]:
    """The functions and classes around ``node``, outermost first (LU302 keys its creates alike)."""
    names: list[str] = []
    p = parent.get(id(node))
    while p is not None:
        if isinstance(p, (cst.FunctionDef, cst.ClassDef)):
            names.append(p.name.value)
        p = parent.get(id(p))
    return tuple(reversed(names))


def _within(scope: Scope | None, outer: Scope) -> bool:
    while scope is not None and scope is not outer:
        scope = scope.parent
    return scope is outer


def _references(module: cst.CSTNode, name: str) -> int:
    """How many times ``name`` is written in ``module``."""
    count = 0

    class _Names(FastVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            nonlocal count
            count += n.value == name
    module.visit(_Names())
    return count


def _holder(ref: ModuleRef, scope: Scope | None, a: Analysis) -> cst.BaseExpression | None:
    """What spells the definition ``ref`` is, seen from ``scope``: the name bound to it, or the field
    of the name holding it (``self.module_def``); None if neither is visible."""
    if scope is None:
        return None
    if ref.def_var is not None and _visible(ref.def_var, scope, a):
        return cst.Name(ref.def_var[1])
    if ref.field_var is not None and _visible(ref.field_var[:2], scope, a):  # type: ignore[arg-type]
        return cst.Attribute(cst.Name(ref.field_var[1]), cst.Name(ref.field_var[2]))
    return None


def _visible(def_var: tuple[int, str], scope: Scope, a: Analysis) -> bool:
    found = scope.lookup(def_var[1])
    return found is not None and id(found) == def_var[0]


def parens(expr: cst.BaseExpression) -> cst.BaseExpression:
    if needs_parens(expr):
        return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return expr


def unwrap(node: cst.With) -> cst.FlattenSentinel:
    """The body of a with statement, in its place."""
    body = node.body
    if isinstance(body, cst.IndentedBlock):
        stmts = list(body.body)
    else:
        stmts = [cst.SimpleStatementLine(body=list(body.body))]
    leading = [*node.leading_lines, *stmts[0].leading_lines]
    stmts[0] = stmts[0].with_changes(leading_lines=leading)
    return cst.FlattenSentinel(stmts)


# calls in a block that say nothing about where a model is applied
_PLAIN_CALLS = frozenset({"print", "len", "range", "int", "float", "str", "list", "dict", "tuple", "zip",
                          "enumerate", "isinstance", "sorted", "min", "max", "sum", "abs"})


def _callees(body: cst.CSTNode) -> list[tuple[str, cst.BaseExpression]]:
    """What a block calls: a name to show, and the callee (``jax.grad(loss_fn)`` for
    ``jax.grad(loss_fn)(...)``)."""
    found: list[tuple[str, cst.BaseExpression]] = []
    wrapped: set[int] = set()

    class _Calls(FastVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            name, callee = dotted(node.func), node.func
            inner = node.func
            if isinstance(inner, cst.Call) and inner.args and dotted(inner.func) and dotted(inner.args[0].value):
                name = f"{dotted(inner.func)}({dotted(inner.args[0].value)})"
                callee = inner.args[0].value
                wrapped.add(id(inner))
            if name and id(node) not in wrapped and name not in _PLAIN_CALLS and name not in [n for n, _ in found]:
                found.append((name, callee))

    body.visit(_Calls())
    return found
