"""Counting the legacy constructs left in a source (``linen-upgrade status``).

Comments and strings are blanked out before the table's patterns run, so a
docstring that mentions ``nn.Model`` or a ``TODO(linen-upgrade)`` comment that
quotes legacy code does not count as code; the TODO comments are counted on
their own (a file with one is not converted yet).
"""

from __future__ import annotations

import io
import re
import tokenize
from collections import Counter
from collections.abc import Sequence

from linen_upgrade.rule import TODO_RE
from linen_upgrade.tables.legacy_constructs import FLAX_NAME, LEGACY_CONSTRUCTS

TODO_KIND = "TODO(linen-upgrade)"
_ANY = re.compile("|".join([*(f"(?:{row.pattern.pattern})" for row in LEGACY_CONSTRUCTS),
                            FLAX_NAME.pattern, re.escape("TODO(linen-upgrade)")]), re.MULTILINE)


def _tokens(text: str) -> list[tokenize.TokenInfo] | None:
    try:
        return list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return None


def code_only(text: str) -> str:
    """``text`` with every comment and string replaced by spaces (line and
    column positions kept).  Text that does not tokenize (an unterminated
    string) is returned as it is: counting then errs towards legacy left."""
    tokens = _tokens(text)
    if tokens is None:
        return text
    lines = [list(line) for line in text.splitlines(keepends=True)]
    for tok in tokens:
        if tok.type not in (tokenize.COMMENT, tokenize.STRING):
            continue
        (row0, col0), (row1, col1) = tok.start, tok.end
        for row in range(row0, row1 + 1):
            line = lines[row - 1]
            stop = col1 if row == row1 else len(line)
            for col in range(col0 if row == row0 else 0, min(stop, len(line))):
                if line[col] not in "\r\n":
                    line[col] = " "
    return "".join("".join(line) for line in lines)


def names_flax(code: str) -> bool:
    """Does blanked ``code`` name flax (an import or a dotted use)?"""
    return FLAX_NAME.search(code) is not None


def count_code(code: str, flax_file: bool) -> Counter[str]:
    """Legacy constructs per kind in blanked ``code`` (see ``code_only``)."""
    counts: Counter[str] = Counter()
    for row in LEGACY_CONSTRUCTS:
        if row.flax_only and not flax_file:
            continue
        n = len(row.pattern.findall(code))
        if n:
            counts[row.kind] = n
    return counts


def count_todos(text: str) -> int:
    tokens = _tokens(text)
    if tokens is None:  # cannot tell comments from code: every TODO line counts
        return sum(TODO_RE.search(line) is not None for line in text.splitlines())
    return sum(tok.type == tokenize.COMMENT and TODO_RE.search(tok.string) is not None for tok in tokens)


def count(sources: Sequence[str], ipython: Sequence[str] = ()) -> tuple[Counter[str], bool]:
    """Legacy constructs and TODO comments left in Python ``sources`` (a file,
    or the code cells of a notebook, each tokenized on its own), and whether
    they are a Flax file (their code names flax).  ``ipython``: a notebook's
    IPython lines and cells of other languages, counted as written (their
    quotes may hold code: ``!python -c "from flax import nn"``), as the
    rewrite's notebook check reads them."""
    # a source none of the patterns matches even with its comments and strings is done
    # without tokenizing it: the common case in a large tree
    sources = [s for s in sources if _ANY.search(s)]
    codes = [code_only(s) for s in sources]
    flax_file = any(names_flax(code) for code in codes)
    counts: Counter[str] = Counter()
    for code in [*codes, *ipython]:
        counts += count_code(code, flax_file)
    todos = sum(count_todos(s) for s in sources)
    if todos:
        counts[TODO_KIND] = todos
    return counts, flax_file
