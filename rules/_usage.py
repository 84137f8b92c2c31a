"""What the usage rules (LU2xx) share: which values of top-level code are
legacy module definitions, ``nn.Model`` objects, optimizers holding one, or
``nn.Collection`` state, and how a legacy call site becomes a Linen
``init``/``apply``.

Typing
    A small flow-insensitive inference over one file (module scope, functions,
    lambdas, comprehensions; class bodies are left to the module rules):
    every binding of a name joins the types of what is assigned to it; a
    function's parameters join the types of the arguments at its call sites
    (direct calls and calls through ``jax.jit``/``pmap``/``grad``/
    ``value_and_grad``, named or not); its result joins its ``return``
    values.  Iterated to a fixed point.  A value with two different types is
    a conflict, and its uses get a TODO rather than a guess.  A function of
    another file of the run (``models.create_model``) is typed by reading
    that file the same way; the parameters of this file's functions also
    join what the other files of the run pass them (``_external_seeds``: the
    files the index lists as referring to them, read at a bounded depth), so
    a Model handed over by ``train.py`` is applied in ``models.py``.
Representation after the rewrite
    A ``Model`` becomes its params pytree (``nn.Model(M, params)`` ->
    ``params``): names keep their meaning for ``jit``/``grad``/helpers, and a
    legacy optimizer created from it holds exactly that pytree, which is the
    contract with the optimizer rules (``optimizer.target`` is the params).
Contexts
    ``with nn.stateful(...)`` / ``nn.stochastic(...)`` blocks are resolved
    statically: each init/apply inside gets ``batch_stats``/``mutable``/
    ``rngs``; a block is unwrapped once nothing inside needs it any more.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field, replace
from pathlib import Path

import libcst as cst

from linen_upgrade.facts import FileFacts, file_facts
from linen_upgrade.index import ProjectIndex
from linen_upgrade.keys import linen_module_path, state_key_to_path
from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, FastVisitor, Rule, RuleTransformer
from linen_upgrade.rules._cst import add_import, build_dotted, express, needs_parens
from linen_upgrade.rules._modules import CallSpec, split_call
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES

# a Model from another file whose module keywords are known only there
ELSEWHERE = "elsewhere"
# a Model handed in by another file, of a module class this file cannot name (no import of it)
UNWRITABLE = "unwritable"
# how far the reading of other files goes: a file's own analysis is depth 0; the files whose
# functions it calls are read at depth 1 (their return types), and the files calling this one's
# functions at depth 2 (what they pass, ``seeds``), which read their callees' returns at depth 3
_MAX_DEPTH = 3
DEF, MODEL, OPTIM, STATE, TUPLE, FUNC, CONFLICT = "def", "model", "optimizer", "state", "tuple", "func", "conflict"
# a Model's truncate_at(path) (items: (the literal path or None,)); the Collection of
# nn.capture_module_outputs(); what a Linen init returned; a plain class and its instances
# (func: ("class", id(ClassDef)); an instance of a class of another file: ("foreign", its qualified
# name), items: ((field, Ty), ...) the fields that file gave it)
TRUNC, CAPTURE, VARIABLES, CLASS, INSTANCE = "truncated", "captured", "variables", "class", "instance"
FOREIGN = "foreign"

# calls whose result has the type of one argument (a pytree in, the same pytree out)
_PRESERVING = {
    "flax.jax_utils.replicate": 0, "flax.jax_utils.unreplicate": 0,
    "jax.device_put": 0, "jax.device_get": 0, "jax.lax.pmean": 0, "jax.lax.psum": 0,
    "jax.lax.pmax": 0, "jax.tree_map": 1, "jax.tree_util.tree_map": 1,
    "jax.tree_multimap": 1, "flax.training.checkpoints.restore_checkpoint": 1,
    "jax.lax.stop_gradient": 0,
}
_MODEL_ATTRIBUTES = frozenset({"params", "module", "truncate_at", "replace", "as_dict"})
# calls that read only the leaves of a legacy Collection.as_dict() (the checkpoint formats
# keep what they are given: the upgraded program writes and reads Linen's nested keys)
LEAF_READERS = frozenset({
    "jax.tree_util.tree_leaves", "jax.tree_leaves", "jax.tree_util.tree_reduce", "jax.tree_reduce",
    "jax.tree_util.tree_flatten", "jax.tree_flatten", "flax.serialization.to_bytes",
    "flax.serialization.to_state_dict", "flax.serialization.msgpack_serialize",
})
# what a legacy nn.Collection offered besides being passed to nn.stateful
COLLECTION_METHODS = frozenset({"as_dict", "mutate", "retrieve", "store"})
_CONTEXTS = frozenset({"flax.nn.Model", "flax.nn.stateful", "flax.nn.stochastic", "flax.nn.capture_module_outputs"})
_SAME_SIGNATURE = frozenset({"jax.jit", "jax.pmap", "jax.checkpoint", "jax.remat", "jax.named_call"})


@dataclass(frozen=True)
class ModuleRef:
    """A legacy module definition: the class and what a ``.partial`` fixed."""

    qual: str
    kwargs: tuple[tuple[str, str], ...] = ()  # (keyword, source)
    portable: bool = True  # every fixed value is a literal: the constructor can be written anywhere
    def_var: tuple[int, str] | None = None  # (binding scope, name) of a partial held in a variable

    def without_var(self) -> ModuleRef:
        return replace(self, def_var=None)


@dataclass(frozen=True)
class Ty:
    kind: str
    ref: ModuleRef | None = None
    items: tuple = ()
    # FUNC: ("plain", id(def)) | ("same"|"grad"|"vgrad", inner Ty, has_aux, argnums) | ("external", qual)
    func: tuple = ()


def element(t: Ty | None) -> Ty | None:
    """What a loop over a tuple or list literal binds: every item typed, joined (else unknown)."""
    if t is None or t.kind != TUPLE or not t.items or any(i is None for i in t.items):
        return None
    return functools.reduce(join, t.items)


def conflict(*kinds: str) -> Ty:
    """Two different types met; ``items`` keeps which kinds (a TODO only where a model was one)."""
    return Ty(CONFLICT, items=tuple(sorted(set(kinds))))


def conflict_message(t: Ty) -> str:
    if ELSEWHERE in t.items:
        return ("a Model made in another file by a .partial whose keywords are known only there: "
                "build the Linen module there and hand it over with the params")
    if UNWRITABLE in t.items:
        return ("a Model handed in by another file, of a module class this file does not import: "
                "import the class here, or apply the Linen module where it is defined")
    return "a value that holds different legacy models (or a Model and something else) at different call sites"


def join(a: Ty | None, b: Ty | None) -> Ty | None:
    if a is None:
        return b
    if b is None or a == b:
        return a
    if a.kind == b.kind == TUPLE and len(a.items) == len(b.items):
        return Ty(TUPLE, items=tuple(join(x, y) for x, y in zip(a.items, b.items)))
    if a.kind == b.kind and a.ref and b.ref and a.ref.without_var() == b.ref.without_var() and a.items == b.items:
        return Ty(a.kind, a.ref.without_var(), a.items)
    if a.kind == b.kind and a.kind in (STATE, CAPTURE, VARIABLES):
        return Ty(a.kind)  # a collection of one of several models: its paths cannot be translated
    return conflict(*(a.items if a.kind == CONFLICT else (a.kind,)), *(b.items if b.kind == CONFLICT else (b.kind,)))


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


class Scope:
    def __init__(self, node: cst.CSTNode, parent: Scope | None, is_class: bool = False) -> None:
        self.node = node
        self.parent = parent
        self.is_class = is_class  # a class body: its names are not visible in its methods
        self.bound: dict[str, int] = {}  # name -> how many bindings
        self.globals: set[str] = set()
        self.params: list[str] = []

    def bind(self, name: str) -> None:
        self.bound[name] = self.bound.get(name, 0) + 1

    def lookup(self, name: str) -> Scope | None:
        s: Scope | None = self
        while s is not None:
            if name in s.bound and name not in s.globals and (s is self or not s.is_class):
                return s
            s = s.parent
        return None


class _Collector(FastVisitor):
    """Scopes, bindings, call sites, returns and parents of one module."""

    def __init__(self, a: Analysis, module: cst.Module) -> None:
        super().__init__()
        self.a = a
        self.stack = [Scope(module, None)]
        a.module_scope = self.stack[0]
        self.parents: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.parents:
            self.a.parent[id(node)] = self.parents[-1]
        self.parents.append(node)
        self.a.scope_of[id(node)] = self.stack[-1]
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        super().on_leave(original_node)
        self.parents.pop()
        if self.stack[-1].node is original_node:
            self.stack.pop()

    def _push(self, node: cst.CSTNode, params: cst.Parameters | None) -> Scope:
        scope = Scope(node, self.stack[-1])
        self.a.scopes[id(node)] = scope
        if params is not None:
            for p in [*params.posonly_params, *params.params]:
                scope.bind(p.name.value)
                scope.params.append(p.name.value)
            for p in [params.star_arg, params.star_kwarg, *params.kwonly_params]:
                if isinstance(p, cst.Param):
                    scope.bind(p.name.value)
        self.stack.append(scope)
        return scope

    def _bind(self, target: cst.BaseExpression, source: tuple, path: tuple[int, ...] = ()) -> None:
        if isinstance(target, cst.Name):
            self.stack[-1].bind(target.value)
            self.a.bindings.append((self.stack[-1], target.value, source, path))
        elif isinstance(target, cst.Attribute):  # obj.attr = ...: a field of obj's class, if a plain class
            self.a.field_bindings.append((self.stack[-1], target, source, path))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for i, el in enumerate(target.elements):
                if isinstance(el, cst.StarredElement):
                    self._bind(el.value, ("unknown",))
                else:
                    self._bind(el.value, source, (*path, i))

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.stack[-1].bind(node.name.value)
        self.a.bindings.append((self.stack[-1], node.name.value, ("class", node), ()))
        if len(self.stack) == 1:
            self.a.class_nodes[node.name.value] = node
        if self.a.is_legacy_class(node):
            return False  # legacy module bodies belong to the module rules
        # a plain class (a trainer holding a Model in self.model): its methods are top-level code
        self.a.plain_classes[id(node)] = node
        self.a.methods[id(node)] = {}
        scope = Scope(node, self.stack[-1], is_class=True)
        self.a.scopes[id(node)] = scope
        self.stack.append(scope)
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.stack[-1].bind(node.name.value)
        self.a.bindings.append((self.stack[-1], node.name.value, ("def", node), ()))
        self.a.returns.setdefault(id(node), [])
        owner = self.stack[-1]
        scope = self._push(node, node.params)
        if owner.is_class and scope.params and not any(
                isinstance(d.decorator, cst.Name) and d.decorator.value in ("staticmethod", "classmethod")
                for d in node.decorators):
            self.a.methods[id(owner.node)][node.name.value] = node
            self.a.bindings.append((scope, scope.params[0], ("const", Ty(INSTANCE, func=(CLASS, id(owner.node)))), ()))
        return True

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        scope = self._push(node, node.params)
        self.a.returns[id(node)] = [(scope, node.body)]
        return True

    def _comp(self, node: cst.CSTNode) -> bool:
        self._push(node, None)
        return True

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comp

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._bind(node.target, ("iter", node.iter))

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._bind(t.target, ("expr", node.value))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._bind(node.target, ("expr", node.value) if node.value else ("unknown",))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind(node.target, ("unknown",))

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind(node.target, ("expr", node.value))

    def visit_For(self, node: cst.For) -> None:
        self._bind(node.target, ("iter", node.iter))

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind(node.asname.name, ("with", node.item))

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        if node.name is not None:
            self._bind(node.name.name, ("unknown",))

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        if len(self.stack) > 1:  # module-level imports are the resolver's business
            name = node.asname.name if node.asname else node.name
            if isinstance(name, cst.Name):
                self._bind(name, ("unknown",))
            elif isinstance(name, cst.Attribute):
                head = dotted(name)
                if head:
                    self.stack[-1].bind(head.split(".")[0])

    def visit_Global(self, node: cst.Global) -> None:
        self.stack[-1].globals.update(n.name.value for n in node.names)

    visit_Nonlocal = visit_Global

    def visit_Return(self, node: cst.Return) -> None:
        fn = next((s.node for s in reversed(self.stack) if isinstance(s.node, (cst.FunctionDef, cst.Lambda))), None)
        if isinstance(fn, cst.FunctionDef) and node.value is not None:
            self.a.returns[id(fn)].append((self.stack[-1], node.value))

    def visit_Call(self, node: cst.Call) -> None:
        self.a.calls.append((self.stack[-1], node))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value in _MODEL_ATTRIBUTES:
            self.a.model_attributes.append((self.stack[-1], node))

    def visit_Subscript(self, node: cst.Subscript) -> None:
        if legacy_key(node) is not None:
            self.a.legacy_keys.append((self.stack[-1], node))


class Analysis:
    """Types of the values of one file's top-level code (see the module docstring)."""

    def __init__(self, module: cst.Module, facts: FileFacts, index: ProjectIndex,
                 path: str = "", depth: int = 0, state_collection: str = "batch_stats") -> None:
        self.state_collection = state_collection
        self.facts = facts
        self.index = index
        self.path = path
        self.depth = depth
        self.scopes: dict[int, Scope] = {}
        self.scope_of: dict[int, Scope] = {}
        self.parent: dict[int, cst.CSTNode] = {}
        self.bindings: list[tuple[Scope, str, tuple, tuple[int, ...]]] = []
        self.returns: dict[int, list[tuple[Scope, cst.BaseExpression]]] = {}
        self.calls: list[tuple[Scope, cst.Call]] = []
        self.model_attributes: list[tuple[Scope, cst.Attribute]] = []
        self.legacy_keys: list[tuple[Scope, cst.Subscript]] = []  # x['/Block_4/Dense_0']
        self.field_bindings: list[tuple[Scope, cst.Attribute, tuple, tuple[int, ...]]] = []
        self.class_nodes: dict[str, cst.ClassDef] = {}  # module-level classes by name
        self.plain_classes: dict[int, cst.ClassDef] = {}
        self.methods: dict[int, dict[str, cst.FunctionDef]] = {}  # plain class -> its methods
        self.module_scope: Scope
        self.funcs: dict[int, cst.FunctionDef | cst.Lambda] = {}
        module.visit(_Collector(self, module))
        for scope in self.scopes.values():
            if isinstance(scope.node, (cst.FunctionDef, cst.Lambda)):
                self.funcs[id(scope.node)] = scope.node
        self.env: dict[tuple[int, str], Ty | None] = {}
        self.rets: dict[int, Ty | None] = {}
        # what other files of the run pass to this file's top-level functions
        self.seeds: dict[tuple[int, str], Ty | None] = {}
        for (name, slot), t in _external_seeds(self).items():
            fn = self.top_level_function(name)
            fscope = self.scopes[id(fn)] if fn is not None else None
            if fscope is None:
                continue
            param = fscope.params[slot] if isinstance(slot, int) and slot < len(fscope.params) else slot
            if isinstance(param, str) and param in fscope.bound:
                self.seeds[(id(fscope), param)] = join(self.seeds.get((id(fscope), param)), t)
        self._solve()

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
        for _ in range(20):
            env: dict[tuple[int, str], Ty | None] = dict(self.seeds)
            for scope, name, source, path in self.bindings:
                t = self._source_ty(scope, name, source)
                for i in path:
                    t = t.items[i] if t is not None and t.kind == TUPLE and i < len(t.items) else None
                key = (id(scope), name)
                env[key] = join(env.get(key), t)
            for scope, target_attr, source, path in self.field_bindings:
                owner = self.ty(target_attr.value, scope)
                if owner is None or owner.kind != INSTANCE:
                    continue
                t = self._source_ty(scope, "", source)
                for i in path:
                    t = t.items[i] if t is not None and t.kind == TUPLE and i < len(t.items) else None
                key = (owner.func[1], "." + target_attr.attr.value)
                env[key] = join(env.get(key), t)
            for scope, call in self.calls:
                target, args, offset = self._callee(call, scope)
                if target is None:
                    continue
                fscope = self.scopes[id(target)]
                positional = [a for a in args if a.keyword is None]
                if any(a.star for a in args):
                    continue
                for i, a in enumerate(positional):
                    if i + offset < len(fscope.params):
                        key = (id(fscope), fscope.params[i + offset])
                        env[key] = join(env.get(key), self.ty(a.value, scope))
                for a in args:
                    if a.keyword is not None and a.keyword.value in fscope.bound:
                        key = (id(fscope), a.keyword.value)
                        env[key] = join(env.get(key), self.ty(a.value, scope))
            rets = {fid: functools.reduce(join, (self.ty(e, s) for s, e in values), None)
                    for fid, values in self.returns.items()}
            if env == self.env and rets == self.rets:
                break
            self.env, self.rets = env, rets

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
        return None

    def sites_in(self, node: cst.CSTNode) -> list[tuple[str, Ty]]:
        """The init/apply sites that run in the body of a with statement."""
        counter = _SiteCounter(self)
        node.body.visit(counter)  # type: ignore[attr-defined]
        return counter.sites

    def _callee(self, call: cst.Call, scope: Scope
                ) -> tuple[cst.FunctionDef | cst.Lambda | None, list[cst.Arg], int]:
        """The function of this file a call runs, through jit/pmap/grad wrappers
        (and how many parameters the call does not pass: a bound method's self)."""
        t = self.ty(call.func, scope)
        while t is not None and t.kind == FUNC and t.func[0] in ("same", "grad", "vgrad"):
            t = t.func[1]
        if t is not None and t.kind == FUNC and t.func[0] in ("plain", "method"):
            return self.funcs.get(t.func[1]), list(call.args), int(t.func[0] == "method")
        if t is not None and t.kind == CLASS:  # Trainer(model): its __init__(self, model)
            init = self.methods.get(t.func[1], {}).get("__init__")
            return init, list(call.args), 1
        return None, [], 0

    # -- expressions -------------------------------------------------------------
    def ty(self, expr: cst.BaseExpression, scope: Scope) -> Ty | None:
        if isinstance(expr, cst.Name):
            found = scope.lookup(expr.value)
            if found is not None:
                return self.env.get((id(found), expr.value))
            return self._global_ty(self.facts.imports.resolve(expr))
        if isinstance(expr, cst.Attribute):
            qual = self.qual(expr, scope)
            if qual is not None:
                return self._global_ty(qual)
            base = self.ty(expr.value, scope)
            if base is not None and base.kind == OPTIM and expr.attr.value == "target":
                return Ty(MODEL, base.ref)
            if base is not None and base.kind == INSTANCE and base.func[0] == FOREIGN:
                return dict(base.items).get(expr.attr.value)
            if base is not None and base.kind == INSTANCE:
                method = self.methods.get(base.func[1], {}).get(expr.attr.value)
                if method is not None:
                    return Ty(FUNC, func=("method", id(method)))
                return self.env.get((base.func[1], "." + expr.attr.value))
            return None
        if isinstance(expr, cst.Call):
            return self._call_ty(expr, scope)
        if isinstance(expr, cst.Lambda):
            return Ty(FUNC, func=("plain", id(expr)))
        if isinstance(expr, (cst.Tuple, cst.List)):
            if any(isinstance(e, cst.StarredElement) for e in expr.elements):
                return None
            items = tuple(self.ty(e.value, scope) for e in expr.elements)
            return Ty(TUPLE, items=items) if any(items) else None
        if isinstance(expr, cst.Subscript):
            key = expr.slice[0].slice if len(expr.slice) == 1 else None
            if isinstance(key, cst.Index) and isinstance(key.value, cst.SimpleString) \
                    and key.value.evaluated_value == self.state_collection:
                # variables['batch_stats']: what nn.stateful's Collection became
                holder = self.ty(expr.value, scope)
                return Ty(STATE, holder.ref if holder is not None and holder.kind == VARIABLES else None)
            base = self.ty(expr.value, scope)
            if base is not None and base.kind == TUPLE and len(expr.slice) == 1:
                index = expr.slice[0].slice
                if isinstance(index, cst.Index) and isinstance(index.value, cst.Integer):
                    i = int(index.value.value)
                    return base.items[i] if i < len(base.items) else None
        return None

    def _global_ty(self, qual: str | None) -> Ty | None:
        if not qual:
            return None
        if self.is_module_class(qual):
            return Ty(DEF, ModuleRef(qual))
        module, _, name = qual.rpartition(".")
        if module and module in self.index.flax_modules and module != self.facts.module_name:
            return Ty(FUNC, func=("external", qual))
        return None

    def arg(self, call: cst.Call, i: int, keyword: str | None = None) -> cst.BaseExpression | None:
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if i < len(positional):
            return positional[i].value
        return next((a.value for a in call.args if a.keyword is not None and a.keyword.value == keyword), None)

    def _call_ty(self, call: cst.Call, scope: Scope) -> Ty | None:
        func = call.func
        qual = self.qual(func, scope) if isinstance(func, (cst.Name, cst.Attribute)) else None
        if qual == "flax.nn.Model":
            arg = self.arg(call, 0, "module")
            d = self.ty(arg, scope) if arg is not None else None
            return Ty(MODEL, d.ref) if d is not None and d.kind == DEF else None
        if qual in _PRESERVING:
            arg = self.arg(call, _PRESERVING[qual])
            return self.ty(arg, scope) if arg is not None else None
        if qual == "functools.partial" or (qual is None and isinstance(func, cst.Name) and func.value == "partial") \
                or (qual is None and isinstance(func, cst.Attribute) and dotted(func) == "functools.partial"):
            arg = self.arg(call, 0)
            d = self.ty(arg, scope) if arg is not None else None
            if d is not None and d.kind == DEF and d.ref:
                return Ty(DEF, self._extend(d.ref, call.args[1:]))
            return None
        if qual in _SAME_SIGNATURE or qual in ("jax.grad", "jax.value_and_grad"):
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
            return Ty(FUNC, func=("grad" if qual == "jax.grad" else "vgrad", inner, has_aux, n))
        if isinstance(func, cst.Attribute):
            base = self.ty(func.value, scope)
            method = func.attr.value
            if base is not None and base.kind == MODEL and method == "truncate_at":
                path = self.arg(call, 0, "module_path")
                literal = path.evaluated_value if isinstance(path, cst.SimpleString) else None
                return Ty(TRUNC, base.ref, (literal if isinstance(literal, str) else None,))
            if method in ("init", "init_with_output") and isinstance(func.value, cst.Call):
                ctor = self.ty(func.value.func, scope)  # Net(...).init(...): what LU201 wrote
                if ctor is not None and ctor.kind == DEF and ctor.ref:
                    v = Ty(VARIABLES, ModuleRef(ctor.ref.qual))
                    return v if method == "init" else Ty(TUPLE, items=(None, v))
            if base is not None and base.kind == DEF and base.ref:
                if method == "partial":
                    return Ty(DEF, self._extend(base.ref.without_var(), call.args))
                if method in ("create", "create_by_shape"):
                    return Ty(TUPLE, items=(None, Ty(MODEL, base.ref)))
                return None
            if base is not None and base.kind in (MODEL, OPTIM) and method == "replace":
                return base
            if base is not None and base.kind == OPTIM and method == "apply_gradient":
                return base
            if method == "create" and (base is None or base.kind != DEF):
                arg = self.arg(call, 0, "target")
                t = self.ty(arg, scope) if arg is not None else None
                if t is not None and t.kind == MODEL:
                    return Ty(OPTIM, t.ref)
                return None
        ft = self.ty(func, scope)
        if ft is not None and ft.kind == CLASS:
            return Ty(INSTANCE, func=ft.func)
        return self._apply_func(ft, call, scope) if ft is not None and ft.kind == FUNC else None

    def _apply_func(self, ft: Ty, call: cst.Call, scope: Scope) -> Ty | None:
        kind = ft.func[0]
        if kind in ("plain", "method"):
            return self.rets.get(ft.func[1])
        if kind == "same":
            return self._apply_func(ft.func[1], call, scope)
        if kind in ("grad", "vgrad"):
            n = ft.func[3]
            arg = self.arg(call, n) if n >= 0 else None
            g = self.ty(arg, scope) if arg is not None else None
            if kind == "grad":
                return g
            return Ty(TUPLE, items=(self._apply_func(ft.func[1], call, scope), g))
        if kind == "external":
            return external_return(self, ft.func[1])
        return None

    def _extend(self, ref: ModuleRef, args) -> ModuleRef:
        kwargs = dict(ref.kwargs)
        portable = ref.portable
        for a in args:
            if a.keyword is None or a.star:
                return replace(ref, portable=False, kwargs=(*ref.kwargs, ("*", _CODE(a))))
            kwargs[a.keyword.value] = _CODE(a.value)
            portable = portable and _is_literal(a.value)
        return ModuleRef(ref.qual, tuple(kwargs.items()), portable)

    # -- queries for the rewrite -------------------------------------------------
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
        for scope, attr in self.model_attributes:
            base = self.ty(attr.value, scope)
            if base is not None and (base.kind in (MODEL, STATE) or (base.kind == CONFLICT and MODEL in base.items)):
                return True
        return any(t is not None and t.kind == CONFLICT and MODEL in t.items for t in self.env.values())


    def fields(self, t: Ty) -> dict[str, Ty | None]:
        """The attributes the code gives an instance of a plain class (``self.model = ...``)."""
        if t.func[0] == FOREIGN:
            return dict(t.items)
        return {name[1:]: v for (owner, name), v in self.env.items() if owner == t.func[1] and name.startswith(".")}

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
            return CallSpec.builtin(row)
        legacy = self.index.legacy_module(qual)
        if legacy is not None and legacy.apply_params is not None:
            return CallSpec.user(legacy.apply_params)
        return None

    def module_methods(self, qual: str) -> tuple[str, ...]:
        legacy = self.index.legacy_module(qual)
        return legacy.module_methods if legacy is not None else ()

    def site(self, call: cst.Call) -> tuple[str, Ty] | None:
        """Is this call a legacy init/apply site?  (kind, the type that makes it one)."""
        scope = self.scope_of.get(id(call))
        if scope is None:
            return None
        func = call.func
        if isinstance(func, cst.Attribute):
            base = self.ty(func.value, scope)
            if base is not None and base.kind == DEF and base.ref:
                if func.attr.value in ("init", "init_by_shape"):
                    return "init", base
                if func.attr.value in ("create", "create_by_shape"):
                    return "create", base
                if func.attr.value == "call":
                    return "call", base
            if base is not None and base.kind == MODEL and base.ref \
                    and func.attr.value in self.module_methods(base.ref.qual):
                return "method", base
        t = self.ty(func, scope)
        if t is not None and t.kind == MODEL:
            return "model", t
        if t is not None and t.kind == TRUNC:
            return "truncated", t
        return None

    # -- legacy module paths -> Linen paths ------------------------------------------
    def children(self, qual: str) -> tuple[list[tuple[str, str]], set[str]] | None:
        """The legacy names of the submodules ``qual``'s apply creates, in order,
        with their classes, and the explicit names; None where a loop, a
        condition, a module passed in, ``.partial``/``.shared`` or a helper
        method makes the order a matter of run time."""
        if qual in BUILTIN_MODULES:
            return [], set()
        module, _, name = qual.rpartition(".")
        owner: Analysis | None = self
        if module != (self.facts.module_name or ""):
            file = _module_file(self.path, self.facts.module_name, module) if self.path else None
            owner = _external_analysis(file, module, self.index) if file is not None else None
        node = owner.class_nodes.get(name) if owner is not None else None
        if owner is None or node is None:
            return None
        apply = next((f for f in node.body.body if isinstance(f, cst.FunctionDef) and f.name.value == "apply"), None)
        if apply is None:
            return None
        finder = _Children(owner, apply)
        apply.body.visit(finder)
        return None if finder.unknown else (finder.names, finder.explicit)

    def linen_path(self, ref: ModuleRef | None, legacy: str) -> tuple[str, ...] | None:
        """``'/Block_4/Dense_0'`` in a legacy ``ref`` -> the Linen names (per-class numbering)."""
        if ref is None:
            return None
        quals: dict[tuple[str, ...], str] = {(): ref.qual}

        def level(prefix: tuple[str, ...]):
            found = self.children(quals[prefix]) if prefix in quals else None
            if found is None:
                return None
            names, explicit = found
            for child, child_qual in names:
                quals[(*prefix, child)] = child_qual
            return [n for n, _ in names], explicit

        return linen_module_path(state_key_to_path(legacy), level, class_aliases=_CLASS_ALIASES)


def legacy_key(node: cst.Subscript) -> str | None:
    """``x['/Block_4/Dense_0']``: a legacy Collection key (a module path)."""
    key = node.slice[0].slice if len(node.slice) == 1 else None
    if isinstance(key, cst.Index) and isinstance(key.value, cst.SimpleString):
        value = key.value.evaluated_value
        if isinstance(value, str) and value.startswith("/"):
            return value
    return None


# legacy class-name prefixes -> the Linen class the module rules write (ConvLSTM -> ConvLSTMCell)
_CLASS_ALIASES = {q.rpartition(".")[2]: row.linen for q, row in BUILTIN_MODULES.items()
                  if q.rpartition(".")[2] != row.linen and q != "flax.nn.SelfAttention" and q != "flax.nn.dropout"}
# built-ins that are functions in legacy flax (no name, no counter)
_LEGACY_FUNCTIONS = frozenset({"flax.nn.dropout"})
# nodes whose body runs a number of times known only at run time
_RUN_TIME = (cst.For, cst.While, cst.If, cst.IfExp, cst.Try, cst.Lambda, cst.FunctionDef, cst.ListComp,
             cst.SetComp, cst.DictComp, cst.GeneratorExp, cst.BooleanOperation)


class _Children(FastVisitor):
    """Legacy auto-names of the submodules one ``apply`` creates: one counter per
    parent shared by all classes, explicit ``name=`` outside it (keys.py)."""

    def __init__(self, a: Analysis, apply: cst.FunctionDef) -> None:
        super().__init__()
        self.a = a
        self.names: list[tuple[str, str]] = []
        self.explicit: set[str] = set()
        self.unknown = False
        self.depth = 0
        self.ctors: set[int] = set()  # Ctor(attrs) of Ctor(attrs)(inputs)
        self.locals = {p.name.value for p in [*apply.params.params, *apply.params.kwonly_params,
                                               *apply.params.posonly_params]}

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, _RUN_TIME):
            self.depth += 1
        if isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name):
            self.locals.add(node.target.value)
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        super().on_leave(original_node)
        if isinstance(original_node, _RUN_TIME):
            self.depth -= 1

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Call):
            self.ctors.add(id(node.func))

    def leave_Call(self, node: cst.Call) -> None:
        """A submodule runs (and takes its name) when it is applied: ``nn.Dense(x, 3)``
        in legacy code, ``nn.Dense(3)(x)`` once the module rules split it."""
        if id(node) in self.ctors:
            return
        if isinstance(node.func, cst.Call):
            node = node.func
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("partial", "shared"):
            self.unknown = True
            return
        name = dotted(func)
        if name is None:
            return
        if self.a.facts.imports.resolve_dotted(name) == "functools.partial":
            self.unknown = True
            return
        head = name.split(".")[0]
        if (head in self.locals and "." not in name) or head == "self":
            self.unknown = True  # a module handed in, or a module method creating shared modules
            return
        local = self.a.class_nodes.get(name)
        qual = self.a.class_qual(name) if local is not None else self.a.facts.imports.resolve_dotted(name)
        if qual in _LEGACY_FUNCTIONS or not self.a.is_module_class(qual):
            return
        if self.depth:
            self.unknown = True
            return
        given = next((a.value for a in node.args if a.keyword is not None and a.keyword.value == "name"), None)
        if given is not None:
            if not isinstance(given, cst.SimpleString):
                self.unknown = True
                return
            self.names.append((given.evaluated_value, qual))
            self.explicit.add(given.evaluated_value)
            return
        prefix = "MultiHeadDotProductAttention" if qual == "flax.nn.SelfAttention" else qual.rpartition(".")[2]
        self.names.append((f"{prefix}_{len(self.names) - len(self.explicit)}", qual))


def _module_file(path: str, own_module: str, module: str) -> Path | None:
    here = Path(path).resolve().parent
    for _ in range(max(0, len(own_module.split(".")) - 1)):
        here = here.parent
    base = here.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


_EXTERNAL: dict[tuple[str, float, int, int], Analysis | None] = {}


def _external_analysis(file: Path, module: str, index: ProjectIndex, depth: int = 1) -> Analysis | None:
    key = (str(file), file.stat().st_mtime, id(index), depth)
    if key not in _EXTERNAL:
        if len(_EXTERNAL) > 64:
            _EXTERNAL.clear()
        try:
            text = file.read_text(encoding="utf-8")
            analysis: Analysis | None = Analysis(cst.parse_module(text), file_facts(ast.parse(text), text, module),
                                                 index, str(file), depth=depth)
        except (OSError, UnicodeDecodeError, SyntaxError, cst.ParserSyntaxError):
            analysis = None
        _EXTERNAL[key] = analysis
    return _EXTERNAL[key]


def external_return(a: Analysis, qual: str) -> Ty | None:
    """The result type of a function defined in another file of the run;
    only what can be written in this file (module definitions with literal
    keywords) comes back."""
    if a.depth >= _MAX_DEPTH or not a.path or not a.facts.module_name:
        return None
    module, _, name = qual.rpartition(".")
    file = _module_file(a.path, a.facts.module_name, module)
    if file is None:
        return None
    other = _external_analysis(file, module, a.index, a.depth + 1)
    fn = other.top_level_function(name) if other is not None else None
    return _portable(other.rets.get(id(fn))) if other is not None and fn is not None else None


def external_param(a: Analysis, qual: str, position: int | None, keyword: str | None) -> Ty | None:
    """The type the other file gives a parameter of its function: from the calls in that file and
    what the files of the run that call it pass (the same seeds that file's own rewrite uses)."""
    if a.depth > 0 or not a.path or not a.facts.module_name:
        return None
    module, _, name = qual.rpartition(".")
    file = _module_file(a.path, a.facts.module_name, module)
    other = _external_analysis(file, module, a.index) if file is not None else None
    fn = other.top_level_function(name) if other is not None else None
    if other is None or fn is None:
        return None
    scope = other.scopes[id(fn)]
    param = keyword if keyword is not None else (
        scope.params[position] if position is not None and position < len(scope.params) else None)
    return other.env.get((id(scope), param)) if param else None


def unwrap_func(t: Ty | None) -> Ty | None:
    """The function a ``jit``/``pmap``/``grad`` wrapper runs (its parameters are the wrapper's)."""
    while t is not None and t.kind == FUNC and t.func[0] in ("same", "grad", "vgrad"):
        t = t.func[1]
    return t


def _external_seeds(a: Analysis) -> dict[tuple[str, int | str], Ty | None]:
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
        file = _module_file(a.path, module, caller)
        other = _external_analysis(file, caller, a.index, depth=2) if file is not None else None
        if other is None:
            continue
        for scope, call in other.calls:
            t = unwrap_func(other.ty(call.func, scope))
            if t is None or t.kind != FUNC or t.func[0] != "external":
                continue
            owner, _, name = t.func[1].rpartition(".")
            if owner != module or name not in names or any(arg.star for arg in call.args):
                continue
            position = 0
            for arg in call.args:
                slot: int | str = arg.keyword.value if arg.keyword is not None else position
                position += arg.keyword is None
                seeds[(name, slot)] = join(seeds.get((name, slot)), _seed(a, other, other.ty(arg.value, scope)))
    return seeds


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
        if not fields or cls is None:
            return None
        return Ty(INSTANCE, items=fields, func=(FOREIGN, other.class_qual(cls.name.value)))
    if t.kind in (MODEL, TRUNC, DEF) and t.ref is not None:
        if not t.ref.portable:
            return conflict(t.kind, ELSEWHERE)
        qual = t.ref.qual
        if not (qual in BUILTIN_MODULES or qual.rpartition(".")[0] == a.facts.module_name
                or express(qual, a.facts.imports)[1] is None):
            return conflict(t.kind, UNWRITABLE)
        return Ty(t.kind, t.ref.without_var(), t.items)
    if t.kind == STATE:
        return Ty(STATE, t.ref.without_var() if t.ref is not None else None)
    if t.kind == CONFLICT and (MODEL in t.items or TRUNC in t.items):
        return t
    return None


def _portable(t: Ty | None) -> Ty | None:
    if t is None:
        return None
    if t.kind == TUPLE:
        return Ty(TUPLE, items=tuple(_portable(i) for i in t.items))
    if t.kind in (MODEL, OPTIM, DEF) and t.ref is not None:
        return Ty(t.kind, t.ref.without_var()) if t.ref.portable else conflict(t.kind, ELSEWHERE)
    return t if t.kind == STATE else None


# -- building the Linen calls ------------------------------------------------------
_EQ = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))


def kwarg(name: str, value: cst.BaseExpression) -> cst.Arg:
    return cst.Arg(value=value, keyword=cst.Name(name), equal=_EQ)


def _comma_list(args: list[cst.Arg]) -> list[cst.Arg]:
    out = []
    for i, a in enumerate(args):
        last = i == len(args) - 1
        out.append(a.with_changes(comma=cst.MaybeSentinel.DEFAULT if last else cst.Comma(
            whitespace_after=cst.SimpleWhitespace(" "))))
    return out


def string(value: str) -> cst.SimpleString:
    return cst.SimpleString(repr(value))


def split_usage(args: list[cst.Arg], spec: CallSpec, bound: dict[str, cst.BaseExpression],
                fixed: frozenset[str] = frozenset()) -> tuple[list[cst.Arg], list[cst.Arg], str | None]:
    """Legacy ``apply`` arguments (plus what a partial fixed) -> constructor
    attributes and call inputs, by the same split as the module rules
    (``CallSpec``): attributes by keyword, inputs positional while in order;
    keywords a wrapper forwards through ``**kwargs`` packed as LU102 packs
    them (``kwargs={...}``, forwarded inputs such as ``train=`` at call time)."""
    if spec.problem:
        return [], [], spec.problem
    if any(a.star for a in args):
        return [], [], "*args/**kwargs: split constructor and call arguments by hand"
    forwarded: list[cst.Arg] = []
    named: dict[str, tuple[cst.BaseExpression, bool]] = {}
    positional = [a for a in args if a.keyword is None]
    if len(positional) > len(spec.legacy):
        return [], [], "more positional arguments than the module's apply takes"
    for name, a in zip(spec.legacy, positional):
        named[name] = (a.value, True)
    for a in args:
        if a.keyword is None:
            continue
        key = a.keyword.value
        if key == "name":
            return [], [], "name= at the top level: Linen names the root module itself"
        if key not in spec.legacy and spec.forward is not None:
            forwarded.append(a)
            continue
        if key not in spec.legacy or key in named:
            return [], [], f"unknown or repeated argument {key!r}"
        named[key] = (a.value, False)
    for key in named:
        if key in spec.manual:
            return [], [], f"{key}: {spec.manual[key]}"
    merged = {**{k: (v, False) for k, v in bound.items() if k not in named}, **named}
    ctor: list[cst.Arg] = []
    inputs: list[cst.Arg] = []
    in_order = True
    for name in spec.legacy:
        if name not in merged:
            continue
        value, was_pos = merged[name]
        new = spec.renames.get(name, name)
        if name in spec.inputs:
            k = len(inputs)
            if in_order and was_pos and k < len(spec.linen_call) and spec.linen_call[k] == new:
                inputs.append(cst.Arg(value=value))
            else:
                in_order = False
                inputs.append(kwarg(new, value))
        else:
            ctor.append(kwarg(new, value))
    given = {spec.renames.get(n, n) for n in [*merged, *fixed]}
    for attr, source in spec.explicit.items():
        if attr not in given:
            ctor.append(kwarg(attr, cst.parse_expression(source)))
    if spec.forward is not None:  # the module rules' packing: only the forwarded keywords go through it
        given_here = {a.keyword.value for a in forwarded if a.keyword is not None}
        partial = [kwarg(k, v) for k, v in bound.items() if k not in spec.legacy and k not in given_here]
        packed, problem = split_call(cst.Call(cst.Name("_"), [*partial, *forwarded]), spec, cst.Name("_"))
        if packed is None:
            return [], [], problem
        ctor.extend(packed.func.args)  # type: ignore[attr-defined]
        inputs.extend(packed.args)  # type: ignore[attr-defined]
    return ctor, inputs, None


@dataclass
class Frame:
    """One ``with nn.stateful(...)`` / ``nn.stochastic(...)`` block being rewritten."""

    node: cst.With
    state: cst.BaseExpression | None = None  # the collection passed in
    state_given: bool = False  # nn.stateful(...) present
    state_name: cst.BaseExpression | None = None  # `as new_state`
    mutable: bool = True
    rng: cst.BaseExpression | None = None
    sites: int = 0
    done: int = 0
    problem: str | None = None
    kinds: set[str] = field(default_factory=set)
    capture_name: cst.BaseExpression | None = None  # `nn.capture_module_outputs() as outputs`


def parse_with(node: cst.With, a: Analysis) -> Frame | None:
    """A frame when every item of the ``with`` is nn.stateful/nn.stochastic."""
    frame = Frame(node)
    scope = a.scope_of.get(id(node))
    if scope is None:
        return None
    kinds = []
    for item in node.items:
        call = item.item
        qual = a.qual(call.func, scope) if isinstance(call, cst.Call) else None
        if qual not in ("flax.nn.stateful", "flax.nn.stochastic", "flax.nn.capture_module_outputs"):
            return None if not kinds else replace(frame, problem="a with statement mixing nn.stateful/"
                                                  "nn.stochastic with other context managers")
        kinds.append(qual)
        assert isinstance(call, cst.Call)
        if any(x.star for x in call.args):
            frame.problem = f"{qual} with *args: convert by hand"
            continue
        if qual == "flax.nn.capture_module_outputs":
            if item.asname is None or not isinstance(item.asname.name, cst.Name) or call.args:
                frame.problem = "nn.capture_module_outputs() without `as name`: convert by hand"
            else:
                frame.capture_name = item.asname.name
            continue
        if qual == "flax.nn.stochastic":
            frame.rng = a.arg(call, 0, "rng")
            if item.asname is not None:
                frame.problem = "nn.stochastic(...) as name: convert by hand"
            continue
        frame.state_given = True
        frame.state = a.arg(call, 0, "state")
        if isinstance(frame.state, cst.Name) and frame.state.value == "None":
            frame.state = None
        mutable = a.arg(call, 1, "mutable")
        if mutable is not None:
            if not (isinstance(mutable, cst.Name) and mutable.value in ("True", "False")):
                frame.problem = "nn.stateful(..., mutable=<expression>): choose mutable= by hand"
            frame.mutable = not (isinstance(mutable, cst.Name) and mutable.value == "False")
        if item.asname is not None:
            if not isinstance(item.asname.name, cst.Name):
                frame.problem = "nn.stateful(...) as <not a name>: convert by hand"
            frame.state_name = item.asname.name
    if len(kinds) != len(set(kinds)):
        frame.problem = "the same context manager twice in one with statement"
    return frame


class _SiteCounter(FastVisitor):
    def __init__(self, a: Analysis) -> None:
        super().__init__()
        self.a = a
        self.count = 0
        self.kinds: set[str] = set()
        self.sites: list[tuple[str, Ty]] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # runs later, outside the block

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Call(self, node: cst.Call) -> None:
        site = self.a.site(node)
        if site is not None:
            self.count += 1
            self.kinds.add(site[0])
            self.sites.append(site)


def count_sites(body: cst.CSTNode, a: Analysis) -> tuple[int, set[str]]:
    counter = _SiteCounter(a)
    body.visit(counter)
    return counter.count, counter.kinds


_BARRIER = "function"
# statements that run their body only sometimes (or many times)
_GUARDS = tuple(getattr(cst, n) for n in ("If", "For", "While", "Try", "TryStar", "Match") if hasattr(cst, n))


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
        self.names: dict[int, set[str]] = {}  # per function: names in use
        self.subscripts: dict[int, cst.BaseExpression] = {}

    # -- setup -------------------------------------------------------------------
    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self.a = analysis_of(node, self.ctx)
        return True

    def fresh(self, base: str, at: cst.CSTNode) -> str:
        """A name unused in the function (or module) around ``at`` and at module level."""
        scope = self.a.scope_of.get(id(at))
        while scope is not None and scope.parent is not None and not isinstance(scope.node, cst.FunctionDef):
            scope = scope.parent
        key = id(scope.node) if scope is not None else 0
        if key not in self.names:
            names: set[str] = set(self.a.module_scope.bound)

            class _Names(FastVisitor):
                def visit_Name(self, n: cst.Name) -> None:
                    names.add(n.value)

            (scope.node if scope is not None else cst.Module([])).visit(_Names())
            self.names[key] = names
        taken = self.names[key]
        name, i = base, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        return name

    def spell(self, qual: str) -> cst.BaseExpression:
        """How this file writes the Linen class of a legacy module."""
        row = BUILTIN_MODULES.get(qual)
        if row is not None:
            qual = f"flax.nn.{row.linen}"
        elif any(qual == self.a.class_qual(c.name) for c in self.ctx.facts.classes):
            return cst.Name(qual.rpartition(".")[2])
        spelled, needed = express(qual, self.ctx.facts.imports)
        if needed:
            self.imports.add((needed, None))
        return build_dotted(spelled)

    def finish(self, module: cst.Module) -> cst.Module:
        for name, obj in sorted(self.imports, key=lambda x: (x[0], x[1] or "")):
            module = add_import(module, name, obj)
        return module

    # -- frames --------------------------------------------------------------------
    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.frames.append(_BARRIER)  # a function body runs later, outside the with
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.frames.pop()
        return updated

    def visit_With(self, node: cst.With) -> bool:
        frame = parse_with(node, self.a) if id(node) in self.a.scope_of else None
        if frame is not None:
            frame.sites, kinds = count_sites(node.body, self.a)
            if frame.state_given and frame.mutable and frame.sites > 1 and frame.problem is None:
                frame.problem = ("several module calls share one nn.stateful block: each Linen apply "
                                 "returns its own updates; convert them by hand")
            if frame.capture_name is not None and frame.problem is None and (
                    frame.sites > 1 or kinds - {"model", "method", "call"}):
                frame.problem = ("nn.capture_module_outputs around several module calls (or an init): each "
                                 "Linen apply(..., capture_intermediates=True) returns its own intermediates")
            if frame.capture_name is not None and frame.problem is None and not self._read_by_key(node, frame):
                frame.problem = ("the captured outputs are used other than by a literal key "
                                 "(outputs['/Dense_0'] or .as_dict()['/Dense_0']): Linen intermediates are "
                                 "nested by Linen names, {'Dense_0': {'__call__': (y,)}}; convert by hand")
            frame.kinds = kinds
        self.frames.append(frame)
        return True

    def _read_by_key(self, node: cst.With, frame: Frame) -> bool:
        """Is every use of ``as outputs`` a read of one legacy key (which has a Linen path)?"""
        name = frame.capture_name.value  # type: ignore[union-attr]
        scope = self.a.scope_of[id(node)].node
        uses: list[cst.Name] = []

        class _Uses(FastVisitor):
            def visit_Name(self, n: cst.Name) -> None:
                if n.value == name and n is not frame.capture_name:
                    uses.append(n)

        scope.visit(_Uses())
        parent = self.a.parent.get
        for use in uses:
            p = parent(id(use))
            if isinstance(p, cst.Attribute) and p.value is use and p.attr.value == "as_dict":
                call = parent(id(p))
                if not (isinstance(call, cst.Call) and call.func is p and not call.args):
                    return False
                use, p = call, parent(id(call))
            if not (isinstance(p, cst.Subscript) and p.value is use and legacy_key(p)):
                return False
        return True

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
            if "model" in self.owns:
                self.todo("no module call inside this block: the state/rng it sets reaches an init/apply "
                          "elsewhere; pass batch_stats/mutable=/rngs= to that call")
            return updated
        if frame.done < frame.sites:
            return updated
        self.fixed("with nn.stateful/nn.stochastic -> variables/mutable/rngs")
        return unwrap(updated)

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

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        target = self.retarget.pop(id(original), None)
        if target is None:
            return updated
        return updated.with_changes(targets=[cst.AssignTarget(target=target)])

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
        spec = self.a.spec(ref.qual)
        if spec is None:
            return None, [], f"{ref.qual}: its apply signature is unknown (a module of another run?)"
        scope = self.a.scope_of.get(id(at))
        bound: dict[str, cst.BaseExpression] = {}
        if ref.def_var is not None and scope is not None and _visible(ref.def_var, scope, self.a):
            func: cst.BaseExpression = cst.Name(ref.def_var[1])
            # the partial holds its attributes; only the inputs it fixed come back here
            fixed_inputs = {k: v for k, v in ref.kwargs if k in spec.inputs}
            if fixed_inputs:
                return None, [], f"{ref.def_var[1]} fixes call inputs ({', '.join(fixed_inputs)}): pass them by hand"
        elif ref.portable:
            func = self.spell(ref.qual)
            bound = {k: cst.parse_expression(v) for k, v in ref.kwargs}
        else:
            return None, [], ("the module definition here is a .partial with non-literal keywords made "
                              "elsewhere: build the Linen module where they are known")
        # what a partial variable fixed is not passed again (not even a changed default)
        fixed = frozenset(k for k, _ in ref.kwargs) if not bound else frozenset()
        ctor, inputs, problem = split_usage(args, spec, bound, fixed)
        if problem:
            return None, [], problem
        return cst.Call(func=func, args=_comma_list(ctor)), inputs, None

    def apply_call(self, ref: ModuleRef, at: cst.Call, params: cst.BaseExpression, args: list[cst.Arg],
                   method: str | None = None, truncated: bool = False) -> tuple[cst.Call | None, bool, str | None]:
        """``Ctor(attrs).apply(variables, inputs, ...)`` with the contexts of the
        site; (call, whether it returns updates, problem).  Inside
        nn.capture_module_outputs, or for a truncated model, the intermediates
        are captured too."""
        stateful, stochastic, problem = self.context()
        if problem:  # reported once, on the with statement
            return None, False, None
        capture = self.capture() is not None or truncated
        if truncated and stateful is not None and stateful.mutable:
            return None, False, ("a truncated model called inside a mutable nn.stateful block: "
                                 "apply(..., capture_intermediates=True, mutable=['batch_stats', 'intermediates']) "
                                 "returns both; unpack them by hand")
        if method is not None:
            spec = self.a.spec(ref.qual)
            assert spec is not None
            attrs = set(spec.legacy) - spec.inputs
            ctor_part = [a for a in args if a.keyword is not None and a.keyword.value in attrs]
            call_args = [a for a in args if not (a.keyword is not None and a.keyword.value in attrs)]
            ctor, _, problem = self.constructor(ref, at, ctor_part)
            inputs = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in call_args]
        else:
            ctor, inputs, problem = self.constructor(ref, at, args)
        if ctor is None:
            return None, False, problem
        variables = [cst.DictElement(string("params"), params)]
        if stateful is not None and stateful.state is not None:
            variables.append(cst.DictElement(string(self.ctx.config.state_collection), stateful.state))
        extra: list[cst.Arg] = []
        if method is not None:
            cls = self.spell(ref.qual)
            extra.append(kwarg("method", cst.Attribute(value=cls, attr=cst.Name(method))))
        rngs = self.rngs(None, stochastic)
        if rngs is not None:
            extra.append(kwarg("rngs", rngs))
        collections = [self.ctx.config.state_collection] if stateful is not None and stateful.mutable else []
        if capture:
            extra.append(kwarg("capture_intermediates", cst.Name("True")))
            collections.append("intermediates")
        if collections:
            extra.append(kwarg("mutable", cst.List([cst.Element(string(c)) for c in collections])))
        call = cst.Call(func=cst.Attribute(value=ctor, attr=cst.Name("apply")),
                        args=_comma_list([cst.Arg(cst.Dict(variables)), *inputs, *extra]))
        return call, bool(collections), None

    def _zeros(self, specs: cst.BaseExpression) -> list[cst.BaseExpression] | None:
        if not isinstance(specs, (cst.List, cst.Tuple)):
            return None
        zeros, needed = express("jax.numpy.zeros", self.ctx.facts.imports)
        f32, _ = express("jax.numpy.float32", self.ctx.facts.imports)
        if needed:
            self.imports.add((needed, None))
        out = []
        for el in specs.elements:
            spec = el.value
            if not isinstance(spec, (cst.Tuple, cst.List)) or isinstance(el, cst.StarredElement):
                return None
            items = [e.value for e in spec.elements]
            if all(isinstance(i, cst.Integer) for i in items):
                shape, dtype = spec, build_dotted(f32)
            elif len(items) == 2 and (isinstance(items[0], (cst.Tuple, cst.List)) or self._is_dtype(items[1])):
                shape, dtype = items
            else:
                return None
            shape = shape.with_changes(lpar=[], rpar=[]) if isinstance(shape, cst.Tuple) and shape.lpar else shape
            if isinstance(shape, cst.Tuple) and not shape.lpar:
                shape = shape.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            out.append(cst.Call(func=build_dotted(zeros), args=[
                cst.Arg(shape, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), cst.Arg(dtype)]))
        return out

    def _is_dtype(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.SimpleString):
            return node.evaluated_value in _DTYPES
        qual = self.a.qual(node) if isinstance(node, (cst.Name, cst.Attribute)) else None
        return bool(qual) and qual.split(".")[0] in ("jax", "numpy") and qual.rsplit(".", 1)[-1] in _DTYPES

    def init_site(self, original: cst.Call, updated: cst.Call, ref) -> cst.BaseExpression | None:
        """``M.init``/``init_by_shape``/``create``/``create_by_shape`` -> Linen ``init``,
        with the unpacking site fixed (see LU201); None (and a TODO) when it cannot."""
        method = original.func.attr.value  # type: ignore[attr-defined]
        stateful, stochastic, problem = self.context()
        if problem:
            return None
        if stateful is not None and (stateful.state is not None or not stateful.mutable):
            self.todo(f"{method} inside nn.stateful(state): Linen's init makes fresh variables; merge by hand")
            return None
        args = list(updated.args)
        if not args or args[0].star or (args[0].keyword is not None and args[0].keyword.value != "_rng"):
            self.todo(f"{method}: pass the rng first")
            return None
        rng, rest = args[0].value, args[1:]
        inputs: list[cst.Arg] = []
        if method.endswith("_by_shape"):
            specs = rest[0].value if rest and rest[0].keyword is None else next(
                (a.value for a in rest if a.keyword is not None and a.keyword.value == "input_specs"), None)
            rest = [a for a in rest if a.value is not specs]
            zeros = self._zeros(specs) if specs is not None else None
            if zeros is None:
                self.todo(f"{method}: input specs that are not a literal list of (shape, dtype): "
                          "call init on jnp.zeros(shape, dtype) of each input")
                return None
            inputs = [cst.Arg(z) for z in zeros]
        ctor, call_inputs, problem = self.constructor(ref, original, [*inputs, *rest])
        if ctor is None:
            self.todo(f"{method}: {problem}")
            return None
        rngs = self.rngs(rng, stochastic)
        state = stateful.state_name if stateful is not None else None

        def build(name: str) -> cst.Call:
            return cst.Call(func=cst.Attribute(value=ctor, attr=cst.Name(name)), args=[
                cst.Arg(rngs, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")) if call_inputs
                        else cst.MaybeSentinel.DEFAULT), *call_inputs])

        coll = self.ctx.config.state_collection
        parent = self.a.parent.get(id(original))
        if isinstance(parent, cst.Subscript) and parent.value is original and len(parent.slice) == 1 \
                and isinstance(parent.slice[0].slice, cst.Index) and state is None:
            index = parent.slice[0].slice.value
            if isinstance(index, cst.Integer) and index.value in ("0", "1"):
                self.fixed(f"{method} -> Linen init")
                if index.value == "1":
                    self.subscripts[id(parent)] = _subscript(build("init"), "params")
                    return build("init")
                self.subscripts[id(parent)] = cst.Subscript(build("init_with_output"), [
                    cst.SubscriptElement(cst.Index(cst.Integer("0")))])
                return build("init_with_output")
        assign = parent if isinstance(parent, cst.Assign) and parent.value is original else None
        target = assign.targets[0].target if assign is not None and len(assign.targets) == 1 else None
        if not (isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2
                and not any(isinstance(e, cst.StarredElement) for e in target.elements)
                and self.statement_of(original) is not None):
            self.todo(f"{method} returned (y, params); Linen's init returns the variables: "
                      "unpack `variables['params']` by hand")
            return None
        if state is not None and stateful is not None and self.guarded(self.statement_of(original), stateful):
            self.todo(f"{method} under a condition or loop inside nn.stateful() as ...: convert by hand")
            return None
        y, params = (e.value for e in target.elements)
        code = cst.Module([]).code_for_node
        discard = isinstance(y, cst.Name) and y.value == "_"
        if discard and state is None:
            self.retarget[id(assign)] = params
            self.fixed(f"{method} -> Linen init")
            return _subscript(build("init"), "params")
        holder = cst.Name(self.fresh("variables", original)) if state is not None else params
        self.retarget[id(assign)] = holder if discard else cst.Tuple(
            [cst.Element(y), cst.Element(holder)], lpar=[], rpar=[])
        self.add_post(original, f"{code(params)} = {code(holder)}['params']")
        if state is not None:
            self.add_post(original, f"{code(state)} = {code(holder)}[{coll!r}]")
        self.fixed(f"{method} -> Linen init")
        return build("init" if discard else "init_with_output")

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript) -> cst.BaseExpression:
        return self.subscripts.pop(id(original), updated)

    def mutable_result(self, site: cst.Call, new: cst.Call) -> tuple[cst.BaseExpression | None, str | None]:
        """A call in a mutable stateful (or capture_module_outputs) block returns
        ``(y, updates)``: ``y = model(x)`` -> ``y, new_state = ...`` +
        ``new_state = new_state['batch_stats']``; a call inside a larger
        expression is hoisted into ``outputs, new_state = ...`` before its
        statement; with both collections the updates are split after it.
        (what replaces the site, problem)"""
        stateful, _, _ = self.context()
        capture = self.capture()
        outs: list[tuple[Frame, cst.BaseExpression | None, str]] = []
        if stateful is not None and stateful.mutable:
            outs.append((stateful, stateful.state_name, self.ctx.config.state_collection))
        if capture is not None:
            outs.append((capture, capture.capture_name, "intermediates"))
        named = [(n, c) for _, n, c in outs if n is not None]
        code = cst.Module([]).code_for_node
        stmt = self.statement_of(site)
        for frame, name, _ in outs:
            if stmt is not None and name is not None and self.guarded(stmt, frame):
                what = "nn.stateful(...)" if frame is stateful else "nn.capture_module_outputs()"
                return None, (f"a module call under a condition or loop inside {what} as {code(name)}: "
                              "the state would not always be bound; convert by hand")
        if len(named) == 1:
            name, coll = named[0]
        elif not named:
            name, coll = None, ""
        else:
            name, coll = cst.Name(self.fresh("updates", site)), ""
        state: cst.BaseExpression = name if name is not None else cst.Name("_")

        def split() -> list[str]:
            if name is None:
                return []
            if coll:
                return [f"{code(name)} = {code(name)}[{coll!r}]"]
            return [f"{code(n)} = {code(name)}[{c!r}]" for n, c in named]
        assign = self.enclosing(site, cst.Assign)
        if isinstance(assign, cst.Assign) and assign.value is site and len(assign.targets) == 1 \
                and stmt is not None:
            target = assign.targets[0].target
            if isinstance(target, (cst.Tuple, cst.List)) and not target.lpar:
                target = target.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            self.retarget[id(assign)] = cst.Tuple([cst.Element(target), cst.Element(state)], lpar=[], rpar=[])
            for line in split():
                self.add_post(site, line)
            return new, None
        if stmt is None or self._conditional(site, stmt):
            return None, ("a module call inside a mutable nn.stateful block, in a lambda, comprehension or "
                          "condition: Linen's apply returns (y, updates); unpack them by hand")
        outputs = cst.Name(self.fresh("outputs", site))
        hoisted = cst.SimpleStatementLine(body=[cst.Assign(
            targets=[cst.AssignTarget(cst.Tuple([cst.Element(outputs), cst.Element(state)], lpar=[], rpar=[]))],
            value=new)])
        self.pre.setdefault(id(stmt), []).append(hoisted)
        self.pre[id(stmt)].extend(cst.parse_statement(line) for line in split())
        return outputs, None

    def guarded(self, stmt: cst.CSTNode, frame: Frame) -> bool:
        """Is ``stmt`` inside an if/loop/try between it and the with statement of ``frame``?"""
        p = self.a.parent.get(id(stmt))
        while p is not None and p is not frame.node:
            if isinstance(p, _GUARDS):
                return True
            p = self.a.parent.get(id(p))
        return False

    def _conditional(self, node: cst.CSTNode, stmt: cst.CSTNode) -> bool:
        """Is ``node`` evaluated only sometimes (or later) within its statement?"""
        p = self.a.parent.get(id(node))
        while p is not None and p is not stmt:
            if isinstance(p, (cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp,
                              cst.IfExp, cst.BooleanOperation)):
                return True
            p = self.a.parent.get(id(p))
        return False


def _subscript(value: cst.BaseExpression, key: str) -> cst.Subscript:
    return cst.Subscript(value, [cst.SubscriptElement(cst.Index(string(key)))])


_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
                     "uint8", "uint16", "uint32", "uint64", "bool_", "complex64", "complex128"})


_LAST: list = [None, None]  # (module, its analysis): the next rule reuses it when nothing changed


def analysis_of(module: cst.Module, ctx: Context) -> Analysis:
    if _LAST[0] is not module:
        _LAST[:] = [module, Analysis(module, ctx.facts, ctx.index, ctx.path,
                                     state_collection=ctx.config.state_collection)]
    return _LAST[1]


def usage_transform(rule: Rule, module: cst.Module, ctx: Context, transformer: type[UsageTransformer]
                    ) -> cst.Module:
    """Walk the file only when the analysis found something for the usage rules."""
    if not analysis_of(module, ctx).relevant():
        return module
    t = transformer(rule, ctx)
    return t.finish(module.visit(t))


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


def applies(ctx: Context) -> bool:
    """Legacy flax.nn or flax.optim names, legacy module classes, or an import of a
    file of the run that defines legacy module classes (a Model may come from there)."""
    if ctx.facts.references("flax.nn", "flax.optim") or any(
            ctx.index.is_legacy_module(q) for q in ctx.facts.qualnames):
        return True
    legacy_files = {q.rpartition(".")[0] for q in ctx.index.modules}
    return bool(ctx.facts.imports.imported_modules & legacy_files)

