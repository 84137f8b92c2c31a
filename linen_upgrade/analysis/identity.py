"""Module identity by path: every file of the run has one name, and every
import resolves to a file of the run or to "outside the run".

Research repositories hold many ``train.py``/``models.py`` in folders without
``__init__.py``; Python's own naming (climb while the folder is a package)
gives them all the same name, and a project index keyed by it merges classes
of different files.  Here a file is named by its path from the run's root
(the common folder of its files, climbed while that is a package), dotted:
``exp_a/models.py`` is ``exp_a.models``, ``pkg/nn/layers.py`` is
``pkg.nn.layers``.  Names stay dotted so ``module.Class`` strings and
attribute chains through package imports (``import pkg`` then
``pkg.nn.layers.Dense``) keep working.

An absolute import in a file is looked up where Python would find it: the
file's own folder (a script's ``sys.path[0]``), its import root (the folder
above its top package), then the folders above it up to the run's root (an
import root inferred from where scripts sit); failing that, a unique file of
the run whose path ends in the imported name (an import root inferred from
the imports themselves), or, for a deep import whose head the run has no file
or folder of (a monorepo's internal path kept by exported code), the rest of it
read from the importer's folder, where the last name dropped is that folder by
another name (``ssd_jax`` for ``ssd-research-JAX-tpu/``).  What is not found, or
found twice, is outside the run and keeps its own name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


# packages no research repository ships a copy of, and whose calls say nothing about a module's
# signature: their names never resolve into the run (also ``facts``' filter of module calls)
EXTERNAL_PACKAGES = frozenset({"flax", "jax", "jaxlib", "numpy", "optax", "scipy", "tensorflow", "torch",
                               "tensorflow_datasets", "absl", "ml_collections", "chex", "haiku", "functools",
                               "typing", "os", "sys", "collections", "math", "builtins", "itertools"})


def _package_root(folder: str) -> str:
    """Climb while ``folder`` is a package: the folder its top package sits in."""
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def _words(name: str) -> list[str]:
    """``bert-research-JAX-tpu-v3/`` -> bert, research, jax, tpu, v3: a name's words, in any spelling."""
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def _component(name: str) -> str:
    # a folder named ``results_v0.7`` must not add a level to the dotted name
    return name.replace(".", "_")


@dataclass
class ModuleTable:
    """The files of one run, each named by its path from ``root``."""

    root: str
    names: dict[str, str] = field(default_factory=dict)  # absolute path -> dotted name
    paths: dict[str, str] = field(default_factory=dict)  # dotted name -> absolute path
    folders: dict[str, str] = field(default_factory=dict)  # absolute folder -> dotted name
    # the last k components of every module's and folder's name -> the names ending so
    tails: dict[str, list[str]] = field(default_factory=dict)
    # every path component of the run: an import whose head is none of them is outside at once
    heads: frozenset[str] = frozenset()

    @classmethod
    def build(cls, files: Iterable[str]) -> ModuleTable:
        # where two files get one name, the one Python imports keeps it: a package's __init__.py
        # before a module beside it (results/ and results.py), a module before a notebook
        # (vit_jax.ipynb beside vit_jax/, which otherwise renamed the package and its imports)
        absolute = sorted({os.path.abspath(f) for f in files},
                          key=lambda p: (not p.endswith(".py"), os.path.basename(p) != "__init__.py", p))
        if not absolute:
            return cls(root="")
        root = _package_root(os.path.commonpath([os.path.dirname(f) for f in absolute]))
        table = cls(root=root)
        heads: set[str] = set()
        for path in absolute:
            rel = os.path.relpath(path, root).split(os.sep)
            stem = os.path.splitext(rel[-1])[0]
            parts = [_component(p) for p in rel[:-1]] + ([] if stem == "__init__" else [stem])
            name = ".".join(parts)
            if name in table.paths:  # a module or notebook beside a package, or sanitised twins
                name = f"{name}#{len(table.paths)}"
            table.names[path] = name
            table.paths[name] = path
            heads.update(rel[:-1])
            heads.add(stem)
            folder = os.path.dirname(path)
            for depth in range(len(rel) - 1, 0, -1):
                table.folders.setdefault(folder, ".".join(parts[:depth]))
                folder = os.path.dirname(folder)
        table.heads = frozenset(heads)
        for name in [*table.paths, *table.folders.values()]:
            parts = name.split(".")
            for k in range(1, len(parts) + 1):
                tail = ".".join(parts[-k:])
                bucket = table.tails.setdefault(tail, [])
                if name not in bucket:
                    bucket.append(name)
        return table

    def name(self, path: str) -> str:
        """The dotted name of a file of the run ("" for one outside it)."""
        return self.names.get(os.path.abspath(path), "")

    def path(self, name: str) -> str | None:
        return self.paths.get(name)

    def resolver(self, importer: str) -> Callable[[str], str]:
        """How ``importer``'s absolute imports name modules: the run's name
        of the file or folder they reach, or their own name when outside."""
        here = os.path.dirname(os.path.abspath(importer))
        roots = [here, _package_root(here)]
        folder = here
        while folder.startswith(self.root) and folder != os.path.dirname(folder):
            folder = os.path.dirname(folder)
            if not folder.startswith(self.root):
                break
            roots.append(folder)
        roots = list(dict.fromkeys(roots))
        cache: dict[str, str] = {}

        def resolve(module: str) -> str:
            if (not module or module.partition(".")[0] in EXTERNAL_PACKAGES
                    or not self.heads.intersection(module.split("."))):
                return module  # flax, jax, numpy: the common case costs one set lookup
            if module not in cache:
                cache[module] = self._find(roots, module)
            return cache[module]

        return resolve

    def import_name(self, importer: str, module: str) -> str | None:
        """How ``importer`` can import the run's ``module`` (its run name ``repo-a.models``): the
        longest tail of the name that is Python and that ``importer``'s imports resolve to it
        (``models`` beside it); None where none is (a notebook's twin, a folder name with a dash
        and the module not beside the importer)."""
        resolve = self.resolver(importer)
        parts = module.split(".")
        for k in range(len(parts), 0, -1):
            tail = parts[-k:]
            if all(p.isidentifier() for p in tail) and resolve(".".join(tail)) == module:
                return ".".join(tail)
        return None

    def _find(self, roots: list[str], module: str) -> str:
        parts = module.split(".")
        for root in roots:
            base = os.path.join(root, *parts)
            for candidate in (os.path.join(base, "__init__.py"), base + ".py"):  # a package before a module
                if candidate in self.names:
                    return self.names[candidate]
            if base in self.folders:  # a namespace package (or a package holding run files)
                return self.folders[base]
        found = self.tails.get(module, [])
        if len(found) == 1:
            return found[0]
        # ``sam.sam_jax.models`` run on a checkout of the ``sam`` package under another folder name
        # (``google-research__sam/``): the names after the package's own, when they are one file's
        # in a folder that is the package by another name (not ``official.vision.layers`` of an
        # installed package over the run's ``proj/vision/layers.py``)
        rest = self.tails.get(".".join(parts[1:]), []) if len(parts) > 2 else []
        if len(rest) == 1:
            above_rest = rest[0].split(".")[:-(len(parts) - 1)]
            folder = above_rest[-1] if above_rest else os.path.basename(self.root)
            if set(_words(parts[0])) <= set(_words(folder)):
                return rest[0]
        # ``lra.models.layers`` run on ``lra/models/``: the import's first folders lie above the run
        # (two names at least: one alone says too little), and are the names it drops -- not
        # ``transformers.models``, whose ``bert.modeling`` merely shares a file of the run's name;
        # ``pkg.util`` run on ``pkg/``, the whole import read from the folder above the run, is the
        # same with no name dropped
        above = [self.root, os.path.dirname(self.root), os.path.dirname(os.path.dirname(self.root))]
        for k in range(len(parts) - 1):
            for folder in above:
                if k and [_component(c) for c in folder.split(os.sep)[-k:]] != parts[:k]:
                    continue
                base = os.path.join(folder, *parts[k:])
                for candidate in (os.path.join(base, "__init__.py"), base + ".py"):
                    if candidate in self.names:
                        return self.names[candidate]
        # ``REDACTED.tensorflow_models.mlperf.ssd_jax.resnet34.models`` in a file beside ``resnet34/``:
        # code exported from a monorepo keeps its internal package path, which no folder of the run
        # bears.  A deep import (four names at least) whose head no file or folder of the run bears is
        # read from the importer's own folder, its leading names dropped (the longest rest first), when
        # the last name dropped is the importer's folder by another name (``ssd_jax`` for
        # ``ssd/.../ssd-research-JAX-tpu-v3-4096/``): ``official.nlp.modeling.layers`` is an installed
        # package's, not ``layers.py`` beside the importer
        if len(parts) >= 4 and parts[0] not in self.heads:
            where = set(_words(os.path.relpath(roots[0], os.path.dirname(self.root))))
            for k in range(1, len(parts)):
                if not set(_words(parts[k - 1])) <= where:
                    continue
                base = os.path.join(roots[0], *parts[k:])
                for candidate in (os.path.join(base, "__init__.py"), base + ".py"):
                    if candidate in self.names:
                        return self.names[candidate]
        return module


def package(module: str, path: str | None) -> str:
    """The package relative imports start from: a package's ``__init__.py`` is its own."""
    if path and os.path.basename(path) == "__init__.py":
        return module
    return module.rpartition(".")[0]


# The table of the run in progress, set by the pipeline in each process:
# facts read anywhere (the scan, a rule reading another file) name imports alike.
_CURRENT: list[ModuleTable | None] = [None]


def use(table: ModuleTable | None) -> None:
    _CURRENT[0] = table


def current() -> ModuleTable | None:
    return _CURRENT[0]


def resolver_for(path: str | None) -> Callable[[str], str] | None:
    table = _CURRENT[0]
    if table is None or not path or table.name(path) == "":
        return None
    return table.resolver(path)
