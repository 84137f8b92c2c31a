"""The run: discover → prefilter → index → rewrite, in a process pool.

Scan (cheap): read each file; only files whose bytes hold a name some
rule looks for (``files.may_need_rewrite``: a legacy flax name, a JAX name the
tables rename, a FrozenDict-only call, a TODO of ours) get ``ast`` facts, in a pool
when they are many, the rest only a regex of their imports.  Such a file is still a candidate when it
imports a module of the run that uses legacy flax (implicit legacy:
``model.params`` on a model built elsewhere), or holds a legacy key
(``params['Dense_2']``) in a run with legacy flax, or when a file using
``flax.nn`` imports it, directly or through such files (a Model may be handed
to its functions: ``stats.count(model)``, LU202), or when
a file using ``flax.optim`` imports it, directly or through such files, or it
imports one of those (an optimizer may be handed to its functions: LU302).
Index: legacy module classes across all candidates; with a pool, LU302's
optimizer groups are built next, once, by its workers.  Rewrite (parallel, one
file at a time, the largest first): LibCST only where a rule applies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from linen_upgrade.config import Config
from linen_upgrade.analysis import identity
from linen_upgrade.files import may_need_rewrite

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from linen_upgrade import engine
    from linen_upgrade.facts import FileFacts
    from linen_upgrade.index import ProjectIndex

# below this many files a pool costs more than it saves
_POOL_THRESHOLD = 8


@dataclass
class Scan:
    path: str
    module: str
    facts: FileFacts | None = None
    imports: frozenset[str] = frozenset()
    error: str | None = None
    keys: bool = False  # (a file without flax) it holds a legacy key: facts.LEGACY_KEY


def _scan(path: str) -> Scan:
    """Read a file and take its ``ast`` facts: a file a rule may apply to by itself
    (``_may_need_rewrite``), or (the second pass) one that imports a file that has facts."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return Scan(path, "", error=f"{path}: cannot read: {exc.strerror or exc}")
    from linen_upgrade import engine

    mod = _module(path)
    try:
        return Scan(path, mod, facts=engine.facts_for(data, path, mod))
    except (engine.SourceError, Exception) as exc:  # noqa: BLE001 - reported, never fatal
        return Scan(path, mod, error=str(exc) if isinstance(exc, engine.SourceError)
                    else f"{path}: cannot scan: {type(exc).__name__}: {exc}")


def _may_need_rewrite(path: str) -> bool:
    """Could a rule apply to this file by itself (``files.may_need_rewrite`` of its bytes)?  The
    common case in a monorepo is no: the file is only read.  A file that cannot be read is scanned
    all the same (the scan reports it)."""
    try:
        with open(path, "rb") as handle:
            return may_need_rewrite(handle.read())
    except OSError:
        return True


def _scan_imports(path: str) -> Scan:
    """The modules a file without ``flax`` imports (regex, no parse)."""
    from linen_upgrade import engine
    from linen_upgrade.facts import LEGACY_KEY

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        return Scan(path, "", error=f"{path}: cannot read: {exc.strerror or exc}")
    mod = _module(path)
    return Scan(path, mod, imports=frozenset(engine.imported_modules(data, identity.package(mod, path),
                                                                     identity.resolver_for(path))),
                keys=LEGACY_KEY.search(data.decode("utf-8", "replace")) is not None)


def _with_packages(modules: set[str]) -> set[str]:
    """The modules and their packages (``import pkg`` then ``pkg.models.X``)."""
    return modules | {m.rpartition(".")[0] for m in modules if "." in m}


def _module(path: str) -> str:
    """The run's name of a file (by its path: two ``train.py`` are two modules)."""
    table = identity.current()  # set by run() for the whole run, in every process
    return table.name(path) if table is not None else ""


# worker state for the rewrite phase (set once per process by the initializer)
_W: dict = {}


def _init_worker(index: ProjectIndex, config: Config, rule_ids: list[str]) -> None:
    identity.use(index.table)
    _W["index"] = index
    _W["config"] = config
    _W["rules"] = rule_ids


def _rewrite(job: tuple[str, FileFacts]) -> engine.FileResult:
    from linen_upgrade import engine

    path, facts = job
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return engine.FileResult(path=path, error=f"{path}: cannot read: {exc.strerror or exc}")
    try:
        return engine.process(path, data, facts, _W["index"], _W["config"], _W["rules"])
    except Exception as exc:  # noqa: BLE001 - one file's failure never stops the run
        return engine.FileResult(path=path, original=data,
                                 error=f"{path}: internal error: {type(exc).__name__}: {exc}")


def _rewrite_in_pool(job: tuple[str, FileFacts], views: dict | None) -> engine.FileResult:
    if views is not None:  # the optimizer groups, built once by the pool (``_optim_groups``)
        from linen_upgrade.rules import _optim_cross

        _optim_cross.adopt(_W["index"], views)
    return _rewrite(job)


def _largest_first(pool: "ProcessPoolExecutor", jobs_list: list[tuple[str, FileFacts]],
                   views: dict | None) -> Iterator[engine.FileResult]:
    """The rewrites one file at a time, the largest first: a worker that finishes takes the
    next, so the workers end within a small file of each other (runs of neighbouring files,
    which read the same other files, left one worker up to a run behind; a worker reading
    another file the other one read too costs less)."""
    jobs_list = sorted(jobs_list, key=lambda job: -_size(job[0]))
    return pool.map(_rewrite_in_pool, jobs_list, [views] * len(jobs_list))


def _optim_cross_module(index: ProjectIndex, rule_ids: list[str]):
    """LU302's cross-file groups (``rules/_optim_cross.py``) when this run has some to build:
    every file's rewrite asks whether it is in one, so without a pool the first file builds them
    all.  Imported here, before the pool forks, so its workers start with it (and LibCST) loaded."""
    if "LU302" not in rule_ids or not index.optim_creators:
        return None
    from linen_upgrade.rules import _optim_cross

    return _optim_cross


def _optim_groups(pool: "ProcessPoolExecutor", cross, index: ProjectIndex, config: Config) -> dict | None:
    """module -> its group's view, each group built once, in a worker (the largest first file
    first), before any rewrite: built by every worker in turn, they cost each about a tenth
    of the corpus's ``-j 1`` time.  None: a group failed to build; each worker then builds them itself,
    and the files report the failure as without a pool."""
    starts = sorted(cross.starts(index), key=lambda module: -_size(index.paths[module]))
    try:
        built = dict(zip(starts, pool.map(_group_views, starts)))
    except Exception:  # noqa: BLE001 - reported by each file's rewrite (engine: internal error)
        return None
    return cross.run_views(index, config, built)


def _group_views(start: str) -> dict:
    from linen_upgrade.rules import _optim_cross

    return _optim_cross.group_views(_W["index"], _W["config"], start)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


@dataclass
class RunResult:
    results: list[engine.FileResult]
    scanned: int


def _map(pool: "ProcessPoolExecutor | None", fn: Callable, items: list) -> Iterator:
    if pool is None:
        return map(fn, items)
    return pool.map(fn, items, chunksize=max(1, len(items) // (8 * (pool._max_workers or 1))))


def run(paths: Iterable[Path], config: Config, rule_ids: list[str], jobs: int,
        progress: Callable[[int, int], None] | None = None) -> RunResult:
    files = [str(p) for p in paths]
    jobs = max(1, jobs)
    table = identity.ModuleTable.build(files)
    identity.use(table)
    pool = None

    def scan_map(fn: Callable, items: list) -> Iterator:
        """The scan passes share a pool, started by the first with enough files for one (``_pool``
        imports multiprocessing: not at start-up)."""
        nonlocal pool
        if pool is None and jobs > 1 and len(items) >= _POOL_THRESHOLD:
            pool = _pool(jobs, initializer=identity.use, initargs=(table,))
        return _map(pool, fn, items)

    try:
        # the bytes first, here: only the files a rule may apply to get facts, and a pool only when
        # they are many (a pre-commit hook's files, mostly modern code, never start one)
        candidates = [path for path in files if _may_need_rewrite(path)]
        found = dict(zip(candidates, scan_map(_scan, candidates)))
        scans = [found.get(path) or Scan(path, "") for path in files]
        flax_modules = _with_packages({s.module for s in scans if s.facts is not None})
        # the modules a file may get a legacy value from (a JAX rename or a FrozenDict call stays in its file)
        legacy = _with_packages({s.module for s in scans
                                 if s.facts is not None and s.facts.references("flax.nn", "flax.optim")})
        others = [s.path for s in scans if s.facts is None and s.error is None]
        secondary = []
        if legacy and others:
            imported = [s for s in scan_map(_scan_imports, others) if s.error is None]
            # implicit legacy: a file that imports a module of the run that uses legacy flax
            secondary = [s.path for s in imported if s.imports & legacy]
            # a helper reading params or state by a legacy key (count(params): params['Dense_2']),
            # handed them by a file of the run whatever imports what
            secondary += [s.path for s in imported if s.keys and not s.imports & legacy]
            handed = _model_reach(scans, imported, set(secondary))
            secondary += handed
            # read as the files with flax are: calls of their functions are followed (``Analysis``)
            flax_modules |= _with_packages({s.module for s in imported if s.path in set(handed)})
            secondary += _optim_reach(scans, imported, set(secondary))
        if secondary:
            again = {s.path: s for s in scan_map(_scan, secondary)}
            scans = [again.get(s.path, s) for s in scans]
        if all(s.facts is None and s.error is None for s in scans):  # nothing to parse: LibCST is not loaded
            return RunResult(results=[], scanned=len(files))
        from linen_upgrade import engine
        from linen_upgrade.index import ProjectIndex

        index = ProjectIndex.build([s.facts for s in scans if s.facts is not None])
        index.flax_modules = flax_modules
        index.table = table
        index.paths = {s.module: s.path for s in scans if s.facts is not None and s.module}
        results = [engine.FileResult(path=s.path, error=s.error) for s in scans if s.error]
        jobs_list = [(s.path, s.facts) for s in scans if s.facts is not None]
        if pool is not None:  # the scan passes' (the rewrite's workers hold the index)
            pool.shutdown()
            pool = None
        if jobs > 1 and len(jobs_list) >= _POOL_THRESHOLD:
            cross = _optim_cross_module(index, rule_ids)
            pool = _pool(jobs, initializer=_init_worker, initargs=(index, config, rule_ids))
            views = _optim_groups(pool, cross, index, config) if cross is not None else None
            rewrites = _largest_first(pool, jobs_list, views)
        else:
            if jobs_list:  # the rules' modules are imported only when some file has work for them
                _init_worker(index, config, rule_ids)
            rewrites = map(_rewrite, jobs_list)
        total = len(jobs_list)
        for done, result in enumerate(rewrites, start=1):
            results.append(result)
            if progress:
                progress(done, total)
        results.sort(key=lambda r: r.path)
        return RunResult(results=results, scanned=len(files))
    finally:
        identity.use(None)
        if pool is not None:  # after Ctrl-C, the files not started yet are not waited for
            pool.shutdown(cancel_futures=True)


_OPTIM_REACH_CAP = 200


def _import_closure(reach: set[str], imported: list[Scan], chosen: set[str]) -> list[str]:
    """The files of ``imported`` whose modules ``reach`` names and not yet in ``chosen``, and the
    ones those import, transitively (each added to ``chosen`` and, its imports, to ``reach``)."""
    found: list[str] = []
    changed = True
    while changed:
        changed = False
        for s in imported:
            if s.module in reach and s.path not in chosen:
                chosen.add(s.path)
                found.append(s.path)
                reach |= s.imports
                changed = True
    return found


def _model_reach(scans: list[Scan], imported: list[Scan], chosen: set[str]) -> list[str]:
    """Files without legacy names that the files using ``flax.nn`` import, and those import,
    transitively: a legacy Model may be handed to their functions (``stats.count(model)``, which
    reads ``model.params``), and the caller hands over the params where LU202 converts the callee,
    so the callee's file must be read too (``applicability._usage``: ``index.referenced``)."""
    reach: set[str] = set()
    for s in scans:
        if s.facts is not None and s.facts.references("flax.nn"):
            reach |= s.facts.imports.imported_modules
    reach |= {m for s in imported if s.path in chosen for m in s.imports}
    found = _import_closure(reach, imported, set(chosen))
    # (as _optim_reach: a library every file imports would pull in the whole tree)
    return found if len(found) <= _OPTIM_REACH_CAP else []


def _optim_reach(scans: list[Scan], imported: list[Scan], chosen: set[str]) -> list[str]:
    """Files without ``flax`` that the files using ``flax.optim`` import, and
    those import, transitively: a legacy optimizer may be handed to their
    functions (``steps.train_step(optimizer, batch)``), which LU302 converts
    together with the file that creates it."""
    reach: set[str] = set()
    for s in scans:
        if s.facts is not None and s.facts.references("flax.optim"):
            reach |= s.facts.imports.imported_modules
    found = _import_closure(reach, imported, chosen)
    reach_modules = {s.module for s in imported if s.path in chosen}
    # and the files calling their functions: each call must hand over what the others do
    found += [s.path for s in imported if s.path not in chosen and s.imports & reach_modules]
    # a library every file imports (a vendored package, a shared utils) would pull in the whole
    # tree: then none is read, and an optimizer handed to such a file gets LU302's TODO
    # ("... which this rule cannot read") in the file that creates it
    return found if len(found) <= _OPTIM_REACH_CAP else []


def _pool(jobs: int, **kwargs) -> ProcessPoolExecutor:
    """A process pool; forked (fast) unless the host process runs JAX, whose
    threads make ``fork`` unsafe (an embedding program or a test session)."""
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor

    method = "spawn" if "jax" in sys.modules else None
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method), **kwargs)


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def rewrite_text(data: bytes, path: str, config: Config, rule_ids: list[str]) -> engine.FileResult:
    """A single source with no project around it (stdin, tests, examples)."""
    from linen_upgrade import engine
    from linen_upgrade.index import ProjectIndex

    try:
        facts = engine.facts_for(data, path, "")
    except engine.SourceError as exc:
        return engine.FileResult(path=path, original=data, error=str(exc))
    index = ProjectIndex.build([facts])
    return engine.process(path, data, facts, index, config, rule_ids)
