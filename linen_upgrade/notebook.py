"""Jupyter notebooks: code cells joined into one module, so names resolve
across cells, then split back.  Outputs, metadata and cell ids are never
touched; IPython magics and shell lines are hidden behind comment
placeholders while the rules run and restored afterwards.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_CELL_MARK = "# <linen-upgrade-cell {}>"
_CELL_RE = re.compile(r"^# <linen-upgrade-cell (\d+)>\n?", re.MULTILINE)
_MAGIC_MARK = "# <linen-upgrade-magic>"
# a line IPython, not Python, understands: %magic, !shell, ?help, cmd?
_MAGIC_RE = re.compile(r"^\s*([%!?]|\w[\w.]*\?\s*$)")


class NotebookError(Exception):
    pass


@dataclass
class Notebook:
    data: dict
    raw: bytes
    code: str  # the joined, Python-only code
    cells: list[int]  # indices of the joined code cells
    magic: dict[int, list[str]]  # cell index -> its original lines hidden as comments


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def extract(raw: bytes, path: str) -> Notebook:
    try:
        data = json.loads(raw.decode("utf-8"))
        cells = data["cells"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise NotebookError(f"{path}:1:1: not a Jupyter notebook: {exc}") from exc
    parts: list[str] = []
    used: list[int] = []
    magic: dict[int, list[str]] = {}
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        src = _source(cell)
        if src.lstrip().startswith("%%"):  # a cell magic: the cell is not Python
            continue
        lines = src.split("\n")
        hidden = []
        for j, line in enumerate(lines):
            if _MAGIC_RE.match(line):
                hidden.append(line)
                indent = line[: len(line) - len(line.lstrip())]
                lines[j] = f"{indent}pass  {_MAGIC_MARK}{len(hidden) - 1}"
        if hidden:
            magic[i] = hidden
        parts.append(_CELL_MARK.format(i) + "\n" + "\n".join(lines).rstrip("\n") + "\n")
        used.append(i)
    return Notebook(data=data, raw=raw, code="".join(parts), cells=used, magic=magic)


def _as_source_list(text: str) -> list[str]:
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def rebuild(nb: Notebook, new_code: str) -> bytes:
    pieces = _CELL_RE.split(new_code)
    # pieces: [preamble, idx, body, idx, body, ...]; a rule may add imports
    # above the first marker: they belong to the first cell
    preamble = pieces[0]
    bodies = {int(pieces[k]): pieces[k + 1] for k in range(1, len(pieces), 2)}
    if set(bodies) != set(nb.cells):
        raise NotebookError("cell markers were lost while rewriting")
    changed = False
    for n, i in enumerate(nb.cells):
        body = (preamble if n == 0 else "") + bodies[i]
        hidden = nb.magic.get(i, [])

        def restore(m: re.Match) -> str:
            return hidden[int(m[2])]

        body = re.sub(rf"^([ \t]*)pass  {re.escape(_MAGIC_MARK)}(\d+)$", restore, body, flags=re.MULTILINE)
        cell = nb.data["cells"][i]
        old = _source(cell)
        new = body if old.endswith("\n") else body.rstrip("\n")
        if new != old:
            changed = True
            cell["source"] = _as_source_list(new) if isinstance(cell.get("source"), list) else new
    if not changed:
        return nb.raw
    indent = _detect_indent(nb.raw)
    text = json.dumps(nb.data, indent=indent, ensure_ascii=False)
    return (text + ("\n" if nb.raw.endswith(b"\n") else "")).encode("utf-8")


def _detect_indent(raw: bytes) -> int | None:
    m = re.search(rb"\n( +)\"", raw)
    return len(m[1]) if m else None
