"""LU106 nn_functions: ``flax.nn`` array functions Linen dropped -> flax 0.3.6's own copy in the file.

What it does
    Replaces each use of ``flax.nn.attention.make_padding_mask``,
    ``_make_causal_mask`` and ``_invert_perm`` (any spelling the file's
    imports give: ``nn.attention.make_padding_mask``, ``attention._make_causal_mask``,
    ``from flax.nn.attention import make_padding_mask``) with
    ``_legacy_make_padding_mask`` & co., a copy of flax 0.3.6's function added
    once to the file, after its imports; an import of the legacy name that
    nothing uses any more is dropped (kept, with LU100's TODO, where another
    file of the run imports the name from this one).  The copies live in
    ``linen_upgrade/tables/nn_functions.py``.  A call of legacy
    ``dot_product_attention`` (attention over any axes, ``dtype`` before
    ``bias``) gets its copy too; in a module, where legacy drew a missing
    ``dropout_rng`` from ``nn.stochastic``, the copy gets ``make_rng=lambda:
    self.make_rng('dropout')`` for it; in a top-level function that only
    legacy modules call, ``make_rng=make_rng``, the keyword-only parameter
    LU104 gives it and its module callers fill.  As a value (``attention_fn=``) it is
    Linen's, which Linen attention calls in Linen's form (LU100).
Why
    Copied attention code called these pure functions of arrays and shapes;
    current Flax has none of them, and ``nn.make_attention_mask`` /
    ``nn.make_causal_mask`` compute the same only for some arguments.
Safe because
    The copy is the legacy code itself, so every argument gives what it gave
    (``tests/test_nn_functions.py`` runs both on masks of every form).  Names
    resolve through imports and scopes: a local ``make_padding_mask`` stays.
    Where the file binds the copy's name to something else, the use stays
    with a TODO.
Not converted (TODO)
    A ``dot_product_attention`` call outside modules (and their helpers) whose
    dropout may be on and whose ``dropout_rng`` may be None (none passed, or a
    parameter of the function), or one with ``*args``/``**kwargs``.
"""

from __future__ import annotations

import inspect

import libcst as cst

from linen_upgrade.resolve import canonical, dotted
from linen_upgrade.rule import Context, Example, FastVisitor, NoChange, Rule, RuleTransformer
from linen_upgrade.rules._cst import code, drop_from_imports, kwarg, named_params, names_in
from linen_upgrade.rules._fixed_inputs import append_keywords
from linen_upgrade.rules._optim_edit import insert_helpers
from linen_upgrade.tables.nn_functions import ATTENTION_PARAMS, NN_FUNCTIONS

_INVERT_PERM = inspect.getsource(NN_FUNCTIONS["flax.nn._invert_perm"])  # the shortest copy, for the example
_ATTENTION = "flax.nn.dot_product_attention"


class NnFunctions(Rule):
    id = "LU106"
    summary = "flax.nn functions Linen dropped (make_padding_mask, _make_causal_mask, ...) -> flax 0.3.6's copy"
    examples = [
        Example(
            "from flax.nn.attention import _invert_perm, Cache\n\nback = _invert_perm(perm)\n",
            "from flax.nn.attention import Cache\n\n\n" + _INVERT_PERM
            + "\n\nback = _legacy_invert_perm(perm)\n",
            name="copied once, import dropped",
        ),
        NoChange("def make_padding_mask(q, k):\n    return q * k\n\nmask = make_padding_mask(a, b)\n",
                 name="a function of the file's own"),
    ]

    def transformer(self, ctx: Context) -> RuleTransformer:
        return _Transformer(self, ctx)


class _Transformer(RuleTransformer):
    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__(rule, ctx)
        self._not_uses: set[int] = set()  # Names that name nothing: attributes, keywords, definitions
        self._copied: dict[str, str] = {}  # name of a copy the file needs -> its source
        self._left: set[str] = set()  # first names of the legacy uses left as they were
        self._names: set[str] = set()
        self._called: dict[int, cst.Call] = {}  # the function of a call -> the call
        self._classes: list[bool] = []  # per enclosing class: a legacy module?
        self._draws: set[int] = set()  # calls of the attention copy that take the module's make_rng
        self._params: list[set[str]] = []  # per enclosing function: the names of its parameters
        # the top-level function being read, when only legacy modules call it: LU104 gives it their
        # ``make_rng`` (``index.rng_helpers``), which the copy then draws a missing rng from
        self._helper = False

    def visit_Module(self, node: cst.Module) -> bool:
        self._names = names_in(node)
        return super().visit_Module(node)

    # -- dot_product_attention -------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        self._called[id(node.func)] = node

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._not_uses.add(id(node.name))
        self._classes.append(any(self.is_legacy_class(b.value) for b in node.bases))

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self._classes.pop()
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        if id(original) in self._draws:  # in a module: a missing dropout_rng is the module's
            updated = append_keywords(updated, [kwarg("make_rng", cst.parse_expression(
                "make_rng" if self._helper else "lambda: self.make_rng('dropout')"))])
        return updated

    def _attention_problem(self, call: cst.Call) -> str | None:
        """Why the copy cannot stand in for this call of legacy ``dot_product_attention`` (None when
        it can): legacy drew a missing ``dropout_rng`` from ``nn.stochastic``, which only a module's
        ``self.make_rng('dropout')`` gives in Linen (``self._draws``)."""
        if any(a.star for a in call.args):
            return "called with *args/**kwargs: convert it by hand"
        given = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        given.update(zip(ATTENTION_PARAMS, [a.value for a in call.args if a.keyword is None]))
        rate, deterministic = given.get("dropout_rate"), given.get("deterministic")
        off = (rate is None or code(rate) in ("0", "0.", "0.0")
               or (isinstance(deterministic, cst.Name) and deterministic.value == "True"))
        if off:
            return None
        if (self._classes and self._classes[-1]) or self._helper:
            self._draws.add(id(call))
            return None
        rng = given.get("dropout_rng")
        if rng is None or (isinstance(rng, cst.Name) and (rng.value == "None" or any(
                rng.value in params for params in self._params))):  # a parameter may hold None
            return ("legacy drew a missing dropout rng from nn.stochastic, which is gone, and this call "
                    "may have none: pass a key (outside a module there is no self.make_rng('dropout'))")
        return None

    # -- what is not a use -----------------------------------------------------
    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._not_uses.add(id(node.keyword))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._not_uses.add(id(node.name))
        if not self._params and not self._classes:
            self._helper = self.ctx.index.rng_helper(self.ctx.facts.module_name, node.name.value)
        self._params.append({p.name.value for p in named_params(node.params)})

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self._params.pop()
        self._helper = self._helper and bool(self._params)
        return updated

    def visit_Param(self, node: cst.Param) -> None:
        self._not_uses.add(id(node.name))

    def visit_AsName(self, node: cst.AsName) -> None:
        self._not_uses.add(id(node.name))

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self._not_uses.add(id(node.attr))
        return dotted(node) is None  # a whole Name/Attribute chain is one use, handled at its top

    # -- uses ------------------------------------------------------------------
    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        return self._use(original, updated) if dotted(original) else updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        return updated if id(original) in self._not_uses else self._use(original, updated)

    def _use(self, original: cst.Name | cst.Attribute, updated: cst.BaseExpression) -> cst.BaseExpression:
        qual = self.resolve(original)
        function = NN_FUNCTIONS.get(qual or "")
        if function is None:
            return updated
        if qual == _ATTENTION:
            if id(original) not in self._called:  # a value (attention_fn=...): Linen's has its calling form
                self._left.add(dotted(original).partition(".")[0])  # type: ignore[union-attr]
                return updated
            why = self._attention_problem(self._called[id(original)])
            if why:
                self.todo(f"{qual}: {why}")
                self._left.add(dotted(original).partition(".")[0])  # type: ignore[union-attr]
                return updated
        name = function.__name__
        source = inspect.getsource(function)
        if name in self._names and not self._defines_copy(name, source):
            self.todo(f"{qual} is gone from Flax and this file binds {name}, the name linen-upgrade gives "
                      "flax 0.3.6's copy of it: copy the function under another name")
            self._left.add(dotted(original).partition(".")[0])  # type: ignore[union-attr]
            return updated
        self._copied[name] = source
        self.fixed(f"{dotted(original)} -> {name}, flax 0.3.6's function copied into the file")
        return cst.Name(name, lpar=updated.lpar, rpar=updated.rpar)  # type: ignore[attr-defined]

    def _defines_copy(self, name: str, source: str) -> bool:
        """Is the file's ``name`` the copy an earlier run added (a use it had to leave then)?"""
        assert self._module is not None
        return any(isinstance(s, cst.FunctionDef) and s.name.value == name
                   and code(s.with_changes(leading_lines=[])) == source for s in self._module.body)

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self._copied:
            return updated
        # an import of a legacy name nothing uses any more would fail: flax.nn is gone
        aliases = self.ctx.facts.imports.aliases
        left = set(self._left)
        if self.ctx.facts.has_skip_marks:  # a statement this pass may not read may still use it
            names = _Names()
            updated.visit(names)
            left |= names.found
        # and another file of the run importing the name from this one needs it here
        module_name = self.ctx.facts.module_name
        left |= {local for local in aliases if self.ctx.index.referrers.get(f"{module_name}.{local}")}
        used = {target for local, target in aliases.items() if local in left}
        module = drop_from_imports(updated, {target for target in aliases.values()
                                             if canonical(target) in NN_FUNCTIONS and target not in used})
        return insert_helpers(module, list(self._copied.values()))


class _Names(FastVisitor):
    """Every Name outside import statements."""

    def __init__(self) -> None:
        super().__init__()
        self.found: set[str] = set()

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Name(self, node: cst.Name) -> None:
        self.found.add(node.value)
