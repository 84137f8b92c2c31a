"""What the module rules share: which ``apply`` parameters are call inputs,
the Linen field order that follows, and the split of one legacy call
``M(x, 32, name='a')`` into ``M(32, name='a')(x)``.

The definition rule (LU101) and the call rule (LU102) must make the same
choice for a user module, so both take it from :func:`split_params`.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass

import libcst as cst

from linen_upgrade.facts import ForwardSpec, Param, is_input
from linen_upgrade.index import ArgsForward, DefinitionForward
from linen_upgrade.rule import FastTransformer, RuleTransformer
from linen_upgrade.rules._member_names import member_clash
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES, CACHE_USAGE, BuiltinModule
from linen_upgrade.tables.x64 import ATTRIBUTES as X64_ATTRIBUTES
from linen_upgrade.tables.x64 import EXPLICIT as X64_EXPLICIT


@dataclass(frozen=True)
class Split:
    inputs: tuple[Param, ...]
    attrs: tuple[Param, ...]  # in Linen field order: required first, then defaulted
    problem: str | None = None
    # a ``**kwargs`` only forwarded into submodules: one more attribute (last), a dict
    forward: Param | None = None
    # a ``*args`` only forwarded into submodules: one more attribute (before ``forward``), a tuple
    star: Param | None = None
    # the apply parameter holding a module definition that apply inits and calls itself, passing
    # its ``*args``/``**kwargs`` whole (``DefinitionForward``): those stay ``__call__``'s
    definition: str | None = None
    # some module given there draws rngs (``DefinitionForward.rngs``): its apply hands the wrapper's rngs on
    definition_rngs: bool = False


def split_params(params: tuple[Param, ...] | list[Param]) -> Split:
    """Inputs: the first positional parameter always (the first two for a
    cell written ``apply(self, carry, x)``), flags, masks, carries and rngs
    by name (``CALL_ARGUMENT_NAMES``), and what the project index decided
    from the body and the call sites (``Param.role``, ``index.py``); the
    rest are configuration, hence attributes."""
    inputs: list[Param] = []
    attrs: list[Param] = []
    problem = None
    forward = star = definition = None
    rngs = False
    for i, p in enumerate(params):
        if isinstance(p.forward, DefinitionForward):
            definition, rngs = p.forward.definition, p.forward.rngs
        elif p.kind == "varkw" and p.forward is not None:
            forward = p
        elif p.kind == "varargs" and p.forward is not None:
            star = p
        elif p.kind == "varargs":
            problem = (f"apply takes *{p.name}, not only forwarded into submodules whose Linen fields keep "
                       "the legacy positional order (or followed by keyword-only parameters): split it by hand")
        elif p.kind == "varkw":
            problem = (f"apply takes **{p.name}, used otherwise than forwarded into submodules of known "
                       "signature: split it by hand")
        elif p.name == "name":
            # Module.__new__ took name= for the module itself: apply's parameter always held its default
            problem = ("apply takes a parameter `name`, which always held its default (legacy gave name= to the "
                       "module); Linen's name field is the module's name: rename the parameter by hand")
        elif p.role == "collection":
            continue  # neither: LU102 drops it with the batch_stats= it was only ever given to
        elif is_input(params, i):
            inputs.append(p)
        else:
            attrs.append(p)
        problem = problem or p.problem
    if definition is not None and any(p.name == definition for p in inputs):
        problem = problem or (f"apply runs the module definition given as {definition} itself, and {definition} "
                              "stays a call input in Linen (the first positional parameter, or an input by name): "
                              "split it by hand")
    ordered = [a for a in attrs if a.default is None] + [a for a in attrs if a.default is not None]
    fields = [*ordered, *(p for p in (star, forward) if p is not None)]
    problem = problem or next(filter(None, (member_clash(p.name) for p in fields)), None)
    return Split(tuple(inputs), tuple(ordered), problem, forward, star, definition if not problem else None, rngs)


# what the rules other than LU101/LU102 say at a use of a module whose apply runs a definition itself
DEFINITION_PROBLEM = ("apply runs the module definition given as {0} itself ({0}.init, {0}.call); the Linen "
                      "module takes that definition with its attributes, {0}=partial(<module>, <attributes>), "
                      "and its inputs at the call, Wrapper({0}=partial(nn.Dense, features=3))(x): write this use so "
                      "by hand")


@dataclass(frozen=True)
class CallSpec:
    """How one module's legacy call splits (a built-in row or a user module)."""

    legacy: tuple[str, ...]
    inputs: frozenset[str]
    linen_fields: tuple[str, ...]
    linen_call: tuple[str, ...]
    renames: dict
    explicit: dict
    manual: dict
    features_from_carry: str | None = None
    required: int = 1  # leading legacy parameters without a default
    # a wrapper forwarding ``**<forward_attr>``: other keywords are packed into
    # ``<forward_attr>={...}`` (renamed for Linen) or, the callees' inputs, passed at call time
    forward_attr: str | None = None
    forward: ForwardSpec | None = None
    problem: str | None = None  # the module's apply needs a person: its call sites too
    positional: int | None = None  # legacy parameters that can be passed by position (None: all)
    # a wrapper forwarding ``*<star_attr>``: extra positional arguments are packed into
    # ``<star_attr>=(...)``, at most as many as ``star_positions`` (they keep their Linen places)
    star_attr: str | None = None
    star_positions: tuple[str, ...] = ()
    star_rest: tuple[str, ...] = ()  # legacy names of further ones: packed into ``forward_attr`` by name
    # a user apply without ``**kwargs``: legacy raised TypeError for any other keyword (``rejected``)
    closed: bool = False
    # ``Split.definition``: LU102 splits the call with the module given there (``_wrapped_definitions.py``)
    definition: str | None = None
    definition_rngs: bool = False  # ``Split.definition_rngs``
    # every hyper-parameter by keyword: Linen's field order is not apply's (``LegacyModule.derived``)
    by_keyword: bool = False

    def x64_args(self, args: list[cst.Arg]) -> list[cst.Arg]:
        """The x64 attributes this spec holds (``builtin(row, x64=True)``) that ``args`` do not give:
        what one ``.shared`` instance takes, as each of its calls would."""
        given = {a.keyword.value for a in args if a.keyword is not None}
        return [_arg(cst.parse_expression(v), k) for k, v in self.explicit.items()
                if k in X64_ATTRIBUTES and k not in given]

    @classmethod
    def builtin(cls, row: BuiltinModule, x64: bool = False) -> CallSpec:
        """``x64``: the run turns jax's 64-bit floats on (``tables.x64``)."""
        explicit = {**row.explicit, **X64_EXPLICIT.get(row.linen, {})} if x64 else row.explicit
        return cls(row.legacy, frozenset(row.inputs), row.linen_fields, row.linen_call,
                   row.renames, explicit, row.manual, row.features_from_carry, row.required)

    @classmethod
    def user(cls, params: tuple[Param, ...], by_keyword: bool = False) -> CallSpec:
        split = split_params(params)
        legacy = tuple(p.name for p in params if p.kind in ("pos", "kwonly"))
        required = sum(1 for p in params if p.kind == "pos" and p.default is None)
        fields = tuple(a.name for a in split.attrs)
        manual: dict = {}
        forward = split.forward.forward if split.forward is not None else None
        star = split.star.forward if split.star is not None else None
        if split.star is not None:
            fields += (split.star.name,)
        if split.forward is not None:
            fields += (split.forward.name,)
            # the other rules (.partial, .shared, init) know no packing: they leave these to a person
            manual = {k: f"forwarded through **{split.forward.name}: pass it in {split.forward.name}={{...}}"
                      for k in forward.keys}  # type: ignore[union-attr]
        for p in params:
            if p.role == "collection":
                manual[p.name] = USER_COLLECTION
        if "cache" in legacy:
            # LU102 turns the parameter into a ``decode`` attribute and the legacy Cache into
            # Linen's 'cache' collection: a call passing one is restructured by a person
            manual["cache"] = USER_CACHE
        return cls(legacy, frozenset(p.name for p in split.inputs), fields,
                   tuple(p.name for p in split.inputs), {}, {}, manual, required=required,
                   forward_attr=split.forward.name if split.forward is not None else None, forward=forward,
                   problem=split.problem or (DEFINITION_PROBLEM.format(split.definition) if split.definition
                                             else None), positional=sum(1 for p in params if p.kind == "pos"),
                   star_attr=split.star.name if split.star is not None else None,
                   star_positions=star.positions if isinstance(star, ArgsForward) else (),
                   star_rest=star.rest if isinstance(star, ArgsForward) else (), by_keyword=by_keyword,
                   closed=not any(p.kind == "varkw" for p in params), definition=split.definition,
                   definition_rngs=split.definition_rngs)

    def is_legacy_call(self, call: cst.Call, bound: frozenset[str] = frozenset()) -> bool:
        """Does ``call`` (with what a partial ``bound``) bind every required
        legacy parameter?  ``nn.Dense(3)`` (already Linen: ``inputs`` is
        missing) does not."""
        if any(a.star for a in call.args):
            return True  # cannot tell: split_call reports it
        positional = sum(1 for a in call.args if a.keyword is None)
        keywords = {a.keyword.value for a in call.args if a.keyword is not None} | bound
        return all(i < positional or name in keywords for i, name in enumerate(self.legacy[: self.required]))


def _arg(value: cst.BaseExpression | cst.Arg, keyword: str | None = None) -> cst.Arg:
    """An argument; an existing ``Arg`` keeps its comma and the whitespace after it."""
    arg = value if isinstance(value, cst.Arg) else cst.Arg(value=value)
    if keyword is None:
        return arg.with_changes(keyword=None, equal=cst.MaybeSentinel.DEFAULT)
    return arg.with_changes(keyword=cst.Name(keyword),
                            equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                                  whitespace_after=cst.SimpleWhitespace("")))


STAR_CALL_PROBLEM = "the call passes *args/**kwargs: split constructor and call arguments by hand"
# a call passing ``cache=`` to a user module whose ``cache`` parameter LU102 makes ``decode``
USER_CACHE = CACHE_USAGE.removeprefix("cache=: ")
# a call giving a module's parameter that only ever was an explicit state collection (LU101/LU102/LU104 drop it)
USER_COLLECTION = ("an explicit nn.Collection for the module's state has no Linen form: the state lives in the "
                   "'batch_stats' collection (apply(..., mutable=['batch_stats'])); drop it here")


def dropped_collection(value: cst.BaseExpression, enclosing: str | None, index) -> bool:
    """Is ``value`` None, or the parameter of the enclosing legacy class ``enclosing`` that only ever
    was an explicit state collection (LU101 drops it)?  Legacy then kept the state in the
    ``nn.stateful`` collection, as Linen keeps it in ``'batch_stats'``: ``batch_stats=value`` goes."""
    if not isinstance(value, cst.Name):
        return False
    legacy = index.legacy_module(enclosing) if enclosing else None
    return value.value == "None" or legacy is not None and any(
        p.name == value.value and p.role == "collection" for p in legacy.apply_params or ())


def drops_collection(arg: cst.Arg, spec: CallSpec, qual: str | None, enclosing: str | None, index) -> bool:
    """Is ``arg`` (of a ``.partial`` of the module ``qual``) its explicit state collection given a value
    that goes (``dropped_collection``): LU103 drops it, LU102 splits the partial's calls without it."""
    key = arg.keyword.value if arg.keyword is not None and not arg.star else None
    return key is not None and key in spec.manual and (
        spec.manual[key] == USER_COLLECTION or key == "batch_stats" and qual == "flax.nn.BatchNorm") \
        and dropped_collection(arg.value, enclosing, index)


def forwarded_by_definition(call: cst.Call, params: tuple[Param, ...] | None) -> bool:
    """Does ``call`` (in the ``apply`` whose parameters are ``params``) pass only
    ``*args``/``**kwargs`` that the project index found only forwarded?  LU101
    converts such a call together with its class (``args``/``kwargs`` attributes)."""
    forwarded = {("*" if p.kind == "varargs" else "**", p.name) for p in params or () if p.forward is not None}
    stars = [a for a in call.args if a.star]
    return bool(stars) and all(isinstance(a.value, cst.Name) and (a.star, a.value.value) in forwarded
                               for a in stars)


def _dict_commas(entries: list[cst.DictElement]) -> list[cst.DictElement]:
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return [e.with_changes(comma=comma) for e in entries[:-1]] + entries[-1:]


def _last_without_comma(args: list[cst.Arg]) -> list[cst.Arg]:
    return [*args[:-1], args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)] if args else args


def rejected(call: cst.Call, spec: CallSpec) -> list[str]:
    """Keywords of ``call`` that the user module's apply does not take (and no ``**kwargs``
    does): legacy raised TypeError there.  ``split_call`` keeps them as call inputs, so that
    Linen's ``__call__`` raises it too (``LongformerBlock(x, ..., cache=None)`` in a decoder
    nobody ran), where leaving the call legacy would fail differently."""
    if not spec.closed:
        return []
    return [a.keyword.value for a in call.args
            if a.keyword is not None and a.keyword.value != "name" and a.keyword.value not in spec.legacy]


def split_call(call: cst.Call, spec: CallSpec, ctor: cst.BaseExpression,
               extra_ctor: list[cst.Arg] | None = None) -> tuple[cst.BaseExpression | None, str | None]:
    """``M(x, 32, name='a')`` -> ``M(32, name='a')(x)``, or ``(None, why not)``.
    A wrapper forwarding ``**kwargs``: ``W(x, features=3, train=t)`` ->
    ``W(kwargs={'features': 3})(x, train=t)``."""
    if spec.problem:
        return None, spec.problem
    if any(a.star for a in call.args):
        return None, STAR_CALL_PROBLEM
    bound: dict[str, tuple[cst.Arg, bool]] = {}  # legacy name -> (arg, was positional)
    packed: list[tuple[str, cst.Arg]] = []  # forwarded configuration, by Linen name
    forwarded_inputs: list[cst.Arg] = []
    name_arg = None
    positional = [a for a in call.args if a.keyword is None]
    unknown = set(rejected(call, spec))  # Linen's __call__ rejects them as legacy's apply did
    takes = len(spec.legacy) if spec.positional is None else spec.positional
    starred = positional[takes:]  # forwarded through ``*<star_attr>``
    if starred and spec.star_attr is None:
        return None, "more positional arguments than the module's apply takes"
    if len(starred) > len(spec.star_positions) + len(spec.star_rest):
        return None, (f"more than {len(spec.star_positions) + len(spec.star_rest)} positional arguments "
                      f"forwarded through *{spec.star_attr}: the next one has another place in Linen: "
                      "convert by hand")
    # past the positions that keep their Linen places: by legacy name into the forwarded dict
    by_name = list(zip(spec.star_rest, starred[len(spec.star_positions):]))
    starred = starred[:len(spec.star_positions)]
    for name, a in zip(spec.legacy[:takes], positional):
        bound[name] = (a, True)
    for a in call.args:
        if a.keyword is None:
            continue
        key = a.keyword.value
        if key == "name":
            name_arg = a
        elif key in spec.legacy and key not in bound:
            bound[key] = (a, False)
        elif spec.forward is not None and key in spec.forward.inputs:
            forwarded_inputs.append(a)
        elif spec.forward is not None and key in spec.forward.keys:
            packed.append((key, a))
        elif key in unknown:
            forwarded_inputs.append(a)
        else:
            return None, f"unknown or repeated argument {key!r}"
    for key, a in [*by_name, *packed]:
        manual = dict(spec.forward.manual) if spec.forward is not None else {}
        if spec.forward is None or key not in spec.forward.keys:
            return None, f"{key} (forwarded through *{spec.star_attr}) has no place in Linen: convert by hand"
        if key in manual:
            return None, f"{key}: {manual[key]}"
    packed = [(dict(spec.forward.renames).get(k, k), a) for k, a in [*by_name, *packed]]  # type: ignore[union-attr]
    if len({k for k, _ in packed}) < len(packed):
        return None, "an argument forwarded both by position and by keyword"
    for key in bound:
        if key in spec.manual:
            return None, f"{key}: {spec.manual[key]}"

    ctor_args: list[cst.Arg] = list(extra_ctor or [])
    positional_ok = not ctor_args and not spec.by_keyword
    attr_names = [n for n in spec.legacy if n in bound and n not in spec.inputs]
    for k, name in enumerate(attr_names):
        arg, was_pos = bound[name]
        new = spec.renames.get(name, name)
        if positional_ok and was_pos and k < len(spec.linen_fields) and spec.linen_fields[k] == new:
            ctor_args.append(_arg(arg))
        else:
            positional_ok = False
            ctor_args.append(_arg(arg, new))
    given = {spec.renames.get(n, n) for n in attr_names}
    for attr, source in spec.explicit.items():
        if attr not in given:
            ctor_args.append(_arg(cst.parse_expression(source), attr))
    if starred:
        comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        elements = [cst.Element(a.value, comma=comma) for a in starred]
        elements[-1] = elements[-1].with_changes(comma=cst.Comma() if len(starred) == 1 else cst.MaybeSentinel.DEFAULT)
        ctor_args.append(_arg(cst.Tuple(elements), spec.star_attr))
    if spec.forward is not None and spec.forward_attr:
        given = {k for k, _ in packed}
        entries = [cst.DictElement(cst.SimpleString(repr(k)), a.value) for k, a in packed] + [
            cst.DictElement(cst.SimpleString(repr(k)), cst.parse_expression(v))
            for k, v in spec.forward.explicit if k not in given]
        if entries:
            ctor_args.append(_arg(cst.Dict(_dict_commas(entries)), spec.forward_attr))
    if name_arg is not None:
        ctor_args.append(_arg(name_arg, "name"))

    call_args: list[cst.Arg] = []
    positional_ok = True
    for k, name in enumerate(n for n in spec.legacy if n in bound and n in spec.inputs):
        arg, was_pos = bound[name]
        new = spec.renames.get(name, name)
        if positional_ok and was_pos and k < len(spec.linen_call) and spec.linen_call[k] == new:
            call_args.append(_arg(arg))
        else:
            positional_ok = False
            call_args.append(_arg(arg, new))
    call_args.extend(_arg(a, a.keyword.value) for a in forwarded_inputs)  # type: ignore[union-attr]
    inner = cst.Call(func=ctor, args=_last_without_comma(ctor_args))
    return cst.Call(func=inner, args=_last_without_comma(call_args), lpar=call.lpar, rpar=call.rpar), None


def type_of(param: Param) -> str:
    """The annotation of a new dataclass field: given, else from the default's literal."""
    if param.annotation:
        return param.annotation
    d = param.default
    if d in ("True", "False"):
        return "bool"
    if d is None:
        return "Any"
    try:
        value = ast.literal_eval(d)
    except (ValueError, SyntaxError, TypeError):  # not a literal
        return "Any"
    if isinstance(value, bool):
        return "bool"
    for t in (int, float, str):
        if type(value) is t:
            return t.__name__
    return "Any"


def defines_apply(cls: cst.ClassDef) -> bool:
    """Is this class still in legacy form (LU101 has not renamed its ``apply``)?"""
    return any(isinstance(s, cst.FunctionDef) and s.name.value == "apply" for s in cls.body.body)


class SelfAttributes(FastTransformer):
    """Loads of the mapped names become ``self.<attr>``; binding positions,
    attribute names, keywords and names shadowed by a nested function's
    parameters are left."""

    def __init__(self, names: Mapping[str, str]) -> None:
        super().__init__()
        self.names = dict(names)
        self.skip: set[int] = set()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.skip.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.skip.add(id(node.keyword))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.skip.add(id(node.name))
        return not self._shadows(node.params)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return not self._shadows(node.params)

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def _shadows(self, params: cst.Parameters) -> bool:
        names = {p.name.value for p in [*params.params, *params.kwonly_params, *params.posonly_params]}
        return bool(names & set(self.names))

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if original.value in self.names and id(original) not in self.skip:
            return cst.Attribute(value=cst.Name("self"), attr=cst.Name(self.names[original.value]))
        return updated


def is_function_module(transformer: RuleTransformer, fn: cst.FunctionDef) -> bool:
    """``@nn.module def Block(x, ...)``: a legacy module written as a function (left legacy)."""
    return any(transformer.resolve(d.decorator) == "flax.nn.module" for d in fn.decorators)


def spec_for_qual(qual: str | None, index) -> CallSpec | None:
    """The call spec of a legacy module: a built-in row (also for a subclass that only wraps
    ``param``, ``class StdConv(nn.Conv)``: called as its base), or a module of the run."""
    row = BUILTIN_MODULES.get(qual or "")
    if row is None and qual in index.linen_subclasses:
        row = BUILTIN_MODULES[index.builtin_subclasses[qual]]
    if row is not None:
        return CallSpec.builtin(row, index.x64)
    legacy = index.legacy_module(qual)
    if legacy is not None and legacy.apply_params is not None:
        return CallSpec.user(legacy.apply_params, legacy.derived)
    return None


def creates_module(transformer: RuleTransformer, func: cst.BaseExpression) -> bool:
    """Does calling ``func`` make a legacy submodule (a built-in layer or a module of the run)?"""
    qual = transformer.resolve_class(func)
    return spec_for_qual(qual, transformer.ctx.index) is not None or transformer.ctx.index.is_legacy_module(qual)


class LegacyBodyTransformer(RuleTransformer):
    """Knows whether it is inside a legacy module class still in legacy form
    (LU101 renames ``apply`` after the other LU1xx rules have run)."""

    def __init__(self, rule, ctx) -> None:
        super().__init__(rule, ctx)
        self._classes: list[str | None] = []  # qualified name of each enclosing legacy class, else None

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        legacy = any(self.is_legacy_class(b.value) for b in node.bases) and defines_apply(node)
        self._classes.append((self.resolve_class(node.name) or node.name.value) if legacy else None)
        return True

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self._classes.pop()
        return updated

    @property
    def in_legacy_body(self) -> bool:
        return bool(self._classes and self._classes[-1])

    @property
    def legacy_class(self) -> str | None:
        return self._classes[-1] if self._classes else None


def inputs_fixable(qual: str | None, index) -> bool:
    """Can a ``.partial`` of ``qual`` that fixes call inputs become Linen?  For a class of the run
    whose call splits plainly: LU201 writes ``_with_call_inputs(M, k=v)``, a subclass whose
    ``__call__`` takes them under the caller's keywords (legacy ``Module.partial``).  Not for a
    built-in (its Linen call names its inputs otherwise) nor a wrapper packing ``*args``/``**kwargs``."""
    if index.legacy_module(qual) is None:
        return False
    spec = spec_for_qual(qual, index)
    return spec is not None and not spec.problem and spec.forward is None and spec.star_attr is None
