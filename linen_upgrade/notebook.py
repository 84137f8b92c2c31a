"""Jupyter notebooks: code cells joined into one module, so names resolve
across cells, then split back.  Outputs, metadata, cell ids and the JSON
layout (indent, key order, final newline) are kept.

IPython lines (``%magic``, ``!shell``, ``obj?``) are hidden behind comment
placeholders while the rules run and restored afterwards.  A cell under a
Python cell magic (``%%time``, ``%%capture``, ...) converts like any other
cell; a line magic that runs a Python statement (``%timeit f(x)``) shows the
rules that statement in its place.

A notebook is converted all or nothing: the imports must not switch to
Linen while part of the notebook stays legacy and nothing says so.  It is
left unchanged, with a LU901 finding naming the cell and line for each
reason, when an IPython line or a cell of another language (``%%bash``,
``%%writefile``) holds legacy code (``tables/legacy_constructs.py``), or when
the rules would change the statement of a line magic (``%timeit
optimizer.target(x)``: an IPython line is not Python, so it is never
rewritten).  A cell that does not parse fails the notebook as a whole, like a
``.py`` file that does not parse.  Cells are numbered from 1, markdown cells
included (``path:cell_3:2:1``, the form nbQA uses).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field

from linen_upgrade.constructs import code_only, count_code, names_flax
from linen_upgrade.rule import quote

_CELL_MARK = "# <linen-upgrade-cell {}>"
_CELL_RE = re.compile(r"^# <linen-upgrade-cell (\d+)>\n?", re.MULTILINE)
_IPYTHON_MARK = "# <linen-upgrade-ipython {}>"
_PLACEHOLDER_RE = re.compile(r"^([ \t]*)(.*?)  # <linen-upgrade-ipython (\d+)>$", re.MULTILINE)
# a line magic or shell command whose output a line assigns (``files = !ls``, ``t = %timeit -o f(x)``)
_ASSIGNED_RE = re.compile(r"^([ \t]*)[A-Za-z_][\w.]*(?:[ \t]*,[ \t]*[A-Za-z_][\w.]*)*[ \t]*=[ \t]*(?=[%!])")
# a line IPython, not Python, understands: %magic, !shell, ?help, cmd?, model(x)??, and those assignments
_MAGIC_RE = re.compile(r"^\s*([%!?]|[\w.]+(?:\(.*\)|\[.*\])*[\w.]*\?{1,2}\s*$)|" + _ASSIGNED_RE.pattern)
# cell magics that run their body as Python in the notebook's namespace; any
# other (%%bash, %%writefile, %%html, an extension's) is kept as written
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
# line magics whose argument is a Python statement, and their options that take a value
_PYTHON_LINE_MAGICS = {"time": "", "timeit": "nrp", "prun": "DTls"}
_LINE_MAGIC_RE = re.compile(r"^[ \t]*%(\w+)(.*)$")
_OPTION_RE = re.compile(r"(-\S+)\s*(.*)$")
_LEFT = "change it by hand; the notebook is left unchanged until then"


class NotebookError(Exception):
    pass


@dataclass(frozen=True)
class Hidden:
    """An IPython line hidden from the rules."""

    cell: int  # index in the notebook's cells
    line: int  # 1-based, in the cell
    text: str  # as written
    statement: str | None  # the Python statement shown to the rules in its place


@dataclass(frozen=True)
class Problem:
    """Why the notebook cannot be converted (cell: index in the notebook's cells)."""

    cell: int
    line: int
    col: int
    message: str


@dataclass
class Notebook:
    data: dict
    raw: bytes
    code: str  # the joined, Python-only code
    cells: list[int]  # indices of the joined code cells
    hidden: list[Hidden]  # placeholder k of the joined code -> the line it hides
    problems: list[Problem] = field(default_factory=list)  # found before any rule ran
    starts: list[tuple[int, int]] = field(default_factory=list)  # (joined line of a cell's first line, cell)

    def locate(self, line: int) -> tuple[int, int]:
        """A line of the joined code -> (cell index, line in that cell)."""
        start, cell = max(((s, c) for s, c in self.starts if s <= line), default=(1, self.cells[0]))
        return cell, line - start + 1


@dataclass
class Rebuilt:
    data: bytes  # the notebook's new bytes, or its original bytes when blocked or unchanged
    problems: list[Problem]  # non-empty: nothing was converted
    sources: dict[int, str]  # cell index -> source of each joined code cell, as written now


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _load(raw: bytes, path: str) -> tuple[dict, list]:
    try:
        data = json.loads(raw.decode("utf-8"))
        return data, data["cells"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise NotebookError(f"{path}:1:1: not a Jupyter notebook: {exc}") from exc


def split_sources(raw: bytes, path: str) -> tuple[list[str], list[str]]:
    """The Python code of each code cell (its IPython lines left blank), and
    the IPython text: those lines and the cells of other languages."""
    python: list[str] = []
    ipython: list[str] = []
    for cell in _load(raw, path)[1]:
        if cell.get("cell_type") != "code":
            continue
        src = _source(cell)
        if _foreign(src):
            ipython.append(src)
            continue
        lines = src.split("\n")
        for j, line in enumerate(lines):
            if _MAGIC_RE.match(line):
                ipython.append(line)
                lines[j] = ""
        python.append("\n".join(lines))
    return python, ipython


def _cell_magic(src: str) -> str | None:
    m = re.match(r"\s*%%(\S*)", src)
    return m[1] if m else None


def _foreign(src: str) -> str | None:
    """The cell magic of a cell that is not Python (``bash``, ``writefile``), or None."""
    magic = _cell_magic(src)
    return magic if magic is not None and magic not in PYTHON_CELL_MAGICS else None


def _python_statement(line: str) -> str | None:
    """The Python statement a line magic runs (``%timeit -n 10 f(x)`` -> ``f(x)``)."""
    m = _LINE_MAGIC_RE.match(line)
    if not m or m[1] not in _PYTHON_LINE_MAGICS:
        return None
    rest = m[2].strip()
    while rest.startswith("-"):
        opt = _OPTION_RE.match(rest)
        assert opt is not None
        rest = opt[2]
        if len(opt[1]) == 2 and opt[1][1] in _PYTHON_LINE_MAGICS[m[1]]:  # "-n 10": drop the value
            words = rest.split(None, 1)
            rest = words[1] if len(words) == 2 else ""
    try:
        ast.parse(rest)
    except SyntaxError:
        return None
    return rest or None


def _legacy_kinds(text: str, flax_notebook: bool) -> str:
    """The legacy constructs in IPython text, as written (its quotes may hold code)."""
    return ", ".join(f"`{kind}`" for kind in sorted(count_code(text, flax_notebook)))


def extract(raw: bytes, path: str) -> Notebook:
    data, cells = _load(raw, path)
    parts: list[str] = []
    nb = Notebook(data=data, raw=raw, code="", cells=[], hidden=[])
    foreign: list[tuple[int, str]] = []
    joined_line = 1
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        src = _source(cell)
        magic = _foreign(src)
        if magic:
            foreign.append((i, magic))
            continue
        lines = src.split("\n")
        for j, line in enumerate(lines):
            if _MAGIC_RE.match(line):
                statement = _python_statement(_ASSIGNED_RE.sub(r"\1", line))
                indent = line[: len(line) - len(line.lstrip())]
                lines[j] = f"{indent}{statement or 'pass'}  {_IPYTHON_MARK.format(len(nb.hidden))}"
                nb.hidden.append(Hidden(i, j + 1, line, statement))
        body = "\n".join(lines).rstrip("\n") + "\n"
        parts.append(_CELL_MARK.format(i) + "\n" + body)
        nb.starts.append((joined_line + 1, i))
        joined_line += 1 + body.count("\n")
        nb.cells.append(i)
    nb.code = "".join(parts)
    flax_notebook = names_flax(code_only(nb.code))
    for h in nb.hidden:
        kinds = _legacy_kinds(h.text, flax_notebook)
        if kinds:
            nb.problems.append(Problem(h.cell, h.line, len(h.text) - len(h.text.lstrip()) + 1,
                                       f"IPython line `{quote(h.text.strip())}` holds legacy code ({kinds}) "
                                       f"that the tool cannot rewrite: {_LEFT}"))
    for i, magic in foreign:
        kinds = _legacy_kinds(_source(cells[i]), flax_notebook)
        if kinds:
            nb.problems.append(Problem(i, 1, 1, f"a %%{magic} cell holds legacy code ({kinds}) that the "
                                                f"tool does not convert (it converts Python cells): {_LEFT}"))
    return nb


def _as_source_list(text: str) -> list[str]:
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _restore(nb: Notebook, cell: int, body: str, problems: list[Problem]) -> str:
    """Put the cell's IPython lines back in place of their placeholders."""
    flagged = {(p.cell, p.line) for p in nb.problems}
    found: set[int] = set()

    def restore(m: re.Match) -> str:
        k = int(m[3])
        h = nb.hidden[k]
        found.add(k)
        if m[2].strip() != (h.statement or "pass") and (h.cell, h.line) not in flagged:
            problems.append(Problem(h.cell, h.line, len(m[1]) + 1,
                                    f"IPython line `{quote(h.text.strip())}` runs code the rewrite changes "
                                    f"(to `{quote(m[2].strip())}`), and an IPython line is never "
                                    f"rewritten: {_LEFT}"))
        # the rules may have re-indented the block around it
        return m[1] + h.text.lstrip()

    body = _PLACEHOLDER_RE.sub(restore, body)
    for k, h in enumerate(nb.hidden):
        if h.cell == cell and k not in found:
            problems.append(Problem(cell, h.line, 1, f"the rewrite lost the IPython line "
                                                     f"`{quote(h.text.strip())}`: {_LEFT}"))
    if _cell_magic(_source(nb.data["cells"][cell])) is not None:
        body = _magic_first(body)
    return body


def _magic_first(body: str) -> str:
    """A cell magic must open its cell: lines a rule put above it (an import
    added to the first cell, a TODO) go below it."""
    lines = body.split("\n")
    at = next((j for j, line in enumerate(lines) if line.lstrip().startswith("%%")), None)
    first = next(j for j, line in enumerate(lines) if line.strip())
    if at is not None and at != first:  # (None: the line was lost, a problem already says so)
        lines.insert(first, lines.pop(at))
    return "\n".join(lines)


def rebuild(nb: Notebook, new_code: str) -> Rebuilt:
    """The notebook with each joined cell's new code, or unchanged with the
    reasons when any part of it cannot be converted."""
    pieces = _CELL_RE.split(new_code)
    # pieces: [preamble, idx, body, idx, body, ...]; a rule may add imports
    # above the first marker: they belong to the first cell
    preamble = pieces[0]
    bodies = {int(pieces[k]): pieces[k + 1] for k in range(1, len(pieces), 2)}
    if set(bodies) != set(nb.cells):
        raise NotebookError("cell markers were lost while rewriting")
    problems = list(nb.problems)
    sources: dict[int, str] = {}
    for n, i in enumerate(nb.cells):
        body = _restore(nb, i, (preamble if n == 0 else "") + bodies[i], problems)
        old = _source(nb.data["cells"][i])
        sources[i] = body if old.endswith("\n") else body.rstrip("\n")
    if problems:
        return Rebuilt(nb.raw, problems, {i: _source(nb.data["cells"][i]) for i in nb.cells})
    changed = False
    for i, new in sources.items():
        cell = nb.data["cells"][i]
        if new != _source(cell):
            changed = True
            cell["source"] = _as_source_list(new) if isinstance(cell.get("source"), list) else new
    if not changed:
        return Rebuilt(nb.raw, [], sources)
    indent = _detect_indent(nb.raw)
    text = json.dumps(nb.data, indent=indent, ensure_ascii=False)
    return Rebuilt((text + ("\n" if nb.raw.endswith(b"\n") else "")).encode("utf-8"), [], sources)


def locate_in(new_code: str, line: int) -> tuple[int, int]:
    """A line of the rewritten joined code -> (cell index, line in that cell),
    split as :func:`rebuild` splits it."""
    marks = [(new_code.count("\n", 0, m.start()) + 1, int(m[1])) for m in _CELL_RE.finditer(new_code)]
    first_mark, first_cell = marks[0]
    mark, cell = max(((at, c) for at, c in marks if at < line), default=marks[0])
    if cell == first_cell:  # lines above its marker (imports a rule added) open the first cell
        return cell, line if line < first_mark else line - 1
    return cell, line - mark


def _detect_indent(raw: bytes) -> int | None:
    m = re.search(rb"\n( +)\"", raw)
    return len(m[1]) if m else None
