"""Finds the rules: every ``rules/<slug>.py`` (no hand-kept list), in run order."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import lru_cache

from linen_upgrade.rule import Rule


class SelectionError(ValueError):
    pass


@lru_cache(maxsize=1)
def all_rules() -> tuple[type[Rule], ...]:
    import linen_upgrade.rules as package

    found: list[type[Rule]] = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        classes = [
            obj for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, Rule) and obj is not Rule
            and obj.__module__ == module.__name__
        ]
        if len(classes) != 1:
            raise RuntimeError(f"rules/{info.name}.py must define exactly one Rule, found {len(classes)}")
        rule = classes[0]
        rule.name = info.name
        found.append(rule)
    found.sort(key=lambda r: (r.order, r.id))
    ids = [r.id for r in found]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise RuntimeError(f"duplicate rule ids: {sorted(duplicates)}")
    return tuple(found)


def _matches(rule: type[Rule], token: str) -> bool:
    token = token.strip()
    return rule.id == token.upper() or rule.name == token or (
        token.upper().startswith("LU") and rule.id.startswith(token.upper()))


def select_rules(select: list[str], ignore: list[str]) -> list[Rule]:
    rules = all_rules()
    for token in [*select, *ignore]:
        if not any(_matches(r, token) for r in rules):
            raise SelectionError(f"unknown rule {token!r} (see `linen-upgrade rules`)")
    chosen = [r for r in rules if not select or any(_matches(r, t) for t in select)]
    chosen = [r for r in chosen if not any(_matches(r, t) for t in ignore)]
    return [r() for r in chosen]


def rules_by_id(ids: list[str]) -> list[Rule]:
    """Instances of exactly these rules (already validated ids), in run order."""
    wanted = set(ids)
    return [r() for r in all_rules() if r.id in wanted]
