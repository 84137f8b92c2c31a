"""The types of the usage analysis (LU201/LU202, ``_usage_analysis``): what
a value of top-level code is -- a legacy module definition (``DEF`` with a
``ModuleRef``), a ``Model`` of one, an optimizer holding one, ``nn.Collection``
state, a tuple, a function, a plain class or its instance -- and how two of
them join (different types: a ``CONFLICT``).
"""

from __future__ import annotations

import functools
from ast import literal_eval
from dataclasses import dataclass, replace

import libcst as cst

# a Model from another file whose module keywords are known only there
ELSEWHERE = "elsewhere"
# a Model handed in by another file, of a module class this file cannot name (no import of it)
UNWRITABLE = "unwritable"
# a Model made with no module, ``nn.Model(None, params)``: a holder of params (an optimizer's target)
NOMODULE = "nomodule"
DEF, MODEL, OPTIM, STATE, TUPLE, FUNC, CONFLICT = "def", "model", "optimizer", "state", "tuple", "func", "conflict"
# a value the analysis cannot type, met where another site gives a legacy value: a conflict holding it
UNKNOWN = "unknown"
# a Model's truncate_at(path) (items: (the literal path or None,)); the Collection of
# nn.capture_module_outputs(); what a Linen init returned; a plain class and its instances
# (func: ("class", id(ClassDef)); an instance of a class of another file: ("foreign", its qualified
# name), items: ((field, Ty), ...) the fields that file gave it)
TRUNC, CAPTURE, VARIABLES, CLASS, INSTANCE = "truncated", "captured", "variables", "class", "instance"
FOREIGN = "foreign"
# the tag (``func[0]``) of a record type that is no class of this file -- ``collections.namedtuple(...)``,
# ``types.SimpleNamespace(...)``, a plain class of another file -- and of its instances: they hold no
# legacy value, so a parameter given one at a call and a Model at another is a CONFLICT (``.params``
# there gets a TODO: on the record it is a field, not the Model's parameters)
RECORD = "record"
# the calls making a record type, and making a record
RECORD_TYPES = frozenset({"collections.namedtuple", "typing.NamedTuple", "dataclasses.make_dataclass"})
RECORDS = frozenset({"types.SimpleNamespace", "argparse.Namespace"})
# what a library made from no legacy value (``tables.libraries``: ``pickle.loads(blob)``,
# ``np.load(path)``, ``argparse.ArgumentParser().parse_args()``): never a Model, so where it meets
# a legacy value (``_OPAQUE_CONFLICTS``) at a parameter, that is a CONFLICT; elsewhere it joins as
# an unknown value does (a function, a class instance, a tuple keep their type)
OPAQUE = "opaque"
_OPAQUE_CONFLICTS = frozenset({DEF, MODEL, OPTIM, STATE, TRUNC, CAPTURE})
# the qual of a module definition known only at run time (``ModuleRef.choices``): no class has this name,
# so every path that looks a class up by its qual (signatures, paths, spelling) finds none and leaves a TODO
RUNTIME = "<module chosen at run time>"


# the class of a Model another file hands in or returns that this file cannot construct (it does not
# import the class, or only that file knows the keywords of its ``.partial``): its params convert as any
# Model's; an apply of it finds no signature for this name (``Usage.constructor``) and leaves a TODO
# (by why: ELSEWHERE, UNWRITABLE or NOMODULE, whose ``conflict_message`` the TODO says)
UNNAMED = {ELSEWHERE: "<a module class configured in another file>",
           UNWRITABLE: "<a module class this file does not import>",
           NOMODULE: "<no module: nn.Model(None, params)>"}


# the legacy Model's type as an annotation names it (``model: nn.Model``)
MODEL_TYPES = frozenset({"flax.nn.Model", "flax.nn.base.Model"})


def unnamed(kind: str, why: str) -> Ty:
    return Ty(kind, ModuleRef(UNNAMED[why], portable=False, file_names=None))


# an entry of a module-level registry of module definitions that its file changes (``Analysis.registry``)
CHANGED_REGISTRY = "changed registry"


# the function LU201 writes into a file for ``M.partial(**kwargs)`` (``_usage_sites``): a partial there
PARTIAL_HELPER = "_module_partial"
# the function LU201 writes into a file for ``fn = M.call``, a legacy method taken as a value
CALL_HELPER = "_module_call"
# the function LU201 writes into a file for ``M.partial(k=v)`` fixing call inputs of a class of the run
INPUTS_HELPER = "_with_call_inputs"


@dataclass(frozen=True)
class ModuleRef:
    """A legacy module definition: the class and what a ``.partial`` fixed."""

    qual: str
    kwargs: tuple[tuple[str, str], ...] = ()  # (keyword, source)
    portable: bool = True  # every fixed value is a literal: the constructor can be written anywhere
    def_var: tuple[int, str] | None = None  # (binding scope, name) of a partial held in a variable
    # a definition chosen at run time (a factory returning partials of several classes, a parameter given
    # them): the definitions it may be (qual RUNTIME); its Linen instance is the value it is bound to
    # (def_var) called, ``module()``, as the partials become functools.partials (LU201)
    choices: tuple[ModuleRef, ...] = ()
    # (binding scope, name) of the optimizer whose target a Model of such a definition is
    # (``optimizer.target``): where the definition is not visible, the TrainState's apply_fn applies it
    opt_var: tuple[int, str] | None = None
    # id of the expression that made such a definition where it is handed over unnamed
    # (``create_model(key, make_module())``): LU202 can bind it to a name there (``Analysis.inline_defs``)
    def_expr: int | None = None
    # (qual, keywords it fixes) of a module-level ``.partial`` of another file (``models.ResNet50 =
    # ResNet.partial(block_cls=..)``) this definition is made from: constructors are spelled through it,
    # so its keywords need not be written here (``kwargs`` holds them too, for the split)
    alias: tuple[str, frozenset[str]] | None = None
    # the module-level names of this file that the keywords' non-literal values are made of
    # (``VAE.partial(latents=FLAGS.latents)``): the constructor can be written wherever they are
    # not shadowed; None when a value reads anything else (a local, a call)
    file_names: frozenset[str] | None = frozenset()
    # (binding scope, receiver name, field) of the instance field holding such a definition (``family.module_def``,
    # ``self.module_def`` in its methods; a field set once): a Model made of it is applied through the field
    # where the same receiver is visible (a method called on that name sees it as its ``self``)
    field_var: tuple[int, str, str] | None = None

    @property
    def held(self) -> bool:
        """Its Linen instance can only be written where a name holding it is visible (or through a
        TrainState carrying it): a run-time choice, or a .partial with keywords only its maker knows."""
        return bool(self.choices) or not self.portable

    def without_var(self) -> ModuleRef:
        return replace(self, def_var=None, opt_var=None, def_expr=None, field_var=None)


def chosen(a: ModuleRef, b: ModuleRef) -> ModuleRef:
    """The definition that is ``a`` or ``b`` depending on the run (no variable: which one holds it is
    decided where it is read, ``Analysis.ty``).  Not portable: it can only be named where it is bound."""
    choices = {c.without_var() for r in (a, b) for c in (r.choices or (r,))}
    return ModuleRef(RUNTIME, portable=False, choices=tuple(sorted(choices, key=repr)), file_names=None)


@dataclass(frozen=True)
class Ty:
    kind: str
    ref: ModuleRef | None = None
    items: tuple = ()
    # FUNC: ("plain", id(def)) | ("same"|"grad"|"vgrad", inner Ty, has_aux, argnums) | ("external", qual)
    #     | ("partial", inner Ty, how many positional arguments functools.partial fixed)
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
        return ("a Model another file hands over, of a module class this file does not import or cannot tell: "
                "apply the Linen module where the class is known, or import it here")
    if NOMODULE in t.items:
        return "a Model made with no module (nn.Model(None, params)): there is nothing to apply"
    if UNKNOWN in t.items:
        return ("a value that some sites give a legacy Model (or definition, or a function this rule follows) "
                "and others a value this rule cannot trace")
    return "a value that holds different legacy models (or a Model and something else) at different call sites"


def _legacy(t: Ty | None) -> bool:
    """Does ``t`` hold a legacy value that an OPAQUE one joined to it conflicts with?"""
    if t is None:
        return False
    if t.kind == TUPLE:
        return any(_legacy(i) for i in t.items)
    return t.kind in _OPAQUE_CONFLICTS or t.kind == CONFLICT and bool(_OPAQUE_CONFLICTS & set(t.items))


# what a value of no type met at another site makes unknown (``Analysis._solve``): a value a rewrite is made
# for (a Model, its definition or optimizer, a function followed into) must not reach the other value.
# Not collection state, whose uses get a TODO of their own as long as it is typed.
_REWRITTEN = frozenset({DEF, MODEL, OPTIM, TRUNC, FUNC})


def untraced(t: Ty | None) -> bool:
    """Is ``t`` of a kind that a value of no type joined to it makes unknown?"""
    if t is None:
        return False
    if t.kind == TUPLE:
        return any(untraced(i) for i in t.items)
    return t.kind in _REWRITTEN


def join(a: Ty | None, b: Ty | None) -> Ty | None:
    if a is None:
        return b
    if b is None or a == b:
        return a
    if OPAQUE in (a.kind, b.kind):
        other = b if a.kind == OPAQUE else a
        if not _legacy(other):
            return other
    if a.kind == b.kind == TUPLE and len(a.items) == len(b.items):
        return Ty(TUPLE, items=tuple(join(x, y) for x, y in zip(a.items, b.items)))
    if a.kind == b.kind and a.kind in (MODEL, OPTIM) and (a.ref is None) != (b.ref is None):
        # an optimizer of a Model not typed (yet): in a cycle (model = optimizer.target) the
        # analysis meets it before the Model's type arrives; the known one stands for both
        return a if a.ref is not None else b
    if a.kind == b.kind and a.ref and b.ref and a.ref.without_var() == b.ref.without_var() and a.items == b.items:
        return Ty(a.kind, a.ref.without_var(), a.items)
    if a.kind == b.kind and a.kind in (DEF, MODEL) and a.ref and b.ref and a.items == b.items == ():
        # definitions, or Models, of different classes (``mask_of(model_a)``, ``mask_of(model_b)``; classes
        # another file hands in unnamed too): of a definition chosen at run time; a Model's params convert,
        # an apply finds no name holding its definition (a TODO)
        return Ty(a.kind, chosen(a.ref, b.ref))
    if a.kind == b.kind and a.kind in (STATE, CAPTURE, VARIABLES):
        return Ty(a.kind)  # a collection of one of several models: its paths cannot be translated
    return conflict(*(a.items if a.kind == CONFLICT else (a.kind,)), *(b.items if b.kind == CONFLICT else (b.kind,)))


def unwrap_func(t: Ty | None) -> Ty | None:
    """The function a ``jit``/``pmap``/``grad`` wrapper runs (its parameters are the wrapper's)."""
    while t is not None and t.kind == FUNC and t.func[0] in ("same", "grad", "vgrad"):
        t = t.func[1]
    return t


def string_value(node: cst.SimpleString) -> str | bytes:
    """``node.evaluated_value`` (``ast.literal_eval`` of its text), kept per text: the usage rules read
    the same keys (``x['params']``, ``'/Dense_0'``) at every subscript, and each reading parses it."""
    return _evaluated(node.value)


@functools.lru_cache(maxsize=4096)
def _evaluated(text: str) -> str | bytes:
    return literal_eval(text)
