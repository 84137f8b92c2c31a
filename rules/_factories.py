"""Functions of the run that return legacy module definitions, for the module
rules: ``norm = model_utils.get_normalizer(kind, train)`` then ``norm(x)``
inside an apply (or a helper function it calls).

The usage analysis (``_usage_analysis``, across files ``_usage_external``)
types what a top-level function returns: a ``DEF`` (one module class with the
keywords a ``.partial`` fixed, in every branch), a ``DEF`` chosen at run time
(``nn.BatchNorm.partial(...)`` in one branch, ``nn.LayerNorm`` in another:
``ModuleRef.choices``) or a ``CONFLICT`` that holds one (a plain function in
other branches).  LU201 turns the returned ``.partial`` into a
``functools.partial`` and LU100 renames the classes, so the function returns
Linen definitions after the run: a call of its result in the legacy form is
split when every branch returns the same definition, and gets a TODO naming
the function otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rule import Context, FastVisitor
from linen_upgrade.rules._factory_branches import Branches, read_branches
from linen_upgrade.rules._modules import CallSpec, spec_for_qual
from linen_upgrade.rules._usage_types import CONFLICT, DEF, Ty


@dataclass(frozen=True)
class Returned:
    """What the function ``name`` (as the call spells it) returns."""

    name: str
    ty: Ty

    @property
    def single(self) -> bool:
        """The same definition in every branch (``DEF``), not a mix (nor definitions of several
        classes, a ``DEF`` chosen at run time: ``ModuleRef.choices``)."""
        return self.ty.kind == DEF and self.ty.ref is not None and not self.ty.ref.choices


class Factories:
    """The top-level functions of the run a file calls that return module definitions."""

    def __init__(self, module: cst.Module, ctx: Context) -> None:
        self.module = module
        self.ctx = ctx
        self._own = None  # this file's analysis, made on first need
        self._functions: set[str] | None = None  # names of this file's functions (not methods)
        self._top: dict[str, cst.FunctionDef] | None = None  # this file's top-level functions
        self._branches: dict[tuple[int, str], Branches | None] = {}  # (function, as called) -> its reading

    def returned(self, func: cst.BaseExpression, qual: str | None, hidden) -> Returned | None:
        """``func`` as called (``get_norm`` or ``model_utils.get_norm``); ``qual``: what it
        resolves to through the imports (None for a name of this file); ``hidden``: the names
        the enclosing functions bind."""
        found = self._function(func, qual, hidden)
        if found is None:
            return None
        a, fn = found
        t = a.rets.get(id(fn))
        if t is None or not (t.kind == DEF or (t.kind == CONFLICT and DEF in t.items)):
            return None
        return Returned(dotted(func) or fn.name.value, t)

    def branches(self, func: cst.BaseExpression, qual: str | None, hidden) -> Branches | None:
        """What the function ``func`` names returns when that is a module definition in some
        branches and another, or a plain function, in others (``_factory_branches``)."""
        name = dotted(func)
        if name is None or name.partition(".")[0] in hidden:
            return None
        if (qual is None and "." not in name) or (qual and qual.rpartition(".")[0] == self.ctx.facts.module_name):
            # a function of this file: read from its tree, no analysis of the file needed
            if self._top is None:
                self._top = _top_level_functions(self.module)
            fn, facts = self._top.get((qual or name).rpartition(".")[2]), self.ctx.facts
        elif qual is None:
            return None
        else:
            found = self._function(func, qual, hidden)
            fn, facts = (found[1], found[0].facts) if found is not None else (None, None)
        if fn is None:
            return None
        if (id(fn), name) not in self._branches:  # each use of a factory asks again
            self._branches[(id(fn), name)] = read_branches(fn, facts, self.ctx.index, name)
        return self._branches[(id(fn), name)]

    def _function(self, func: cst.BaseExpression, qual: str | None, hidden):
        """The analysis of the file that defines the top-level function ``func`` names, and
        the function; None for anything else."""
        name = dotted(func)
        if name is None or name.partition(".")[0] in hidden:
            return None
        from linen_upgrade.rules._usage_external import external_analysis, module_file

        own = self.ctx.facts.module_name
        module, _, name = (qual or name).rpartition(".")
        if qual is None or module == own:  # a function of this file
            a = self._analysis() if not module or module == own else None
        elif module in self.ctx.index.flax_modules and own:
            file = module_file(self.ctx.path, own, module)
            a = external_analysis(file, module, self.ctx.index) if file is not None else None
        else:
            return None
        fn = a.top_level_function(name) if a is not None else None
        return (a, fn) if fn is not None else None

    def is_function(self, func: cst.BaseExpression, qual: str | None) -> bool:
        """Does ``func`` name a function of the run (this file's, at any depth, or a top-level
        one of another file that mentions flax), rather than a module class or a library's?"""
        if qual is None:
            if self._functions is None:
                self._functions = _function_names(self.module)
            return isinstance(func, cst.Name) and func.value in self._functions
        module = qual.rpartition(".")[0]
        return module in self.ctx.index.flax_modules and not self.ctx.index.is_legacy_module(qual)

    def _analysis(self):
        if self._own is None:  # the usage rules' own (``_usage.analysis_of``): theirs when the tree is the same
            from linen_upgrade.rules._usage import analysis_of

            self._own = analysis_of(self.module, self.ctx)
        return self._own


def spec_of(returned: Returned, index) -> CallSpec | None:
    """The call spec of the one definition a function returns, when its class converts."""
    if not returned.single:
        return None
    return spec_for_qual(returned.ty.ref.qual, index)  # type: ignore[union-attr]


def _function_names(module: cst.Module) -> set[str]:
    names: set[str] = set()

    class _Defs(FastVisitor):
        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            for stmt in node.body.body:  # methods are called through self, not by name
                if isinstance(stmt, cst.FunctionDef):
                    stmt.body.visit(self)
            return False

        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            names.add(node.name.value)

    module.visit(_Defs())
    return names


def _top_level_functions(module: cst.Module) -> dict[str, cst.FunctionDef]:
    """The functions a module defines outside functions and classes (the first of a name)."""
    found: dict[str, cst.FunctionDef] = {}

    class _Defs(FastVisitor):
        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            found.setdefault(node.name.value, node)
            return False

    module.visit(_Defs())
    return found
