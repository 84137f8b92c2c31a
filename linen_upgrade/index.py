"""Project-wide facts: every legacy module class of the run, across files.

A class is a legacy module when one of its bases resolves to
``flax.nn.Module`` or to another legacy module of the run (a fixed point over
files, so ``class Block(layers.Base)`` in ``models.py`` is found when
``layers.Base`` subclasses ``flax.nn.Module``).  Call sites in other files
need each class's ``apply`` signature to split arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from linen_upgrade.facts import CallArg, ClassFacts, FileFacts, ForwardSpec, Param, by_position_or_name, is_input
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES

LEGACY_MODULE_BASES = frozenset({"flax.nn.Module"})


@dataclass(frozen=True)
class LegacyModule:
    qualname: str  # module_name.ClassName
    apply_params: tuple[Param, ...] | None
    module_methods: tuple[str, ...]


@dataclass
class ProjectIndex:
    modules: dict[str, LegacyModule] = field(default_factory=dict)
    # module names of the run's files that reference flax (prefilter)
    flax_modules: set[str] = field(default_factory=set)
    # (module class, apply parameter) -> (module the partial was made of, keywords it fixed),
    # from call sites that pass ``param=<a Module.partial(...)>`` (the ResNet pattern)
    partial_params: dict[tuple[str, str], tuple[str, frozenset[str]]] = field(default_factory=dict)

    def legacy_module(self, qualname: str | None) -> LegacyModule | None:
        return self.modules.get(qualname) if qualname else None

    def is_legacy_module(self, qualname: str | None) -> bool:
        return qualname in LEGACY_MODULE_BASES or qualname in self.modules

    @classmethod
    def build(cls, all_facts: list[FileFacts]) -> ProjectIndex:
        index = cls()
        candidates: dict[str, tuple[list[str], object]] = {}
        defining: dict[str, ClassFacts] = {}  # legacy modules that define apply
        inherits: dict[str, str] = {}  # legacy modules that inherit it -> the base
        for facts in all_facts:
            for c in facts.classes:
                qual = f"{facts.module_name}.{c.name}" if facts.module_name else c.name
                local = {k.name for k in facts.classes}
                bases = [
                    (f"{facts.module_name}.{b}" if facts.module_name else b) if b in local else b
                    for b in c.bases
                ]
                candidates[qual] = (bases, c)
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
        calls: dict[str, list[CallArg]] = {}
        for facts in all_facts:
            for ca in facts.call_args:
                calls.setdefault(ca.callee, []).append(ca)
        _Roles(index, defining, inherits, calls).decide()
        conflicting: set[tuple[str, str]] = set()
        for facts in all_facts:
            for pa in facts.partial_args:
                key = (pa.callee, pa.param)
                value = (pa.target, pa.bound)
                if index.partial_params.setdefault(key, value) != value:
                    conflicting.add(key)  # different partials at different sites: no single type
        for key in conflicting:
            del index.partial_params[key]
        return index


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
    a literal.  Both -> a problem (a TODO).  Arithmetic with an input is
    weak: a scalar hyper-parameter does that too, so it decides only when
    nothing else (a literal default included) says configuration."""

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
        """The legacy parameter names of a module and which are inputs."""
        row = BUILTIN_MODULES.get(callee)
        if row is not None:
            return row.legacy, frozenset(row.inputs)
        if callee not in self.index.modules:
            return None
        params = self.params(callee)
        if params is None:
            return None
        names = tuple(p.name for p in params if p.kind in ("pos", "kwonly"))
        return names, frozenset(p.name for i, p in enumerate(params) if is_input(params, i))

    def _decide(self, qual: str, c: ClassFacts, params: tuple[Param, ...], i: int) -> Param:
        p = params[i]
        if p.kind == "varkw":
            forward = self._forward(qual, c, p)
            return replace(p, forward=forward) if forward else p
        if p.kind == "varargs" or by_position_or_name(params, i):
            return p
        array: list[str] = []
        config: list[str] = []
        arith = False
        for u in c.uses:
            if u.param != p.name:
                continue
            if u.kind == "array":
                array.append("the body uses it as an array (sliced, .shape, a jnp argument)")
            elif u.kind == "config":
                config.append("the body uses it as a Python value (range, an if test, a shape)")
            elif u.kind == "arith":
                arith = True
            elif u.kind == "slot" and u.callee != qual:
                sig = self.signature(u.callee)
                if sig is None:
                    continue
                names, inputs = sig
                name = names[u.slot] if isinstance(u.slot, int) and u.slot < len(names) else u.slot
                short = u.callee.rsplit(".", 1)[-1]
                if name in inputs:
                    array.append(f"the body passes it as the input {name} of {short}")
                elif name in names:
                    config.append(f"the body passes it as {short}'s {name}")
        positional = [q.name for q in params if q.kind == "pos"]
        # call sites of subclasses that inherit this apply count too
        heirs = [h for h in self.inherits if self._definer(h) == qual]
        for ca in [ca for q in (qual, *heirs) for ca in self.calls.get(q, ())]:
            name = positional[ca.slot] if isinstance(ca.slot, int) and ca.slot < len(positional) else ca.slot
            if name == p.name and ca.kind in ("array", "literal"):
                (array if ca.kind == "array" else config).append(
                    "call sites pass it an array" if ca.kind == "array" else "call sites pass it a literal")
        if array and config:
            return replace(p, role="attribute", problem=(
                f"apply parameter {p.name}: {array[0]}, but {config[0]}: make it a call argument "
                "or an attribute by hand"))
        literal_default = p.default is not None and p.default != "None"
        if array or (arith and not config and not literal_default):
            return replace(p, role="input")
        return replace(p, role="attribute")

    def _forward(self, qual: str, c: ClassFacts, p: Param) -> ForwardSpec | None:
        """``**kwargs`` only forwarded into modules of known signature, else None (a TODO)."""
        forwards = [f for f in c.forwards if f.param == p.name]
        own = {q.name for q in c.apply_params or () if q.kind in ("pos", "kwonly")}
        if not forwards or any(ca.via and isinstance(ca.slot, str) and ca.slot not in own | {"name"}
                               for ca in self.calls.get(qual, ())):
            return None  # M.partial(features=3) of a wrapper: the other rules cannot pack it
        keys: set[str] = set()
        inputs: set[str] = set()
        renames: dict[str, str] = {}
        explicit: dict[str, str] = {}
        manual: dict[str, str] = {}
        for f in forwards:
            if f.callee == qual:
                return None
            row = BUILTIN_MODULES.get(f.callee)
            if row is not None:
                if row.features_from_carry or row.linen != f.callee.rsplit(".", 1)[-1] or "mask" in str(row.manual):
                    return None  # a cell (features from the carry), a renamed class, attention masks
                legacy, callee_inputs = row.legacy, set(row.inputs)
                renames.update(row.renames)
                explicit.update(row.explicit)
                manual.update(row.manual)
            else:
                callee = self.params(f.callee) if f.callee in self.index.modules else None
                if callee is None or any(q.kind in ("varargs", "varkw") or q.problem for q in callee):
                    return None
                legacy = tuple(q.name for q in callee if q.kind in ("pos", "kwonly"))
                callee_inputs = {q.name for i, q in enumerate(callee) if is_input(callee, i)}
            bound = set(legacy[: f.positional]) | f.keywords
            keys |= set(legacy) - bound - callee_inputs
            inputs |= callee_inputs - bound
        if keys & inputs:
            return None  # an input of one callee configures another
        return ForwardSpec(tuple(dict.fromkeys(f.callee for f in forwards)), frozenset(keys), frozenset(inputs),
                           tuple(sorted(renames.items())), tuple(sorted(explicit.items())),
                           tuple(sorted(manual.items())))
