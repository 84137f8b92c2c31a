"""Which parameters a function of another file of the run only reads.

LU101 leaves a module whose body does more than read a list or dict attribute
(Linen hands it over as a tuple or FrozenDict).  Handing the attribute to a
function of another file (``masks = masked.generate_model_masks(depth, masks)``)
reads it when that function only indexes, iterates, measures, tests membership
in or compares with None the parameter it fills; a function that stores,
mutates, closes over or passes the value on to other code is not known to.  A
function that may return the parameter itself reads it only where the caller
rebinds the name it passed (the caller's own check then covers what follows).
"""

from __future__ import annotations

import ast

import libcst as cst

from linen_upgrade.index import ProjectIndex
from linen_upgrade.resolve import ImportMap, import_map
from linen_upgrade.rules._definitions import _READ_METHODS, _READERS
from linen_upgrade.rules._frozen_attributes import reads_sequences
from linen_upgrade.rules._usage_external import module_file

READ, RETURNED = "read", "returned"


class _File:
    """A file's tree, its imports and every name it binds anywhere (a builtin it binds is not one)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.tree = ast.parse(data)
        self.imports: ImportMap = import_map(self.tree)
        self.bound = {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        self.bound |= {n.name for n in ast.walk(self.tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        self.bound |= {n.arg for n in ast.walk(self.tree) if isinstance(n, ast.arg)} | set(self.imports.aliases)


# path -> the file as last read; per process, as engine.facts_for
_FILES: dict[str, _File | None] = {}


def argument_read(index: ProjectIndex, path: str, own_module: str, qual: str | None, call: cst.Call,
                  arg: cst.Arg, rebound: bool) -> bool:
    """Does the top-level function ``qual`` of another file of the run only read the parameter
    that ``arg`` of ``call`` fills?  Where it may return the value itself, only when ``rebound``
    (``call`` rebinds the very name the caller passes)."""
    if not qual or arg.star or not path or not own_module:
        return False
    module, _, name = index.canonical(qual).rpartition(".")
    file = module_file(path, own_module, module) if module and module != own_module else None
    other = _read(str(file)) if file is not None else None
    fns = [s for s in other.tree.body if getattr(s, "name", None) == name or name in _targets(s)] if other else []
    if len(fns) != 1 or not isinstance(fns[0], ast.FunctionDef) or fns[0].decorator_list:
        return False  # not one plain function of that file (also a class, a rebinding, an import)
    param = _param(fns[0], call, arg)
    found = _reads(fns[0], param, other) if param and other else None
    return found == READ or (found == RETURNED and rebound)


def _read(file: str) -> _File | None:
    try:
        with open(file, "rb") as f:
            data = f.read()
        known = _FILES.get(file)
        if known is None or known.data != data:
            _FILES[file] = _File(data)
    except (OSError, SyntaxError, ValueError):
        _FILES[file] = None
    return _FILES[file]


def _targets(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).partition(".")[0] for a in stmt.names}
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)} \
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.With, ast.If, ast.Try)) else set()


def _param(fn: ast.FunctionDef, call: cst.Call, arg: cst.Arg) -> str | None:
    """The parameter of ``fn`` that ``arg`` fills (none after an unpacked ``*args``)."""
    a = fn.args
    positional = [p.arg for p in [*a.posonlyargs, *a.args]]
    if arg.keyword is not None:
        named = {p.arg for p in [*a.args, *a.kwonlyargs]}
        return arg.keyword.value if arg.keyword.value in named else None
    before = call.args[:call.args.index(arg)]
    if any(x.star or x.keyword is not None for x in before):
        return None
    return positional[len(before)] if len(before) < len(positional) else None


def _reads(fn: ast.FunctionDef, name: str, file: _File) -> str | None:
    """READ when every use of ``name`` in ``fn`` reads it, RETURNED when one also returns it as is,
    None otherwise (a nested function, lambda or class using it counts as more than reading)."""
    parents: dict[int, ast.AST] = {}
    returned = False
    for node in ast.walk(fn):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    for node in ast.walk(fn):
        if node is not fn and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)) \
                and any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node)):
            return None
        if isinstance(node, (ast.Global, ast.Nonlocal)) and name in node.names:
            return None
        if not isinstance(node, ast.Name) or node.id != name:
            continue
        if isinstance(node.ctx, ast.Del):
            return None
        up = parents.get(id(node))
        if isinstance(node.ctx, ast.Store):
            if isinstance(up, ast.AugAssign):
                return None  # ``+=`` extends a list in place, makes a new tuple
            continue  # rebound: every use after is checked as well
        if isinstance(up, ast.Return):
            returned = True
        elif not _read_use(node, up, parents, file):
            return None
    return RETURNED if returned else READ


def _read_use(node: ast.Name, up: ast.AST | None, parents: dict[int, ast.AST], file: _File) -> bool:
    if isinstance(up, ast.Subscript):
        return up.value is node and isinstance(up.ctx, ast.Load)
    if isinstance(up, (ast.For, ast.comprehension)):
        return up.iter is node
    if isinstance(up, ast.Compare):
        if len(up.ops) == 1 and isinstance(up.ops[0], (ast.Is, ast.IsNot)):
            other = up.comparators[0] if up.left is node else up.left
            return isinstance(other, ast.Constant) and other.value is None
        return any(c is node and isinstance(op, (ast.In, ast.NotIn)) for op, c in zip(up.ops, up.comparators))
    if isinstance(up, (ast.If, ast.While, ast.IfExp, ast.Assert)):
        return up.test is node
    if isinstance(up, ast.UnaryOp):
        return isinstance(up.op, ast.Not)
    if isinstance(up, ast.Attribute):
        call = parents.get(id(up))
        return up.attr in _READ_METHODS and isinstance(call, ast.Call) and call.func is up
    if isinstance(up, ast.keyword):  # lax.conv_general_dilated(padding=p)
        call = parents.get(id(up))
        return isinstance(call, ast.Call) and _reads_sequences(call.func, file)
    if isinstance(up, ast.Call) and up.func is not node and node in up.args:
        if isinstance(up.func, ast.Name) and up.func.id in _READERS and up.func.id not in file.bound:
            return True
        return _reads_sequences(up.func, file)
    return False


def _reads_sequences(func: ast.expr, file: _File) -> bool:
    dotted = _dotted(func)
    return bool(dotted) and reads_sequences(file.imports.resolve_dotted(dotted))


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None
