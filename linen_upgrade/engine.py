"""One file's path through the tool: facts → rules → validate.

No rule knowledge lives here.  A file is parsed with LibCST only when the
``ast`` facts say some rule may apply; the result must compile before anyone
may write it; a crash inside a rule leaves the file as it was and names the
rule.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import os
import re
import tokenize
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from linen_upgrade import registry
from linen_upgrade.applicability import applies
from linen_upgrade.config import Config
from linen_upgrade.facts import FileFacts, file_facts
from linen_upgrade.index import ProjectIndex
from linen_upgrade.rule import FIX_MARK, TODO_RE, Context

if TYPE_CHECKING:
    import libcst as cst


@dataclass(frozen=True)
class Located:
    """A rule's message at a place of the rewritten file."""

    path: str
    line: int
    col: int
    rule: str
    message: str
    cell: int | None = None  # a notebook's cell (index in its cells); line and col are in that cell

    @property
    def location(self) -> str:
        cell = f"cell_{self.cell + 1}:" if self.cell is not None else ""
        return f"{self.path}:{cell}{self.line}:{self.col}"


class Finding(Located):
    """What a person still has to change."""

    def __str__(self) -> str:
        return f"{self.location}: {self.rule} needs manual change: {self.message}"


class Fix(Located):
    """A rewrite made (line and col: the statement it changed)."""

    def __str__(self) -> str:
        return f"{self.location}: {self.rule} [*] {self.message}"


@dataclass
class FileResult:
    path: str
    original: bytes = b""
    new: bytes | None = None  # set only when the rewrite changed the file
    findings: list[Finding] = field(default_factory=list)
    fixed: list[Fix] = field(default_factory=list)
    error: str | None = None
    parsed: bool = False

    @property
    def changed(self) -> bool:
        return self.new is not None and self.new != self.original


# the rule id of findings about the source itself rather than about a rule's work
SOURCE_RULE = "LU000"


class SourceError(Exception):
    """The input cannot be read or parsed; the message names file and line."""


def decode(data: bytes, path: str) -> str:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}:1:1: cannot decode: {exc}") from exc


# ``ast`` facts of the files read in this process, (path, module name) -> (their bytes, facts): a file
# scanned for the index is not scanned again when a rule reads it beside another (the usage analysis's
# other files, LU302's optimizer groups); the bytes are compared, so an edited file is scanned again.
# Keyed by absolute path: the run names its files as given (``pkg/a.py``), the readings of other files
# by where they found them (``/home/me/pkg/a.py``), and the facts do not depend on the spelling
# (``analysis.identity`` names a file by its absolute path)
_FACTS: dict[tuple[str, str], tuple[bytes, FileFacts]] = {}


def facts_for(data: bytes, path: str, module_name: str) -> FileFacts:
    """``ast`` facts of a ``.py`` source or a notebook's joined code cells (read once per process)."""
    key = (os.path.abspath(path), module_name)
    found = _FACTS.get(key)
    if found is not None and found[0] == data:
        return found[1]
    facts = _facts_for(data, path, module_name)
    _FACTS[key] = (data, facts)
    return facts


def _facts_for(data: bytes, path: str, module_name: str) -> FileFacts:
    nb = None
    if path.endswith(".ipynb"):
        from linen_upgrade import notebook  # (and its tables: not at start-up)

        nb = notebook.extract(data, path)
    if nb is not None:
        data = nb.code.encode("utf-8")
    text = decode(data, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(data, filename=path)
    except SyntaxError as exc:
        line = exc.lineno or 1
        if nb is not None:  # the line of the cell, not of the joined code
            cell, line = nb.locate(line)
            raise SourceError(f"{path}:cell_{cell + 1}:{line}:{exc.offset or 1}: cannot parse: {exc.msg}; "
                              f"notebook left unchanged") from exc
        raise SourceError(f"{path}:{line}:{exc.offset or 1}: cannot parse: {exc.msg}") from exc
    except ValueError as exc:  # null bytes
        raise SourceError(f"{path}:1:1: cannot parse: {exc}") from exc
    return file_facts(tree, text, module_name, path)


# LibCST trees of the files that rules read beside the one they rewrite (the usage analysis's
# other files, LU302's optimizer groups), for the run: a file read that way before its own
# rewrite is not parsed again.  [the run's index, absolute path -> (its bytes, its tree)]; a tree is
# immutable, and the bytes are compared, so an edited file is parsed again
_TREES: list = [None, {}]


def tree_of(path: str, data: bytes, index: ProjectIndex, keep: bool = True) -> cst.Module:
    """LibCST's tree of ``data``, the bytes of the run's file ``path``, parsed once per run and
    process; ``keep=False`` (the rewrite of a file no other file of the run imports): reuse a tree
    read before, but keep none (nothing reads that file's tree again)."""
    import libcst as cst

    if _TREES[0] is not index:
        _TREES[:] = [index, {}]
    key = os.path.abspath(path)
    found = _TREES[1].get(key)
    if found is not None and found[0] == data:
        return found[1]
    module = cst.parse_module(data)
    if keep:
        _TREES[1][key] = (data, module)
    return module


def findings_in(code: str, path: str) -> list[Finding]:
    """Every TODO the tool left in ``code``: what still needs a person."""
    out = []
    for lineno, line in enumerate(code.splitlines(), start=1):
        if "TODO(linen-upgrade)" not in line:
            continue
        m = TODO_RE.search(line)
        if m:
            out.append(Finding(path, lineno, m.start() + 1, m["rule"], m["msg"].strip()))
    return out


def _validate(data: bytes, path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compile(data, path, "exec", dont_inherit=True)


def rewrite_python(data: bytes, path: str, facts: FileFacts, index: ProjectIndex,
                   config: Config, rule_ids: list[str]) -> FileResult:
    result = FileResult(path=path, original=data)
    if facts.skip_file:
        return result
    index.x64 = facts.module_name in index.x64_modules
    ctx = Context(path=path, facts=facts, index=index, config=config)
    # which rules may have work is decided before a rule module or LibCST is loaded
    active = [registry.rule(i) for i in rule_ids if applies(i, ctx)]
    if not active:
        result.findings = findings_in(decode(data, path), path) if b"TODO(linen-upgrade)" in data else []
        return result
    import libcst as cst

    try:
        # a file another file of the run imports is read again by that file's rules
        module = tree_of(path, data, index, keep=bool(index.importers.get(facts.module_name)))
    except cst.ParserSyntaxError as exc:
        result.error = f"{path}:{exc.raw_line}:{exc.raw_column + 1}: cannot parse: {exc.message}"
        return result
    result.parsed = True
    from linen_upgrade.transformer import forget_children

    try:
        for rule in active:
            try:
                module = rule.transform(module, ctx)
            except Exception as exc:  # a rule bug must not cost the user a file
                result.error = f"{path}: rule {rule.id} ({rule.name}) failed: {type(exc).__name__}: {exc}"
                return result
    finally:
        forget_children()  # the walks' cache of this file's nodes
    code, places = _without_fix_marks(module.code)
    new = code.encode(module.encoding)
    # a fix whose statement vanished at the top level, or made for the file as a whole: line 1
    result.fixed = sorted((Fix(path, *places.get(k, (1, 1)), rule, message)
                           for k, (rule, message) in enumerate(ctx.fixed)), key=lambda f: (f.line, f.col))
    result.findings = findings_in(code, path)
    if new != data:
        error = _compile_error(new, path)
        if error is not None:
            added = _new_compile_error(data, new, path)
            if added is not None:
                result.error = (f"{path}:{added.lineno or 1}:{added.offset or 1}: the rewritten code does not "
                                f"compile ({added.msg}); file left unchanged")
                return result
            result.findings.append(Finding(
                path, error.lineno or 1, error.offset or 1, SOURCE_RULE,
                f"the file did not compile before the rewrite ({error.msg}); rewritten anyway: the "
                f"result fails only where the original did"))
        result.new = new
    return result


_FIX_MARK_RE = re.compile("^[ \t]*" + re.escape(FIX_MARK).replace(r"\{\}", r"(\d+)") + r"\s*$")


def _without_fix_marks(code: str) -> tuple[str, dict[int, tuple[int, int]]]:
    """``code`` without the rules' fix marks (``rule.FIX_MARK``), and where the
    statement below each mark starts: fix index -> (line, col)."""
    if FIX_MARK.partition("{")[0] not in code:
        return code, {}
    kept: list[str] = []
    places: dict[int, tuple[int, int]] = {}
    pending: list[int] = []
    for line in code.splitlines(keepends=True):
        mark = _FIX_MARK_RE.match(line)
        if mark:
            pending.append(int(mark[1]))
            continue
        kept.append(line)
        text = line.lstrip()
        if pending and text.strip() and not text.startswith("#"):  # TODO comments may sit between
            places.update((k, (len(kept), len(line) - len(text) + 1)) for k in pending)
            pending = []
    return "".join(kept), places


def _compile_error(data: bytes, path: str) -> SyntaxError | None:
    try:
        _validate(data, path)
    except SyntaxError as exc:
        return exc
    return None


def _new_compile_error(original: bytes, new: bytes, path: str) -> SyntaxError | None:
    """The first error compiling ``new`` that compiling ``original`` does not share.

    An original that LibCST parses but Python does not compile (a published
    ``from __future__ import REDACTED``) may still be rewritten, as long as the
    rewrite fails only where the original does.  Python stops at the first
    error, so each shared one is replaced by ``pass`` in both, to look behind it.
    """
    old_lines, new_lines = original.splitlines(keepends=True), new.splitlines(keepends=True)
    for _ in range(_SHARED_ERRORS_LOOKED_BEHIND):
        new_error = _compile_error(b"".join(new_lines), path)
        if new_error is None:
            return None
        old_error = _compile_error(b"".join(old_lines), path)
        if old_error is None or old_error.msg != new_error.msg or not old_error.lineno \
                or not new_error.lineno or old_lines[old_error.lineno - 1:old_error.lineno] \
                != new_lines[new_error.lineno - 1:new_error.lineno]:
            return new_error
        _blank(old_lines, old_error.lineno)
        _blank(new_lines, new_error.lineno)
    return _compile_error(b"".join(new_lines), path)


_SHARED_ERRORS_LOOKED_BEHIND = 20


def _blank(lines: list[bytes], lineno: int) -> None:
    """Line ``lineno`` becomes ``pass`` at its indentation."""
    line = lines[lineno - 1]
    indent = line[: len(line) - len(line.lstrip())]
    lines[lineno - 1] = indent + b"pass" + line[len(line.rstrip(b"\r\n")):]


def process(path: str, data: bytes, facts: FileFacts, index: ProjectIndex,
            config: Config, rule_ids: list[str]) -> FileResult:
    """Rewrite one file's bytes (a ``.py`` file or a notebook)."""
    if not path.endswith(".ipynb"):
        return rewrite_python(data, path, facts, index, config, rule_ids)
    from linen_upgrade import notebook

    try:
        nb = notebook.extract(data, path)
    except notebook.NotebookError as exc:
        return FileResult(path=path, original=data, error=str(exc))
    inner = rewrite_python(nb.code.encode("utf-8"), path, facts, index, config, rule_ids)
    joined = inner.new.decode("utf-8") if inner.new is not None else nb.code
    fixed = [dataclasses.replace(f, cell=cell, line=line) for f in inner.fixed
             for cell, line in [notebook.locate_in(joined, f.line)]]
    result = FileResult(path=path, original=data, findings=inner.findings, fixed=fixed,
                        error=inner.error, parsed=inner.parsed)
    if inner.error is not None:
        return result
    try:
        rebuilt = notebook.rebuild(nb, joined)
    except notebook.NotebookError as exc:
        result.error = f"{path}: {exc}; notebook left unchanged"
        return result
    # all or nothing: a notebook with a part the tool cannot convert is not touched
    result.findings = [Finding(path, p.line, p.col, "LU901", p.message, cell=p.cell) for p in rebuilt.problems]
    result.findings += [dataclasses.replace(f, cell=i) for i, source in rebuilt.sources.items()
                        for f in findings_in(source, path)]
    # findings about the source itself (it did not compile before) have no TODO to be read back from
    result.findings += [dataclasses.replace(f, cell=cell, line=line) for f in inner.findings
                        if f.rule == SOURCE_RULE for cell, line in [notebook.locate_in(joined, f.line)]]
    if rebuilt.problems:
        result.fixed = []
    elif rebuilt.data != data:
        result.new = rebuilt.data
    return result


_IMPORT_RE = re.compile(rb"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import[ \t]+([^\n#]*)|import[ \t]+([^\n#]*))",
                        re.MULTILINE)


def imported_modules(data: bytes, package: str, absolute: Callable[[str], str] | None = None) -> set[str]:
    """Modules a file imports, by a regex (the prefilter must not parse);
    ``absolute`` names what an absolute import reaches (``resolve.import_map``)."""
    resolve = absolute or (lambda module: module)
    out: set[str] = set()
    for m in _IMPORT_RE.finditer(data):
        if m[1] is not None:
            module = m[1].decode("ascii", "replace")
            if module.startswith("."):
                level = len(module) - len(module.lstrip("."))
                base = package.split(".") if package else []
                base = base[: len(base) - (level - 1)] if level > 1 else base
                module = ".".join([*base, module.lstrip(".")] if module.lstrip(".") else base)
            else:
                module = resolve(module)
            out.add(module)
            for name in re.split(rb"[,\s()]+", m[2]):
                if name and name != b"as":
                    out.add(f"{module}.{name.decode('ascii', 'replace')}")
        else:
            for part in m[3].split(b","):
                name = part.strip().split(b" ")[0]
                if name:
                    out.add(resolve(name.decode("ascii", "replace")))
    return out
