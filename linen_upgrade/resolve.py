"""Import aliases -> qualified names: the light resolver every rule shares.

Full LibCST scope analysis costs about six times a parse (DESIGN.md), so we
read the imports once with Python's ``ast`` (a C parser, a small fraction of a
LibCST parse) and resolve ``Name``/``Attribute`` chains against that map.  The
map is file-wide: an import inside a function counts for the whole file, and a
module-level assignment to an imported name removes it (we would rather miss a
rewrite than rewrite the wrong object).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING

from linen_upgrade.analysis.walk import nodes


def _lazy(name: str) -> ModuleType:
    """``import name``, loaded at its first attribute use (importlib's ``LazyLoader``):
    the facts pass reads imports through this module, and deciding that a file
    needs no rewrite must not cost a LibCST import."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None, name
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    import libcst as cst
else:
    cst = _lazy("libcst")

# Legacy flax.nn lived in submodules that were re-exported from flax.nn; one
# canonical spelling lets the tables key on ``flax.nn.Dense`` alone.
_LEGACY_NN_SUBMODULES = frozenset(
    {"base", "linear", "normalization", "attention", "recurrent", "activation",
     "pooling", "stochastic", "utils", "initializers_", "stateful"}
)
_OPTIM_SUBMODULES = frozenset(
    {"base", "adam", "sgd", "momentum", "adagrad", "rmsprop", "lamb", "lars",
     "adafactor", "adadelta", "adabelief", "weight_norm", "dynamic_scale"}
)


@lru_cache(maxsize=None)  # the rules ask about the same few names over and over
def canonical(qualname: str) -> str:
    """Normalise spellings of the same legacy object.

    ``flax.deprecated.nn.X`` and ``flax.nn.linear.X`` are both ``flax.nn.X``;
    ``flax.optim.adam.Adam`` is ``flax.optim.Adam``.
    """
    if qualname.startswith("flax.deprecated.nn"):
        qualname = "flax.nn" + qualname[len("flax.deprecated.nn"):]
    parts = qualname.split(".")
    if len(parts) >= 4 and parts[:2] == ["flax", "nn"] and parts[2] in _LEGACY_NN_SUBMODULES:
        del parts[2]
    elif len(parts) >= 4 and parts[:2] == ["flax", "optim"] and parts[2] in _OPTIM_SUBMODULES:
        del parts[2]
    return ".".join(parts)


def dotted(node: cst.CSTNode) -> str | None:
    """``a.b.c`` for a chain of Name/Attribute nodes, else None."""
    parts: list[str] = []
    # exact types: ``isinstance`` against a LibCST class that does not match goes through
    # ``ABCMeta.__instancecheck__`` (several times slower), and this runs for most nodes of a pass
    while type(node) is cst.Attribute:
        parts.append(node.attr.value)
        node = node.value
    if type(node) is not cst.Name:
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


@dataclass
class ImportMap:
    """Local names bound by imports, each to the qualified name it stands for."""

    aliases: dict[str, str] = field(default_factory=dict)
    # every module the file imports (for the prefilter and cross-file index)
    imported_modules: set[str] = field(default_factory=set)
    # modules imported with ``from m import *`` (their names are re-exported: the index follows them)
    stars: list[str] = field(default_factory=list)
    # names the rewrite writes (``WRITTEN_NAMES``) that the file binds itself, in any scope and
    # not by importing them (``partial = Net.partial()`` in a function): spelled through their module
    bound_here: frozenset[str] = frozenset()
    # names only imports inside a function or class bind (``import jax.numpy as jnp`` in one
    # function): they resolve there, but the rewrite cannot write them anywhere else
    nested: frozenset[str] = frozenset()

    def spellable(self) -> dict[str, str]:
        """The aliases the rewrite may write anywhere in the file: those bound at its top (all of
        them in most files, which import nothing inside a function: no copy then)."""
        if not self.nested:
            return self.aliases
        return {k: v for k, v in self.aliases.items() if k not in self.nested}

    def resolve_dotted(self, name: str) -> str | None:
        head, _, rest = name.partition(".")
        target = self.aliases.get(head)
        if target is None:
            return None
        return canonical(f"{target}.{rest}" if rest else target)

    def resolve(self, node: cst.CSTNode) -> str | None:
        name = dotted(node)
        return self.resolve_dotted(name) if name else None

    def local_names_for(self, qualname: str) -> list[str]:
        """Local names bound directly to ``qualname`` (after canonicalisation)."""
        return [k for k, v in self.aliases.items() if canonical(v) == qualname]

    def uses_prefix(self, prefix: str) -> bool:
        return any(canonical(v) == prefix or canonical(v).startswith(prefix + ".")
                   for v in self.aliases.values())


def _absolute(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    base = package.split(".") if package else []
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def import_map(tree: ast.AST, package: str = "", absolute: Callable[[str], str] | None = None) -> ImportMap:
    """Build the alias map of a module from its ``ast``.

    ``package`` is the dotted package the file lives in, for relative imports;
    ``absolute`` names what an absolute import reaches (``analysis.identity``:
    the run's name of the file, so two ``models.py`` are two modules).
    """
    name = absolute or (lambda module: module)
    result = ImportMap()
    shadowed: set[str] = set()
    top = {id(s) for s in _top_statements(tree)}
    at_top: set[str] = set()
    inside: set[str] = set()
    for node in nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            (at_top if id(node) in top else inside).update(
                (a.asname or a.name.split(".")[0]) if isinstance(node, ast.Import) else (a.asname or a.name)
                for a in node.names)
        if isinstance(node, ast.Import):
            for alias in node.names:
                result.imported_modules.add(name(alias.name))
                if alias.asname:
                    result.aliases[alias.asname] = name(alias.name)
                else:
                    head = alias.name.split(".")[0]
                    result.aliases.setdefault(head, name(head))
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, package) if node.level else name(node.module or "")
            result.imported_modules.add(module)
            for alias in node.names:
                if alias.name == "*":
                    result.stars.append(module)
                    continue
                target = f"{module}.{alias.name}"
                if not node.level and module == node.module:  # a submodule may be found where its package is not
                    target = name(target)
                result.imported_modules.add(target)
                result.aliases[alias.asname or alias.name] = target
    if isinstance(tree, ast.Module):
        for stmt in tree.body:
            targets: list[ast.expr] = []
            if isinstance(stmt, ast.Assign):
                targets = list(stmt.targets)
            elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
                targets = [stmt.target]
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                shadowed.add(stmt.name)
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        shadowed.add(n.id)
    for name in shadowed:
        result.aliases.pop(name, None)
    result.nested = frozenset(inside - at_top) if isinstance(tree, ast.Module) else frozenset()
    return result


def _top_statements(tree: ast.AST) -> list[ast.stmt]:
    """The statements of a module's own scope: its body, and the blocks of its ``if``/``try``/
    ``with``/loops (not the bodies of functions and classes)."""
    found: list[ast.stmt] = []
    stack = list(getattr(tree, "body", ())) if isinstance(tree, ast.Module) else []
    while stack:
        stmt = stack.pop()
        found.append(stmt)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for part in ("body", "orelse", "finalbody"):
            stack.extend(getattr(stmt, part, ()))
        for handler in getattr(stmt, "handlers", ()):
            stack.extend(handler.body)
        for case in getattr(stmt, "cases", ()):
            stack.extend(case.body)
    return found
