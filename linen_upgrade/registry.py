"""The rules: a table of ids and slugs (``rules/<slug>.py``) in run order, so a
run imports only the rule modules it uses, and start-up imports none of them;
``all_rules()`` discovers every ``rules/<slug>.py`` (pkgutil) and checks the
table against what it finds."""

from __future__ import annotations

import importlib
import inspect
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from linen_upgrade.rule import Rule

# (id, slug) in run order: by (Rule.order, id) -- a new rule file goes here too (all_rules() says so)
RULES: tuple[tuple[str, str], ...] = (
    ("LU107", "function_modules"),
    ("LU105", "shared_setup"),
    ("LU102", "submodule_calls"),
    ("LU103", "module_partial"),
    ("LU104", "param_state"),
    ("LU106", "nn_functions"),
    ("LU201", "module_init"),
    ("LU202", "model_apply"),
    ("LU301", "optim_constructors"),
    ("LU302", "optim_train_state"),
    ("LU303", "train_state_batch_stats"),
    ("LU401", "jax_renames"),
    ("LU402", "jax_index_ops"),
    ("LU403", "lax_tie_in"),
    ("LU404", "frozendict_methods"),
    ("LU101", "module_definitions"),
    ("LU901", "legacy_leftovers"),
    ("LU100", "nn_imports"),
)


class SelectionError(ValueError):
    pass


def _load(slug: str) -> type[Rule]:
    from linen_upgrade.rule import Rule

    module = importlib.import_module(f"linen_upgrade.rules.{slug}")
    classes = [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Rule) and obj is not Rule
        and obj.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise RuntimeError(f"rules/{slug}.py must define exactly one Rule, found {len(classes)}")
    rule = classes[0]
    rule.name = slug
    return rule


@lru_cache(maxsize=1)
def all_rules() -> tuple[type[Rule], ...]:
    import pkgutil

    import linen_upgrade.rules as package

    found = [_load(info.name) for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")]
    found.sort(key=lambda r: (r.order, r.id))
    ids = [r.id for r in found]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise RuntimeError(f"duplicate rule ids: {sorted(duplicates)}")
    if tuple((r.id, r.name) for r in found) != RULES:
        raise RuntimeError("linen_upgrade/registry.py RULES is not the rules/ folder in run order; it should read:\n"
                           + "".join(f"    ({r.id!r}, {r.name!r}),\n" for r in found).replace("'", '"'))
    return tuple(found)


def _matches(rule_id: str, name: str, token: str) -> bool:
    token = token.strip()
    return rule_id == token.upper() or name == token or (
        token.upper().startswith("LU") and rule_id.startswith(token.upper()))


def select_ids(select: list[str], ignore: list[str]) -> list[str]:
    """The ids of the rules a run uses, in run order (no rule module is imported)."""
    for token in [*select, *ignore]:
        if not any(_matches(i, n, token) for i, n in RULES):
            raise SelectionError(f"unknown rule {token!r} (see `linen-upgrade rules`)")
    chosen = [(i, n) for i, n in RULES if not select or any(_matches(i, n, t) for t in select)]
    return [i for i, n in chosen if not any(_matches(i, n, t) for t in ignore)]


_SLUGS = dict(RULES)


@lru_cache(maxsize=None)
def rule(rule_id: str) -> Rule:
    """The instance of one rule (an id of ``RULES``), importing its module on first use."""
    return _load(_SLUGS[rule_id])()
