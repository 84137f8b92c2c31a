"""Per-file facts gathered with ``ast`` before any LibCST parse.

They decide whether a file is parsed at all (no rule applies → no LibCST),
feed the project index (legacy module classes and their ``apply``
signatures), and give every rule the import map.  Everything here is plain
data so it crosses process boundaries cheaply.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass, field, replace

from linen_upgrade.analysis import identity, scopes
from linen_upgrade.analysis.identity import EXTERNAL_PACKAGES
from linen_upgrade.analysis.initializers import initializers as initializer_functions
from linen_upgrade.analysis.walk import nodes, subtree
from linen_upgrade.resolve import ImportMap, canonical, import_map
from linen_upgrade.rule import SKIP_FILE_MARK, SKIP_MARK
from linen_upgrade.tables import x64
from linen_upgrade.tables.nn_functions import ATTENTION_PARAMS
from linen_upgrade.tables.nn_modules import CALL_ARGUMENT_NAMES, NO_PARAMS_WHEN

# a legacy auto-name past the first ('Dense_2', f'Conv_{i}') or a legacy Collection key
# ('/Block_1/BatchNorm_1') written in a file: it may read a legacy Model's params or state by it
LEGACY_KEY = re.compile(r"""['"](?:[A-Z]\w*_(?:[1-9]\d*['"]|\{)|/[A-Z]\w*_\d)""")


@dataclass(frozen=True)
class ForwardSpec:
    """``**kwargs`` of ``apply`` that is only forwarded into submodule calls
    of known signature (``Dense(x, **kwargs)``): what call sites may pass
    through it, decided by the project index from the callees' signatures."""

    callees: tuple[str, ...]
    keys: frozenset[str]  # legacy keywords that reach the callees' configuration
    inputs: frozenset[str]  # forwarded keywords that are call inputs of the callees
    renames: tuple[tuple[str, str], ...] = ()  # legacy keyword -> Linen attribute
    explicit: tuple[tuple[str, str], ...] = ()  # Linen attributes whose default changed
    manual: tuple[tuple[str, str], ...] = ()  # keywords with no automatic form, and why


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "pos", "kwonly", "varargs", "varkw"
    default: str | None  # source text of the default, None when required
    annotation: str | None = None
    # decided by the project index from the body and the call sites
    # (``index.py``): "input" or "attribute"; None: by position and name only
    role: str | None = None
    problem: str | None = None  # conflicting evidence: why a person must decide
    forward: ForwardSpec | None = None  # a ``**kwargs`` that is only forwarded


@dataclass(frozen=True)
class Use:
    """How ``apply``'s body uses one parameter: ``kind`` "array" (indexed
    ``p[:, 0]``/``p[None]``/``(p > 0)[..., None]``, ``.shape``, the first argument of a ``jnp`` function),
    "sliced" (``p[1:]``: an array or a Python list, which decides only as "arith" does),
    "config" (``range``, an ``if`` test, a parameter shape), "arith" (added
    to an input, which a scalar may be too), "operand" (a later argument of
    a ``jnp`` function: an array, or a dtype or axis), "mutated" (``p.append(...)``:
    a Linen attribute is frozen, a call argument is not) or "slot" (passed to
    ``callee`` at ``slot``: the index reads the callee's signature)."""

    param: str
    kind: str
    callee: str = ""
    slot: int | str = 0


@dataclass(frozen=True)
class Forward:
    """``Callee(x, **kwargs)`` in ``apply``: ``param`` (a ``*``/``**``
    parameter) is forwarded into ``callee`` after ``positional`` positional
    arguments and the ``keywords`` given explicitly."""

    param: str
    callee: str
    positional: int
    keywords: frozenset[str]


@dataclass(frozen=True)
class CallArg:
    """A call site of ``callee`` (``M(...)``, ``M.init(rng, ...)``,
    ``M.partial(...)``) passing ``slot`` (the legacy ``apply`` position or a
    keyword) an array-valued expression ("array") or a literal ("literal")."""

    callee: str
    slot: int | str
    kind: str  # "array", "literal", or "other" (recorded for keywords of ``via`` calls only)
    via: str = ""  # "partial", "shared", "init", ... for ``M.partial(...)``; "" for ``M(...)``
    container: str = ""  # "list" or "dict": a display of one, which a Linen field freezes (LU101)


@dataclass
class ClassFacts:
    name: str
    bases: list[str]  # qualified where resolvable, else the local dotted name
    apply_params: list[Param] | None  # without ``self``; None when no ``apply``
    module_methods: list[str] = field(default_factory=list)
    lineno: int = 0
    uses: list[Use] = field(default_factory=list)  # of apply's parameters in its body
    # the *args/**kwargs of apply that are only forwarded (every use is one of these)
    forwards: list[Forward] = field(default_factory=list)
    function: bool = False  # ``@nn.module def F(...)``: LU107 writes it as the class first
    wraps_param: bool = False  # only ``param`` overridden, handing shape and init on (``_wraps_param``)


@dataclass(frozen=True)
class DefinitionFactory:
    """``def masked(module, mask): return Masked.partial(wrapped=module, mask=mask)``: a top-level
    function whose body only returns a ``.partial`` (keywords only) of ``wrapper``, one keyword of it
    holding the function's parameter ``param`` (at ``position`` among its plain parameters)."""

    wrapper: str  # qualified
    keywords: tuple[tuple[str, str], ...]  # (keyword, source)
    param: str
    position: int
    key: str  # the keyword holding it


# the module a PartialArg hands over is a value this file cannot name (``_untraced_arguments``)
UNTRACED = "?"


@dataclass(frozen=True)
class PartialArg:
    """``conv = nn.Conv.partial(bias=False); Block(x, conv=conv)``: inside
    ``Block``, the parameter ``conv`` is a partial of ``nn.Conv``."""

    callee: str  # the legacy module called (qualified, or local dotted)
    param: str
    target: str  # the module the partial was made of
    bound: frozenset[str]  # the keywords the partial fixed
    # ``block_cls(x, conv=conv)`` in ``Net.apply``: the module called is held in this apply
    # parameter, and ``callee`` is ``Net``; the index hands the partial to what ``block_cls`` holds
    via: str = ""


@dataclass
class FileFacts:
    module_name: str
    imports: ImportMap
    # every dotted name the file references, resolved through its imports
    qualnames: set[str]
    classes: list[ClassFacts]
    has_skip_marks: bool
    skip_file: bool
    partial_args: list[PartialArg] = field(default_factory=list)
    # method-call shapes only a FrozenDict has: "pop/unpacked", "unfreeze()", "copy({})"
    frozendict_calls: set[str] = field(default_factory=set)
    # arguments of calls of (possible) module classes, for the index's input/attribute split
    call_args: list[CallArg] = field(default_factory=list)
    # every ``.name`` the file reads: rules that rewrite certain methods skip files without them
    attributes: frozenset[str] = frozenset()
    # module-level ``ResNet50 = ResNet.partial(stage_sizes=...)``: name -> (the module it partials,
    # qualified; (keyword, source) it fixes; every value a literal), for other files' uses
    partial_aliases: dict[str, tuple[str, tuple[tuple[str, str], ...], bool]] = field(default_factory=dict)
    # imported names that a function, lambda or comprehension binds again (``analysis.scopes``)
    shadowed_imports: frozenset[str] = frozenset()
    # what ``from <this module> import *`` binds: ``__all__``, else the public top-level names
    exports: frozenset[str] = frozenset()
    # top-level legacy initializers Linen would call differently -> "function"/"factory"
    # (``analysis.initializers``)
    initializers: dict[str, str] = field(default_factory=dict)
    # the source holds a LEGACY_KEY
    legacy_keys: bool = False
    # the file turns jax's 64-bit floats on (``tables.x64``)
    x64: bool = False
    # top-level functions drawing ``nn.make_rng()`` themselves (``def shake(x, rng=None)``) or through
    # ``nn.dot_product_attention`` with dropout and maybe no ``dropout_rng``; how many
    # times the file names each qualified name, and how many of those are calls in legacy module
    # classes (``index.rng_helpers``: helpers only modules call get their rng from the module)
    rng_functions: frozenset[str] = frozenset()
    name_counts: dict[str, int] = field(default_factory=dict)
    module_calls: dict[str, int] = field(default_factory=dict)
    # of those, the calls whose result is called at once (``masked(nn.Dense, m)(x)``)
    called_at_once: dict[str, int] = field(default_factory=dict)
    # each top-level class and function (qualified) -> the qualified names its body and bases name
    # (``self.<attr>`` as such), and each class -> the apply parameters it calls: what
    # ``index.collections`` reads to tell whether running it draws rngs or keeps state
    named: dict[str, frozenset[str]] = field(default_factory=dict)
    calls_params: dict[str, frozenset[str]] = field(default_factory=dict)
    # each top-level class and function -> each layer of ``tables.nn_modules.NO_PARAMS_WHEN`` it only
    # calls (never reads otherwise) -> the keywords every call of it gives a value that may be false
    # (a falsy literal, or anything not a literal: ``nn.LayerNorm(x, bias=False, scale=affine)``):
    # what ``rules/_parameterless`` reads to tell a built-in that may make no parameter
    off_keywords: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)
    # top-level functions (by name) returning a wrapper's ``.partial`` that fixes a keyword with one of
    # their parameters (``index.definition_factory`` keeps those whose wrapper runs that definition itself)
    factories: dict[str, list[DefinitionFactory]] = field(default_factory=dict)

    def references(self, *prefixes: str) -> bool:
        return any(q == p or q.startswith(p + ".") for q in self.qualnames for p in prefixes)


def by_position_or_name(params: list[Param] | tuple[Param, ...], i: int) -> bool:
    """An input whatever the evidence: the first positional parameter (the
    first two for a cell written ``apply(self, carry, x)``), and flags,
    masks, carries and rngs by name (``CALL_ARGUMENT_NAMES``, ``*_rng``)."""
    p = params[i]
    if p.kind not in ("pos", "kwonly"):
        return False
    if i == 0 and p.kind == "pos":
        return True
    if i == 1 and p.kind == "pos" and params[0].name == "carry":
        return True  # a recurrent cell: (carry, inputs), like the built-in cells
    # a PRNG key by its name (the VAE's z_rng): a value of the run, never a hyper-parameter
    return p.name in CALL_ARGUMENT_NAMES or p.name.endswith("_rng")


def is_input(params: tuple[Param, ...] | list[Param], i: int) -> bool:
    """Does ``apply``'s ``i``-th parameter stay a call argument?"""
    p = params[i]
    if p.kind in ("varargs", "varkw"):
        return False
    if p.role is not None:
        return p.role == "input"
    return by_position_or_name(params, i)


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _wraps_param(node: ast.ClassDef) -> bool:
    """``class StdConv(nn.Conv): def param(self, name, shape, initializer): p = super().param(name,
    shape, initializer); ...``: ``param`` is all the class defines (a docstring aside), and its
    ``shape``/``initializer`` are only handed on to ``super().param`` in that order, ``self`` unread.
    Linen's ``param(name, init_fn, *init_args)`` takes them otherwise, which ``*init_args,
    **init_kwargs`` hand on unchanged (LU104)."""
    body = [s for s in node.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))]
    if len(body) != 1 or not isinstance(body[0], ast.FunctionDef) or body[0].name != "param" or body[0].decorator_list:
        return False
    fn, args = body[0], body[0].args
    if args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg or args.defaults or len(args.args) != 4:
        return False
    this, name, shape, init = (a.arg for a in args.args)
    if any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)) and n is not fn
           for n in subtree(fn)):
        return False  # one scope: every name read below is the parameter's
    handed: set[int] = set()
    for n in subtree(fn):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "param" \
                and isinstance(n.func.value, ast.Call) and _dotted(n.func.value.func) == "super":
            if n.keywords or n.func.value.args or [_dotted(a) for a in n.args] != [name, shape, init]:
                return False
            handed.update(id(a) for a in n.args[1:])
    reads = [n for n in subtree(fn) if isinstance(n, ast.Name) and n.id in (this, shape, init, *INIT_ARGS)]
    return bool(handed) and all(id(n) in handed for n in reads)


INIT_ARGS = ("init_args", "init_kwargs")  # the names LU104 gives param's other arguments


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef, method: bool = False) -> list[Param]:
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = [
        Param(p.arg, "pos", ast.unparse(d) if d is not None else None,
              ast.unparse(p.annotation) if p.annotation else None)
        for p, d in zip(positional, defaults)
    ]
    if a.vararg:
        out.append(Param(a.vararg.arg, "varargs", None))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append(Param(p.arg, "kwonly", ast.unparse(d) if d is not None else None,
                         ast.unparse(p.annotation) if p.annotation else None))
    if a.kwarg:
        out.append(Param(a.kwarg.arg, "varkw", None))
    if method and out and out[0].kind == "pos" and out[0].name != "self":
        # the rules write self.<attribute>: a method whose receiver is `self_` keeps its legacy form
        out[0] = replace(out[0], problem=f"apply's first parameter is {out[0].name}, not self: rename it self "
                                         "and re-run")
    return out[1:] if out and out[0].kind == "pos" and out[0].name == "self" else out


def function_module(fn: ast.FunctionDef, imports: ImportMap) -> bool:
    """Is ``fn`` a legacy function module: decorated with ``flax.nn.module`` alone, no ``self``?"""
    if len(fn.decorator_list) != 1:
        return False
    name = _dotted(fn.decorator_list[0])
    qual = imports.resolve_dotted(name) if name else None
    args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
    return bool(qual) and canonical(qual) == "flax.nn.module" and not any(a.arg == "self" for a in args)


def file_facts(tree: ast.Module, text: str, module_name: str, path: str | None = None) -> FileFacts:
    imports = import_map(tree, identity.package(module_name, path), identity.resolver_for(path))
    qualnames: set[str] = {canonical(v) for v in imports.aliases.values()}
    classes: list[ClassFacts] = []
    frozendict_calls: set[str] = set()
    attributes: set[str] = set()
    top_level = {id(n) for n in tree.body if isinstance(n, ast.FunctionDef)}
    registries = _class_registries(tree)
    for node in nodes(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr == "unfreeze" and not node.args and not node.keywords:
                frozendict_calls.add("unfreeze()")
            elif attr == "copy" and len(node.args) == 1 and isinstance(node.args[0], ast.Dict):
                frozendict_calls.add("copy({})")
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], (ast.Tuple, ast.List)) and len(node.targets[0].elts) == 2
              and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
              and node.value.func.attr == "pop" and len(node.value.args) == 1):
            frozendict_calls.add("pop/unpacked")
        if isinstance(node, ast.Attribute):
            attributes.add(node.attr)
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = _dotted(node)
            if name:
                q = imports.resolve_dotted(name)
                if q:
                    qualnames.add(q)
        elif isinstance(node, ast.ClassDef):
            bases = []
            for b in node.bases:
                name = _dotted(b)
                if name:
                    bases.append(imports.resolve_dotted(name) or name)
            apply_params = None
            module_methods = []
            uses: list[Use] = []
            forwards: list[Forward] = []
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if item.name == "apply" and not item.decorator_list:  # (decorated: LU101 leaves it legacy)
                        apply_params = _params(item, method=True)
                        uses, forwards = _apply_uses(item, apply_params, imports, registries)
                    for dec in item.decorator_list:
                        dname = _dotted(dec)
                        if dname and (imports.resolve_dotted(dname) or "").endswith("module_method"):
                            module_methods.append(item.name)
            classes.append(ClassFacts(node.name, bases, apply_params, module_methods, node.lineno, uses, forwards,
                                      wraps_param=_wraps_param(node)))
        elif isinstance(node, ast.FunctionDef) and id(node) in top_level and function_module(node, imports):
            # ``@nn.module def F(x, features)``: legacy's own shortcut for ``class F(nn.Module): def
            # apply(self, x, features)`` (LU107 writes that class before the module rules run)
            apply_params = _params(node)
            uses, forwards = _apply_uses(node, apply_params, imports, registries)
            classes.append(ClassFacts(node.name, ["flax.nn.Module"], apply_params, [], node.lineno, uses, forwards,
                                      function=True))
    local_classes = {c.name for c in classes}

    def qualify(name: str) -> str:
        if name in local_classes:
            return f"{module_name}.{name}" if module_name else name
        return imports.resolve_dotted(name) or name

    for c in classes:  # callees of this file's classes by their qualified names
        c.uses = [replace(u, callee=qualify(u.callee)) if u.callee else u for u in c.uses]
        c.forwards = [replace(f, callee=qualify(f.callee)) for f in c.forwards]
    partial_args: list[PartialArg] = []
    # each ``apply`` by its class: a call of one of its parameters calls the module held there
    apply_of = {id(item): c.name for c in nodes(tree) if isinstance(c, ast.ClassDef) for item in c.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "apply"}
    for fn in nodes(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        partials: dict[str, tuple[str, frozenset[str]]] = {}
        for node in subtree(fn):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "partial"):
                target = _dotted(node.value.func.value)
                if target:
                    partials[node.targets[0].id] = (
                        qualify(target), frozenset(k.arg for k in node.value.keywords if k.arg))
        if not partials:
            continue
        owner = apply_of.get(id(fn))
        held = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]} - {"self"} \
            if owner else set()
        for node in subtree(fn):
            if isinstance(node, ast.Call):
                # InceptionA.partial(conv_block=conv_block) hands it to InceptionA's parameter, as a call does
                func = node.func.value if isinstance(node.func, ast.Attribute) \
                    and node.func.attr in _INIT_METHODS.keys() | _KEYWORD_METHODS else node.func
                callee = _dotted(func)
                for kw in node.keywords:
                    if callee and kw.arg and isinstance(kw.value, ast.Name) and kw.value.id in partials:
                        target, bound = partials[kw.value.id]
                        if callee in held:
                            partial_args.append(PartialArg(qualify(owner), kw.arg, target, bound, via=callee))
                        else:
                            partial_args.append(PartialArg(qualify(callee), kw.arg, target, bound))
    legacy_classes = {c.name for c in classes if any(canonical(b) == "flax.nn.Module" or not _outside(b)
                                                      for b in c.bases)}
    name_counts, module_calls, called_at_once = _name_counts(tree, imports, module_name, legacy_classes)
    partial_args += _module_arguments(tree, imports, qualify, local_classes)
    partial_args += _untraced_arguments(tree, imports, qualify, local_classes)
    rebound = scopes.shadowed_imports(tree, imports.aliases.keys() | scopes.WRITTEN_NAMES)
    shadowed = rebound & imports.aliases.keys()
    imports.bound_here = rebound & scopes.WRITTEN_NAMES
    return FileFacts(
        call_args=_call_args(tree, imports, qualify, {
            c.name for c in classes if any(b == "flax.nn.Module" or not _outside(b) for b in c.bases)})
        if _legacy_or_plain(qualnames) else [],
        module_name=module_name,
        imports=imports,
        qualnames=qualnames,
        attributes=frozenset(attributes),
        shadowed_imports=shadowed,
        exports=_exports(tree, imports),
        initializers=initializer_functions(tree),
        classes=classes,
        has_skip_marks=SKIP_MARK in text,
        skip_file=SKIP_FILE_MARK in text,
        legacy_keys=LEGACY_KEY.search(text) is not None,
        x64=("x64" in text or "X64" in text) and _switches_x64(tree, qualnames),
        partial_args=partial_args,
        partial_aliases=_partial_aliases(tree, qualify, module_name),
        frozendict_calls=frozendict_calls,
        rng_functions=_rng_functions(tree, imports),
        name_counts=name_counts,
        module_calls=module_calls,
        called_at_once=called_at_once,
        **_named(tree, imports, module_name, qualnames),
        factories=_factories(tree, qualify),
    )




def _switches_x64(tree: ast.Module, qualnames: set[str]) -> bool:
    """Does the file turn jax's 64-bit floats on (``tables.x64``)?"""
    return bool(qualnames & x64.SWITCH_FUNCTIONS) or any(
        isinstance(n, ast.Constant) and n.value in x64.SWITCH_STRINGS for n in ast.walk(tree))


def _known_callee(name: str | None, imports: ImportMap, qualify, local_classes: set[str]) -> bool:
    """A class of this file or a name imported from outside the packages that say nothing of modules."""
    return bool(name) and (name.partition(".")[0] in local_classes or (  # type: ignore[union-attr]
        imports.resolve_dotted(name) is not None and not _outside(qualify(name))))


def _module_arguments(tree: ast.Module, imports: ImportMap, qualify, local_classes: set[str]) -> list[PartialArg]:
    """A module class handed to another's ``apply`` parameter by name (``Net.partial(block_cls=Block)``,
    ``Net(x, block_cls=Block.partial(strides=2))``, ``def apply(self, x, block_cls=Block)``), anywhere in
    the file: the index learns which module a parameter holds, so LU102 converts ``block_cls(x, ...)``."""

    def module_value(value: ast.expr) -> tuple[str, frozenset[str]] | None:
        bound: frozenset[str] = frozenset()
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "partial" \
                and not value.args:
            bound = frozenset(k.arg for k in value.keywords if k.arg)
            value = value.func.value
        name = _dotted(value)  # a class of the run, or a built-in (nn.Conv)
        if not name or not (name.partition(".")[0] in local_classes or imports.resolve_dotted(name)):
            return None
        return qualify(name), bound

    out: list[PartialArg] = []
    for node in nodes(tree):
        if isinstance(node, ast.Call) and node.keywords:
            func = node.func.value if isinstance(node.func, ast.Attribute) \
                and node.func.attr in _INIT_METHODS.keys() | _KEYWORD_METHODS \
                else node.func
            callee = _dotted(func)
            if not _known_callee(callee, imports, qualify, local_classes):
                continue
            for kw in node.keywords:
                found = module_value(kw.value) if kw.arg else None
                if found is not None:
                    out.append(PartialArg(qualify(callee), kw.arg, *found))  # type: ignore[arg-type, misc]
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "apply":
                    a = item.args
                    positional = [*a.posonlyargs, *a.args]
                    pairs = [*zip(positional[len(positional) - len(a.defaults):], a.defaults),
                             *((p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None)]
                    for param, default in pairs:
                        found = module_value(default)
                        if found is not None:
                            out.append(PartialArg(qualify(node.name), param.arg, *found))
    return out


def _untraced_arguments(tree: ast.Module, imports: ImportMap, qualify, local_classes: set[str]) -> list[PartialArg]:
    """A function's own parameter or local handed to a module's ``apply`` parameter (``def masked(module, mask):
    return Masked.partial(wrapped_module=module, mask=mask)``): what it holds is known only where the
    function is called, which the index does not follow, so a call of that ``apply`` parameter may call
    a legacy module class (``masked(nn.Conv, m)(x, ...)``); the target ``UNTRACED`` says so.  Not in a
    legacy module's methods: their parameters' modules are the index's roles and partials."""
    # the functions of classes defining apply (module methods, helpers nested in them)
    methods = {id(f) for c in nodes(tree) if isinstance(c, ast.ClassDef) and any(
        isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "apply" for item in c.body)
        for f in subtree(c)}
    out: list[PartialArg] = []
    for fn in nodes(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or id(fn) in methods:
            continue
        # its parameters and locals, but for a local partial (``conv = nn.Conv.partial(...)``: file_facts's)
        own = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]} | {
            t.id for node in subtree(fn) if isinstance(node, ast.Assign) and not (
                isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
                and node.value.func.attr == "partial")
            for t in node.targets if isinstance(t, ast.Name)}
        for node in subtree(fn):
            if not (isinstance(node, ast.Call) and node.keywords):
                continue
            func = node.func.value if isinstance(node.func, ast.Attribute) \
                and node.func.attr in _INIT_METHODS.keys() | _KEYWORD_METHODS else node.func
            callee = _dotted(func)
            if _known_callee(callee, imports, qualify, local_classes):
                out.extend(PartialArg(qualify(callee), kw.arg, UNTRACED, frozenset()) for kw in node.keywords
                           if kw.arg and isinstance(kw.value, ast.Name) and kw.value.id in own)
    return out


def _partial_aliases(tree: ast.Module, qualify, module_name: str) \
        -> dict[str, tuple[str, tuple[tuple[str, str], ...], bool]]:
    """Module-level ``Name = Target.partial(k=v, ...)`` (keywords only) by name; the target may be
    an alias made above it (``Big = ResNet50.partial(...)``)."""
    out = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Attribute)
                and stmt.value.func.attr == "partial" and not stmt.value.args
                and all(k.arg for k in stmt.value.keywords)):
            continue
        target = _dotted(stmt.value.func.value)
        if target:
            kwargs = tuple((k.arg, ast.unparse(k.value)) for k in stmt.value.keywords)
            qual = f"{module_name}.{target}" if target in out and module_name else qualify(target)
            out[stmt.targets[0].id] = (qual, kwargs, all(_literal(k.value) for k in stmt.value.keywords))
    return out


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _exports(tree: ast.Module, imports: ImportMap) -> frozenset[str]:
    names: set[str] = {k for k in imports.aliases if not k.startswith("_")}
    for stmt in tree.body:
        targets: list[ast.expr] = []
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            targets = list(stmt.targets)
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        for t in targets:
            if isinstance(t, ast.Name) and t.id == "__all__" and isinstance(stmt.value, (ast.List, ast.Tuple)):
                return frozenset(e.value for e in stmt.value.elts
                                 if isinstance(e, ast.Constant) and isinstance(e.value, str))
            names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return frozenset(n for n in names if not n.startswith("_"))


# -- evidence for the input/attribute split of apply's parameters -------------
# (cheap: one more walk of each apply body and of the file's calls; the index
# weighs it, ``index.py``)

# attributes and methods only an array has (``kernel_size[0]`` and ``len(p)``
# fit a tuple too, so they say nothing)
_ARRAY_ATTRS = frozenset({"shape", "ndim", "dtype", "T", "reshape", "astype", "transpose", "squeeze",
                          "sum", "mean", "max", "min", "swapaxes", "at"})
# ``x + y``, ``x @ w``: combined with an input, like an array; ``x * scale`` and
# ``x / temperature`` are how scalar hyper-parameters are used, so they say nothing
_ARRAY_OPS = (ast.Add, ast.Sub, ast.MatMult)
# methods that change a list or dict in place: a Linen attribute (frozen to a tuple or FrozenDict) has none
_MUTATORS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "update",
                       "setdefault", "popitem"})
_NOT_ARRAY_ATTRS = frozenset({"shape", "ndim", "dtype", "size"})  # ``x.shape`` holds Python values
_PYTHON_VALUES = frozenset({"len", "int", "float", "bool", "str", "range", "tuple", "list", "isinstance",
                            "getattr", "hasattr"})
# their calls make initializers (functions), not arrays: xavier_uniform(), normal(stddev=...)
_INITIALIZER_MODULES = ("jax.nn.initializers.", "flax.nn.initializers.")
_ARRAY_MODULES = ("jax.numpy.", "jax.lax.", "jax.nn.", "jax.random.", "numpy.", "jax.scipy.")
_CREATION = frozenset({"zeros", "ones", "full", "empty", "arange", "eye", "identity", "linspace", "tri",
                       "PRNGKey", "key", "split"})
# callees whose arguments say nothing about module signatures


def _outside(qual: str) -> bool:
    """A name of a package whose calls say nothing about module signatures (jax, numpy, flax's own,
    the standard library's): by its first part, so ``systems.models.Net`` is not ``sys``."""
    return qual.partition(".")[0] in EXTERNAL_PACKAGES


_INIT_METHODS = {"init": 1, "call": 1}  # M.init(rng, x, ...): legacy apply position = index - 1
_KEYWORD_METHODS = frozenset({"partial", "shared", "init_by_shape", "create", "create_by_shape"})


def _container(node: ast.expr, names: dict[str, str] | None = None) -> str:
    """"list" or "dict" for a display, comprehension or ``list(...)``/``dict(...)`` call of one, or a
    name ``names`` says is bound to one."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("list", "dict"):
        return node.func.id
    if isinstance(node, ast.Name) and names:
        return names.get(node.id, "")
    return _CONTAINERS.get(type(node), "")


def _container_names(scope: ast.AST, outer: dict[str, str]) -> dict[str, str]:
    """The names a scope binds to a list or dict (``hidden = [5, 4]``; any of its bindings is one),
    with ``outer``'s (module-level) for names the scope does not bind itself."""
    bound: set[str] = set()
    found: dict[str, str] = {}
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        a = scope.args
        bound |= {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if x is not None}
    stack = list(scope.body)  # type: ignore[attr-defined]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            continue
        if isinstance(node, ast.Lambda):
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            kind = _container(node.value)
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if kind and isinstance(t, ast.Name):
                    found[t.id] = kind
    return {**{n: k for n, k in outer.items() if n not in bound}, **found}


_CONTAINERS = {ast.List: "list", ast.ListComp: "list", ast.Dict: "dict", ast.DictComp: "dict"}


def _is_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is not None and node.value is not Ellipsis
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_is_literal(e) for e in node.elts)
    return False


class _Arrays:
    """Which names of one scope hold arrays: the seeds (an apply's inputs),
    then, in statement order, names bound to an expression computed from an
    array, to a ``jnp``/``jax.random``/``flax.nn`` call, or to any call
    given an array (a submodule call's result)."""

    def __init__(self, imports: ImportMap, seeds: set[str]) -> None:
        self.imports = imports
        self.names = set(seeds)

    def qual(self, node: ast.expr) -> str:
        name = _dotted(node)
        return (self.imports.resolve_dotted(name) or name) if name else ""

    def holds(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.names
        if isinstance(node, ast.Attribute):
            return node.attr not in _NOT_ARRAY_ATTRS and self.holds(node.value)
        if isinstance(node, ast.Subscript):
            return self.holds(node.value)
        if isinstance(node, ast.BinOp):
            return self.holds(node.left) or self.holds(node.right)
        if isinstance(node, ast.UnaryOp):
            return self.holds(node.operand)
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("partial", "shared"):
                return False  # a module, not its output
            qual = self.qual(node.func)
            if qual in _PYTHON_VALUES or qual.startswith(_INITIALIZER_MODULES):
                return False  # a Python value, or an initializer (a function)
            if qual.startswith(_ARRAY_MODULES) or (qual.startswith("flax.nn.") and qual != "flax.nn.make_rng"):
                return True
            return any(self.holds(a) for a in node.args) or self.holds(node.func)
        return False

    def bind(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            targets: list[ast.expr] = []
            value = None
            if isinstance(stmt, ast.Assign):
                targets, value = list(stmt.targets), stmt.value
            elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and stmt.value is not None:
                targets, value = [stmt.target], stmt.value
            if value is not None and (self.holds(value) or (
                    isinstance(stmt, ast.AugAssign) and self.holds(stmt.target))):
                for t in targets:
                    self.names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            for attr in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, attr, None)
                if isinstance(inner, list) and not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                      ast.ClassDef)):
                    self.bind(inner)


def _constant_index(node: ast.expr) -> bool:
    """``0`` or ``-1``: an element of a sequence (an array's row, a list's item)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int


def _rebound(fn: ast.FunctionDef | ast.AsyncFunctionDef, names: set[str]) -> dict[str, int]:
    """Parameter name -> the last line of the first statement that binds it again."""
    out: dict[str, int] = {}
    for node in subtree(fn):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
        elif isinstance(node, ast.NamedExpr):
            targets = [node.target]
        end = node.lineno if isinstance(node, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)) else getattr(
            node, "end_lineno", None)
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name) and n.id in names and end is not None:
                    out[n.id] = min(out.get(n.id, end), end)
    return out


def _apply_uses(fn: ast.FunctionDef | ast.AsyncFunctionDef, params: list[Param],
                imports: ImportMap, registries: dict[str, list[str]] | None = None
                ) -> tuple[list[Use], list[Forward]]:
    """The evidence ``apply``'s body gives about each parameter, and its
    ``*args``/``**kwargs`` that are only forwarded into calls."""
    names = {p.name for p in params if p.kind in ("pos", "kwonly")}
    stars = {p.name for p in params if p.kind in ("varargs", "varkw")}
    positional = [p for p in params if p.kind == "pos"]
    seeds = {p.name for p in params if p.name in CALL_ARGUMENT_NAMES}
    if positional:
        seeds.add(positional[0].name)
    arrays = _Arrays(imports, seeds)
    arrays.bind(fn.body)
    uses: list[Use] = []
    forwards: list[Forward] = []
    star_uses: dict[str, int] = {s: 0 for s in stars}  # loads of each star parameter
    forwarded: dict[str, int] = {s: 0 for s in stars}  # of those, forwarded into a call

    rebound = _rebound(fn, names)

    def use(node: ast.expr, kind: str, callee: str = "", slot: int | str = 0) -> None:
        if isinstance(node, ast.Subscript) and _constant_index(node.slice):
            node = node.value  # ``kernel_inits[-1]``: what an element is, its sequence holds
        # after the body binds the name again (``bias = self.param(...)``) its uses say nothing of the parameter
        if isinstance(node, ast.Name) and node.id in names and node.lineno <= rebound.get(node.id, node.lineno):
            uses.append(Use(node.id, kind, callee, slot))

    def tests(node: ast.expr) -> None:  # ``if p:`` / ``if not p`` / ``if p == 'relu'``
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            tests(node.operand)
        elif isinstance(node, ast.BoolOp):
            for v in node.values:
                tests(v)
        elif isinstance(node, ast.Compare) and not any(isinstance(o, (ast.Is, ast.IsNot)) for o in node.ops):
            if all(_is_literal(c) for c in node.comparators):
                use(node.left, "config")
        else:
            use(node, "config")

    for node in subtree(fn):
        if isinstance(node, ast.Name) and node.id in stars and isinstance(node.ctx, ast.Load):
            star_uses[node.id] += 1
        elif isinstance(node, ast.Subscript):
            s = node.slice
            if isinstance(s, ast.Tuple) or (isinstance(s, ast.Constant) and s.value in (None, Ellipsis)):
                use(node.value, "array")
                value = node.value
                if isinstance(value, ast.Compare) and all(_is_literal(c) for c in value.comparators):
                    use(value.left, "array")  # ``(p > 0)[..., None]``: a Python bool is not indexed so
            elif isinstance(s, ast.Slice):  # ``p[:-1]``: an array, or a list (of sizes, of initializers)
                use(node.value, "sliced")
        elif isinstance(node, ast.Attribute) and node.attr in _ARRAY_ATTRS:
            use(node.value, "array")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, _ARRAY_OPS):
            for mine, other in ((node.left, node.right), (node.right, node.left)):
                if arrays.holds(other):
                    use(mine, "arith")
        elif isinstance(node, (ast.If, ast.IfExp, ast.While)):
            tests(node.test)
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
                use(node.func.value, "mutated")
            qual = arrays.qual(node.func)
            if qual == "range" and "range" not in imports.aliases:
                for a in node.args:
                    use(a, "config")
            elif qual.startswith(_ARRAY_MODULES):
                config = qual.rsplit(".", 1)[-1] in _CREATION
                for i, a in enumerate(node.args):
                    # after the first, an argument may be an operand or a dtype/axis (jnp.asarray(x, dtype))
                    kind = "config" if config else "array" if i == 0 else "operand"
                    for el in (a.elts if isinstance(a, (ast.Tuple, ast.List)) else [a]):
                        use(el, kind)
            elif (isinstance(node.func, ast.Attribute) and node.func.attr == "param"
                  and isinstance(node.func.value, ast.Name) and node.func.value.id == "self" and len(node.args) > 1):
                shape = node.args[1]
                for el in (shape.elts if isinstance(shape, (ast.Tuple, ast.List)) else [shape]):
                    use(el, "config")
            elif qual and (qual.startswith("flax.nn.") or not _outside(qual)) \
                    and qual.split(".")[0] != "self":
                for i, a in enumerate(node.args):
                    use(a, "slot", qual, i)
                for k in node.keywords:
                    if k.arg:
                        use(k.value, "slot", qual, k.arg)
            stars_here = [a.value for a in node.args if isinstance(a, ast.Starred)] + [
                k.value for k in node.keywords if k.arg is None]
            for value in stars_here:
                if isinstance(value, ast.Name) and value.id in stars and qual:
                    forwarded[value.id] += 1
                    forwards.append(Forward(value.id, qual, sum(not isinstance(a, ast.Starred) for a in node.args),
                                            frozenset(k.arg for k in node.keywords if k.arg)))
    only = {s for s in stars if star_uses[s] and star_uses[s] == forwarded[s]}
    # a parameter defaulting to None that is only ever an explicit state collection: BatchNorm's
    # ``batch_stats=``, ``self.state(..., collection=)``, or tested after ``self.is_stateful() or``
    loads = Counter(n.id for n in subtree(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load))
    given = Counter(u.param for u in uses if u.kind == "slot" and u.slot == "batch_stats"
                    and canonical(u.callee) == "flax.nn.BatchNorm")
    given.update(_collection_loads(fn))
    for p in params:
        if p.kind in ("pos", "kwonly") and p.default == "None" and given[p.name] == loads[p.name] > 0:
            uses.append(Use(p.name, "collection"))
    collections = {u.param for u in uses if u.kind == "collection"}
    candidates = {p.name for p in params if p.kind in ("pos", "kwonly") and p.default == "None"
                  and p.name not in collections and p.name not in rebound}
    for name, handed in _handed(fn, candidates, loads, registries or {}).items():
        uses.extend(Use(name, "handed", callee, key) for callee, key in handed)
    uses.extend(_definition_uses(fn, params, loads))
    return uses, [f for f in forwards if f.param in only]


def _handed(fn: ast.FunctionDef | ast.AsyncFunctionDef, names: set[str], loads: Counter,
            registries: dict[str, list[str]]) -> dict[str, list[tuple[str, str]]]:
    """Those of ``names`` (parameters defaulting to None) that ``apply`` only hands on by keyword
    (``M(x, batch_stats=p)``, ``M.partial(batch_stats=p)``, ``block(x, batch_stats=p)`` with a local
    ``block`` bound only to names of classes, or to an entry of a registry, ``_class_registries``), each with the (callee, keyword) pairs it is handed to
    (``Use`` kind "handed"): the index makes it an explicit state collection where every callee's
    parameter of that keyword is one (init2winit's ResNet handing its ``batch_stats`` to
    VirtualBatchNorm)."""
    bound: dict[str, list[str] | None] = {}  # local -> the dotted names bound to it (None: anything else)
    plain: set[int] = set()  # the Names ``name = <dotted>`` binds
    for node in subtree(fn):
        if isinstance(node, ast.Assign):
            v = node.value
            values = [_dotted(v)] if isinstance(v, (ast.Name, ast.Attribute)) else registries.get(
                v.value.id) if isinstance(v, ast.Subscript) and isinstance(v.value, ast.Name) else None
            for t in node.targets:
                if isinstance(t, ast.Name) and values and all(values):
                    plain.add(id(t))
                    before = bound.get(t.id, [])
                    bound[t.id] = None if before is None else [*before, *values]  # type: ignore[list-item]
    for node in subtree(fn):  # any other binding: a parameter, a loop or with target, a tuple target, ...
        if isinstance(node, ast.arg):
            bound[node.arg] = None
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load) and id(node) not in plain:
            bound[node.id] = None
    found: dict[str, list[tuple[str, str]]] = {n: [] for n in names}
    counted: Counter = Counter()
    lost: set[str] = set()
    for node in subtree(fn):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "partial":
            func = func.value
        callee = _dotted(func)
        targets = bound.get(callee, [callee]) if callee else None
        for k in node.keywords:
            if k.arg and isinstance(k.value, ast.Name) and k.value.id in names:
                counted[k.value.id] += 1
                if targets:
                    found[k.value.id] += [(t, k.arg) for t in targets]
                else:
                    lost.add(k.value.id)
    return {n: found[n] for n in names if n not in lost and counted[n] and counted[n] == loads[n]}


def _class_registries(tree: ast.Module) -> dict[str, list[str]]:
    """Module-level dicts of names (``block_type_options = {18: BasicBlock, 50: Bottleneck}``) bound
    once and never changed (no item assignment, ``del``, or method call on them) -> their values."""
    found: dict[str, list[str]] = {}
    bindings: Counter = Counter()
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name) \
                and isinstance(stmt.value, ast.Dict) and stmt.value.values \
                and all(isinstance(v, (ast.Name, ast.Attribute)) and _dotted(v) for v in stmt.value.values):
            found[stmt.targets[0].id] = [_dotted(v) for v in stmt.value.values]  # type: ignore[misc]
    for node in nodes(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bindings[node.id] += 1
        elif isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load) \
                and isinstance(node.value, ast.Name):
            bindings[node.value.id] += 2  # an item assigned or deleted
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            bindings[node.value.id] += 2  # registry.update(...), .pop(...), ...
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                bindings[name] += 2
    return {k: v for k, v in found.items() if bindings[k] == 1}


# what apply may do with a module definition it is given and runs itself (``Use`` kind "definition")
_FUNCTIONAL = frozenset({"init", "call"})


def _definition_uses(fn: ast.FunctionDef | ast.AsyncFunctionDef, params: list[Param], loads: Counter) -> list[Use]:
    """A parameter holding a module definition that apply initialises and applies itself, and
    reads nowhere else: every load is ``_, p = wrapped.init(rng, *args, **kwargs)`` (or
    ``wrapped.init(...)[1]``) or ``wrapped.call(p, *args, **kwargs)``, passing apply's own
    ``*args``/``**kwargs`` whole (the masking wrapper of pruning code).  The index makes
    those stars pass through to the definition's call (``DefinitionForward``)."""
    named = {p.name for p in params if p.kind in ("pos", "kwonly")}
    star = next((p.name for p in params if p.kind == "varargs"), None)
    starstar = next((p.name for p in params if p.kind == "varkw"), None)
    if not named or (star is None and starstar is None):
        return []
    stored = {n.id for n in subtree(fn) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    results: set[int] = set()  # init calls whose params alone are kept
    for node in subtree(fn):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Tuple):
            elts = node.targets[0].elts
            if len(elts) == 2 and all(isinstance(e, ast.Name) for e in elts) and not loads[elts[0].id]:  # type: ignore
                results.add(id(node.value))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == 1:
            results.add(id(node.value))

    def passes_stars(call: ast.Call) -> bool:
        rest = call.args[1:]
        wanted = [star] if star is not None else []
        return (len(call.args) >= 1 and not isinstance(call.args[0], ast.Starred)
                and [a.value.id for a in rest if isinstance(a, ast.Starred) and isinstance(a.value, ast.Name)]
                == wanted and len(rest) == len(wanted)
                and [k.value.id for k in call.keywords if k.arg is None and isinstance(k.value, ast.Name)]
                == ([starstar] if starstar is not None else []) and len(call.keywords) == (starstar is not None))

    found: Counter = Counter()
    for node in subtree(fn):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _FUNCTIONAL
                and isinstance(node.func.value, ast.Name) and node.func.value.id in named - stored
                and passes_stars(node) and (node.func.attr == "call" or id(node) in results)):
            found[node.func.value.id] += 1
    return [Use(name, "definition") for name, n in found.items() if n == loads[name]]


def _rng_functions(tree: ast.Module, imports: ImportMap) -> frozenset[str]:
    """Top-level functions calling legacy ``nn.make_rng()``, or ``nn.dot_product_attention``, which drew
    a missing ``dropout_rng`` so (no parameter or local of theirs named make_rng, and no import of that name:
    the parameter LU104 adds would shadow it, unless that import is legacy ``make_rng`` itself, whose
    every draw in the helper the parameter then stands for)."""
    out: set[str] = set()
    if "make_rng" in imports.aliases and canonical(imports.aliases["make_rng"]) != "flax.nn.make_rng":
        return frozenset()

    def draws(n: ast.AST) -> bool:
        qual = canonical(imports.resolve_dotted(_dotted(n.func)) or "") if isinstance(n, ast.Call) \
            and _dotted(n.func) else ""
        if qual == "flax.nn.make_rng":
            return not n.args and not n.keywords  # type: ignore[attr-defined]
        if qual != "flax.nn.dot_product_attention":
            return False
        given = dict(zip(ATTENTION_PARAMS, n.args))  # type: ignore[attr-defined]
        given.update((k.arg, k.value) for k in n.keywords if k.arg)  # type: ignore[attr-defined]
        rate, deterministic = given.get("dropout_rate"), given.get("deterministic")
        # dropout may be on (LU106 reads the call alike)
        return not (rate is None or isinstance(rate, ast.Constant) and not rate.value
                    or isinstance(deterministic, ast.Constant) and deterministic.value is True)

    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        bound = {n.arg for n in subtree(fn) if isinstance(n, ast.arg)} | {
            n.id for n in subtree(fn) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        if "make_rng" not in bound:  # a parameter or local of that name would shadow the one LU104 adds
            if any(draws(n) for n in subtree(fn)):
                out.add(fn.name)
    return frozenset(out)


def _name_counts(tree: ast.Module, imports: ImportMap, module_name: str, legacy_classes: set[str]
                 ) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """How often the file names each qualified name (a dotted expression through the imports, or a
    top-level function of the file), how many of those are the callee of a call inside a legacy
    module class, and how many of these calls are called at once."""
    functions = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    names: Counter = Counter()
    calls: Counter = Counter()
    at_once: Counter = Counter()

    def qual(node: ast.expr) -> str | None:
        name = _dotted(node)
        if name in functions:
            return f"{module_name}.{name}" if module_name else name
        return imports.resolve_dotted(name) if name else None

    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, in_module = stack.pop()
        if isinstance(node, ast.ClassDef):
            in_module = in_module or node.name in legacy_classes
        if isinstance(node, ast.Call) and in_module:
            q = qual(node.func)
            if q:
                calls[q] += 1
            if isinstance(node.func, ast.Call) and (q := qual(node.func.func)):
                at_once[q] += 1
        if isinstance(node, ast.Attribute) or isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            q = qual(node)  # type: ignore[arg-type]
            if q:
                names[q] += 1
                continue  # not its parts again
        stack.extend((child, in_module) for child in ast.iter_child_nodes(node))
    return dict(names), dict(calls), dict(at_once)


def _named(tree: ast.Module, imports: ImportMap, module_name: str, qualnames: set[str]) -> dict[str, dict]:
    """``FileFacts.named``, ``FileFacts.calls_params`` and ``FileFacts.off_keywords``."""
    local = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    resolved: dict[str, str | None] = {}

    def qual(name: str) -> str | None:
        if name not in resolved:
            head = name.partition(".")[0]
            resolved[name] = (joined(module_name, name) if head in local
                              else name if head == "self" else imports.resolve_dotted(name))
        return resolved[name]

    named: dict[str, frozenset[str]] = {}
    calls_params: dict[str, frozenset[str]] = {}
    off_keywords: dict[str, dict[str, frozenset[str]]] = {}
    may_switch_off = not NO_PARAMS_WHEN.keys().isdisjoint(qualnames)
    for top in tree.body:
        if not isinstance(top, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if may_switch_off:
            off_keywords[joined(module_name, top.name)] = _off_keywords(top, qual)
        names = {_dotted(n) for n in subtree(top) if isinstance(n, (ast.Name, ast.Attribute))} - {None}
        names |= {_dotted(b) for b in getattr(top, "bases", ())} - {None}
        found = {q for q in map(qual, names) if q}  # type: ignore[arg-type]
        named[joined(module_name, top.name)] = frozenset(canonical(q) for q in found)
        apply = next((f for f in top.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and f.name == "apply"), None) if isinstance(top, ast.ClassDef) else top
        if apply is not None:
            params = {a.arg for a in [*apply.args.posonlyargs, *apply.args.args, *apply.args.kwonlyargs]}
            called = {(_dotted(n.func) or "").partition(".")[0] for n in subtree(apply) if isinstance(n, ast.Call)}
            if called & params - {"self"}:
                calls_params[joined(module_name, top.name)] = frozenset(called & params - {"self"})
    return {"named": named, "calls_params": calls_params, "off_keywords": off_keywords}


def _off_keywords(top: ast.AST, qual) -> dict[str, frozenset[str]]:
    """``FileFacts.off_keywords`` of one top-level class or function (``tables.nn_modules.NO_PARAMS_WHEN``'s
    layers only)."""
    called: dict[str, frozenset[str]] = {}
    funcs: set[int] = set()
    for node in subtree(top):
        name = _dotted(node.func) if isinstance(node, ast.Call) else None
        q = canonical(q) if name and (q := qual(name)) else None
        if q not in NO_PARAMS_WHEN:
            continue
        funcs.add(id(node.func))  # type: ignore[attr-defined]
        off = frozenset(k.arg for k in node.keywords  # type: ignore[attr-defined]
                        if k.arg and not (isinstance(k.value, ast.Constant) and k.value.value))
        called[q] = called[q] & off if q in called else off
    for node in subtree(top):  # a name also read otherwise (``norm = nn.LayerNorm``) may be called with anything
        if isinstance(node, (ast.Name, ast.Attribute)) and id(node) not in funcs:
            name = _dotted(node)
            q = qual(name) if name else None
            called.pop(canonical(q) if q else "", None)
    return called


def _factories(tree: ast.Module, qualify) -> dict[str, list[DefinitionFactory]]:
    """``FileFacts.factories``: one candidate per keyword holding a plain parameter."""
    out: dict[str, list[DefinitionFactory]] = {}
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or fn.decorator_list:
            continue
        body = fn.body[1:] if fn.body and isinstance(fn.body[0], ast.Expr) \
            and isinstance(fn.body[0].value, ast.Constant) else fn.body
        a = fn.args
        if len(body) != 1 or not isinstance(body[0], ast.Return) or a.vararg or a.kwarg or a.posonlyargs:
            continue
        call = body[0].value
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "partial"
                and not call.args and all(k.arg for k in call.keywords) and _dotted(call.func.value)):
            continue
        plain = [p.arg for p in a.args]
        keywords = tuple((k.arg, ast.unparse(k.value)) for k in call.keywords)
        out[fn.name] = [DefinitionFactory(qualify(_dotted(call.func.value)), keywords, k.value.id,
                                          plain.index(k.value.id), k.arg)  # type: ignore[arg-type]
                        for k in call.keywords if isinstance(k.value, ast.Name) and k.value.id in plain]
    return {name: found for name, found in out.items() if found}


def joined(module: str, name: str) -> str:
    """``module.name``, or ``name`` for a lone source (no module name)."""
    return f"{module}.{name}" if module else name


def _collection_loads(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The names ``apply`` reads as ``self.state(..., collection=c)`` or in ``self.is_stateful() or c``."""
    def is_self(node: ast.expr, attr: str) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == attr and isinstance(node.value, ast.Name) \
            and node.value.id == "self"

    out = []
    for node in subtree(fn):
        if isinstance(node, ast.Call) and is_self(node.func, "state"):
            out += [k.value.id for k in node.keywords if k.arg == "collection" and isinstance(k.value, ast.Name)]
        elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and len(node.values) == 2 \
                and isinstance(node.values[0], ast.Call) and is_self(node.values[0].func, "is_stateful") \
                and isinstance(node.values[1], ast.Name):
            out.append(node.values[1].id)
    return out


def _legacy_or_plain(qualnames: set[str]) -> bool:
    """Only files on the legacy API (or importing flax code of the run without
    naming flax) call legacy modules: modern flax code is not searched."""
    flax = [q for q in qualnames if q == "flax" or q.startswith("flax.")]
    return not flax or any(q.startswith(("flax.nn.", "flax.optim")) or q == "flax.nn" for q in flax)


def _call_args(tree: ast.Module, imports: ImportMap, qualify, local_classes: set[str]) -> list[CallArg]:
    """Arguments of calls of possible module classes (``local_classes``, those
    of this file that may be legacy modules, or a name imported from outside
    jax/flax/numpy/...) that are literals or hold arrays in the calling scope,
    by the legacy ``apply`` slot they fill."""
    out: list[CallArg] = []
    if not local_classes and all(_outside(canonical(v)) for v in imports.aliases.values()):
        return out  # nothing here can be a module class of the run (flax's own sources, ...)
    scopes: list[tuple[ast.AST, set[str]]] = [(tree, set())]
    for node in nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = [*node.args.posonlyargs, *node.args.args]
            seeds: set[str] = set()
            if node.name == "apply" and args and args[0].arg == "self":
                rest = [a.arg for a in args[1:]]
                seeds = {*rest[:1], *(n for n in rest if n in CALL_ARGUMENT_NAMES)}
            scopes.append((node, seeds))
    module_containers = _container_names(tree, {})
    for scope, seeds in scopes:
        sites: list[tuple[ast.Call, str, int, bool, str]] = []
        stack = list(scope.body)  # type: ignore[attr-defined]
        while stack:  # this scope's calls, not those of nested functions (their own scope)
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                continue
            stack.extend(ast.iter_child_nodes(node))
            if not isinstance(node, ast.Call) or not (node.args or node.keywords):
                continue
            func, shift, keywords_only, via = node.func, 0, False, ""
            if isinstance(func, ast.Attribute) and func.attr in _INIT_METHODS:
                func, shift, via = func.value, _INIT_METHODS[func.attr], func.attr
            elif isinstance(func, ast.Attribute) and func.attr in _KEYWORD_METHODS:
                func, keywords_only, via = func.value, True, func.attr
            name = _dotted(func)
            if not name or (name not in local_classes and imports.resolve_dotted(name) is None):
                continue  # a local function, a builtin, self.method: not a module class
            callee = qualify(name)
            if not _outside(callee):
                sites.append((node, callee, shift, keywords_only, via))
        if not sites:
            continue
        arrays = _Arrays(imports, seeds)
        arrays.bind(scope.body)  # type: ignore[attr-defined]

        containers = module_containers if scope is tree else _container_names(scope, module_containers)

        def kind(value: ast.expr) -> str | None:
            if _is_literal(value):
                return "literal"
            return "array" if arrays.holds(value) else None

        for node, callee, shift, keywords_only, via in sites:
            if not keywords_only:
                for i, a in enumerate(node.args):
                    k = kind(a) if i >= shift and not isinstance(a, ast.Starred) else None
                    c = _container(a, containers) if i >= shift else ""
                    if k or c:
                        out.append(CallArg(callee, i - shift, k or "other", via, c))
            for kw in node.keywords:
                k = kind(kw.value) if kw.arg else None
                c = _container(kw.value, containers) if kw.arg else ""
                if k or c or (via and kw.arg):
                    out.append(CallArg(callee, kw.arg, k or "other", via, c))  # type: ignore[arg-type]
    return out
