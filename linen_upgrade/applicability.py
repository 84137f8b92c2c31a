"""Where each rule may have work: a cheap test on a file's ``ast`` facts and the
run's index, one per rule id.

These live apart from the rules so that deciding a file needs no rewrite
imports neither the rule modules nor LibCST: a pre-commit hook over modern
Flax code answers in the time of an ``ast`` parse.  ``Rule.applies`` reads
this table; the engine asks it before it loads any rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from linen_upgrade.tables.jax_renames import JAX_INDEX_OPS, JAX_RENAMES
from linen_upgrade.tables.nn_functions import NN_FUNCTIONS

if TYPE_CHECKING:
    from linen_upgrade.rule import Context

TIE_IN = "jax.lax.tie_in"
# methods of legacy module classes that nothing else in the JAX world has
LEGACY_ONLY_METHODS = frozenset({"init_by_shape", "create_by_shape", "partial", "shared"})
# every JAX name LU401-LU403 rewrite (the prefilter looks for them in a file's bytes: files.py)
JAX_NAMES = (*JAX_RENAMES, *JAX_INDEX_OPS, TIE_IN)


def has_legacy_classes(ctx: Context) -> bool:
    """Does the file define a legacy module class (a cheap test on the index)?"""
    module = ctx.facts.module_name
    return any(ctx.index.is_legacy_module(f"{module}.{c.name}" if module else c.name)
               for c in ctx.facts.classes)


def classes_or_cells(ctx: Context) -> bool:
    """Legacy module classes, or legacy RNN cells' ``initialize_carry``: where LU102 also
    reads the code outside modules (cells' carries, a legacy attention ``Cache`` passed)."""
    return has_legacy_classes(ctx) or any(
        q.startswith("flax.nn.") and q.endswith(".initialize_carry") for q in ctx.facts.qualnames)


def _rng_helpers(ctx: Context) -> bool:
    """A helper given its module's rng is defined here, or called from a module class here."""
    helpers = ctx.index.rng_helpers
    return bool(helpers) and (any(ctx.index.rng_helper(ctx.facts.module_name, n) for n in ctx.facts.rng_functions)
                              or any(ctx.index.canonical(q) in helpers for q in ctx.facts.module_calls))


def _legacy_names(ctx: Context) -> bool:
    return ctx.facts.references("flax.nn", "flax.optim") or any(
        ctx.index.is_legacy_module(q) for q in ctx.facts.qualnames)


def _usage(ctx: Context) -> bool:
    """Legacy flax.nn or flax.optim names, legacy module classes, or an import of a
    file of the run that defines legacy module classes (a Model may come from there),
    or, in a run with legacy module classes, a file with flax whose names another file
    uses (a Model may be handed to its functions: ``stats.count(model)``, where
    ``model.params`` must become the params as the caller's Model does; with or without flax:
    ``pipeline._model_reach`` reads such files), or a file without flax with a legacy key
    (``params['Dense_2']`` in a helper handed a Model's params)."""
    if _legacy_names(ctx):
        return True
    legacy_files = {q.rpartition(".")[0] for q in ctx.index.modules}
    if not legacy_files:
        return False
    if ctx.facts.imports.imported_modules & legacy_files:
        return True
    if not ctx.facts.references("flax") and ctx.facts.imports.imported_modules & ctx.index.flax_modules:
        # a file with flax but no module class may hand out a Model all the same
        # (``a.default(key)`` returning ``create_model(models.Wide, ...)``)
        return True
    if ctx.facts.module_name in ctx.index.referenced:
        return True
    return not ctx.facts.references("flax") and bool(ctx.facts.legacy_keys)


def _leftovers(ctx: Context) -> bool:
    """Legacy flax names, or a file that imports a legacy file of the run and spells a
    method only legacy modules have (``models.KNOWN_MODELS[name].partial(...).init_by_shape``
    in a test that never names flax): the definitions convert there, the uses here must say so."""
    return _legacy_names(ctx) or bool(ctx.facts.attributes & LEGACY_ONLY_METHODS) and _usage(ctx)


def _train_state(ctx: Context) -> bool:
    """flax.optim, or a file handed an optimizer by one that has it (only a run with a
    file that creates optimizers has such groups: the group search is not started otherwise)."""
    if ctx.facts.references("flax.optim"):
        return True
    if not ctx.index.optim_creators:
        return False
    from linen_upgrade.rules._optim_cross import in_a_group

    return in_a_group(ctx)


APPLIES: dict[str, Callable[[Context], bool]] = {
    "LU107": lambda ctx: any(c.function for c in ctx.facts.classes),
    "LU105": lambda ctx: ("shared" in ctx.facts.attributes or any(c.module_methods for c in ctx.facts.classes))
    and has_legacy_classes(ctx),
    # legacy module calls in module classes, and in the plain functions their applies call
    "LU102": lambda ctx: has_legacy_classes(ctx) or _legacy_names(ctx),
    "LU103": lambda ctx: bool(ctx.facts.attributes & {"partial", "shared"})
    and (has_legacy_classes(ctx) or _legacy_names(ctx)),
    # (and a built-in's subclass that only wraps param: facts._wraps_param)
    "LU104": lambda ctx: (bool(ctx.facts.attributes & {"param", "state", "get_param", "is_stateful"}
                               or ctx.facts.references("flax.nn.make_rng")) and has_legacy_classes(ctx))
    or any(c.wraps_param for c in ctx.facts.classes) or _rng_helpers(ctx),
    "LU106": lambda ctx: any(q in NN_FUNCTIONS for q in ctx.facts.qualnames),
    "LU201": _usage,
    "LU202": _usage,
    "LU301": lambda ctx: ctx.facts.references("flax.optim"),
    "LU302": _train_state,
    # legacy files only: modern code that keeps batch_stats apart stays as it is
    "LU303": lambda ctx: ctx.facts.references("flax.optim", "flax.nn"),
    "LU401": lambda ctx: any(q in JAX_RENAMES for q in ctx.facts.qualnames),
    "LU402": lambda ctx: any(q in JAX_INDEX_OPS for q in ctx.facts.qualnames),
    "LU403": lambda ctx: TIE_IN in ctx.facts.qualnames,
    # user code of the flax.nn / early-Linen era; never flax's own FrozenDict code
    "LU404": lambda ctx: bool(ctx.facts.frozendict_calls)
    and ctx.facts.references("flax.linen", "flax.nn", "flax.optim"),
    "LU101": has_legacy_classes,
    "LU901": _leftovers,
    "LU100": lambda ctx: ctx.facts.references("flax.nn"),
}


def applies(rule_id: str, ctx: Context) -> bool:
    return APPLIES[rule_id](ctx)
