"""``linen-upgrade PATH --verify``: after a rewrite, verify every legacy module
of every rewritten file that has inputs (``[tool.linen-upgrade.verify]`` or
the file's own ``init_by_shape`` call), comparing the pre-rewrite source (run
on flax 0.3.6) with the rewritten one (run on current flax).

Standard library only (jax runs in the verify subprocesses, never here).

Exit status (replaces the rewrite's "files changed" status): 0 when every
verified module agrees, 1 when any differs, 2 when a module could not run or
none could be verified. Modules without inputs are listed as skipped.
"""
from __future__ import annotations

import ast
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import module as module_mod
from . import optimizer as optmod
from . import runner
from . import settings as settings_mod

EXIT_OK, EXIT_DIFFER, EXIT_ERROR = 0, 1, 2
AUTO_TRAIN_STEPS = 5
NOTICE = ("verify: running the original code (on flax {ver}) and the rewritten code (on current flax) "
          "of {n} file(s) -- verify executes your code")

_LEGACY_MODULE_BASES = {"flax.nn.Module", "flax.deprecated.nn.Module", "flax.nn.base.Module",
                        "flax.deprecated.nn.base.Module"}


def legacy_module_names(source: str) -> List[str]:
    """Top-level classes of ``source`` that are legacy ``flax.nn`` modules with an
    ``apply`` method (directly or through another legacy class of the file)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    aliases = optmod._aliases(tree)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    legacy: Dict[str, bool] = {}

    def is_legacy(name: str, seen: Tuple[str, ...] = ()) -> bool:
        if name in legacy:
            return legacy[name]
        node = classes[name]
        result = False
        for b in node.bases:
            q = optmod._qualified(b, aliases)
            if q in _LEGACY_MODULE_BASES:
                result = True
            elif isinstance(b, ast.Name) and b.id in classes and b.id not in seen:
                result = result or is_legacy(b.id, seen + (name,))
        legacy[name] = result
        return result

    def has_apply(name: str, seen: Tuple[str, ...] = ()) -> bool:
        node = classes[name]
        if any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == "apply" for s in node.body):
            return True
        return any(isinstance(b, ast.Name) and b.id in classes and b.id not in seen
                   and has_apply(b.id, seen + (name,)) for b in node.bases)
    return [n for n in classes if is_legacy(n) and has_apply(n)]


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _auto_steps(legacy_py: str, upgraded_py: str, optimizer: Optional[str]) -> int:
    """Optimizer steps to compare when nothing is configured: AUTO_TRAIN_STEPS when an
    optimizer is found in both files, else 0."""
    lf, uf = optmod.parse_optimizer_option(optimizer)
    try:
        site = optmod.find_legacy_optimizer(legacy_py, lf)
        optmod.find_optax_transform(upgraded_py, uf, prefer_func=site.func)
    except optmod.OptimizerNotFound:
        return 0
    return AUTO_TRAIN_STEPS


def _file_name(r: Any) -> str:
    return Path(r.path).name if r.path not in ("-", "") else "stdin_module.py"


def verify_rewritten(results: Sequence[Any], cfg: Any, mode: str, echo: Callable[[str], None], *,
                     stdin: bool = False) -> int:
    """Verify the legacy modules of the rewritten files in ``results``
    (``engine.FileResult``: ``original`` holds the pre-rewrite bytes, ``new``
    the rewritten ones; in ``write`` mode the rewritten file is already on disk,
    except with ``stdin``). ``cfg``: the ``config.Config`` of the run.
    Returns the exit status."""
    if stdin:
        mode = "diff"
    from .commands import _print_module
    try:
        vs = settings_mod.parse(getattr(cfg, "verify", None) or {}, getattr(cfg, "source", None))
    except settings_mod.VerifyConfigError as e:
        echo(f"verify: error: {e}")
        return EXIT_ERROR
    todo = []
    for r in results:
        if r.error or not r.changed:
            continue
        if r.path.endswith(".ipynb"):
            echo(f"verify: {r.path}: skipped (notebooks are not verified)")
            continue
        names = legacy_module_names(_decode(r.original))
        if names:
            todo.append((r, names))
    if not todo:
        echo("verify: no rewritten file defines a legacy flax.nn module; nothing verified")
        return EXIT_ERROR
    from .legacy_env import FLAX_VERSION
    echo(NOTICE.format(ver=FLAX_VERSION, n=len(todo)))
    # the originals (and, unless written, the rewrites) of every changed file, by folder,
    # so that a file importing a rewritten sibling gets the right version on each side
    by_dir: Dict[Path, List[Any]] = defaultdict(list)
    for r in results:
        if not r.error and r.changed:
            by_dir[Path(r.path).resolve().parent].append(r)
    statuses: List[str] = []
    work = Path(tempfile.mkdtemp(prefix="linen-upgrade-rewrite-verify-"))
    try:
        dirs: Dict[Path, Tuple[Path, Path]] = {}
        for i, (folder, rs) in enumerate(sorted(by_dir.items())):
            ldir, udir = work / f"d{i}" / "legacy", work / f"d{i}" / "upgraded"
            ldir.mkdir(parents=True)
            udir.mkdir(parents=True)
            for r in rs:
                (ldir / _file_name(r)).write_bytes(r.original)
                if r.new is not None:
                    (udir / _file_name(r)).write_bytes(r.new)
            dirs[folder] = (ldir, udir)
        for r, names in todo:
            src = Path(r.path).resolve()
            ldir, udir = dirs[src.parent]
            legacy_py = str(ldir / _file_name(r))
            upgraded_py = str(src) if mode == "write" else str(udir / _file_name(r))
            jobs, auto, labels = [], [], []
            for name in names:
                label = f"{r.path}::{name}"
                res = settings_mod.resolve(vs, name, str(src))
                inputs, input_source, kwargs = res.inputs, res.input_source, res.kwargs
                if not inputs:
                    found = module_mod.init_call_from_file(legacy_py, name)
                    if found:
                        inputs, input_source = found[0], "init_by_shape"
                        if kwargs is None:
                            kwargs = found[1]
                if not inputs:
                    echo(f"module {label}: skipped: no inputs (give [tool.linen-upgrade.verify.modules."
                         f"{name}] input = [\"SHAPE:DTYPE\"], or call {name}.init_by_shape in the file)")
                    statuses.append("skipped")
                    continue
                configured = (vs.module(name, str(src)).train_steps is not None or vs.train_steps is not None)
                steps = res.train_steps if configured else _auto_steps(legacy_py, upgraded_py, res.optimizer)
                jobs.append(module_mod.ModuleJob(
                    name, upgraded_py, inputs, kwargs, steps, res.optimizer, res.shared,
                    module_mod.DEFAULT_RTOL if res.rtol is None else res.rtol,
                    module_mod.DEFAULT_ATOL if res.atol is None else res.atol, input_source=input_source))
                auto.append(not configured and steps > 0)
                labels.append(label)
            if not jobs:
                continue
            common = dict(platform=vs.platform, legacy_python=vs.legacy_python,
                          timeout=vs.timeout or runner.DEFAULT_TIMEOUT, legacy_paths=[str(src.parent)],
                          upgraded_paths=[] if mode == "write" else [str(src.parent)])
            outs = list(module_mod.verify_batch(legacy_py, jobs, **common))
            # optimizer found automatically but not comparable: verify those modules without it
            retry = [k for k, out in enumerate(outs) if auto[k] and out.status == "error"
                     and any(x in (out.reason or "") for x in (runner.REASON_OPTIMIZER, runner.REASON_NO_OPTIMIZER,
                                                                "(optimizer-run)"))]
            if retry:
                for k in retry:
                    echo(f"verify: {labels[k]}: the optimizer could not be compared ({outs[k].detail}); "
                         "verifying the module without it")
                    jobs[k].train_steps = 0
                again = module_mod.verify_batch(legacy_py, [jobs[k] for k in retry], **common)
                for k, out in zip(retry, again):
                    outs[k] = out
            for label, out in zip(labels, outs):
                _print_module(out, echo=echo, label=label)
                statuses.append(out.status)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ran = [s for s in statuses if s != "skipped"]
    n_ok = sum(s == "ok" for s in ran)
    n_skip = len(statuses) - len(ran)
    if any(s == "differ" for s in ran):
        code = EXIT_DIFFER
    elif not ran or any(s == "error" for s in ran):
        code = EXIT_ERROR
    else:
        code = EXIT_OK
    echo(f"verify summary: {n_ok}/{len(ran)} verified modules agree"
         + (f", {n_skip} skipped (no inputs)" if n_skip else "")
         + {EXIT_OK: "", EXIT_DIFFER: " - some differ", EXIT_ERROR: " - could not verify"}[code])
    return code
