"""Legacy module paths -> Linen paths for the usage rules (LU202): legacy
``nn.Collection`` keys (``state['/Block_4/Dense_0']``), ``truncate_at`` and
captured outputs name submodules by one counter per parent, Linen by one
per class; the order in which a module's ``apply`` creates its submodules
(``children``, read across files) renames them as checkpoint keys are
(``keys.linen_module_path``).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import libcst as cst

from linen_upgrade.keys import linen_module_path, state_key_to_path
from linen_upgrade.resolve import dotted
from linen_upgrade.rule import FastVisitor
from linen_upgrade.rules._usage_external import external_analysis, module_file
from linen_upgrade.rules._usage_types import string_value
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES

if TYPE_CHECKING:
    from linen_upgrade.rules._usage_analysis import Analysis
    from linen_upgrade.rules._usage_types import ModuleRef

# calls that read only the leaves of a legacy Collection.as_dict() (the checkpoint formats
# keep what they are given: the upgraded program writes and reads Linen's nested keys)
LEAF_READERS = frozenset({
    "jax.tree_util.tree_leaves", "jax.tree_leaves", "jax.tree_util.tree_reduce", "jax.tree_reduce",
    "jax.tree_util.tree_flatten", "jax.tree_flatten", "flax.serialization.to_bytes",
    "flax.serialization.to_state_dict", "flax.serialization.msgpack_serialize",
})
# what a legacy nn.Collection offered besides being passed to nn.stateful
COLLECTION_METHODS = frozenset({"as_dict", "mutate", "retrieve", "store"})


def legacy_key(node: cst.Subscript) -> str | None:
    """``x['/Block_4/Dense_0']``: a legacy Collection key (a module path)."""
    key = node.slice[0].slice if len(node.slice) == 1 else None
    if isinstance(key, cst.Index) and isinstance(key.value, cst.SimpleString):
        value = string_value(key.value)
        if isinstance(value, str) and value.startswith("/"):
            return value
    return None


# legacy class-name prefixes -> the Linen class the module rules write (ConvLSTM -> ConvLSTMCell)
_CLASS_ALIASES = {q.rpartition(".")[2]: row.linen for q, row in BUILTIN_MODULES.items()
                  if q.rpartition(".")[2] != row.linen and q != "flax.nn.SelfAttention" and q != "flax.nn.dropout"}
# a submodule of a class the order reading cannot name (a partial, a module handed in)
ANY_CLASS = "?"
# a .shared() module without a name: legacy named it by the parent's counter alone ('0'), Linen by its class
SHARED = "0"
# built-ins that are functions in legacy flax (no name, no counter)
_LEGACY_FUNCTIONS = frozenset({"flax.nn.dropout"})
# nodes whose body runs a number of times known only at run time
_RUN_TIME = (cst.For, cst.While, cst.If, cst.IfExp, cst.Try, cst.Lambda, cst.FunctionDef, cst.ListComp,
             cst.SetComp, cst.DictComp, cst.GeneratorExp, cst.BooleanOperation)


def renumbered(a: Analysis, prefix: str) -> bool:
    """Can a legacy auto-name ``<prefix>_<n>`` (n > 0) name another submodule in Linen?  Where some
    module class of this file creates submodules of two classes without a name, one of them
    ``prefix`` (or of a class it cannot name): legacy counted them together, Linen per class."""
    return any(len(unnamed - {SHARED}) > 1 and (prefix in unnamed or ANY_CLASS in unnamed)
               for unnamed in unnamed_submodules(a))


def numbered_shared(a: Analysis) -> bool:
    """Does a legacy module class here make a ``.shared()`` module without a name (whose params
    legacy kept under a bare number, ``params['0']``)?"""
    return any(SHARED in unnamed for unnamed in unnamed_submodules(a))


# Analysis -> unnamed_submodules(a): asked for each auto-name key of a file
_UNNAMED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def unnamed_submodules(a: Analysis) -> list[set[str]]:
    """Per legacy module class of this file and of the run's files it imports (directly or through
    others: ``models.Net`` built of ``layers.Block``), the auto-name prefixes of the submodules its
    apply creates unnamed."""
    if a in _UNNAMED:
        return _UNNAMED[a]
    found = _UNNAMED[a] = []
    for owner in (a, *(_imported_analyses(a) or _all_legacy_analyses(a))):
        for name, node in owner.class_nodes.items():
            apply = next((f for f in node.body.body if isinstance(f, cst.FunctionDef)
                          and f.name.value == "apply"), None)
            if apply is not None:
                finder = _Children(owner, apply, owner.class_qual(name))
                apply.body.visit(finder)
                found.append(finder.unnamed)
    return found


def _imported_analyses(a: Analysis) -> list[Analysis]:
    """The analyses of the run's files defining legacy module classes that ``a``'s file imports,
    transitively: params read by auto-name here may be a Model's of a class defined there."""
    legacy = {q.rpartition(".")[0] for q in a.index.modules}
    seen = {a.facts.module_name}
    stack, found = [a], []
    while stack:
        here = stack.pop()
        for module in sorted(here.facts.imports.imported_modules & legacy - seen):
            seen.add(module)
            file = module_file(here.path, here.facts.module_name, module) if here.path else None
            other = external_analysis(file, module, a.index) if file is not None else None
            if other is not None:
                found.append(other)
                stack.append(other)
    return found


def _all_legacy_analyses(a: Analysis) -> list[Analysis]:
    """For a file without flax that imports no legacy file of the run (a helper handed params by
    the caller, ``count(params): params['Dense_2']``), the analyses of every file of the run that
    defines legacy module classes: the params it reads may be a Model's of any of them."""
    if a.facts.references("flax") or not a.path:
        return []
    found = []
    for module in sorted({q.rpartition(".")[0] for q in a.index.modules} - {a.facts.module_name}):
        file = module_file(a.path, a.facts.module_name, module)
        other = external_analysis(file, module, a.index) if file is not None else None
        if other is not None:
            found.append(other)
    return found


def _named(call: cst.Call) -> cst.BaseExpression | None:
    return next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "name"), None)


def children(a: Analysis, qual: str) -> tuple[list[tuple[str, str]], set[str]] | None:
    """The legacy names of the submodules ``qual``'s apply creates, in order,
    with their classes, and the explicit names; None where a loop, a
    condition, a module passed in, ``.partial``/``.shared`` or a helper
    method makes the order a matter of run time."""
    if qual in BUILTIN_MODULES:
        return [], set()
    module, _, name = qual.rpartition(".")
    owner: Analysis | None = a
    if module != (a.facts.module_name or ""):
        file = module_file(a.path, a.facts.module_name, module) if a.path else None
        owner = external_analysis(file, module, a.index) if file is not None else None
    node = owner.class_nodes.get(name) if owner is not None else None
    if owner is None or node is None:
        return None
    apply = next((f for f in node.body.body if isinstance(f, cst.FunctionDef) and f.name.value == "apply"), None)
    if apply is None:
        return None
    finder = _Children(owner, apply)
    apply.body.visit(finder)
    return None if finder.unknown else (finder.names, finder.explicit)


def linen_path(a: Analysis, ref: ModuleRef | None, legacy: str) -> tuple[str, ...] | None:
    """``'/Block_4/Dense_0'`` in a legacy ``ref`` -> the Linen names (per-class numbering)."""
    if ref is None:
        return None
    quals: dict[tuple[str, ...], str] = {(): ref.qual}

    def level(prefix: tuple[str, ...]):
        found = children(a, quals[prefix]) if prefix in quals else None
        if found is None:
            return None
        names, explicit = found
        for child, child_qual in names:
            quals[(*prefix, child)] = child_qual
        return [n for n, _ in names], explicit

    return linen_module_path(state_key_to_path(legacy), level, class_aliases=_CLASS_ALIASES)


class _Children(FastVisitor):
    """Legacy auto-names of the submodules one ``apply`` creates: one counter per
    parent shared by all classes, explicit ``name=`` outside it (keys.py)."""

    def __init__(self, a: Analysis, apply: cst.FunctionDef, owner: str | None = None) -> None:
        super().__init__()
        self.a = a
        self.owner = owner  # the class's qualified name, where parameters holding modules are looked up
        # apply's parameters -> their defaults: one given a function (activation=nn.tanh) makes no submodule
        self.defaults = {p.name.value: p.default for p in [*apply.params.params, *apply.params.kwonly_params,
                                                           *apply.params.posonly_params]}
        self.names: list[tuple[str, str]] = []
        self.explicit: set[str] = set()
        self.unknown = False
        # the auto-name prefixes of the submodules created without a name (ANY_CLASS: one it cannot name),
        # wherever they are created (loops and conditions too)
        self.unnamed: set[str] = set()
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

    def _may_hold_module(self, local: str) -> bool:
        """Any local but a parameter whose default is no module and that no call site gives one
        (``activation=nn.tanh``; the index records ``block=Block.partial(...)``)."""
        if local not in self.defaults:
            return True
        if self.owner is not None and ((self.owner, local) in self.a.index.partial_params
                                       or (self.owner, local) in self.a.index.ambiguous_params
                                       or (self.owner, local) in self.a.index.untraced_params):
            return True
        default = self.defaults[local]
        name = dotted(default) if default is not None else None
        return default is None or name is None or self.a.is_module_class(
            self.a.facts.imports.resolve_dotted(name))

    def leave_Call(self, node: cst.Call) -> None:
        """A submodule runs (and takes its name) when it is applied: ``nn.Dense(x, 3)``
        in legacy code, ``nn.Dense(3)(x)`` once the module rules split it."""
        if id(node) in self.ctors:
            return
        # f(...)(x): a module that f makes (``masked(nn.Conv, mask)(x)``) unless f is a module class
        made = None if not isinstance(node.func, cst.Call) or _named(node) else node
        if isinstance(node.func, cst.Call):
            node = node.func
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("partial", "shared"):
            self.unknown = True
            self.unnamed.add(ANY_CLASS)
            if func.attr.value == "shared" and _named(node) is None:
                self.unnamed.add(SHARED)
            return
        name = dotted(func)
        if name is None:
            return
        if self.a.facts.imports.resolve_dotted(name) == "functools.partial":
            self.unknown = True
            self.unnamed.add(ANY_CLASS)
            return
        head = name.split(".")[0]
        if (head in self.locals and "." not in name) or head == "self":
            self.unknown = True  # a module handed in, or a module method creating shared modules
            if head == "self" or self._may_hold_module(head):
                self.unnamed.add(ANY_CLASS)
            return
        local = self.a.class_nodes.get(name)
        qual = self.a.class_qual(name) if local is not None else self.a.facts.imports.resolve_dotted(name)
        if qual in _LEGACY_FUNCTIONS or not self.a.is_module_class(qual):
            if made is not None and not (qual or "").startswith("flax."):  # nn.Dropout(...)(x): legacy's function
                self.unnamed.add(ANY_CLASS)
            return
        given = _named(node)
        if made is None and id(node) not in self.ctors and not any(a.keyword is None for a in node.args):
            # Ctor(attrs) kept for later calls: what LU103 made of a .shared() module, shared by its calls
            self.unknown = True
            self.unnamed.update({ANY_CLASS, SHARED} if given is None else {ANY_CLASS})
            return
        prefix = "MultiHeadDotProductAttention" if qual == "flax.nn.SelfAttention" else qual.rpartition(".")[2]
        if given is None:
            self.unnamed.add(prefix)
        if self.depth:
            self.unknown = True
            return
        if given is not None:
            if not isinstance(given, cst.SimpleString):
                self.unknown = True
                return
            self.names.append((given.evaluated_value, qual))
            self.explicit.add(given.evaluated_value)
            return
        self.names.append((f"{prefix}_{len(self.names) - len(self.explicit)}", qual))
