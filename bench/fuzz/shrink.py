"""Shrink a failing program: delete statements (whole classes and functions
first, then smaller ones) while the verdict holds."""
from __future__ import annotations

import ast
from collections.abc import Callable


def _candidates(source: str) -> list[tuple[int, int]]:
    """``(first, last)`` line spans of every statement, largest first."""
    spans = {(n.lineno, n.end_lineno) for n in ast.walk(ast.parse(source))
             if isinstance(n, ast.stmt) and n.end_lineno is not None}
    return sorted(spans, key=lambda s: (s[0] - s[1], s[0]))


def _without(source: str, first: int, last: int) -> str | None:
    """``source`` less lines ``first..last``, or with ``pass`` there when the block
    would be left empty; None when neither parses."""
    lines = source.splitlines(keepends=True)
    line = lines[first - 1]
    for filler in ([], [line[: len(line) - len(line.lstrip())] + "pass\n"]):
        new = "".join(lines[: first - 1] + filler + lines[last:])
        try:
            ast.parse(new)
        except SyntaxError:
            continue
        return new
    return None


def shrink(source: str, still_fails: Callable[[str], bool], budget: int = 60,
           log: Callable[[str], None] = lambda _: None) -> str:
    """The smallest ``source`` found (within ``budget`` checks) for which ``still_fails``."""
    progress = True
    while progress and budget > 0:
        progress = False
        for first, last in _candidates(source):
            new = _without(source, first, last)
            if new is None or new == source:
                continue
            budget -= 1
            if still_fails(new):
                log(f"  shrink: lines {first}-{last} removed, verdict holds")
                source, progress = new, True
                break
            if budget <= 0:
                break
    return source
