"""The type inference of the usage rules (LU201/LU202): which values of
top-level code are legacy module definitions, ``nn.Model`` objects,
optimizers holding one, or ``nn.Collection`` state (``_usage_types``).

Typing
    A small flow-insensitive inference over one file (module scope, functions,
    lambdas, comprehensions; class bodies are left to the module rules):
    every binding of a name joins the types of what is assigned to it; a
    function's parameters join the types of the arguments at its call sites
    (direct calls and calls through ``jax.jit``/``pmap``/``grad``/
    ``value_and_grad``/``functools.partial``, named or not: a partial passes
    what it fixes, its calls the rest); its result joins its ``return``
    values.  Iterated to a fixed point.  A value with two different types is
    a conflict, and its uses get a TODO rather than a guess.  A function of
    another file of the run (``models.create_model``) is typed by reading
    that file the same way; the parameters of this file's functions also
    join what the other files of the run pass them (``external_seeds``: the
    files the index lists as referring to them, read at a bounded depth), so
    a Model handed over by ``train.py`` is applied in ``models.py``.
Definitions chosen at run time
    Two different definitions joined (a factory returning partials of two
    classes, a parameter given both) are one definition with ``choices``;
    read through a name bound once it is known by that name (``def_var``),
    which a Model made from it keeps.  A function's result is seen at each
    call with what that call passes (``rebind``): ``create_model(key,
    module)`` returns a Model of the caller's ``module``.
"""

from __future__ import annotations

import builtins
import functools
from dataclasses import replace

import libcst as cst

from linen_upgrade.analysis import identity
from linen_upgrade.analysis.watched import Watched, changed
from linen_upgrade.facts import FileFacts
from linen_upgrade.index import ProjectIndex
from linen_upgrade.resolve import dotted
from linen_upgrade.rules._cst import is_property, names_in
from linen_upgrade.rules._model_carry import plan, undo, useless
from linen_upgrade.rules._modules import CallSpec, inputs_fixable
from linen_upgrade.rules._optim import pmap_aliases
from linen_upgrade.rules._usage_classes import Lineage
from linen_upgrade.rules._usage_external import external_registry, external_return, external_seeds
from linen_upgrade.rules._usage_frames import SiteCounter
from linen_upgrade.rules._usage_loops import current
from linen_upgrade.rules._usage_scopes import Collector, Scope
from linen_upgrade.rules._usage_types import (CAPTURE, CHANGED_REGISTRY, CLASS, CONFLICT, DEF, FOREIGN, FUNC,
                                              INPUTS_HELPER, INSTANCE, MODEL, MODEL_TYPES, NOMODULE, OPAQUE, OPTIM,
                                              PARTIAL_HELPER,
                                              RECORD, RECORD_TYPES, RECORDS, RUNTIME, STATE, TRUNC, TUPLE, UNWRITABLE,
                                              UNKNOWN, VARIABLES, ModuleRef, Ty, conflict, element, join, string_value,
                                              unnamed, untraced)
from linen_upgrade.tables.libraries import LIBRARIES, OPAQUE_BUILTINS
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES

# the key of a function's result among the seeds: (id(function), _RETURN), no parameter's name
_RETURN = "<return>"
# calls whose result has the type of one argument (a pytree in, the same pytree out)
_PRESERVING = {
    "flax.jax_utils.replicate": 0, "flax.jax_utils.unreplicate": 0,
    "jax.device_put": 0, "jax.device_get": 0, "jax.lax.pmean": 0, "jax.lax.psum": 0,
    "jax.lax.pmax": 0, "jax.tree_map": 1, "jax.tree_util.tree_map": 1,
    "jax.tree_multimap": 1, "flax.training.checkpoints.restore_checkpoint": 1,
    "jax.lax.stop_gradient": 0, "flax.serialization.from_bytes": 0, "flax.serialization.from_state_dict": 0,
    # a copy is of its original's type (a Model's copy is a Model, a record's a record)
    "copy.copy": 0, "copy.deepcopy": 0, "dataclasses.replace": 0,
}
_CONTEXTS = frozenset({"flax.nn.Model", "flax.nn.stateful", "flax.nn.stochastic", "flax.nn.capture_module_outputs"})
_BUILTINS = frozenset(dir(builtins))
_SAME_SIGNATURE = frozenset({"jax.jit", "jax.pmap", "jax.checkpoint", "jax.remat", "jax.named_call", "jax.vmap"})
# built-ins whose result a loop walks like the tuple they are given (Analysis._sequence)
_SEQUENCES = frozenset({"enumerate", "zip", "reversed", "list", "tuple"})
# JAX loops running functions of the file on a carry of the initial value's pytree structure (jax checks
# it, a Model's module included, so the carry has the initial value's type at every step and after):
# qual -> (the functions' (position, keyword), the initial value's, the carry's parameter in each
# function).  The result is the carry; lax.scan's is (the carry, the stacked ys)
LOOP_CARRIES = {
    "jax.lax.while_loop": (((0, "cond_fun"), (1, "body_fun")), (2, "init_val"), 0),  # body_fun(carry)
    "jax.lax.fori_loop": (((2, "body_fun"),), (3, "init_val"), 1),  # body_fun(i, carry)
    "jax.lax.scan": (((0, "f"),), (1, "init"), 0),  # f(carry, x) -> (carry, y)
}
# transforms returning what jax.grad does: a value shaped like the argument differentiated (a Model's
# jacobian is a Model, as its gradient was)
_GRADS = frozenset({"jax.grad", "jax.jacrev", "jax.jacfwd"})


def _is_literal(node: cst.BaseExpression) -> bool:
    if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString)):
        return True
    if isinstance(node, cst.Name):
        return node.value in ("True", "False", "None")
    if isinstance(node, cst.UnaryOperation):
        return _is_literal(node.expression)
    if isinstance(node, (cst.Tuple, cst.List)):
        return all(_is_literal(e.value) for e in node.elements)
    return False


_CODE = cst.Module([]).code_for_node
_OPAQUE = Ty(OPAQUE)
_STRINGS = (cst.FormattedString, cst.ConcatenatedString)


def _decorated(fn: cst.FunctionDef, name: str) -> bool:
    return any(isinstance(d.decorator, cst.Name) and d.decorator.value == name for d in fn.decorators)


def _known_model(t: Ty | None) -> bool:
    """A Model (or a truncated one) whose module the analysis knows, or a tuple holding one."""
    if t is None:
        return False
    if t.kind == TUPLE:
        return any(_known_model(i) for i in t.items)
    return t.kind in (MODEL, TRUNC) and t.ref is not None


def _may_name_pmap(facts: FileFacts) -> bool:
    """Can a name of the file stand for ``jax.pmap`` (``Analysis.qual`` through the imports)?  Only a
    dotted name ending in ``.pmap`` or a name imported as ``jax.pmap`` can (no rule writes either);
    without one the file binds no pmap alias and ``pmap_aliases`` need not walk it."""
    return "pmap" in facts.attributes or "jax.pmap" in facts.imports.aliases.values()


def _held(ref: ModuleRef) -> bool:
    """A definition whose Linen module can be named: a class, or a run-time choice held by one
    name (a name rebound to other definitions is a conflict, left to LU901 as before)."""
    return not ref.choices or ref.def_var is not None or ref.field_var is not None


class Analysis:
    """Types of the values of one file's top-level code (see the module docstring)."""

    def __init__(self, module: cst.Module, facts: FileFacts, index: ProjectIndex,
                 path: str = "", depth: int = 0, state_collection: str = "batch_stats") -> None:
        self.state_collection = state_collection
        self.facts = facts
        self.index = index
        # names bound only to jax.pmap or a functools.partial of it (LU302's pmap_aliases; not a
        # builtin, nor in a file whose star import may bind one): calling one pmaps, as jax.pmap does
        self.pmap_names: frozenset[str] = frozenset()
        if not facts.imports.stars and _may_name_pmap(facts):
            self.pmap_names = pmap_aliases(module, self.qual) - _BUILTINS
        self.path = path
        self.depth = depth
        self.scopes: dict[int, Scope] = {}
        self.scope_of: dict[int, Scope] = {}
        self.parent: dict[int, cst.CSTNode] = {}
        self.bindings: list[tuple[Scope, str, tuple, tuple[int, ...]]] = []
        # (id(scope), name) -> the nodes binding it (the target, or a carried call's assignment)
        self.bound_at: dict[tuple[int, str], list[cst.CSTNode]] = {}
        self.returns: dict[int, list[tuple[Scope, cst.BaseExpression]]] = {}
        self.calls: list[tuple[Scope, cst.Call]] = []
        self.model_attributes: list[tuple[Scope, cst.Attribute]] = []
        self.legacy_keys: list[tuple[Scope, cst.Subscript]] = []  # x['/Block_4/Dense_0']
        self.field_bindings: list[tuple[Scope, cst.Attribute, tuple, tuple[int, ...]]] = []
        self.class_nodes: dict[str, cst.ClassDef] = {}  # module-level classes by name
        self.plain_classes: dict[int, cst.ClassDef] = {}
        self.methods: dict[int, dict[str, cst.FunctionDef]] = {}  # plain class -> its methods
        # plain class -> its @staticmethod / @classmethod functions, by name
        self.class_functions: dict[int, dict[str, cst.FunctionDef]] = {}
        self.module_scope: Scope
        self.funcs: dict[int, cst.FunctionDef | cst.Lambda] = {}
        module.visit(Collector(self, module))
        self.lineage = Lineage(self.plain_classes, self.methods)
        for scope in self.scopes.values():
            if isinstance(scope.node, (cst.FunctionDef, cst.Lambda)):
                self.funcs[id(scope.node)] = scope.node
        self.env: dict[tuple[int, str], Ty | None] = {}
        self.rets: dict[int, Ty | None] = {}
        self.inline_defs: dict[int, cst.Call] = {}  # ModuleRef.def_expr -> the expression
        self._changed_names: set[str] | None = None  # module-level dicts this file changes (``_changed``)
        self._tops: frozenset[str] | None = None  # top-level names of the run's modules (``_run_packages``)
        # what other files of the run pass to this file's top-level functions
        self.seeds: dict[tuple[int, str], Ty | None] = {}
        self.untraced: set = set()  # seeded as a conflict with ``unknown`` (``_solve``)
        self._read_names: dict[int, set[str]] = {}  # ``_reads``
        for (name, slot), t in external_seeds(self).items():
            fn = self.top_level_function(name)
            fscope = self.scopes[id(fn)] if fn is not None else None
            if fscope is None:
                continue
            param = fscope.params[slot] if isinstance(slot, int) and slot < len(fscope.params) else slot
            if isinstance(param, str) and param in fscope.bound:
                self.seeds[(id(fscope), param)] = join(self.seeds.get((id(fscope), param)), t)
        # functions handing out the definition their Models are made of (``_model_carry``): id(call) ->
        # (id(caller's scope), the name it binds it to); names taken, per function (or module) node (``fresh``)
        self.carried: dict[int, tuple[int, str]] = {}
        self.reserved: dict[int, set[str]] = {}
        self._solve()
        self.carries = plan(self)
        if self.carries:  # again from nothing: a join forgets the names holding a definition for good
            self.env, self.rets = {}, {}
            self._solve()
            unused = useless(self, self.carries)
            if unused:
                undo(self, self.carries, unused)
                self.env, self.rets = {}, {}
                self._solve()
        if depth > 1 and self._annotated_models():
            self.env, self.rets = {}, {}
            self._solve()

    def _annotated_models(self) -> bool:
        """A reading of a file for what it hands on (depth 2, ``external_seeds``) follows nothing the run
        passes into its functions; a parameter annotated as a legacy Model that nothing here types may
        hold one no reading follows (``def get_experience(model: nn.Model)``, handed an optimizer's
        target elsewhere).  It is seeded as a Model no file can name: a function of another file it is
        handed to gets a TODO at its applies, not the call left as written.  Any seeded?"""
        found = False
        for fid, fn in self.funcs.items():
            params = fn.params if isinstance(fn, cst.FunctionDef) else None
            for p in (*params.posonly_params, *params.params, *params.kwonly_params) if params else ():
                key = (id(self.scopes[fid]), p.name.value)
                if p.annotation is not None and self.env.get(key) is None \
                        and self.facts.imports.resolve(p.annotation.annotation) in MODEL_TYPES:
                    self.seeds[key] = conflict(MODEL, UNWRITABLE)
                    found = True
        return found

    def fresh(self, node: cst.CSTNode, base: str) -> str:
        """A name unused in ``node`` (a function, or the module), at module level, and not given out
        there before (by the carries, ``_model_carry``, or a rule's edits)."""
        taken = self.reserved.get(id(node))
        if taken is None:
            taken = self.reserved[id(node)] = set(self.module_scope.bound) | names_in(node)
        name, i = base, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        return name

    def top_level_function(self, name: str) -> cst.FunctionDef | None:
        return next((f for f in self.funcs.values() if isinstance(f, cst.FunctionDef) and f.name.value == name
                     and self.scope_of.get(id(f)) is self.module_scope), None)

    # -- names ---------------------------------------------------------------
    def qual(self, node: cst.BaseExpression, scope: Scope | None = None) -> str | None:
        """The qualified name a dotted expression stands for through the imports
        (None when its head is a local variable)."""
        name = dotted(node)
        if name is None:
            return None
        if name in self.pmap_names:
            return "jax.pmap"
        if scope is not None:
            found = scope.lookup(name.split(".")[0])
            if found is not None and found is not self.module_scope:
                return None
            if found is self.module_scope:
                local_class = next((c for c in self.facts.classes if c.name == name), None)
                if local_class is not None:
                    return self.class_qual(name)
                return None
        return self.facts.imports.resolve_dotted(name)

    def is_legacy_class(self, node: cst.ClassDef) -> bool:
        if self.index.is_legacy_module(self.class_qual(node.name.value)):
            return True
        bases = (dotted(b.value) for b in node.bases if b.keyword is None)
        return any(self.index.is_legacy_module(self.facts.imports.resolve_dotted(b) or b) for b in bases if b)

    def class_qual(self, name: str) -> str:
        module = self.facts.module_name
        return f"{module}.{name}" if module else name

    def is_module_class(self, qual: str | None) -> bool:
        return bool(qual) and (self.index.is_legacy_module(qual) or qual in BUILTIN_MODULES) \
            and qual != "flax.nn.Module"

    # -- solving ---------------------------------------------------------------
    def _solve(self) -> None:
        """The fixed point, where a value the analysis cannot type (``None``) joins as nothing; then each
        name, field, parameter or result that some site gives such a value while others give a legacy
        value or a function (``untraced``) is seeded as a conflict with ``unknown`` -- the value may be
        either, its uses get a TODO -- and solved again, until no more are found (``_fixed_point`` says
        which sites count)."""
        untyped = self._fixed_point()
        while self.depth == 0:  # not another file's reading, which the run's values are not passed to
            mixed = {key for key in untyped if key not in self.untraced
                     and untraced(self.rets.get(key) if isinstance(key, int) else self.env.get(key))}
            if not mixed:
                return
            self.untraced |= mixed
            for key in mixed:
                seed = (key, _RETURN) if isinstance(key, int) else key
                self.seeds[seed] = join(self.seeds.get(seed), conflict(UNKNOWN))
            self.env, self.rets = {}, {}
            untyped = self._fixed_point()

    def _fixed_point(self) -> set:
        """Solve from the seeds; the fields, parameters and functions' results (``id(function)``) some
        site gave a value of no type (not the literal None), and the names bound to one that does not
        read the name itself (``model = other.load()``, not ``optimizer = optimizer.replicate()``,
        which mostly holds the same value transformed in ways the analysis does not model).

        Each round types every site (a binding, a field's, a call's arguments, a default, a return)
        against the previous round's ``env`` and ``rets``, and joins what they give in site order,
        until a round changes nothing.  A site is typed again only when a key it read last time
        changed in the last round (``Watched`` notes the reads): the same rounds and the same joins as
        typing every site each round, since a site's type depends on nothing else that changes here."""
        unread = frozenset(("expr", "iter"))

        def _untyped(t: Ty | None, source: cst.BaseExpression | None) -> bool:  # (not the literal None)
            return t is None and not (isinstance(source, cst.Name) and source.value == "None")

        def bound(site) -> tuple:
            scope, name, source, path = site
            t = self._source_ty(scope, name, source)
            for i in path:
                t = t.items[i] if t is not None and t.kind == TUPLE and i < len(t.items) else None
            flagged = source[0] in unread and not (t is None and self._reads(source[1], name))
            return (((id(scope), name), t, flagged and _untyped(t, source[1])),)

        def field(site) -> tuple:
            scope, target_attr, source, path = site
            owner = self.ty(target_attr.value, scope)
            if owner is None or owner.kind != INSTANCE:
                return ()
            t = self._source_ty(scope, "", source)
            for i in path:
                t = t.items[i] if t is not None and t.kind == TUPLE and i < len(t.items) else None
            return (((self.lineage.root(owner.func[1]), "." + target_attr.attr.value), t,
                     _untyped(t, source[1] if source[0] == "expr" else None)),)

        def called(site) -> tuple:
            scope, call = site
            out = []
            passed = self._target_passed(call, scope)
            if passed is not None:  # opt.optimize(loss_fn): loss_fn(opt.target)
                out.append((passed[0], passed[1], False))
            loop = self.loop_carry(call, scope)
            for fn, i in loop[0] if loop is not None else ():  # each step's carry is of the initial value's type
                fscope, t = self.scopes[id(fn)], self.ty(loop[1], scope)
                out.append(((id(fscope), fscope.params[i]), t, _untyped(t, loop[1])))
            target, args, offset = self._callee(call, scope)
            if target is None:
                return tuple(out)
            fscope = self.scopes[id(target)]
            # an unpacked *args fills the parameters after the arguments before it (not followed)
            unpacked = next((i for i, a in enumerate(args) if a.star), len(args))
            positional = [a for a in args[:unpacked] if a.keyword is None]
            for i, a in enumerate(positional):
                if i + offset < len(fscope.params):
                    t = self._entered(self.ty(a.value, scope), call, scope, fscope)
                    out.append(((id(fscope), fscope.params[i + offset]), t, _untyped(t, a.value)))
            for a in args:
                if a.keyword is not None and not a.star and a.keyword.value in fscope.bound:
                    t = self._entered(self.ty(a.value, scope), call, scope, fscope)
                    out.append(((id(fscope), a.keyword.value), t, _untyped(t, a.value)))
            return tuple(out)

        def default(site) -> tuple:  # a default is what a call leaving the parameter out passes
            fscope, p = site
            t = self.ty(p.default, fscope.parent)
            return (((id(fscope), p.name.value), t, _untyped(t, p.default)),)

        def returned(site) -> tuple:
            fid, s, e = site
            t = self.ty(e, s)
            return ((fid, t, _untyped(t, e)),)

        sites = [(bound, b) for b in self.bindings] + [(field, f) for f in self.field_bindings] \
            + [(called, c) for c in self.calls]
        for fid, fn in self.funcs.items():
            fscope = self.scopes[fid]
            sites += [(default, (fscope, p)) for p in (*fn.params.posonly_params, *fn.params.params,
                                                       *fn.params.kwonly_params)
                      if p.default is not None and fscope.parent is not None]
        first_return = len(sites)
        sites += [(returned, (fid, s, e)) for fid, values in self.returns.items() for s, e in values]
        typed: list[tuple] = [()] * len(sites)
        reads: list[set] = [set()] * len(sites)
        untyped: set = set()
        since: set | None = None  # the keys the last round changed (None: type every site)
        self.env, self.rets = Watched(self.env), Watched(self.rets)
        for _ in range(20):
            for i, (type_of, site) in enumerate(sites):
                if since is None or not reads[i].isdisjoint(since):
                    self.env.seen = self.rets.seen = reads[i] = set()
                    typed[i] = type_of(site)
            self.env.seen = self.rets.seen = set()
            untyped.clear()
            env = Watched({k: t for k, t in self.seeds.items() if k[1] != _RETURN})
            for out in typed[:first_return]:
                for key, t, flagged in out:
                    env[key] = join(dict.get(env, key), t)
                    if flagged:
                        untyped.add(key)
            rets = Watched()
            i = first_return
            for fid, values in self.returns.items():
                rets[fid] = self.seeds.get((fid, _RETURN))
                for out in typed[i:i + len(values)]:
                    for key, t, flagged in out:
                        rets[key] = join(dict.get(rets, key), t)
                        if flagged:
                            untyped.add(key)
                i += len(values)
            since = changed(self.env, env) | changed(self.rets, rets)
            if not since:
                break
            self.env, self.rets = env, rets
        self.env, self.rets = dict(dict.items(self.env)), dict(dict.items(self.rets))
        return untyped

    def _reads(self, source: cst.CSTNode, name: str) -> bool:
        """Does the expression a name is bound to read that name (``x = f(x)``)?"""
        found = self._read_names.get(id(source))
        if found is None:
            found = self._read_names[id(source)] = names_in(source, after_dots=False)
        return name in found

    def _target_passed(self, call: cst.Call, scope: Scope) -> tuple[tuple[int, str], Ty] | None:
        """``opt.optimize(f)`` / ``opt.compute_gradient(f)`` call ``f`` with the optimizer's
        target: (f's first parameter, the Model's type)."""
        func = call.func
        if not (isinstance(func, cst.Attribute) and func.attr.value in ("optimize", "compute_gradient")
                and call.args and call.args[0].keyword is None and not call.args[0].star):
            return None
        base = self.ty(func.value, scope)
        f = self.ty(call.args[0].value, scope) if base is not None and base.kind == OPTIM else None
        while f is not None and f.kind == FUNC and f.func[0] == "same":
            f = f.func[1]
        fn = self.funcs.get(f.func[1]) if f is not None and f.kind == FUNC and f.func[0] == "plain" else None
        fscope = self.scopes[id(fn)] if fn is not None else None
        if fscope is None or not fscope.params:
            return None
        return (id(fscope), fscope.params[0]), Ty(MODEL, base.ref)  # type: ignore[union-attr]

    def _is_partial(self, call: cst.Call, scope: Scope) -> bool:
        func = call.func
        qual = self.qual(func, scope) if isinstance(func, (cst.Name, cst.Attribute)) else None
        return qual == "functools.partial" or qual is None and (
            isinstance(func, cst.Name) and func.value == "partial"
            or isinstance(func, cst.Attribute) and dotted(func) == "functools.partial") \
            or isinstance(func, cst.Name) and func.value in (PARTIAL_HELPER, INPUTS_HELPER) \
            and scope.lookup(func.value) is self.module_scope  # LU201's, for M.partial(**kwargs) / of inputs

    def _source_ty(self, scope: Scope, name: str, source: tuple) -> Ty | None:
        kind = source[0]
        if kind == "expr":
            t = self.ty(source[1], scope)
            if t is not None and t.kind == DEF and t.ref and t.ref.kwargs and scope.bound.get(name) == 1:
                return Ty(DEF, replace(t.ref, def_var=(id(scope), name)))
            return t
        if kind == "class":
            if id(source[1]) in self.plain_classes:
                return Ty(CLASS, func=(CLASS, id(source[1])))
            qual = self.class_qual(name)
            return Ty(DEF, ModuleRef(qual)) if self.index.is_legacy_module(qual) else None
        if kind == "def":
            return Ty(FUNC, func=("plain", id(source[1])))
        if kind == "carried":  # the definition a function of this file hands out with its Model
            t = self.env.get((id(source[1]), source[2]))
            return Ty(DEF, replace(t.ref, def_var=(id(scope), name))) if t is not None and t.ref else None
        if kind == "const":
            return source[1]
        if kind == "iter":
            return element(self.ty(source[1], scope))
        if kind == "with" and isinstance(source[1], cst.Call):
            qual = self.qual(source[1].func, scope)
            if qual in ("flax.nn.stateful", "flax.nn.capture_module_outputs"):
                # the model whose call (or init) inside the block fills the collection
                block = self.parent.get(id(self.parent.get(id(source[1]))))
                refs = {t.ref.without_var() for _, t in self.sites_in(block) if t.ref} \
                    if isinstance(block, cst.With) else set()
                ref = refs.pop() if len(refs) == 1 else None
                return Ty(STATE if qual == "flax.nn.stateful" else CAPTURE, ref)
        if kind == "with" and self.ty(source[1], scope) == _OPAQUE:
            return _OPAQUE  # ``with open(path) as f``: what a library's value enters is one too
        return None

    def sites_in(self, node: cst.CSTNode) -> list[tuple[str, Ty]]:
        """The init/apply sites that run in the body of a with statement."""
        counter = SiteCounter(self)
        node.body.visit(counter)  # type: ignore[attr-defined]
        return counter.sites

    def _callee(self, call: cst.Call, scope: Scope
                ) -> tuple[cst.FunctionDef | cst.Lambda | None, list[cst.Arg], int]:
        """The function of this file a call runs, through jit/pmap/grad wrappers
        (and how many parameters the call does not pass: a bound method's self)."""
        args, shift = list(call.args), 0
        if self._is_partial(call, scope):  # functools.partial(f, a, k=v) passes f what it fixes
            if not args or args[0].keyword is not None or any(a.star for a in args):
                return None, [], 0
            t, args = self.ty(args[0].value, scope), args[1:]
        else:
            t = self.ty(call.func, scope)
        if t is not None and t.kind == CLASS:  # Trainer(model): its __init__(self, model)
            init = self.lineage.inherited(t.func[1], "__init__")
            return init, list(call.args), 1
        fn, skipped = self._function_of(t)
        return (fn, args, shift + skipped) if fn is not None else (None, [], 0)

    def _function_of(self, t: Ty | None) -> tuple[cst.FunctionDef | cst.Lambda | None, int]:
        """The function of this file a function value runs, through jit/pmap/grad wrappers and
        partials, and how many of its first parameters a call of the value does not pass."""
        shift = 0
        while t is not None and t.kind == FUNC and t.func[0] in ("same", "grad", "vgrad", "partial"):
            shift += t.func[2] if t.func[0] == "partial" else 0
            t = t.func[1]
        if t is not None and t.kind == FUNC and t.func[0] in ("plain", "method"):
            return self.funcs.get(t.func[1]), shift + int(t.func[0] == "method")
        return None, 0

    def loop_carry(self, call: cst.Call, scope: Scope
                   ) -> tuple[list[tuple[cst.FunctionDef | cst.Lambda, int]], cst.BaseExpression] | None:
        """``lax.while_loop(cond, body, init)`` (``LOOP_CARRIES``) whose functions are all functions of
        this file with a named parameter for the carry: (each with that parameter's index, the
        initial value), or None."""
        qual = self.qual(call.func, scope) if isinstance(call.func, (cst.Name, cst.Attribute)) else None
        shape = LOOP_CARRIES.get(qual)  # type: ignore[arg-type]
        if shape is None or any(a.star for a in call.args):
            return None
        functions, (position, keyword), carry = shape
        init = self.arg(call, position, keyword)
        found = []
        for i, k in functions:
            f = self.arg(call, i, k)
            fn, skipped = self._function_of(self.ty(f, scope)) if f is not None else (None, 0)
            if fn is None or carry + skipped >= len(self.scopes[id(fn)].params):  # (def body(*carry))
                return None
            found.append((fn, carry + skipped))
        return (found, init) if init is not None else None

    # -- expressions -------------------------------------------------------------
    def ty(self, expr: cst.BaseExpression, scope: Scope) -> Ty | None:
        if isinstance(expr, cst.Name):
            found = scope.lookup(expr.value)
            if found is not None:
                t = self.env.get((id(found), expr.value))
                if t is not None and t.kind == DEF and t.ref is not None and t.ref.held \
                        and (found.bound.get(expr.value) == 1 or found.exclusive(expr.value)):
                    # a definition chosen at run time (or a .partial whose keywords only its maker knows) is
                    # known by the one name that holds it
                    return Ty(DEF, replace(t.ref, def_var=(id(found), expr.value)))
                return current(self, t, expr, found)
            return self._global_ty(self.facts.imports.resolve(expr))
        if isinstance(expr, cst.Attribute):
            qual = self.qual(expr, scope)
            if qual is not None:
                return self._global_ty(qual)
            base = self.ty(expr.value, scope)
            if base is not None and base.kind == OPTIM and expr.attr.value == "target":
                ref, holder = base.ref, expr.value
                if ref is not None and ref.held and isinstance(holder, cst.Name):
                    found = scope.lookup(holder.value)
                    if found is not None and found.bound.get(holder.value) == 1:
                        ref = replace(ref, opt_var=(id(found), holder.value))
                return Ty(MODEL, ref)
            if base is not None and base.kind == CONFLICT and OPTIM in base.items and expr.attr.value == "target":
                return conflict(MODEL, *base.items)  # the target of one of several optimizers: not followed
            if base is not None and base.kind == INSTANCE and base.func[0] == FOREIGN:
                return dict(base.items).get(expr.attr.value)
            fn = self.class_functions.get(base.func[1], {}).get(expr.attr.value) \
                if base is not None and base.kind in (INSTANCE, CLASS) else None
            if fn is not None:  # Tools.run(model, x), self.run(...): a classmethod is handed its class first
                return Ty(FUNC, func=("method" if _decorated(fn, "classmethod") else "plain", id(fn)))
            if base is not None and base.kind == INSTANCE:
                method = self.lineage.method(base.func[1], expr.attr.value)
                if method is not None and is_property(method):  # what its getter returns (self.model(x))
                    return self.rets.get(id(method))
                if method is not None:  # with the name it is called on (``family.loss``), if bound once
                    return Ty(FUNC, func=("method", id(method), self._once(expr.value, scope)))
                overrides = self.lineage.overrides(base.func[1], expr.attr.value)
                if overrides and not any(is_property(m) for m in overrides):
                    return Ty(FUNC, func=("overrides", tuple(id(m) for m in overrides)))
                t = current(self, self.env.get((self.lineage.root(base.func[1]), "." + expr.attr.value)), expr)
                return self._through_field(t, expr, scope)
            return None
        if isinstance(expr, cst.Call):
            collection = self._collection_of(expr, scope)
            return collection if collection is not None else self._call_ty(expr, scope)
        if isinstance(expr, cst.Lambda):
            return Ty(FUNC, func=("plain", id(expr)))
        if isinstance(expr, (cst.Tuple, cst.List)):
            if any(isinstance(e, cst.StarredElement) for e in expr.elements):
                return None
            items = tuple(self.ty(e.value, scope) for e in expr.elements)
            return Ty(TUPLE, items=items) if any(items) else None
        if isinstance(expr, cst.IfExp):  # ``B if fake else A``: a definition chosen at run time
            body, orelse = self.ty(expr.body, scope), self.ty(expr.orelse, scope)
            if body is not None and orelse is not None and body.kind == orelse.kind == DEF:
                return join(body, orelse)
            return self._either([(expr.body, body), (expr.orelse, orelse)])
        if isinstance(expr, cst.BooleanOperation):  # ``model or default``, ``flag and model``
            return self._either([(e, self.ty(e, scope)) for e in (expr.left, expr.right)])
        if isinstance(expr, cst.Subscript):
            key = expr.slice[0].slice if len(expr.slice) == 1 else None
            if isinstance(key, cst.Index) and isinstance(key.value, cst.SimpleString) \
                    and string_value(key.value) == self.state_collection:
                return self._state_of(expr.value, scope)
            base = self.ty(expr.value, scope)
            if base is not None and base.kind == TUPLE and len(expr.slice) == 1:
                index = expr.slice[0].slice
                value = index.value if isinstance(index, cst.Index) else None
                if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus) \
                        and isinstance(value.expression, cst.Integer):  # models[-1]
                    i = -int(value.expression.value)
                    return base.items[i] if -i <= len(base.items) else None
                if isinstance(value, cst.Integer):
                    i = int(value.value)
                    return base.items[i] if i < len(base.items) else None
                if isinstance(index, cst.Index):  # models[i]: any of them
                    return element(base)
            if (base is None or base.kind == FUNC and base.func[0] == "external") and len(expr.slice) == 1 \
                    and isinstance(expr.slice[0].slice, cst.Index):  # (another file's name: any value there)
                return self._registry(expr.value, scope)
        return None

    def _once(self, expr: cst.BaseExpression, scope: Scope) -> tuple[int, str] | None:
        """(binding scope, name) of a name bound once for the whole run of its scope (``self``, ``family =
        Regressor(...)``; not in a loop, whose every iteration binds another value)."""
        found = scope.lookup(expr.value) if isinstance(expr, cst.Name) else None
        if found is None or found.bound.get(expr.value) != 1 or None in found.arms.get(expr.value, []):
            return None
        return id(found), expr.value  # type: ignore[union-attr]

    def _through_field(self, t: Ty | None, expr: cst.Attribute, scope: Scope) -> Ty | None:
        """A definition only a name can spell (``ModuleRef.held``) read from the field of an instance
        held by a name bound once, a field set once in the file (``self.module_def = self.make_module()``):
        known by that field of that name (``field_var``)."""
        receiver = self._once(expr.value, scope)
        if t is None or t.kind != DEF or t.ref is None or not t.ref.held or receiver is None \
                or sum(target.attr.value == expr.attr.value for _, target, _, _ in self.field_bindings) != 1:
            return t
        return Ty(DEF, replace(t.ref, field_var=(*receiver, expr.attr.value)))

    def _entered(self, t: Ty | None, call: cst.Call, scope: Scope, fscope: Scope) -> Ty | None:
        """An argument of a method called on a name (``family.loss(model)``, through jit/grad/partial) as
        the method's parameter sees it: a Model of the definition in that name's field is one of the
        definition in ``self``'s."""
        ref = t.ref if t is not None else None
        if ref is None or ref.field_var is None or not fscope.params:
            return t
        if self._is_partial(call, scope):
            f = self.ty(call.args[0].value, scope) if call.args else None
        else:
            f = self.ty(call.func, scope)
        while f is not None and f.kind == FUNC and f.func[0] in ("same", "grad", "vgrad", "partial"):
            f = f.func[1]
        if f is None or f.kind != FUNC or f.func[0] != "method" or f.func[2:] != (ref.field_var[:2],):
            return t
        return replace(t, ref=replace(ref, field_var=(id(fscope), fscope.params[0], ref.field_var[2])))

    def _registry(self, table: cst.BaseExpression, scope: Scope) -> Ty | None:
        """``MODELS[name]``, ``models.KNOWN[name]``: an entry of a module-level registry of module
        definitions, this file's or another's (``registry``)."""
        if isinstance(table, cst.Name) and scope.lookup(table.value) is self.module_scope:
            return self.registry(table.value)
        qual = self.qual(table, scope) if isinstance(table, (cst.Name, cst.Attribute)) else None
        if qual is None or "." not in qual:
            return None
        if qual.rpartition(".")[0] == self.facts.module_name:
            return self.registry(qual.rpartition(".")[2])
        return external_registry(self, qual)

    def registry(self, name: str) -> Ty | None:
        """What an entry of the module-level dict ``name`` is, when one statement binds it -- a literal,
        a dict comprehension or ``dict([(key, value) for ...])`` -- to module definitions only
        (``{'small': Net.partial(width=2), ...}``) and this file never changes it: a definition chosen
        at run time among them (``ModuleRef.choices``: its Linen instance is the value that holds it,
        called; LU201 makes the entries functools.partials).  None for anything else."""
        bound = self.bound_at.get((id(self.module_scope), name), [])
        assign = self.parent.get(id(self.parent.get(id(bound[0])))) if len(bound) == 1 else None
        if not isinstance(assign, cst.Assign) or len(assign.targets) != 1:
            return None
        value, values = assign.value, []
        if isinstance(value, (cst.List, cst.Tuple)) or isinstance(value, cst.Call) and value.args and isinstance(
                value.args[0].value, (cst.List, cst.Tuple)):  # dict([('a', A), ...]): its pairs
            pairs = value.args[0].value if isinstance(value, cst.Call) else None
            if pairs is None or not all(isinstance(e.value, cst.Tuple) and len(e.value.elements) == 2
                                        for e in pairs.elements):
                return None
            value = cst.Dict([cst.DictElement(e.value.elements[0].value, e.value.elements[1].value)
                              for e in pairs.elements])
        if isinstance(value, cst.Dict):
            values = [(e.value, self.module_scope) for e in value.elements]
            if not all(isinstance(e, cst.DictElement) for e in value.elements):
                return None
        elif isinstance(value, cst.DictComp):
            values = [(value.value, self.scopes[id(value)])]
        elif isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == "dict" \
                and self.module_scope.lookup("dict") is None and "dict" not in self.facts.imports.aliases:
            args = value.args
            if all(a.keyword is not None and not a.star for a in args):  # dict(small=..., large=...)
                values = [(a.value, self.module_scope) for a in args]
            elif len(args) == 1 and not args[0].star and isinstance(args[0].value, (cst.ListComp, cst.GeneratorExp)) \
                    and isinstance(args[0].value.elt, cst.Tuple) and len(args[0].value.elt.elements) == 2:
                values = [(args[0].value.elt.elements[1].value, self.scopes[id(args[0].value)])]
        types = [self.ty(v, s) for v, s in values]
        if not types or any(t is None or t.kind != DEF or t.ref is None or t.ref.choices for t in types):
            return None
        if self._changed(name):  # entries this analysis does not see: its uses get a TODO
            return conflict(DEF, CHANGED_REGISTRY)
        choices = tuple(sorted({t.ref.without_var() for t in types}, key=repr))  # type: ignore[union-attr]
        return Ty(DEF, ModuleRef(RUNTIME, portable=False, choices=choices, file_names=None))

    def _changed(self, name: str) -> bool:
        """Does this file store into the module-level dict ``name``, delete from it or call one of its
        methods other than the readers (``MODELS['x'] = ...``, ``MODELS.update(...)``)?  (The names so
        changed are found in one walk of the file, on first need.)"""
        if self._changed_names is None:
            self._changed_names = set()
            for node in self.parent.values():
                if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name) and isinstance(
                        self.parent.get(id(node)), (cst.AssignTarget, cst.Del, cst.AugAssign)):
                    self._changed_names.add(node.value.value)
                if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) \
                        and node.attr.value not in ("items", "keys", "values", "get", "copy"):
                    self._changed_names.add(node.value.value)
        return name in self._changed_names

    def _either(self, options: list[tuple[cst.BaseExpression, Ty | None]]) -> Ty | None:
        """One of several values (``b if flag else a``, ``a or b``) where one holds a Model: the
        values joined where each is known (or ``None``); else a conflict, whose uses get a TODO."""
        typed = [t for e, t in options if not (isinstance(e, cst.Name) and e.value == "None")]
        if not any(self.carries_model(t) for t in typed):
            return None
        if all(t is not None for t in typed):
            return functools.reduce(join, typed)
        return conflict(*(t.kind for t in typed if t is not None), UNKNOWN)

    def _global_ty(self, qual: str | None) -> Ty | None:
        if not qual:
            return None
        if self.is_module_class(qual):
            return Ty(DEF, ModuleRef(qual))
        alias = self.index.partial_alias(qual)  # another file's ``ResNet50 = ResNet.partial(...)``
        if alias is not None and self.is_module_class(alias[0]):
            spec = self.spec(alias[0])
            if spec is None or spec.problem or any(k in spec.inputs for k, _ in alias[1]) \
                    and not inputs_fixable(alias[0], self.index):
                return None  # the alias stays legacy there (LU201 says why): so do its uses here
            return Ty(DEF, ModuleRef(alias[0], alias[1], alias=(qual, frozenset(k for k, _ in alias[1]))))
        module, _, name = qual.rpartition(".")
        if module and module in self.index.flax_modules and module != self.facts.module_name:
            return Ty(FUNC, func=("external", qual))
        return None

    def arg(self, call: cst.Call, i: int, keyword: str | None = None) -> cst.BaseExpression | None:
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if i < len(positional):
            return positional[i].value
        return next((a.value for a in call.args if a.keyword is not None and a.keyword.value == keyword), None)

    def _state_of(self, holder_expr: cst.BaseExpression, scope: Scope) -> Ty:
        """``variables['batch_stats']``: what nn.stateful's Collection became."""
        holder = self.ty(holder_expr, scope)
        return Ty(STATE, holder.ref if holder is not None and holder.kind == VARIABLES else None)

    def _collection_of(self, call: cst.Call, scope: Scope) -> Ty | None:
        """``variables.get('batch_stats', {})`` (LU201's form: a model without state has no
        such collection) is the state like ``variables['batch_stats']``."""
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "get" and call.args \
                and isinstance(call.args[0].value, cst.SimpleString) \
                and call.args[0].value.evaluated_value == self.state_collection:
            return self._state_of(call.func.value, scope)
        return None

    def _call_ty(self, call: cst.Call, scope: Scope) -> Ty | None:
        func = call.func
        qual = self.qual(func, scope) if isinstance(func, (cst.Name, cst.Attribute)) else None
        if self.builtin(call, scope) in _SEQUENCES:
            return self._sequence(func.value, call, scope)  # type: ignore[union-attr]
        if isinstance(func, cst.Call) and self._is_partial(func, scope) and func.args:
            wrapper = func.args[0].value  # functools.partial(jax.pmap, axis_name='batch')(f): jax.pmap(f, ...)
            if isinstance(wrapper, (cst.Name, cst.Attribute)) and self.qual(wrapper, scope) in _SAME_SIGNATURE:
                qual = self.qual(wrapper, scope)
        if qual in RECORD_TYPES:
            return Ty(CLASS, func=(RECORD, id(call)))
        if qual in RECORDS:
            return Ty(INSTANCE, func=(RECORD, id(call)))
        if qual == "flax.nn.Model":
            arg = self.arg(call, 0, "module")
            if isinstance(arg, cst.Name) and arg.value == "None" and self.arg(call, 1, "params") is not None:
                return unnamed(MODEL, NOMODULE)  # a holder of params: they convert, an apply gets a TODO
            d = self.ty(arg, scope) if arg is not None else None
            return Ty(MODEL, d.ref) if d is not None and d.kind == DEF and _held(d.ref) else None
        if qual in _PRESERVING:
            arg = self.arg(call, _PRESERVING[qual])
            return self.ty(arg, scope) if arg is not None else None
        if qual in LOOP_CARRIES:  # the last carry
            init = self.arg(call, *LOOP_CARRIES[qual][1]) if not any(a.star for a in call.args) else None
            t = self.ty(init, scope) if init is not None else None
            return Ty(TUPLE, items=(t, None)) if t is not None and qual == "jax.lax.scan" else t
        if self._is_partial(call, scope):
            arg = self.arg(call, 0)
            d = self.ty(arg, scope) if arg is not None else None
            if d is not None and d.kind == DEF and d.ref and d.ref.choices:  # what LU201 made of one's .partial
                return self._partial_of_choice(d.ref, call.args[1:], scope)
            if d is not None and d.kind == DEF and d.ref:
                return Ty(DEF, self._extend(d.ref, call.args[1:], scope))
            if self._callee(call, scope)[0] is not None:
                # a function of this file with arguments fixed: its calls pass the rest, after the
                # positional ones fixed here
                return Ty(FUNC, func=("partial", d, sum(a.keyword is None for a in call.args[1:])))
            return None
        if qual in _SAME_SIGNATURE or qual in _GRADS or qual == "jax.value_and_grad":
            arg = self.arg(call, 0, "fun")
            inner = self.ty(arg, scope) if arg is not None else None
            if inner is None or inner.kind != FUNC:
                return None
            if qual in _SAME_SIGNATURE:
                return Ty(FUNC, func=("same", inner))
            has_aux = any(a.keyword is not None and a.keyword.value == "has_aux"
                          and isinstance(a.value, cst.Name) and a.value.value == "True" for a in call.args)
            argnums = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "argnums"),
                           None)
            n = int(argnums.value) if isinstance(argnums, cst.Integer) else (0 if argnums is None else -1)
            return Ty(FUNC, func=("grad" if qual in _GRADS else "vgrad", inner, has_aux, n))
        if isinstance(func, cst.Attribute):
            base = self.ty(func.value, scope)
            method = func.attr.value
            if method in ("items", "values") and not call.args \
                    and (base is None or base.kind == FUNC and base.func[0] == "external"):
                entry = self._registry(func.value, scope)  # for name, model in MODELS.items(): any entry
                if entry is not None:
                    return Ty(TUPLE, items=(Ty(TUPLE, items=(None, entry)) if method == "items" else entry,))
            if base is not None and base.kind == MODEL and method == "truncate_at":
                path = self.arg(call, 0, "module_path")
                literal = path.evaluated_value if isinstance(path, cst.SimpleString) else None
                return Ty(TRUNC, base.ref, (literal if isinstance(literal, str) else None,))
            if method in ("init", "init_with_output") and isinstance(func.value, cst.Call):
                ctor = self.ty(func.value.func, scope)  # Net(...).init(...): what LU201 wrote
                if ctor is not None and ctor.kind == DEF and ctor.ref:
                    v = Ty(VARIABLES, ModuleRef(ctor.ref.qual))
                    return v if method == "init" else Ty(TUPLE, items=(None, v))
            if base is not None and base.kind == DEF and base.ref and _held(base.ref):
                if method == "partial":
                    if base.ref.choices:
                        return self._partial_of_choice(base.ref, call.args, scope)
                    return Ty(DEF, self._extend(base.ref.without_var(), call.args, scope))
                if method in ("create", "create_by_shape"):
                    return Ty(TUPLE, items=(None, Ty(MODEL, base.ref)))
                return None
            if base is not None and base.kind in (MODEL, OPTIM) and method == "replace":
                target = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "target"),
                              None)
                t = self.ty(target, scope) if base.kind == OPTIM and target is not None else None
                if t is not None and t.kind == MODEL and t.ref is not None:
                    return Ty(OPTIM, replace(t.ref, opt_var=None))  # ``optimizer.replace(target=other)``
                return base
            if base is not None and base.kind == OPTIM and method == "apply_gradient":
                return base
            if base is not None and base.kind == OPTIM and method == "optimize":
                return Ty(TUPLE, items=(base,))  # (the new optimizer, the loss[, aux])
            if method == "create" and (base is None or base.kind != DEF) and not self._function(func, scope):
                arg = self.arg(call, 0, "target")
                t = self.ty(arg, scope) if arg is not None else None
                if t is not None and t.kind == MODEL:
                    return Ty(OPTIM, t.ref)
                if t is None and self._optim_def(func.value, scope):
                    return Ty(OPTIM, None)  # of a Model this analysis cannot type: its calls get a TODO
                return None
        ft = self.ty(func, scope)
        if ft is not None and ft.kind == CLASS:
            return Ty(INSTANCE, func=ft.func)
        if ft is not None and ft.kind == FUNC:
            return self._apply_func(ft, call, scope)
        return _OPAQUE if self._opaque_call(call, qual, scope) else None

    def builtin(self, call: cst.Call, scope: Scope) -> str | None:
        """The built-in ``call`` calls by its plain name (``getattr``, ``sorted``), if not rebound here."""
        func = call.func
        if isinstance(func, cst.Name) and scope.lookup(func.value) is None \
                and func.value not in self.facts.imports.aliases:
            return func.value
        return None

    def _opaque_call(self, call: cst.Call, qual: str | None, scope: Scope) -> bool:
        """Does ``call`` make a value that holds no legacy one: a built-in such as ``str``/``open``,
        or a library's function (``tables.libraries``, not a file of the run) or a method of what
        such a call made, given only literals and such values (else it may hand a Model back)?"""
        func = call.func
        if self.builtin(call, scope) in OPAQUE_BUILTINS:
            return True
        if qual is not None:
            top = qual.partition(".")[0]
            if top not in LIBRARIES or top in self._run_packages():
                return False
        elif not isinstance(func, cst.Attribute) or self.ty(func.value, scope) != _OPAQUE:
            return False
        return all(not a.star and (_is_literal(a.value) or isinstance(a.value, _STRINGS)
                                   or self.ty(a.value, scope) == _OPAQUE) for a in call.args)

    def _run_packages(self) -> frozenset[str]:
        """The top-level names of the run's modules (a file of the run may share a library's name)."""
        if self._tops is None:
            table = identity.current()
            self._tops = frozenset(name.partition(".")[0] for name in (table.paths if table is not None else ()))
        return self._tops

    def _sequence(self, name: str, call: cst.Call, scope: Scope) -> Ty | None:
        """``enumerate(models)``, ``zip(models, xs)``, ``reversed``/``list``/``tuple`` of a tuple of
        Models: the tuple a loop over it walks, item by item (``element``)."""
        if any(a.keyword is not None or a.star for a in call.args) or not call.args:
            return None
        seqs = [self.ty(a.value, scope) for a in call.args]
        items = [t.items if t is not None and t.kind == TUPLE else None for t in seqs]
        if name != "zip" and (len(items) != 1 or items[0] is None):
            return None
        if name == "enumerate":
            return Ty(TUPLE, items=tuple(Ty(TUPLE, items=(None, i)) for i in items[0]))  # type: ignore[union-attr]
        if name == "reversed":
            return Ty(TUPLE, items=tuple(reversed(items[0])))  # type: ignore[arg-type]
        if name in ("list", "tuple"):
            return seqs[0]
        known = [i for i in items if i is not None]  # zip: as long as the shortest tuple it knows
        if not known:
            return None
        return Ty(TUPLE, items=tuple(Ty(TUPLE, items=tuple(i[k] if i is not None else None for i in items))
                                     for k in range(min(map(len, known)))))

    def _optim_def(self, expr: cst.BaseExpression, scope: Scope) -> bool:
        """Is ``expr`` a flax.optim optimizer definition (``optim.Adam(...)``, or a name bound only to those)?"""
        if isinstance(expr, cst.Call):
            func = expr.func
            qual = self.qual(func, scope) if isinstance(func, (cst.Name, cst.Attribute)) else None
            return bool(qual) and qual.startswith("flax.optim.")  # type: ignore[union-attr]
        if not isinstance(expr, cst.Name):
            return False
        found = scope.lookup(expr.value)
        sources = [source for s, name, source, _ in self.bindings if s is found and name == expr.value]
        return bool(sources) and all(source[0] == "expr" and self._optim_def(source[1], found)
                                     for source in sources)

    def _apply_func(self, ft: Ty, call: cst.Call, scope: Scope) -> Ty | None:
        kind = ft.func[0]
        if kind in ("plain", "method"):
            fid = ft.func[1]
            return self.rebind(self.rets.get(fid), self.scopes[fid], call, scope, int(kind == "method"))
        if kind == "same":
            return self._apply_func(ft.func[1], call, scope)
        if kind == "overrides":  # what any of them returns
            return functools.reduce(join, (self.rebind(self.rets.get(fid), self.scopes[fid], call, scope, 1)
                                           for fid in ft.func[1]), None)
        if kind == "partial":  # what the partial fixed is not this call's: rebind sees only the rest
            inner = ft.func[1]
            while inner.kind == FUNC and inner.func[0] == "same":
                inner = inner.func[1]
            target, _, offset = self._callee(call, scope)
            if target is None or inner.func[0] not in ("plain", "method"):
                return None  # a gradient's argnums count the fixed arguments: not followed
            return self.rebind(self.rets.get(id(target)), self.scopes[id(target)], call, scope, offset)
        if kind in ("grad", "vgrad"):
            n = ft.func[3]
            arg = self.arg(call, n) if n >= 0 else None
            g = self.ty(arg, scope) if arg is not None else None
            if kind == "grad" and not ft.func[2]:
                return g
            out = self._apply_func(ft.func[1], call, scope)
            if kind == "grad":  # has_aux: (the gradient, the function's aux)
                aux = out.items[1] if out is not None and out.kind == TUPLE and len(out.items) == 2 else None
                return Ty(TUPLE, items=(g, aux))
            return Ty(TUPLE, items=(out, g))
        if kind == "external":
            return external_return(self, ft.func[1], call, scope)
        return None

    def rebind(self, t: Ty | None, fscope: Scope, call: cst.Call, scope: Scope, offset: int,
               elsewhere=lambda t: t) -> Ty | None:
        """A function's result seen at one call: a value made from a run-time definition held in
        a parameter (``nn.Model(module, p)`` in ``create_model(key, module)``) was made from the
        definition this call passes there (its own type, and the name holding it here); what the
        function's other callers pass is not this value.  ``elsewhere``: what becomes of the rest
        (for a function of another file, only what this file can write, ``_usage_external``)."""
        if t is None:
            return None
        if t.kind == TUPLE:
            return Ty(TUPLE, items=tuple(self.rebind(i, fscope, call, scope, offset, elsewhere) for i in t.items))
        ref = t.ref
        carried = self.carried.get(id(call))
        if carried is not None and ref is not None and ref.def_var is not None and ref.def_var[0] == id(fscope):
            return replace(t, ref=replace(ref, def_var=carried))  # the caller holds it by its own name
        if ref is None or not ref.held or ref.def_var is None or ref.def_var[0] != id(fscope):
            return elsewhere(t)
        name = ref.def_var[1]
        slot = fscope.params.index(name) - offset if name in fscope.params[offset:] else -1
        arg = self.arg(call, slot, name) if slot >= 0 else None
        given = self.ty(arg, scope) if arg is not None and not any(a.star for a in call.args) else None
        if given is not None and given.kind == DEF and given.ref is not None:
            if given.ref.choices and given.ref.def_var is None and isinstance(arg, cst.Call):
                self.inline_defs[id(arg)] = arg  # a factory's result handed over unnamed
                return replace(t, ref=replace(given.ref, def_expr=id(arg)))
            return replace(t, ref=given.ref)
        return elsewhere(replace(t, ref=ref.without_var()))

    def _partial_of_choice(self, ref: ModuleRef, args, scope: Scope) -> Ty | None:
        """``model_type.partial(num_classes=10)`` of a definition chosen at run time: a choice still, of
        each one extended, when every keyword is a Linen attribute of every class it may be (else which
        are call inputs depends on the run: unknown, and LU901 says so)."""
        # ``**model_kwargs``, keys known at run time: LU201's helper checks there that each is an attribute
        if any(a.keyword is None and a.star != "**" or a.star == "*" for a in args) \
                or sum(a.star == "**" for a in args) > 1:
            return None
        keys = {a.keyword.value for a in args if not a.star}
        for choice in ref.choices:
            spec = self.spec(choice.qual)
            legacy = self.index.legacy_module(choice.qual)
            if spec is None or spec.problem or spec.forward is not None or legacy is None \
                    or keys & (spec.inputs | set(spec.manual) | set(spec.renames) | legacy.init_params):
                return None  # (an initializer keyword: Linen calls it otherwise, adapted per class)
        extended = tuple(self._extend(choice, args, scope) for choice in ref.choices)
        return Ty(DEF, replace(ref.without_var(), choices=extended))

    def _extend(self, ref: ModuleRef, args, scope: Scope) -> ModuleRef:
        kwargs = {k: v for k, v in ref.kwargs if k != "*"}
        starred = [(k, v) for k, v in ref.kwargs if k == "*"]  # positional and unpacked: not portable
        portable = ref.portable
        names = ref.file_names
        for a in args:
            if a.keyword is None or a.star:
                starred.append(("*", _CODE(a)))
                portable, names = False, None
                continue
            kwargs[a.keyword.value] = _CODE(a.value)
            portable = portable and _is_literal(a.value)
            if names is not None and not _is_literal(a.value):
                more = self._module_names(a.value, scope)
                names = names | more if more is not None else None
        alias = (ref.alias[0], ref.alias[1] - {a.keyword.value for a in args if a.keyword}) if ref.alias else None
        return ModuleRef(ref.qual, (*kwargs.items(), *starred), portable, alias=alias, file_names=names)

    def module_name_here(self, name: str, scope: Scope) -> bool:
        """Does ``name`` read, in ``scope``, this file's module-level binding (an assignment or an import)?"""
        found = scope.lookup(name)
        return found is self.module_scope or found is None and name in self.facts.imports.aliases

    def _module_names(self, expr: cst.BaseExpression, scope: Scope) -> frozenset[str] | None:
        """The names ``expr`` reads when it is made only of literals, operators, attributes and names
        bound once at module level that no function declares ``global`` (``FLAGS.latents``,
        ``CTABLE.eos_id``, ``jnp.float32``): written elsewhere in the file, it means the same; else None."""
        if _is_literal(expr):
            return frozenset()
        if isinstance(expr, cst.Name):
            ok = self.module_name_here(expr.value, scope) and self.module_scope.bound.get(expr.value, 0) <= 1 \
                and not any(expr.value in s.globals for s in self.scopes.values())
            return frozenset({expr.value}) if ok else None
        if isinstance(expr, cst.Attribute):
            return self._module_names(expr.value, scope)
        parts: list[cst.BaseExpression] = []
        if isinstance(expr, cst.BinaryOperation):
            parts = [expr.left, expr.right]
        elif isinstance(expr, cst.UnaryOperation):
            parts = [expr.expression]
        elif isinstance(expr, (cst.Tuple, cst.List)) and not any(isinstance(e, cst.StarredElement)
                                                                 for e in expr.elements):
            parts = [e.value for e in expr.elements]
        else:
            return None
        out: frozenset[str] = frozenset()
        for part in parts:
            names = self._module_names(part, scope)
            if names is None:
                return None
            out |= names
        return out

    # -- queries for the rewrite -------------------------------------------------
    def _function(self, func: cst.Attribute, scope: Scope) -> bool:
        """``models.create(...)``: a function of a file of the run named ``create``, not
        ``OptimizerDef.create`` (what it returns is read from that function)."""
        t = self.ty(func, scope)
        return t is not None and t.kind == FUNC

    def relevant(self) -> bool:
        """Is there anything for the usage rules here (else the file is not walked again)?"""
        for scope, call in self.calls:
            func = call.func
            if self.site(call) is not None:
                return True
            if isinstance(func, (cst.Name, cst.Attribute)) and self.qual(func, scope) in _CONTEXTS:
                return True
            if isinstance(func, cst.Attribute) and func.attr.value == "partial":
                base = self.ty(func.value, scope)
                if base is not None and base.kind == DEF:
                    return True
            # a Model of a known module (now its params) handed to a call: LU202's escape check decides
            # whether the callee follows it (``stats.count(model)`` in a file that only hands Models over)
            if any(_known_model(self.ty(a.value, scope)) for a in call.args):
                return True
            # a function whose result is a Model handed to a call (registry.build(kind, a.create_model)):
            # LU202's escape check decides whether what comes back of it is followed
            if any(isinstance(a.value, (cst.Name, cst.Attribute)) and self.returns_model(self.ty(a.value, scope))
                   for a in call.args):
                return True
        for scope, attr in self.model_attributes:
            base = self.ty(attr.value, scope)
            if base is not None and (base.kind in (MODEL, STATE) or (base.kind == CONFLICT and MODEL in base.items)):
                return True
        return any(t is not None and t.kind == CONFLICT and MODEL in t.items for t in self.env.values())


    def returns_model(self, t: Ty | None) -> bool:
        """Is ``t`` a function (of this file, or another's) whose result carries a Model or an optimizer?"""
        while t is not None and t.kind == FUNC and t.func[0] == "same":
            t = t.func[1]
        if t is None or t.kind != FUNC:
            return False
        if t.func[0] == "plain":
            return self.carries_legacy(self.rets.get(t.func[1]))
        return t.func[0] == "external" and self.carries_legacy(external_return(self, t.func[1]))

    def carries_legacy(self, t: Ty | None) -> bool:
        """A Model or an optimizer (now its params, a TrainState), or a tuple holding one."""
        if t is not None and t.kind == TUPLE:
            return any(self.carries_legacy(i) for i in t.items)
        return self.carries_model(t) or t is not None and t.kind == OPTIM

    def fields(self, t: Ty) -> dict[str, Ty | None]:
        """The attributes the code gives an instance of a plain class (``self.model = ...``)."""
        if t.func[0] == FOREIGN:
            return dict(t.items)
        root = self.lineage.root(t.func[1])
        return {name[1:]: v for (owner, name), v in self.env.items() if owner == root and name.startswith(".")}

    def carries_model(self, t: Ty | None, nested: bool = True) -> bool:
        """A Model (now its params) or a value holding one: a tuple, an instance keeping it in a field."""
        if t is None:
            return False
        if t.kind in (MODEL, TRUNC):
            return True
        if t.kind == CONFLICT:
            return MODEL in t.items or TRUNC in t.items
        if t.kind == TUPLE:
            return any(self.carries_model(i, nested) for i in t.items)
        if t.kind == INSTANCE and nested:
            return any(self.carries_model(v, False) for v in self.fields(t).values())
        return False

    def type_at(self, node: cst.BaseExpression) -> Ty | None:
        scope = self.scope_of.get(id(node))
        return self.ty(node, scope) if scope is not None else None

    def spec(self, qual: str) -> CallSpec | None:
        row = BUILTIN_MODULES.get(qual)
        if row is not None:
            return CallSpec.builtin(row, self.index.x64)
        legacy = self.index.legacy_module(qual)
        if legacy is not None and legacy.apply_params is not None:
            return CallSpec.user(legacy.apply_params, legacy.derived)
        return None

    def module_methods(self, ref: ModuleRef) -> frozenset[str]:
        """The ``@nn.module_method``s of a definition (of every class a run-time choice may be)."""
        found = None
        for choice in ref.choices or (ref,):
            legacy = self.index.legacy_module(choice.qual)
            mine = frozenset(legacy.module_methods if legacy is not None else ())
            found = mine if found is None else found & mine
        return found or frozenset()

    def site(self, call: cst.Call) -> tuple[str, Ty] | None:
        """Is this call a legacy init/apply site?  (kind, the type that makes it one)."""
        scope = self.scope_of.get(id(call))
        if scope is None:
            return None
        func = call.func
        if isinstance(func, cst.Attribute):
            base = self.ty(func.value, scope)
            if base is not None and base.kind == DEF and base.ref and _held(base.ref):
                if func.attr.value in ("init", "init_by_shape"):
                    return "init", base
                if func.attr.value in ("create", "create_by_shape"):
                    return "create", base
                if func.attr.value == "call":
                    return "call", base
            if base is not None and base.kind == MODEL and base.ref \
                    and func.attr.value in self.module_methods(base.ref):
                return "method", base
        t = self.ty(func, scope)
        if t is not None and t.kind == MODEL:
            return "model", t
        if t is not None and t.kind == TRUNC:
            return "truncated", t
        return None
