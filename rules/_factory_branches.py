"""Functions of the run that return a module definition in some branches and
something else in others (init2winit's ``get_normalizer``: ``nn.BatchNorm.partial(...)``,
``nn.LayerNorm``, or a local ``def identity(x, name=None)``), for LU102.

Legacy code calls what such a function returns one way, ``norm(x, name='bn1')``;
Linen definitions are called in two steps, ``norm(name='bn1')(x)``.  The usage
rules make each returned ``.partial`` a ``functools.partial`` (LU201) and LU100
renames the classes; LU102 wraps each returned plain function ``f`` as
``functools.partial(functools.partial, f)``, so that ``norm(name='bn1')(x)``
runs ``f(x, name='bn1')``, and splits each call of the result when every
branch splits it alike (``split_alike``).

The factory's file and the files calling it are rewritten apart, each from its
own reading: both read the function's body alone (``read_branches``, syntax and
the factory file's imports only), so both make the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import libcst as cst

from linen_upgrade.facts import FileFacts
from linen_upgrade.resolve import dotted
from linen_upgrade.rule import FastVisitor
from linen_upgrade.rules._cst import build_dotted, code
from linen_upgrade.rules._fixed_inputs import FunctionScan
from linen_upgrade.rules._modules import STAR_CALL_PROBLEM, spec_for_qual, split_call

# legacy parameters whose calls LU102 rebuilds beyond the split (attention masks and axes, a cache)
_REBUILT = frozenset({"causal_mask", "attention_axis", "cache"})


@dataclass(frozen=True)
class Branches:
    """What a top-level function returns in each branch, read from its body alone."""

    name: str  # the function, as the call spells it
    defs: tuple[tuple[str, frozenset[str]], ...]  # (class, keywords its .partial fixes): each distinct one
    plain: tuple[int, ...]  # the ``return`` statements that return a plain function (ids in its own tree)


def read_branches(fn: cst.FunctionDef, facts: FileFacts, index, name: str) -> Branches | None:
    """The branches of ``fn`` (a top-level function of the file ``facts`` describes) when
    each ``return`` gives a module definition whose class converts (``nn.LayerNorm``,
    ``nn.BatchNorm.partial(momentum=0.9)``: keywords that are Linen attributes) or a plain
    function (a ``def`` of its own bound once, a ``lambda``), and they are not all one
    definition (LU102 follows those through ``Factories.returned``); None otherwise."""
    found = _Returns()
    fn.body.visit(found)
    if found.other or not found.returns:
        return None
    defs: list[tuple[str, frozenset[str]]] = []
    plain: list[int] = []
    heads: set[str] = set()  # the names the definitions are spelled from (``nn``)
    for ret in found.returns:  # by syntax first: most functions are ruled out here, with no scan
        value = ret.value
        if isinstance(value, cst.Lambda) or (isinstance(value, cst.Name) and value.value in found.defs):
            plain.append(id(ret))
            continue
        made = _definition(value, facts, index)
        if made is None:
            return None
        heads.add(made[2])
        if made[:2] not in defs:
            defs.append(made[:2])
    if not defs or (len(defs) == 1 and not plain):
        return None
    if _yields(fn):
        return None
    scan = FunctionScan(fn)
    local = scan.params | set(scan.bindings)
    own = [r.value.value for r in found.returns if id(r) in plain and isinstance(r.value, cst.Name)]
    if heads & local or any(len(scan.bindings.get(f, [])) != 1 or f in scan.params for f in own):
        return None  # a module name the function binds itself; a function of its own bound again
    if plain and {"partial", "functools"} & local:
        return None  # (where it binds either name, the wrapper's spelling could be hidden)
    return Branches(name, tuple(defs), tuple(plain))


def _definition(value: cst.BaseExpression | None, facts: FileFacts,
                index) -> tuple[str, frozenset[str], str] | None:
    """``M`` or ``M.partial(k=v, ...)`` of a legacy module class that converts: its class, the
    keywords fixed and the name its spelling starts with; None for anything else (a keyword
    Linen takes at the call, ``**``)."""
    keywords: frozenset[str] = frozenset()
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value == "partial":
        if any(a.keyword is None or a.star for a in value.args):
            return None
        keywords = frozenset(a.keyword.value for a in value.args)  # type: ignore[union-attr]
        value = value.func.value
    name = dotted(value) if value is not None else None
    if name is None:
        return None
    qual = facts.imports.resolve_dotted(name)
    if qual is None and "." not in name and any(c.name == name for c in facts.classes):
        qual = f"{facts.module_name}.{name}" if facts.module_name else name
    spec = spec_for_qual(qual, index)
    if qual is None or spec is None or spec.problem or keywords & spec.inputs:
        return None
    return qual, keywords, name.partition(".")[0]


class _Returns(FastVisitor):
    """The ``return`` statements of one function (not of the functions it defines), and the
    names of the functions it defines; ``other``: a bare ``return``.  Statements only: a
    ``yield`` is looked for apart (``_yields``), where the returns qualify."""

    def __init__(self) -> None:
        super().__init__()
        self.returns: list[cst.Return] = []
        self.defs: set[str] = set()
        self.other = False

    def on_visit(self, node: cst.CSTNode) -> bool:
        return not isinstance(node, cst.BaseExpression) and super().on_visit(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        if not node.decorators:
            self.defs.add(node.name.value)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is None:
            self.other = True
        else:
            self.returns.append(node)


def _yields(fn: cst.FunctionDef) -> bool:
    """Is ``fn`` a generator (a ``yield`` outside the functions and lambdas it defines)?"""
    found: list[cst.Yield] = []

    class _Find(FastVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if isinstance(node, cst.Yield):
                found.append(node)
            return not isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)) and super().on_visit(node)

    fn.body.visit(_Find())
    return bool(found)


def wrap_plain(value: cst.BaseExpression, partial: str) -> cst.Call:
    """``identity`` -> ``partial(partial, identity)`` (``partial``: how the file spells
    ``functools.partial``): called ``f(name='bn1')`` it gives ``partial(identity,
    name='bn1')``, which the input then runs as legacy did, ``identity(x, name='bn1')``."""
    return cst.Call(func=build_dotted(partial), args=[
        cst.Arg(build_dotted(partial), comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
        cst.Arg(value)])


def split_alike(call: cst.Call, branches: Branches, index,
                adapt) -> tuple[cst.Call | None, str | None]:
    """``norm(x, name='bn1')`` -> ``norm(name='bn1')(x)`` when every definition ``branches``
    returns splits it into the same constructor and call arguments (``adapt``: the
    initializer wrapping of one class's split) and, where a plain function may be returned,
    the split only moves keywords, unrenamed, to the constructor (the positional inputs stay
    in order in the call): ``functools.partial(f, **attributes)(*inputs, **rest)`` is then
    the legacy ``f(...)``.  Else ``(None, why not)``."""
    if any(a.star for a in call.args):
        return None, STAR_CALL_PROBLEM
    splits: list[tuple[str, cst.Call]] = []  # (class, its split)
    for qual, bound in branches.defs:
        short = qual.rpartition(".")[2]
        spec = spec_for_qual(qual, index)
        assert spec is not None  # read_branches checked it
        if spec.features_from_carry or _REBUILT & set(spec.legacy):
            return None, f"{short} calls are rebuilt beyond the split"
        if not spec.is_legacy_call(call, bound):
            return None, f"the call does not give {short} its inputs"
        if bound:
            spec = replace(spec, explicit={k: v for k, v in spec.explicit.items() if k not in bound})
        new, problem = split_call(call, spec, call.func)
        if new is None:
            return None, f"{short}: {problem}"
        splits.append((short, adapt(new, spec, qual)))
    if len({_shape(new) for _, new in splits}) > 1:
        return None, "the modules it returns split this call differently (" + ", ".join(
            f"{short}: {_shape(new)}" for short, new in splits) + ")"
    new = splits[0][1]
    if branches.plain and not _same_call(call, new):
        return None, (f"the plain function it returns in some branches would be called with other arguments "
                      f"than the Linen split gives the modules ({_shape(new)})")
    return new, None


def _shape(new: cst.Call) -> str:
    inner = new.func
    assert isinstance(inner, cst.Call)
    return f"({', '.join(code(a).strip(', ') for a in inner.args)})({', '.join(code(a).strip(', ') for a in new.args)})"


def _same_call(call: cst.Call, new: cst.Call) -> bool:
    """Does ``partial(f, *ctor)(*inputs)`` call ``f`` as ``call`` did: the constructor by
    keyword only, the positional arguments the same in the same order, the same keywords?"""
    inner = new.func
    assert isinstance(inner, cst.Call)
    if any(a.keyword is None for a in inner.args):
        return False

    def positional(args):
        return [code(a.value) for a in args if a.keyword is None]

    def keywords(args):
        return sorted((a.keyword.value, code(a.value)) for a in args if a.keyword is not None)

    return positional(call.args) == positional(new.args) and keywords(call.args) == keywords(
        [*inner.args, *new.args])


def assignments(fn: cst.FunctionDef) -> dict[str, list[cst.Assign]]:
    """The plain ``name = ...`` statements of ``fn`` (not of the functions it defines), by name."""
    found: dict[str, list[cst.Assign]] = {}

    class _Assigns(FastVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
                found.setdefault(node.targets[0].target.value, []).append(node)

        def on_visit(self, node: cst.CSTNode) -> bool:
            return not isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)) and super().on_visit(node)

    fn.body.visit(_Assigns())
    return found


def union(all_branches: list[Branches]) -> Branches:
    """One reading for a local bound to the results of several such functions: a call of
    it splits when it splits alike for every definition any of them returns."""
    first = all_branches[0]
    defs = tuple(dict.fromkeys(d for b in all_branches for d in b.defs))
    return replace(first, defs=defs, plain=tuple(p for b in all_branches for p in b.plain))
