"""Class hierarchies of one file's plain classes for the usage analysis (``_usage_analysis``).

An instance type names a class, but a method's ``self`` may be an instance of any class deriving
from it (``self.make_module()`` in a base class's ``__init__`` runs the subclass's override), so:

- a method read off an instance is the one its class inherits, or an override in a class deriving
  from it; where several of those hold code (an abstract one, raising only, runs none), a call
  returns what any of them returns (a definition chosen at run time, where they return different
  ones), and its arguments are not followed into them;
- the fields of a class are those of its whole family (every class of the file connected to it by
  deriving), keyed by the family's first class: a field a base class's ``__init__`` sets is read by
  a subclass's methods, and the reverse.

A base class of another file is not followed: its methods are not this file's.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.resolve import dotted
from linen_upgrade.rules._cst import statements


def _abstract(fn: cst.FunctionDef) -> bool:
    """A body that only raises (after a docstring): it hands nothing back and binds nothing."""
    body = statements(fn)
    return len(body) == 1 and isinstance(body[0], cst.SimpleStatementLine) \
        and all(isinstance(s, cst.Raise) for s in body[0].body)


class Lineage:
    """Which plain classes of a file derive from which (by the names of their bases)."""

    def __init__(self, classes: dict[int, cst.ClassDef], methods: dict[int, dict[str, cst.FunctionDef]]) -> None:
        self.methods = methods
        by_name: dict[str, int] = {}
        for cid, node in classes.items():
            by_name.setdefault(node.name.value, cid)
        self.bases: dict[int, list[int]] = {
            cid: [by_name[b] for b in (dotted(a.value) for a in node.bases if a.keyword is None)
                  if b in by_name and by_name[b] != cid]
            for cid, node in classes.items()}
        self.roots: dict[int, int] = {}
        for cid in sorted(classes, key=lambda c: classes[c].name.value):
            self.roots[cid] = min(self._family(cid), key=lambda c: (classes[c].name.value, c))

    def _family(self, cid: int) -> set[int]:
        seen, todo = {cid}, [cid]
        while todo:
            c = todo.pop()
            for other in (*self.bases.get(c, ()), *(d for d, bs in self.bases.items() if c in bs)):
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return seen

    def root(self, cid: int) -> int:
        return self.roots.get(cid, cid)

    def _ancestors(self, cid: int) -> list[int]:
        order, todo = [], [cid]
        while todo:
            c = todo.pop(0)
            if c not in order:
                order.append(c)
                todo.extend(self.bases.get(c, ()))
        return order

    def _descendants(self, cid: int) -> list[int]:
        return [c for c in self.bases if c != cid and cid in self._ancestors(c)]

    def inherited(self, cid: int, name: str) -> cst.FunctionDef | None:
        """The method an instance of exactly this class runs (``Cls(...)``'s ``__init__``)."""
        return next((self.methods[c][name] for c in self._ancestors(cid) if name in self.methods.get(c, {})), None)

    def _candidates(self, cid: int, name: str) -> list[cst.FunctionDef]:
        found = self.inherited(cid, name)
        overrides = [self.methods[c][name] for c in self._descendants(cid) if name in self.methods.get(c, {})]
        candidates = list(dict.fromkeys([*([found] if found else []), *overrides]))
        working = [f for f in candidates if not _abstract(f)]
        return candidates if len(candidates) <= 1 else working

    def method(self, cid: int, name: str) -> cst.FunctionDef | None:
        """The method ``obj.name`` runs for an instance of this class or of one deriving from it: the
        one with code among those it may be, else None (several: which one runs is a run-time matter)."""
        candidates = self._candidates(cid, name)
        return candidates[0] if len(candidates) == 1 else None

    def overrides(self, cid: int, name: str) -> tuple[cst.FunctionDef, ...]:
        """The methods ``obj.name`` may run where several classes of the family give it code: its calls
        return what any of them returns, and hand their arguments to none (not followed)."""
        candidates = self._candidates(cid, name)
        return tuple(candidates) if len(candidates) > 1 else ()
