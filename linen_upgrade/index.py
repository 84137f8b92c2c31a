"""Project-wide facts: every legacy module class of the run, across files.

A class is a legacy module when one of its bases resolves to
``flax.nn.Module`` or to another legacy module of the run (a fixed point over
files, so ``class Block(layers.Base)`` in ``models.py`` is found when
``layers.Base`` subclasses ``flax.nn.Module``).  Call sites in other files
need each class's ``apply`` signature to split arguments.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from linen_upgrade.analysis.identity import ModuleTable
from linen_upgrade.resolve import canonical
from linen_upgrade.facts import (UNTRACED, CallArg, ClassFacts, DefinitionFactory, FileFacts, ForwardSpec, Param,
                                 PartialArg, by_position_or_name, is_input, joined)
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES, SAME_PARAMS

LEGACY_MODULE_BASES = frozenset({"flax.nn.Module"})
# legacy names whose run draws rngs (legacy took them from ``nn.stochastic``) or keeps state (in
# ``nn.stateful``'s collection); ``self.<method>`` is a legacy module's own
RUN_NEEDS: dict[str, str] = {
    "flax.nn.make_rng": "rngs", "flax.nn.dropout": "rngs", "flax.nn.dot_product_attention": "rngs",
    "flax.nn.SelfAttention": "rngs", "flax.nn.MultiHeadDotProductAttention": "rngs", "flax.nn.stochastic": "rngs",
    "flax.nn.BatchNorm": "state", "flax.nn.stateful": "state", "flax.nn.get_state": "state",
    "flax.nn.is_stateful": "state", "self.state": "state", "self.is_stateful": "state",
}
# legacy calls that fix a wrapper's forwarded keywords where no rule packs them into ``kwargs={...}``
# (the usage rules pack those of init/init_by_shape/create/call: ``split_usage``)
_UNPACKED = frozenset({"partial", "shared"})


# strengths of the evidence about an apply parameter's role (``_Roles``)
_USER_SLOT = 1  # passed into a user module's input or attribute
_STRONG = 2  # the body's own use, a built-in module's slot, what call sites pass


@dataclass(frozen=True)
class ArgsForward(ForwardSpec):
    """``*args`` of ``apply`` only forwarded into submodules: call sites' extra
    positional arguments fill the callees' legacy ``positions`` in order, and
    each keeps its place among the Linen fields, so ``*self.args`` is right.
    Further ones (``rest``, legacy names) go into the forwarded ``**kwargs``
    by name when the wrapper forwards both into the same calls."""

    positions: tuple[str, ...] = ()
    rest: tuple[str, ...] = ()


@dataclass(frozen=True)
class DefinitionForward(ForwardSpec):
    """``*args``/``**kwargs`` of ``apply`` only passed whole to ``definition.init`` and
    ``definition.call``, ``definition`` an apply parameter holding a module definition and read
    nowhere else (``Use`` kind "definition"): the stars stay ``__call__``'s, holding the
    definition's inputs, and call sites put its attributes into a ``partial`` of it."""

    definition: str = ""
    # a module the run gives it draws rngs (``ProjectIndex.needs``): apply passes the wrapper's on
    rngs: bool = False


@dataclass(frozen=True)
class _Callee:
    """A module that ``*args``/``**kwargs`` are forwarded into."""

    legacy: tuple[str, ...]  # legacy apply parameters (keywords)
    positional: tuple[str, ...]  # those that can be passed by position
    inputs: frozenset[str]
    fields: tuple[str, ...]  # the Linen dataclass field order
    renames: dict[str, str]
    explicit: dict[str, str]
    manual: dict[str, str]


@dataclass(frozen=True)
class LegacyModule:
    qualname: str  # module_name.ClassName
    apply_params: tuple[Param, ...] | None
    module_methods: tuple[str, ...]
    # apply parameters passed on to a built-in's initializer (``nn.Dense(x, 3, kernel_init=k)``),
    # directly or through other modules of the run: where call sites adapt legacy initializers
    init_params: frozenset[str] = frozenset()
    # derives from another legacy module class of the run: Linen puts the base's fields first, so
    # the legacy positional order of apply's hyper-parameters is not the constructor's (LU102 names them)
    derived: bool = False


@dataclass
class ProjectIndex:
    modules: dict[str, LegacyModule] = field(default_factory=dict)
    # module names of the run's files that reference flax (prefilter)
    flax_modules: set[str] = field(default_factory=set)
    # the run's files that turn jax's 64-bit floats on and every file of the run they import, directly or not
    # (``tables.x64``): there converted layers keep legacy's dtypes.  ``x64``: the file being rewritten is
    # one (the engine sets it per file: the run-wide call specs read it)
    x64_modules: set[str] = field(default_factory=set)
    x64: bool = False
    # (module class, apply parameter) -> (module the partial was made of, keywords it fixed),
    # from call sites that pass ``param=<a Module.partial(...)>`` (the ResNet pattern)
    partial_params: dict[tuple[str, str], tuple[str, frozenset[str]]] = field(default_factory=dict)
    # (module class, apply parameter) that call sites fill with different modules -> those (module,
    # keywords fixed): calls through it convert when all split alike (ResNet18/ResNet50), else a TODO
    ambiguous_params: dict[tuple[str, str], frozenset[tuple[str, frozenset[str]]]] = field(default_factory=dict)
    # (module class, apply parameter) that call sites fill only with a function's own parameter
    # (``def masked(module): return Masked.partial(wrapped_module=module)``) or with functions
    untraced_params: set[tuple[str, str]] = field(default_factory=set)
    # module class -> (legacy apply slot, "list"/"dict") of the list and dict displays call sites give it
    # (``M.partial(hidden=[5, 4])``): a Linen field freezes them (LU101, ``rules/_frozen_attributes.py``)
    containers: dict[str, set[tuple[int | str, str]]] = field(default_factory=dict)
    # ``models.ResNet50`` -> (the module it partials, (keyword, source) fixed, all literal): module-level
    # ``ResNet50 = ResNet.partial(...)`` of a file of the run, for the files that import it
    partial_aliases: dict[str, tuple[str, tuple[tuple[str, str], ...], bool]] = field(default_factory=dict)
    # module name -> module names of the run's files that import it
    importers: dict[str, set[str]] = field(default_factory=dict)
    # ``module.name`` of another file of the run -> module names of the files that reference it
    # (``models.predict(model, x)``): where a Model may be handed to that function
    referrers: dict[str, set[str]] = field(default_factory=dict)
    # modules of the run's files whose names another file of the run uses (the modules of ``referrers``)
    referenced: set[str] = field(default_factory=set)
    # top-level functions drawing legacy ``nn.make_rng()`` (or calling ``nn.dot_product_attention``, which
    # drew it) that the run only calls from legacy module classes: LU104 gives them the module's rng
    # (``make_rng=lambda: self.make_rng('dropout')``); ``rng_helper`` asks
    rng_helpers: set[str] = field(default_factory=set)
    # module classes and top-level functions of the run -> what running them needs besides params:
    # "rngs", "state" (``RUN_NEEDS``, through the modules and functions they name) and "unknown"
    # (a module held in an apply parameter that no traced value fills); ``needs`` asks
    collections: dict[str, frozenset[str]] = field(default_factory=dict)
    # top-level functions of the run returning a ``.partial`` of a wrapper that runs the definition it
    # is given itself, fixing it with their parameter, and named only as callees in module classes
    # (``def masked(module, mask): return Masked.partial(wrapped=module, mask=mask)``): LU102 converts
    # the function and its calls together
    definition_factories: dict[str, DefinitionFactory] = field(default_factory=dict)
    # modules of the files that use flax.optim and of the run's files whose names they use,
    # transitively: where a legacy optimizer may be handed (LU302 reads the others' code)
    optim_reach: set[str] = field(default_factory=set)
    # modules of the files that use flax.optim themselves (where optimizers are created)
    optim_creators: set[str] = field(default_factory=set)
    # classes of the run subclassing a legacy built-in (``class StdConv(nn.Conv)``) -> that built-in:
    # they stay legacy (LU901), and so must the calls of them in other files, unless they only wrap
    # ``param`` (``linen_subclasses``: LU104 writes their param for Linen, LU102 splits their calls)
    builtin_subclasses: dict[str, str] = field(default_factory=dict)
    linen_subclasses: set[str] = field(default_factory=set)
    # legacy module classes of the run that other legacy module classes of the run derive from
    subclassed: set[str] = field(default_factory=set)
    # module name -> path of the run's files (set by the pipeline; empty for a lone source)
    paths: dict[str, str] = field(default_factory=dict)
    # every file of the run named by its path (set by the pipeline; None for a lone source)
    table: ModuleTable | None = None
    # ``pkg.Block`` -> ``pkg.layers.Block``: names a module of the run imports and so re-exports
    # (``from .layers import Block``, ``from .layers import *`` within ``__all__``)
    reexports: dict[str, str] = field(default_factory=dict)
    # ``module.function`` -> "function"/"factory": legacy initializers of the run's files
    # that Linen would call differently (``analysis.initializers``)
    initializers: dict[str, str] = field(default_factory=dict)
    # canonical()'s answers: the rules ask it about the same few names over and over (a tenth of
    # the usage analysis's time); ``reexports`` does not change once the index is built
    _canonical: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def rng_helper(self, module: str, function: str) -> bool:
        """Is the top-level ``function`` of the file named ``module`` one of ``rng_helpers``?"""
        return self.canonical(joined(module, function)) in self.rng_helpers

    def needs(self, qualname: str) -> frozenset[str]:
        """What running the legacy module or function ``qualname`` draws or keeps besides params
        (``collections``; a built-in's ``RUN_NEEDS``)."""
        qualname = self.canonical(qualname)
        return self.collections.get(qualname, frozenset(RUN_NEEDS.get(qualname, "").split()))

    def canonical(self, qualname: str) -> str:
        """Where a name of the run is defined, through re-exports (``pkg.Block`` -> ``pkg.layers.Block``)."""
        if not self.reexports:
            return qualname
        found = self._canonical.get(qualname)
        if found is None:
            found = self._canonical[qualname] = self._follow_reexports(qualname)
        return found

    def _follow_reexports(self, qualname: str) -> str:
        for _ in range(8):  # re-export chains are short; a cycle stops here
            parts = qualname.split(".")
            for cut in range(len(parts), 0, -1):
                target = self.reexports.get(".".join(parts[:cut]))
                if target is not None:
                    qualname = canonical(".".join([target, *parts[cut:]]))
                    break
            else:
                return qualname
        return qualname

    def partial_alias(self, qualname: str) -> tuple[str, tuple[tuple[str, str], ...], bool] | None:
        """What a module-level ``.partial`` alias of the run stands for, through aliases of aliases:
        (the module class, the keywords fixed, in order, later ones winning; all literal)."""
        chain = []
        qualname = self.canonical(qualname)
        while qualname in self.partial_aliases and len(chain) < 8:
            target, kwargs, literal = self.partial_aliases[qualname]
            chain.append((kwargs, literal))
            qualname = self.canonical(target)
        if not chain:
            return None
        merged = dict(kw for kwargs, _ in reversed(chain) for kw in kwargs)
        return qualname, tuple(merged.items()), all(literal for _, literal in chain)

    def legacy_module(self, qualname: str | None) -> LegacyModule | None:
        return self.modules.get(self.canonical(qualname)) if qualname else None

    def is_legacy_module(self, qualname: str | None) -> bool:
        if qualname is None:
            return False
        qualname = self.canonical(qualname)
        return qualname in LEGACY_MODULE_BASES or qualname in self.modules

    @classmethod
    def build(cls, all_facts: list[FileFacts]) -> ProjectIndex:
        index = cls(reexports=_reexports(all_facts))
        candidates: dict[str, tuple[list[str], object]] = {}
        defining: dict[str, ClassFacts] = {}  # legacy modules that define apply
        inherits: dict[str, str] = {}  # legacy modules that inherit it -> the base
        for facts in all_facts:
            index.partial_aliases.update((f"{facts.module_name}.{name}" if facts.module_name else name, alias)
                                         for name, alias in facts.partial_aliases.items())
            index.initializers.update((f"{facts.module_name}.{name}", kind) for name, kind in facts.initializers.items()
                                      if facts.module_name)
            for c in facts.classes:
                qual = f"{facts.module_name}.{c.name}" if facts.module_name else c.name
                local = {k.name for k in facts.classes}
                bases = [
                    (f"{facts.module_name}.{b}" if facts.module_name else b) if b in local else index.canonical(b)
                    for b in c.bases
                ]
                candidates[qual] = (bases, c)
                builtin = next((b for b in bases if b in BUILTIN_MODULES), None)
                if builtin is not None:
                    index.builtin_subclasses[qual] = builtin
                    if c.wraps_param and builtin in SAME_PARAMS and len(bases) == 1:
                        index.linen_subclasses.add(qual)
        changed = True
        while changed:
            changed = False
            for qual, (bases, c) in candidates.items():
                if qual in index.modules:
                    continue
                if any(b in LEGACY_MODULE_BASES or b in index.modules for b in bases):
                    params = c.apply_params  # type: ignore[attr-defined]
                    if params is None:  # inherits apply from a legacy base
                        base = next((b for b in bases if b in index.modules), None)
                        params = index.modules[base].apply_params if base else None
                        if base:
                            inherits[qual] = base
                    else:
                        defining[qual] = c  # type: ignore[assignment]
                    index.modules[qual] = LegacyModule(
                        qual, tuple(params) if params is not None else None,
                        tuple(c.module_methods))  # type: ignore[attr-defined]
                    changed = True
        index.subclassed = {b for qual, (bases, _) in candidates.items() if qual in index.modules
                            for b in bases if b in index.modules}
        for qual, (bases, _) in candidates.items():
            if qual in index.modules and any(b in index.modules for b in bases):
                index.modules[qual] = replace(index.modules[qual], derived=True)
        calls: dict[str, list[CallArg]] = {}
        for facts in all_facts:
            for ca in facts.call_args:
                calls.setdefault(index.canonical(ca.callee), []).append(ca)
                if ca.container:
                    index.containers.setdefault(index.canonical(ca.callee), set()).add((ca.slot, ca.container))
        _Roles(index, defining, inherits, calls).decide()
        _initializer_params(index, defining, inherits)
        given: dict[tuple[str, str], set[tuple[str, frozenset[str]]]] = {}
        through: list[PartialArg] = []
        for facts in all_facts:
            for pa in facts.partial_args:
                if pa.via:
                    through.append(pa)
                    continue
                key = (index.canonical(pa.callee), pa.param)
                given.setdefault(key, set()).add((index.canonical(pa.target), pa.bound))
        # ``block_cls(x, conv=conv)``: the partial reaches every module the parameter is given
        # (ResNet18/ResNet50 give two blocks, each of which calls ``conv`` like nn.Conv)
        for pa in through:
            for holder, _ in list(given.get((index.canonical(pa.callee), pa.via), ())):
                if index.is_legacy_module(holder):
                    given.setdefault((holder, pa.param), set()).add((index.canonical(pa.target), pa.bound))
        for key, values in given.items():
            if not any(t in BUILTIN_MODULES or index.is_legacy_module(t) for t, _ in values):
                if any(t == UNTRACED for t, _ in values):
                    index.untraced_params.add(key)
                continue  # functions (activation=nn.relu): called alike in Linen
            if len(values) == 1:
                index.partial_params[key] = next(iter(values))
            else:  # different modules (or a module and something else) at different sites
                index.ambiguous_params[key] = frozenset(values)
        index.collections = _collections(index, all_facts, given)
        _definition_rngs(index, given)
        index._link([f for f in all_facts if f.module_name])
        index.x64_modules.update(f.module_name for f in all_facts if f.x64 and not f.module_name)  # (stdin)
        helpers = {index.canonical(joined(f.module_name, n)) for f in all_facts for n in f.rng_functions}
        index.rng_helpers = _called_in_modules(index, all_facts, helpers)
        factories = {index.canonical(joined(f.module_name, name)): found for f in all_facts
                     for name, found in f.factories.items()}
        for qual in _called_in_modules(index, all_facts, set(factories), at_once=True):
            found = [d for d in factories[qual] if _runs_definition(index, d)]
            if len(found) == 1:
                index.definition_factories[qual] = found[0]
        return index

    def _link(self, all_facts: list[FileFacts]) -> None:
        """Which files of the run import which, and which names of the others they use."""
        run = {f.module_name for f in all_facts}
        uses: dict[str, set[str]] = {}
        for facts in all_facts:
            me = facts.module_name
            for module in facts.imports.imported_modules & run - {me}:
                self.importers.setdefault(module, set()).add(me)
            for qual in facts.qualnames:
                module = qual.rpartition(".")[0]
                if module in run and module != me:
                    self.referrers.setdefault(qual, set()).add(me)
                    self.referenced.add(module)
                    uses.setdefault(me, set()).add(module)
        imported = {f.module_name: f.imports.imported_modules & run for f in all_facts}
        stack = [f.module_name for f in all_facts if f.x64]
        while stack:
            module = stack.pop()
            if module not in self.x64_modules:
                self.x64_modules.add(module)
                stack.extend(imported.get(module, set()) | uses.get(module, set()))
        stack = [f.module_name for f in all_facts if f.references("flax.optim")]
        self.optim_creators = set(stack)
        while stack:
            module = stack.pop()
            if module not in self.optim_reach:
                self.optim_reach.add(module)
                stack.extend(uses.get(module, ()))


def _definition_rngs(index: ProjectIndex, given: dict[tuple[str, str], set[tuple[str, frozenset[str]]]]) -> None:
    """``DefinitionForward.rngs`` of the wrappers that the run gives a module drawing rngs."""
    for qual, legacy in list(index.modules.items()):
        params = legacy.apply_params or ()
        forward = next((p.forward for p in params if isinstance(p.forward, DefinitionForward)), None)
        if forward is not None and any("rngs" in index.needs(t) for t, _ in given.get((qual, forward.definition), ())):
            index.modules[qual] = replace(legacy, apply_params=tuple(
                replace(p, forward=replace(p.forward, rngs=True)) if isinstance(p.forward, DefinitionForward) else p
                for p in params))


def _called_in_modules(index: ProjectIndex, all_facts: list[FileFacts], quals: set[str], at_once: bool = False
                       ) -> set[str]:
    """Those of the functions ``quals`` that the run names only as the callee of calls in legacy
    module classes (``FileFacts.name_counts``, ``module_calls``; ``at_once``: calls whose result
    is called there too, ``called_at_once``)."""
    named: dict[str, int] = {}
    called: dict[str, int] = {}
    for facts in all_facts if quals else ():
        calls = facts.called_at_once if at_once else facts.module_calls
        for counts, total in ((facts.name_counts, named), (calls, called)):
            for qual, n in counts.items():
                qual = index.canonical(qual)
                if qual in quals:
                    total[qual] = total.get(qual, 0) + n
    return {q for q in quals if named.get(q) and named[q] == called.get(q)}


def _runs_definition(index: ProjectIndex, factory: DefinitionFactory) -> bool:
    """Does the factory's keyword holding its parameter give the wrapper the definition it runs itself?"""
    legacy = index.legacy_module(factory.wrapper)
    return legacy is not None and any(isinstance(p.forward, DefinitionForward) and p.forward.definition == factory.key
                                      for p in legacy.apply_params or ())


def _collections(index: ProjectIndex, all_facts: list[FileFacts],
                 given: dict[tuple[str, str], set[tuple[str, frozenset[str]]]]) -> dict[str, frozenset[str]]:
    """``ProjectIndex.collections``: a fixed point over what each class and function names and the
    modules its called apply parameters are given."""
    named = {index.canonical(q): names for f in all_facts for q, names in f.named.items()}
    held = {index.canonical(q): params for f in all_facts for q, params in f.calls_params.items()}
    edges: dict[str, set[str]] = {}
    out: dict[str, frozenset[str]] = {}
    for qual, names in named.items():
        found = {index.canonical(n) for n in names}
        found |= {alias[0] for n in found if (alias := index.partial_alias(n)) is not None}
        for param in held.get(qual, ()):
            values = {index.canonical(t) for t, _ in given.get((qual, param), ())}
            found |= values or {UNTRACED}
        edges[qual] = found & named.keys()
        out[qual] = frozenset(RUN_NEEDS[n] for n in found if n in RUN_NEEDS) | (
            {"unknown"} if UNTRACED in found else set())
    changed = True
    while changed:
        changed = False
        for qual, targets in edges.items():
            more = out[qual].union(*(out[t] for t in targets))
            if more != out[qual]:
                out[qual], changed = more, True
    return {q: needs for q, needs in out.items() if needs}


def _reexports(all_facts: list[FileFacts]) -> dict[str, str]:
    """``module.name`` -> what it stands for, for every name a module of the run imports."""
    by_module = {f.module_name: f for f in all_facts if f.module_name}
    out: dict[str, str] = {}
    for module, facts in by_module.items():
        for name, target in facts.imports.aliases.items():
            if target != f"{module}.{name}":
                out[f"{module}.{name}"] = target
    # ``from .layers import *``: what the starred module exports, also through its own stars
    changed = True
    while changed:
        changed = False
        for module, facts in by_module.items():
            for star in facts.imports.stars:
                source = by_module.get(star)
                if source is None or star == module:
                    continue
                names = source.exports | {k.rpartition(".")[2] for k in out if k.rpartition(".")[0] == star}
                for name in names:
                    if not name.startswith("_") and f"{module}.{name}" not in out:
                        out[f"{module}.{name}"] = f"{star}.{name}"
                        changed = True
    return out


class _Roles:
    """Which ``apply`` parameters stay call inputs, decided once for the run
    from the evidence in the facts, and written into the index's ``Param``s
    (``role``/``problem``/``forward``), which ``split_params`` reads: the
    definition rule and every call site see the same split.

    Beyond the first positional parameter and the names in
    ``CALL_ARGUMENT_NAMES`` (always inputs), a parameter is an input when
    the body uses it as an array (sliced, ``.shape``, a ``jnp`` argument,
    the input of a submodule call) or call sites pass it an array, and an
    attribute when the body uses it as a Python value (``range``, an ``if``
    test, a parameter shape, a submodule's configuration) or call sites pass
    a literal.  When both sides have evidence, the stronger decides: what a
    built-in submodule's slot or the body itself shows beats a user
    submodule's slot (whose split was itself decided from evidence); equal
    strengths -> a problem (a TODO).  Arithmetic with an input, a later
    argument of a ``jnp`` function (``jnp.asarray(x, dtype)``), or a plain
    slice (``p[:-1]``: a list of sizes or initializers is sliced too) is weakest:
    a scalar hyper-parameter or a dtype does that too, so it decides only
    when nothing else (a literal default included) says configuration."""

    def __init__(self, index: ProjectIndex, defining: dict[str, ClassFacts], inherits: dict[str, str],
                 calls: dict[str, list[CallArg]]) -> None:
        self.index, self.defining, self.inherits, self.calls = index, defining, inherits, calls
        self.done: dict[str, tuple[Param, ...] | None] = {}
        self.busy: set[str] = set()

    def decide(self) -> None:
        for qual in self.index.modules:
            self.params(qual)
        for qual, module in list(self.index.modules.items()):
            self.index.modules[qual] = replace(module, apply_params=self.params(qual))

    def params(self, qual: str) -> tuple[Param, ...] | None:
        if qual in self.done:
            return self.done[qual]
        if qual in self.inherits:
            return self.params(self.inherits[qual])
        module = self.index.modules[qual]
        c = self.defining.get(qual)
        if c is None or qual in self.busy or module.apply_params is None:
            return module.apply_params  # undecided (a cycle: the names decide)
        self.busy.add(qual)
        params = module.apply_params
        out = tuple(self._decide(qual, c, params, i) for i in range(len(params)))
        self.busy.discard(qual)
        self.done[qual] = out
        return out

    def _definer(self, qual: str) -> str:
        seen = set()
        while qual in self.inherits and qual not in seen:
            seen.add(qual)
            qual = self.inherits[qual]
        return qual

    def signature(self, callee: str) -> tuple[tuple[str, ...], frozenset[str]] | None:
        """The legacy parameter names of a module and which are inputs (a module-level ``.partial``
        alias fixes keywords only: its calls fill the module's slots)."""
        alias = self.index.partial_alias(callee)
        callee = alias[0] if alias is not None else callee
        row = BUILTIN_MODULES.get(callee)
        if row is not None:  # a keyword a built-in partial fixed, given at a call, is its target's
            unfixed = {k for k, target in row.unfixed.items() if k in BUILTIN_MODULES[target].inputs}
            return row.legacy + tuple(row.unfixed), frozenset(row.inputs) | frozenset(row.arrays) | unfixed
        if callee not in self.index.modules:
            return None
        params = self.params(callee)
        if params is None:
            return None
        names = tuple(p.name for p in params if p.kind in ("pos", "kwonly"))
        return names, frozenset(p.name for i, p in enumerate(params) if is_input(params, i))

    def _decide(self, qual: str, c: ClassFacts, params: tuple[Param, ...], i: int) -> Param:
        p = params[i]
        definition = _definition_forward(c, p)
        if definition is not None:
            return replace(p, forward=definition)
        if p.kind == "varkw":
            forward = self._forward(qual, c, p)
            return replace(p, forward=forward) if forward else p
        if p.kind == "varargs":
            forward_args = self._forward_args(qual, c, params, p)
            return replace(p, forward=forward_args) if forward_args else p
        if p.kind == "varargs" or by_position_or_name(params, i):
            return p
        if any(u.param == p.name and u.kind == "collection" for u in c.uses):
            return replace(p, role="collection")  # BatchNorm's explicit batch_stats: gone in Linen
        handed = [u for u in c.uses if u.param == p.name and u.kind == "handed"]
        if handed and all(self._collection_slot(u.callee, str(u.slot)) for u in handed):
            return replace(p, role="collection")  # only handed on to such collections (init2winit's ResNet)
        # (strength, why) per side; the strongest side decides (``_Roles``)
        array: list[tuple[int, str]] = []
        config: list[tuple[int, str]] = []
        weak = False
        for u in c.uses:
            if u.param != p.name:
                continue
            if u.kind == "array":
                array.append((_STRONG, "the body uses it as an array (sliced, .shape, a jnp argument)"))
            elif u.kind == "mutated":
                array.append((_STRONG, "the body changes it in place (append, ...): a Linen attribute is frozen"))
            elif u.kind == "config":
                config.append((_STRONG, "the body uses it as a Python value (range, an if test, a shape)"))
            elif u.kind in ("arith", "operand", "sliced"):
                weak = True
            elif u.kind == "slot" and u.callee != qual:
                sig = self.signature(u.callee)
                if sig is None:
                    continue
                names, inputs = sig
                name = names[u.slot] if isinstance(u.slot, int) and u.slot < len(names) else u.slot
                short = u.callee.rsplit(".", 1)[-1]
                # a built-in's split is fixed; a user module's was itself decided from evidence
                strength = _STRONG if u.callee in BUILTIN_MODULES else _USER_SLOT
                if name in inputs:
                    array.append((strength, f"the body passes it as the input {name} of {short}"))
                elif name in names:
                    config.append((strength, f"the body passes it as {short}'s {name}"))
        positional = [q.name for q in params if q.kind == "pos"]
        # call sites of subclasses that inherit this apply count too
        heirs = [h for h in self.inherits if self._definer(h) == qual]
        for ca in [ca for q in (qual, *heirs) for ca in self.calls.get(q, ())]:
            name = positional[ca.slot] if isinstance(ca.slot, int) and ca.slot < len(positional) else ca.slot
            if name == p.name and ca.kind in ("array", "literal"):
                (array if ca.kind == "array" else config).append(
                    (_STRONG, "call sites pass it an array" if ca.kind == "array" else "call sites pass it a literal"))
        most_array = max(array, default=(0, ""))
        most_config = max(config, default=(0, ""))
        if array and config and most_array[0] == most_config[0]:
            return replace(p, role="attribute", problem=(
                f"apply parameter {p.name}: {most_array[1]}, but {most_config[1]}: make it a call argument "
                "or an attribute by hand"))
        literal_default = p.default is not None and p.default != "None"
        if most_array[0] > most_config[0] or (weak and not config and not literal_default):
            return replace(p, role="input")
        return replace(p, role="attribute")

    def _collection_slot(self, callee: str, key: str) -> bool:
        """Is ``key`` an explicit state collection of the module ``callee`` (BatchNorm's
        ``batch_stats``, or a parameter the index made a collection)?"""
        alias = self.index.partial_alias(callee)
        callee = self.index.canonical(alias[0] if alias is not None else callee)
        if canonical(callee) == "flax.nn.BatchNorm":
            return key == "batch_stats"
        params = self.params(callee) if callee in self.index.modules else None
        return params is not None and any(q.name == key and q.role == "collection" for q in params)

    def _callee(self, callee: str) -> _Callee | None:
        """What forwarding into ``callee`` needs to know, None when it cannot be packed."""
        row = BUILTIN_MODULES.get(callee)
        if row is not None:
            if row.features_from_carry or row.linen != callee.rsplit(".", 1)[-1] or "mask" in str(row.manual):
                return None  # a cell (features from the carry), a renamed class, attention masks
            return _Callee(row.legacy, row.legacy, frozenset(row.inputs), row.linen_fields, row.renames,
                           row.explicit, row.manual)
        params = self.params(callee) if callee in self.index.modules else None
        if params is None or any(q.kind in ("varargs", "varkw") or q.problem for q in params):
            return None
        inputs = frozenset(q.name for i, q in enumerate(params) if is_input(params, i))
        attrs = [q for q in params if q.kind in ("pos", "kwonly") and q.name not in inputs]
        # Linen field order: required attributes first (``split_params``)
        fields = tuple(q.name for q in attrs if q.default is None) + tuple(q.name for q in attrs if q.default is not None)
        return _Callee(tuple(q.name for q in params if q.kind in ("pos", "kwonly")),
                       tuple(q.name for q in params if q.kind == "pos"), inputs, fields, {}, {}, {})

    def _forward(self, qual: str, c: ClassFacts, p: Param) -> ForwardSpec | None:
        """``**kwargs`` only forwarded into modules of known signature, else None (a TODO)."""
        forwards = [f for f in c.forwards if f.param == p.name]
        own = {q.name for q in c.apply_params or () if q.kind in ("pos", "kwonly")}
        if not forwards or any(ca.via in _UNPACKED and isinstance(ca.slot, str) and ca.slot not in own | {"name"}
                               for ca in self.calls.get(qual, ())):
            return None  # M.partial(features=3) of a wrapper: LU103 cannot pack it (init and apply sites do)
        keys: set[str] = set()
        inputs: set[str] = set()
        renames: dict[str, str] = {}
        explicit: dict[str, str] = {}
        manual: dict[str, str] = {}
        for f in forwards:
            callee = self._callee(f.callee) if f.callee != qual else None
            if callee is None:
                return None
            renames.update(callee.renames)
            explicit.update(callee.explicit)
            manual.update(callee.manual)
            bound = set(callee.positional[: f.positional]) | f.keywords
            keys |= set(callee.legacy) - bound - callee.inputs
            inputs |= callee.inputs - bound
        if keys & inputs:
            return None  # an input of one callee configures another
        return ForwardSpec(tuple(dict.fromkeys(f.callee for f in forwards)), frozenset(keys), frozenset(inputs),
                           tuple(sorted(renames.items())), tuple(sorted(explicit.items())),
                           tuple(sorted(manual.items())))

    def _forward_args(self, qual: str, c: ClassFacts, params: tuple[Param, ...], p: Param) -> ArgsForward | None:
        """``*args`` only forwarded (``nn.Dense(x, *args)`` -> ``nn.Dense(*self.args)(x)``): the
        callees' legacy positions it fills, as far as each keeps its place among the Linen fields
        (Dense: features, bias -> use_bias, dtype; legacy precision is not Linen's fourth field).
        None (a TODO) when not even the first does, or the callees disagree on it."""
        forwards = [f for f in c.forwards if f.param == p.name]
        if not forwards or any(q.kind == "kwonly" for q in params):
            # keyword-only parameters after *args: the usage rules (init, apply) bind extra
            # positional arguments to them by name order
            return None
        common: list[str] | None = None
        names: list[str] | None = None  # every forwarded position, for ``rest``
        renames: dict[str, str] = {}
        for f in forwards:
            callee = self._callee(f.callee) if f.callee != qual else None
            if callee is None:
                return None
            before = [n for n in callee.positional[: f.positional] if n not in callee.inputs]
            if [callee.renames.get(n, n) for n in before] != list(callee.fields[: len(before)]):
                return None  # the arguments before *args do not stay positional in Linen
            usable: list[str] = []
            for at, name in enumerate(callee.positional[f.positional:], start=len(before)):
                new = callee.renames.get(name, name)
                if (name in callee.inputs or name in callee.manual or new in callee.explicit
                        or at >= len(callee.fields) or callee.fields[at] != new):
                    break
                usable.append(name)
                renames[name] = new
            mine = list(callee.positional[f.positional:])
            if common is not None:
                usable = _common_prefix(common, usable)
                mine = _common_prefix(names or [], mine)
            common, names = usable, mine
        if not common:
            return None
        kwargs = next((q.name for q in params if q.kind == "varkw"), None)
        both = sorted(f.callee for f in c.forwards if f.param == kwargs) == sorted(f.callee for f in forwards)
        rest = tuple((names or [])[len(common):]) if both else ()
        return ArgsForward(tuple(dict.fromkeys(f.callee for f in forwards)), frozenset(common), frozenset(),
                           tuple(sorted((k, v) for k, v in renames.items() if k in common and k != v)),
                           positions=tuple(common), rest=rest)


def _definition_forward(c: ClassFacts, p: Param) -> DefinitionForward | None:
    """``p`` (a ``*``/``**`` parameter) only passed whole into ``.init``/``.call`` of one
    definition parameter (``facts._definition_uses``), else None."""
    if p.kind not in ("varargs", "varkw"):
        return None
    definitions = {u.param for u in c.uses if u.kind == "definition"}
    forwards = [f for f in c.forwards if f.param == p.name]
    held = {f.callee.rpartition(".")[0] for f in forwards}
    if len(definitions) != 1 or held != definitions:
        return None
    callees = tuple(sorted({f.callee for f in forwards}))
    return DefinitionForward(callees, frozenset(), frozenset(), definition=next(iter(definitions)))


def _initializer_params(index: ProjectIndex, defining: dict[str, ClassFacts], inherits: dict[str, str]) -> None:
    """Each module's ``init_params`` (a fixed point: a parameter passed to another
    module's initializer parameter is one too)."""
    found: dict[str, set[str]] = {q: set() for q in index.modules}

    def slots(callee: str) -> tuple[tuple[str, ...], set[str]]:
        row = BUILTIN_MODULES.get(callee)
        if row is not None:
            return row.legacy, {n for n in row.legacy if n.endswith("_init")}
        params = index.modules[callee].apply_params if callee in index.modules else None
        while callee in inherits:
            callee = inherits[callee]
        return tuple(q.name for q in params or () if q.kind in ("pos", "kwonly")), found.get(callee, set())

    changed = True
    while changed:
        changed = False
        for qual, c in defining.items():
            for u in c.uses:
                if u.kind != "slot" or u.param in found[qual]:
                    continue
                names, inits = slots(index.canonical(u.callee))
                name = names[u.slot] if isinstance(u.slot, int) and u.slot < len(names) else u.slot
                if name in inits:
                    found[qual].add(u.param)
                    changed = True
    for qual, module in list(index.modules.items()):
        definer = qual
        while definer in inherits:
            definer = inherits[definer]
        if found.get(definer):
            index.modules[qual] = replace(module, init_params=frozenset(found[definer]))


def _common_prefix(a: list[str], b: list[str]) -> list[str]:
    return [x for x, _ in itertools.takewhile(lambda xy: xy[0] == xy[1], zip(a, b))]
