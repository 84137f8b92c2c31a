"""A dict that notes which keys are read, for a solver that evaluates again only what read a
changed key (``Analysis._fixed_point``).

Every read lands in ``seen``: a key for ``get``, ``[]`` and ``in``; ``EVERY`` for a read of the
whole dict (its items, keys, values, length or an iteration), which any change invalidates.
"""

from __future__ import annotations

EVERY = object()  # what a read of the whole dict notes
_MISSING = object()


class Watched(dict):
    __slots__ = ("seen",)

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.seen: set = set()

    def get(self, key, default=None):
        self.seen.add(key)
        return dict.get(self, key, default)

    def __getitem__(self, key):
        self.seen.add(key)
        return dict.__getitem__(self, key)

    def __contains__(self, key) -> bool:
        self.seen.add(key)
        return dict.__contains__(self, key)

    def _whole(self):
        self.seen.add(EVERY)
        return self

    def items(self):
        return dict.items(self._whole())

    def keys(self):
        return dict.keys(self._whole())

    def values(self):
        return dict.values(self._whole())

    def __iter__(self):
        return dict.__iter__(self._whole())

    def __len__(self) -> int:
        return dict.__len__(self._whole())

    def __eq__(self, other) -> bool:
        return dict.__eq__(self._whole(), other)

    __hash__ = None  # type: ignore[assignment]


def changed(old: dict, new: dict) -> set:
    """The keys whose values differ between two dicts (present in one only included), and ``EVERY``
    when there is any; read without noting."""
    found = {k for k in dict.keys(new) if dict.get(old, k, _MISSING) != dict.__getitem__(new, k)}
    found.update(k for k in dict.keys(old) if not dict.__contains__(new, k))
    if found:
        found.add(EVERY)
    return found
