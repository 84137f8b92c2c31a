"""The contract between the engine and a rule.

A rule is a class in ``rules/<slug>.py`` with a stable ``id``, a one-line
``summary``, inline ``examples`` (which are also tests) and a ``transformer``:
a LibCST transformer derived from :class:`RuleTransformer`.  The engine only
parses a file when some rule's :meth:`Rule.applies` (``applicability``) says it
may have work, and only then loads the rules and LibCST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Union

from linen_upgrade import applicability

if TYPE_CHECKING:
    import libcst as cst

    from linen_upgrade.config import Config
    from linen_upgrade.facts import FileFacts
    from linen_upgrade.index import ProjectIndex
    from linen_upgrade.transformer import RuleTransformer

TODO_PREFIX = "# TODO(linen-upgrade):"
TODO_RE = re.compile(r"#\s*TODO\(linen-upgrade\):\s*(?P<rule>LU\d{3})\s+(?P<msg>.*)$")
SKIP_MARK = "linen-upgrade: skip"
SKIP_FILE_MARK = "linen-upgrade: skip-file"
# a comment above the statement a fix changed (k: its index in Context.fixed), gone from the output
FIX_MARK = "# <linen-upgrade-fix {}>"
_WHITESPACE = re.compile(r"\s+")


def todo_line(rule_id: str, message: str) -> str:
    """``# TODO(linen-upgrade): ID message`` on one line: a message quoting
    multi-line code (``jax.pmap(\\n lambda ...)``) would otherwise make a
    comment node LibCST refuses, and the whole file would stay legacy."""
    return _WHITESPACE.sub(" ", f"{TODO_PREFIX} {rule_id} {message}").strip()


def quote(code: str, limit: int = 80) -> str:
    """Code quoted in a message: one line (``f(\\n  a)`` -> ``f(a)``), cut at ``limit`` characters."""
    code = re.sub(r"([(\[{]) | ([)\]}])", r"\1\2", _WHITESPACE.sub(" ", code).strip())
    return code if len(code) <= limit else code[:limit - 3].rstrip() + "..."


@dataclass(frozen=True)
class Example:
    """``before`` must become ``after``; ``after`` must stay as it is."""

    before: str
    after: str
    name: str = ""


@dataclass(frozen=True)
class NoChange:
    """Code the rule must leave byte-identical."""

    code: str
    name: str = ""


RuleExample = Union[Example, NoChange]


@dataclass
class Context:
    """What a rule may read about the file and the run."""

    path: str
    facts: FileFacts
    index: ProjectIndex
    config: Config
    # filled by transformers: (rule id, message) of every rewrite made
    fixed: list[tuple[str, str]] = field(default_factory=list)
    # mark -> TODO lines a rule wrote that a later rule withdraws where it converts what they
    # are about (LU301's "feeds flax.optim code" once LU302 converts that code): rules talk
    # through these marks, never by matching each other's comment text
    withdrawable: dict[str, set[str]] = field(default_factory=dict)
    # LU202 -> LU302: the Linen apply of the module an optimizer's target was made from, where a
    # name holding it is visible at ``opt_def.create(target)`` (a definition chosen at run time):
    # (enclosing function and class names, target name) -> ``module().apply``
    apply_fns: dict[tuple[tuple[str, ...], str], str] = field(default_factory=dict)


class Rule:
    id: ClassVar[str]
    name: ClassVar[str]  # the file stem, set by the registry
    summary: ClassVar[str]
    examples: ClassVar[list[RuleExample]] = []
    # run order: converting rules (0), then report-only rules (90), then the
    # import rewrite (100) -- every rule resolves names through the legacy
    # imports, so those change last
    order: ClassVar[int] = 0

    def applies(self, ctx: Context) -> bool:
        """Cheap test on the file's facts: may this rule change anything? (``applicability``)"""
        return applicability.applies(self.id, ctx)

    def transformer(self, ctx: Context) -> RuleTransformer:
        raise NotImplementedError

    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        return module.visit(self.transformer(ctx))


# the LibCST base classes live in ``transformer`` (loaded with the rules, never to
# decide that a file needs no rewrite); rules import them from here
_TRANSFORMER_NAMES = frozenset({"FastVisitor", "FastTransformer", "RuleTransformer"})


def __getattr__(name: str) -> Any:
    if name in _TRANSFORMER_NAMES:
        from linen_upgrade import transformer

        return getattr(transformer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
