"""Project-wide facts: every legacy module class of the run, across files.

A class is a legacy module when one of its bases resolves to
``flax.nn.Module`` or to another legacy module of the run (a fixed point over
files, so ``class Block(layers.Base)`` in ``models.py`` is found when
``layers.Base`` subclasses ``flax.nn.Module``).  Call sites in other files
need each class's ``apply`` signature to split arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from linen_upgrade.facts import FileFacts, Param

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
                        params = next((index.modules[b].apply_params for b in bases
                                       if b in index.modules), None)
                    index.modules[qual] = LegacyModule(
                        qual, tuple(params) if params is not None else None,
                        tuple(c.module_methods))  # type: ignore[attr-defined]
                    changed = True
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
