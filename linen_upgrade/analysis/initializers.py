"""Which top-level functions of a file are legacy initializers that Linen
would call differently (read with ``ast``, for the file's facts and, through
the project index, for the files that import them).

Legacy built-in modules called an initializer ``init(key, shape)``; Linen's
call ``init(key, shape, dtype)``.  A function that takes exactly two
positional parameters fails there, and one whose third positional parameter
is not ``dtype`` would receive the dtype in it: both need an adapter (which
is exact, as legacy never passed a dtype).  A *factory* is a function whose
every ``return`` gives such a function (``def uniform(scale): def init(key,
shape): ...; return init``).  Only names bound once at the top level count:
anything else may hold another value by the time it is used.

In a run that turns jax's x64 on, Linen's built-ins pass ``param_dtype=float``
(``tables.x64``): a function whose ``dtype`` defaults to anything but jax's
default float (``dtype=jnp.float32``) made legacy parameters of that default,
and gets the adapter in those runs only (``X64_FUNCTION``, ``X64_FACTORY``).
"""

from __future__ import annotations

import ast
from collections import Counter

from linen_upgrade.analysis.walk import nodes

FUNCTION = "function"
FACTORY = "factory"
X64_FUNCTION = "x64 function"
X64_FACTORY = "x64 factory"
# how a ``dtype`` default may spell jax's default float (float64 under x64, float32 without)
_DEFAULT_FLOAT = frozenset({"float", "float_", "float64", "double"})

_Fn = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def needs_adapter(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> bool:
    """Would ``fn(key, shape, dtype)`` fail or mean something else than ``fn(key, shape)``?"""
    positional = [*fn.args.posonlyargs, *fn.args.args]
    takes_two = len(positional) >= 2 or fn.args.vararg is not None
    takes_dtype = len(positional) >= 3 and positional[2].arg == "dtype"
    return takes_two and not takes_dtype


def needs_adapter_x64(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> bool:
    """Would ``fn(key, shape, float64)`` mean something else than ``fn(key, shape)``: its
    ``dtype`` (third) defaults to another dtype than jax's default float?"""
    positional = [*fn.args.posonlyargs, *fn.args.args]
    if len(positional) < 3 or positional[2].arg != "dtype":
        return False
    defaults = [None] * (len(positional) - len(fn.args.defaults)) + list(fn.args.defaults)
    default = defaults[2]
    if default is None:
        return False  # required: legacy could not have called it
    spelled = default.value if isinstance(default, ast.Constant) else \
        default.attr if isinstance(default, ast.Attribute) else default.id if isinstance(default, ast.Name) else None
    return spelled not in _DEFAULT_FLOAT


def _kind(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> str | None:
    """FUNCTION, X64_FUNCTION or None for one initializer function."""
    return FUNCTION if needs_adapter(fn) else X64_FUNCTION if needs_adapter_x64(fn) else None


def initializers(tree: ast.Module) -> dict[str, str]:
    """Top-level name -> FUNCTION or FACTORY (see the module docstring)."""
    count = _top_level_bindings(tree)
    out: dict[str, str] = {}
    for stmt in tree.body:
        fn: ast.AST | None = None
        name = None
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            fn, name = stmt, stmt.name
        elif (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
              and isinstance(stmt.value, ast.Lambda)):
            fn, name = stmt.value, stmt.targets[0].id
        if fn is None or name is None or count[name] != 1:
            continue
        made = _makes_initializers(fn) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
        kind = made or _kind(fn)  # type: ignore[arg-type]  # first: ``np_init(seed, scale)`` takes two too
        if kind is not None:
            out[name] = kind
    return out


def _makes_initializers(factory: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """FACTORY when every function it returns needs the adapter, X64_FACTORY when
    each needs it at least in x64 runs, else None."""
    nested: dict[str, ast.AST] = {}
    returns: list[ast.expr | None] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nested[child.name] = child  # its own returns are not the factory's
            elif isinstance(child, ast.Return):
                returns.append(child.value)
            elif not isinstance(child, (ast.Lambda, ast.ClassDef)):
                walk(child)

    walk(factory)
    made = [r if isinstance(r, ast.Lambda) else nested.get(r.id) if isinstance(r, ast.Name) else None
            for r in returns]
    kinds = {_kind(f) if isinstance(f, _Fn) else None for f in made}  # type: ignore[arg-type]
    if not made or None in kinds:
        return None
    return FACTORY if kinds == {FUNCTION} else X64_FACTORY


def _top_level_bindings(tree: ast.Module) -> Counter[str]:
    """How often each name is bound at the top level (statements nested in if/for/try
    included, function and class bodies not); a ``global`` anywhere counts too."""
    count: Counter[str] = Counter()

    def bind(target: ast.AST) -> None:
        for n in ast.walk(target):
            if isinstance(n, ast.Name):
                count[n.id] += 1

    def visit(stmts: list[ast.stmt]) -> None:
        for s in stmts:
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                count[s.name] += 1
                continue
            if isinstance(s, ast.Assign):
                for t in s.targets:
                    bind(t)
            elif isinstance(s, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
                bind(s.target)
            elif isinstance(s, (ast.With, ast.AsyncWith)):
                for item in s.items:
                    if item.optional_vars is not None:
                        bind(item.optional_vars)
            elif isinstance(s, (ast.Import, ast.ImportFrom)):
                for a in s.names:
                    count[(a.asname or a.name).split(".")[0]] += 1
            for field in ("body", "orelse", "finalbody"):
                inner = getattr(s, field, None)
                if isinstance(inner, list):
                    visit(inner)
            for handler in getattr(s, "handlers", []):
                if handler.name:
                    count[handler.name] += 1
                visit(handler.body)

    visit(tree.body)
    for node in nodes(tree):
        if isinstance(node, ast.Global):
            for name in node.names:
                count[name] += 1
        elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            count[node.target.id] += 1  # may bind at the top level from a comprehension
    return count
