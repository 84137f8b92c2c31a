"""Module mode: initialise a legacy module on flax 0.3.6, carry its params and
state over to the upgraded Linen module, and compare outputs (train and eval),
updated ``batch_stats`` and gradients of a fixed scalar loss, tensor by tensor;
with ``train_steps``, also N steps of the file's ``flax.optim`` optimizer
against the upgraded optax transform, replaying the legacy gradients.

So that agreement means something: the carried-over params get noise
(:data:`PERTURB`), a batch of one read from ``init_by_shape`` is raised to
:data:`DEFAULT_BATCH`, both sides draw the same dropout masks and rng keys
(``same_draws.py``), and rows that would agree with a wrong rewrite too (zero
or constant on both sides, gradient noise) are reported as not checked --
more than :data:`MAX_UNCHECKED` of a mode and the module does not pass.

:func:`verify_batch` is the engine: any number of modules of one legacy file
(each against its upgraded file) in **one** legacy subprocess and up to two
upgraded ones. :func:`verify_module`, :func:`verify_module_variants` and
:func:`verify_modules` are shorthands.

Standard library only at import time.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import runner

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6
# a batch of one in the legacy init_by_shape call is raised to this many (BatchNorm over
# one example is constant, over two or three its gradients are mostly rounding)
DEFAULT_BATCH = 8
# the legacy params get this much noise (relative to each tensor's spread) before both
# sides use them: zero biases and zero-initialised scales cannot hide a mistake
PERTURB = 0.1
# more than this share of the tensors of one mode (train, eval, optim) not checked
# (zero gradients, constant outputs, gradient noise) and the module does not pass
# (unless allowed); per mode, because eval mode can check what train mode cannot
# (BatchNorm over one example) and would hide a train-mode comparison that checked little
MAX_UNCHECKED = 0.25

InputSpec = Tuple[Tuple[int, ...], str]

_DTYPES = {"float32", "float16", "bfloat16", "float64", "int32", "int64", "int8", "uint8",
           "uint32", "bool"}


class InputSpecError(ValueError):
    pass


def parse_input_spec(text: str) -> InputSpec:
    """``'2,8,8,3'``, ``'2x8x8x3:float32'``, ``'(4, 7):int32'`` -> ``((2, 8, 8, 3), 'float32')``."""
    shape_txt, _, dtype = text.partition(":")
    dtype = dtype.strip() or "float32"
    if dtype not in _DTYPES:
        raise InputSpecError(f"unknown dtype {dtype!r} in input spec {text!r}")
    parts = [p for p in re.split(r"[,x\s()\[\]]+", shape_txt.strip()) if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise InputSpecError(f"bad shape in input spec {text!r} (expected e.g. 2,8,8,3:float32)")
    return shape, dtype


def _literal(node: ast.AST) -> Any:
    return ast.literal_eval(node)


def _dtype_name(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Attribute) and node.attr in _DTYPES:
        return node.attr
    if isinstance(node, ast.Constant) and node.value in _DTYPES:
        return node.value
    if isinstance(node, ast.Name) and node.id in ("float", "int", "bool"):
        return {"float": "float32", "int": "int32", "bool": "bool"}[node.id]
    return None


def init_call_from_file(legacy_py: str, module_name: str
                        ) -> Optional[Tuple[List[InputSpec], Dict[str, Any]]]:
    """Read ``MODULE[.partial(k=v, ...)].init_by_shape(rng, [(shape, dtype), ...])``
    in the legacy file: the input specs (literal shapes, or names bound to
    literal tuples at module level) and the literal keyword arguments of the
    ``.partial`` calls (also through a variable: ``m = MODULE.partial(...)``).
    ``None`` when there is no such call we can read."""
    try:
        tree = ast.parse(Path(legacy_py).read_text())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    consts: Dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = _literal(node.value)
            except (ValueError, TypeError, SyntaxError):
                pass

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Name) and node.id in consts:
            return consts[node.id]
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(value(e) for e in node.elts)
        return _literal(node)

    def chain_kwargs(node: ast.AST) -> Optional[Dict[str, Any]]:
        """``M.partial(a=1).partial(b=2)`` -> {'a': 1, 'b': 2} when rooted at the module."""
        kw: Dict[str, Any] = {}
        while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "partial":
                for k in node.keywords:
                    if k.arg is None:
                        continue
                    try:
                        kw.setdefault(k.arg, value(k.value))
                    except (ValueError, TypeError, SyntaxError):
                        pass
            node = node.func.value
        if isinstance(node, ast.Name) and node.id == module_name:
            return kw
        if isinstance(node, ast.Name) and node.id in partials:
            return {**partials[node.id], **kw}
        return None

    partials: Dict[str, Dict[str, Any]] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "partial"):
            kw = chain_kwargs(node.value)
            if kw is not None:
                partials[node.targets[0].id] = kw

    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("init_by_shape", "create_by_shape")):
            continue
        kwargs = chain_kwargs(node.func.value)
        if kwargs is None:
            continue
        spec_node = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "input_specs"), None)
        if isinstance(spec_node, ast.Name) and spec_node.id in consts:
            spec_node = ast.parse(repr(consts[spec_node.id]), mode="eval").body
        if not isinstance(spec_node, (ast.List, ast.Tuple)):
            continue
        specs: List[InputSpec] = []
        try:
            for el in spec_node.elts:
                if isinstance(el, (ast.Tuple, ast.List)) and len(el.elts) == 2 and _dtype_name(el.elts[1]):
                    specs.append((tuple(int(d) for d in value(el.elts[0])), _dtype_name(el.elts[1])))
                else:
                    specs.append((tuple(int(d) for d in value(el)), "float32"))
        except (ValueError, TypeError, SyntaxError):
            continue
        return specs, kwargs
    return None


def raise_batch_of_one(specs: Sequence[InputSpec]) -> Tuple[List[InputSpec], bool]:
    """A batch of one (every input's leading dimension 1, as ``init_by_shape``
    calls often have) raised to :data:`DEFAULT_BATCH`: BatchNorm over one
    example is constant, and so would be what the comparison sees.
    ``(specs, raised)``."""
    specs = list(specs)
    if not specs or not all(len(s) >= 1 and s[0] == 1 for s, _ in specs):
        return specs, False
    return [((DEFAULT_BATCH,) + tuple(s[1:]), d) for s, d in specs], True


def inputs_from_init_by_shape(legacy_py: str, module_name: str) -> Optional[List[InputSpec]]:
    """The input specs of ``MODULE.init_by_shape(rng, [(shape, dtype), ...])`` in the
    legacy file (see :func:`init_call_from_file`); ``None`` when unreadable."""
    found = init_call_from_file(legacy_py, module_name)
    return found[0] if found else None


@dataclass
class TensorRow:
    mode: str
    kind: str          # 'output' | 'state' | 'grad' | 'variables'
    path: str
    shape: Optional[List[int]]
    max_abs: Optional[float]
    max_rel: Optional[float]
    ok: bool
    note: str = ""
    noise: bool = False               # gradient is rounding noise: reported, not failed
    unchecked: str = ""               # why this comparison checks nothing ('' when it does)
    worst_step: Optional[int] = None  # optimizer replay: step with the largest error
    worst_abs: Optional[float] = None

    @classmethod
    def from_json(cls, r: Dict[str, Any]) -> "TensorRow":
        kw = {k: r[k] for k in cls.__dataclass_fields__ if k in r and r[k] is not None}
        for k in ("mode", "kind", "path"):
            kw.setdefault(k, "")
        kw.setdefault("shape", None)
        kw.setdefault("max_abs", None)
        kw.setdefault("max_rel", None)
        kw.setdefault("ok", False)
        return cls(**kw)


@dataclass
class ModuleResult:
    module: str
    status: str                       # 'ok' | 'differ' | 'error'
    reason: Optional[str] = None
    detail: Optional[str] = None
    rows: List[TensorRow] = field(default_factory=list)
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    inputs: List[Any] = field(default_factory=list)
    platform: Optional[str] = None
    timings: Dict[str, Any] = field(default_factory=dict)
    kwargs: Dict[str, Any] = field(default_factory=dict)
    input_source: Optional[str] = None   # '--input' | 'config' | 'init_by_shape'
    input_note: Optional[str] = None     # how the inputs were changed from their source
    optimizer: Optional[Dict[str, Any]] = None  # train steps: what was compared
    draws: Dict[str, Any] = field(default_factory=dict)  # mode -> {'masks', 'keys'} the upgraded pass drew
    legacy: Optional[runner.SideResult] = None
    upgraded: Optional[runner.SideResult] = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed_rows(self) -> List[TensorRow]:
        return [r for r in self.rows if not r.ok]

    @property
    def noise_rows(self) -> List[TensorRow]:
        return [r for r in self.rows if r.noise]

    @property
    def unchecked_rows(self) -> List[TensorRow]:
        return [r for r in self.rows if r.unchecked]

    def to_json(self) -> Dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("legacy", "upgraded")}
        d["mode"] = "module"
        for side in ("legacy", "upgraded"):
            r = getattr(self, side)
            d[side] = r.to_json() if r is not None else None
        return d


def _error_from(side: runner.SideResult, workdir: Path, label: str) -> Tuple[str, str]:
    err = runner.read_json(workdir / "error.json")
    if side.reason == runner.REASON_TIMEOUT or err is None:
        return f"{label}: {side.reason or 'failed'}", side.detail or ""
    phase = err.get("phase")
    detail = f"{err.get('type')}: {err.get('message')}"
    if phase == "load":
        if err.get("type") in ("ModuleNotFoundError", "ImportError"):
            return f"{label}: {runner.REASON_IMPORT}", detail
        if err.get("type") in ("SyntaxError", "IndentationError"):
            return f"{label}: {runner.REASON_SYNTAX}", detail
        return f"{label}: error while importing user code", detail
    if phase == "module-missing":
        return f"{label}: {runner.REASON_MISSING_MODULE}", detail
    if phase == "optimizer":
        return f"{label}: {runner.REASON_OPTIMIZER}", detail
    return f"{label}: {runner.REASON_ERROR} ({phase})", detail


@dataclass
class ModuleJob:
    """One module to verify against one upgraded file (see :func:`verify_batch`).

    ``inputs``/``kwargs`` ``None``: read from the legacy file's ``init_by_shape``
    call (kwargs from its ``.partial(...)`` keywords, only when the inputs come
    from there too)."""
    module: str
    upgraded: str
    inputs: Optional[Sequence[InputSpec]] = None
    kwargs: Optional[Dict[str, Any]] = None
    train_steps: int = 0
    optimizer: Optional[str] = None      # FUNC or LEGACY_FUNC:UPGRADED_FUNC
    shared: Optional[Dict[str, str]] = None
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    seed: int = 0
    input_source: Optional[str] = None
    allow_unchecked: bool = False        # pass even when more than MAX_UNCHECKED was not checked


def verify_module(legacy_py: str, upgraded_py: str, module_name: str,
                  inputs: Optional[Sequence[InputSpec]] = None, kwargs: Optional[Dict[str, Any]] = None,
                  train_steps: int = 0, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                  platform: Optional[str] = None, *, legacy_python: Optional[str] = None,
                  timeout: float = runner.DEFAULT_TIMEOUT, shared: Optional[Dict[str, str]] = None,
                  seed: int = 0, optimizer: Optional[str] = None, input_source: Optional[str] = None,
                  legacy_paths: Sequence[str] = (), upgraded_paths: Sequence[str] = (),
                  timing: bool = False, allow_unchecked: bool = False) -> ModuleResult:
    """Verify one module. ``kwargs`` are the legacy ``apply`` keyword arguments;
    on the Linen side those that are dataclass fields go to the constructor and
    the rest to ``__call__``. ``None`` inputs: read from the legacy file's
    ``init_by_shape`` call (kwargs too, from its ``.partial`` keywords).

    ``train_steps`` > 0: also find the ``flax.optim`` optimizer the legacy file
    builds and the optax transform the upgraded file builds (or call the
    function ``optimizer`` names, ``FUNC`` or ``LEGACY_FUNC:UPGRADED_FUNC``),
    take that many legacy steps and replay their gradients through optax,
    comparing the params after every step.

    Rows that check nothing (zero or constant on both sides, gradient noise)
    are ``unchecked``; more than :data:`MAX_UNCHECKED` of them in a mode and
    the result is ``differ`` (reason ``too little checked``) unless
    ``allow_unchecked``.

    To verify several modules (or several upgraded files), use
    :func:`verify_batch`: one legacy process for all of them."""
    job = ModuleJob(module_name, upgraded_py, inputs, kwargs, train_steps, optimizer, shared, rtol, atol,
                    seed, input_source, allow_unchecked)
    return verify_batch(legacy_py, [job], platform=platform, legacy_python=legacy_python,
                        timeout=timeout, legacy_paths=legacy_paths, upgraded_paths=upgraded_paths,
                        timing=timing)[0]


def verify_module_variants(legacy_py: str, upgraded_pys: Sequence[str], module_name: str,
                           inputs: Optional[Sequence[InputSpec]] = None,
                           kwargs: Optional[Dict[str, Any]] = None, train_steps: int = 0,
                           rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                           platform: Optional[str] = None, *, legacy_python: Optional[str] = None,
                           timeout: float = runner.DEFAULT_TIMEOUT,
                           shared: Optional[Dict[str, str]] = None, seed: int = 0,
                           optimizer: Optional[str] = None, input_source: Optional[str] = None,
                           legacy_paths: Sequence[str] = (), upgraded_paths: Sequence[str] = (),
                           jobs: Optional[int] = None) -> List[ModuleResult]:
    """Like :func:`verify_module` for several upgraded files against one legacy
    file: the legacy side runs once."""
    batch = [ModuleJob(module_name, u, inputs, kwargs, train_steps, optimizer, shared, rtol, atol, seed,
                       input_source) for u in upgraded_pys]
    return verify_batch(legacy_py, batch, platform=platform, legacy_python=legacy_python, timeout=timeout,
                        legacy_paths=legacy_paths, upgraded_paths=upgraded_paths, processes=jobs)


def verify_modules(legacy_py: str, upgraded_py: str, modules: Mapping[str, Optional[Sequence[InputSpec]]],
                   **kw: Any) -> Dict[str, ModuleResult]:
    """Several modules of one file pair, ``{name: inputs or None}``; one legacy
    process. Keyword arguments as :func:`verify_batch`."""
    res = verify_batch(legacy_py, [ModuleJob(name, upgraded_py, inputs) for name, inputs in modules.items()],
                       **kw)
    return dict(zip(modules, res))


def _side_timings(side: Optional[runner.SideResult], t: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Per-side split: start (process + imports), first calls (compile), repeats (run)."""
    out: Dict[str, Any] = {}
    if side is not None:
        out["process_wall_s"] = side.wall_s
    if t:
        if side is not None and side.started_at and t.get("ready_at"):
            out["start_s"] = t["ready_at"] - side.started_at
        for k in ("init_s", "first_calls_s", "repeat_calls_s", "convert_s", "optimizer_s"):
            if t.get(k) is not None:
                out[k] = t[k]
    return out


def verify_batch(legacy_py: str, jobs: Sequence[ModuleJob], *, platform: Optional[str] = None,
                 legacy_python: Optional[str] = None, timeout: float = runner.DEFAULT_TIMEOUT,
                 legacy_paths: Sequence[str] = (), upgraded_paths: Sequence[str] = (),
                 processes: Optional[int] = None, timing: bool = False) -> List[ModuleResult]:
    """Verify several modules of one legacy file, each against its upgraded
    file: **one** legacy process (the file is imported once; identical legacy
    work is done once), and the upgraded sides in up to ``processes``
    (default 2) processes running side by side. ``timeout`` applies to each
    process. ``legacy_paths``/``upgraded_paths``: extra import folders.
    ``timing``: also time a second call of every compiled function (bench)."""
    from . import optimizer as optmod
    legacy_py = str(Path(legacy_py).resolve())
    results: List[Optional[ModuleResult]] = [None] * len(jobs)
    prepared: List[Dict[str, Any]] = []          # per job: what the sides need
    legacy_jobs: Dict[str, Dict[str, Any]] = {}  # dedupe key -> legacy job
    work = runner.make_workdir()
    try:
        for i, job in enumerate(jobs):
            res = ModuleResult(job.module, "ok", rtol=job.rtol, atol=job.atol)
            results[i] = res
            upgraded = str(Path(job.upgraded).resolve())
            missing = next((f for f in (legacy_py, upgraded) if not Path(f).is_file()), None)
            if missing:
                res.status, res.reason, res.detail = "error", runner.REASON_NO_FILE, missing
                continue
            inputs, kwargs, source = job.inputs, job.kwargs, job.input_source
            if not inputs:
                found = init_call_from_file(legacy_py, job.module)
                if found:
                    inputs, source = found[0], "init_by_shape"
                    if kwargs is None:
                        kwargs = dict(found[1])
            if inputs and source == "init_by_shape":
                inputs, raised = raise_batch_of_one(inputs)
                if raised:
                    res.input_note = f"its batch of 1 raised to {DEFAULT_BATCH}"
            elif source is None:
                source = "given"
            kwargs = dict(kwargs or {})
            if not inputs:
                res.status, res.reason = "error", runner.REASON_MISSING_INPUTS
                res.detail = (f"no --input given, no [tool.linen-upgrade.verify.modules.{job.module}] input, "
                              f"and no readable `{job.module}.init_by_shape(...)` call in {legacy_py}")
                continue
            inputs = [(tuple(int(d) for d in s), str(dt)) for s, dt in inputs]
            res.inputs, res.kwargs, res.input_source = [[list(s), d] for s, d in inputs], kwargs, source
            legacy_site = upgraded_site = None
            if job.train_steps > 0:
                lfunc, ufunc = optmod.parse_optimizer_option(job.optimizer)
                try:
                    legacy_site = optmod.find_legacy_optimizer(legacy_py, lfunc)
                    res.optimizer = {"steps": job.train_steps, "legacy": legacy_site.describe(),
                                     "upgraded": None, "notes": [legacy_site.note] if legacy_site.note else []}
                    upgraded_site = optmod.find_optax_transform(upgraded, ufunc, prefer_func=legacy_site.func)
                except optmod.OptimizerNotFound as e:
                    side = "legacy" if legacy_site is None else "upgraded"
                    res.status, res.reason, res.detail = "error", runner.REASON_NO_OPTIMIZER, f"{side}: {e}"
                    continue
                res.optimizer["upgraded"] = upgraded_site.describe()
                if upgraded_site.note:
                    res.optimizer["notes"].append(upgraded_site.note)
            ljob = {"module": job.module, "inputs": inputs, "kwargs": kwargs, "seed": job.seed,
                    "perturb": PERTURB, "train_steps": job.train_steps if legacy_site else 0,
                    "optimizer": legacy_site.to_json() if legacy_site else None, "timing": timing}
            key = json.dumps(ljob, sort_keys=True, default=str)
            if key not in legacy_jobs:
                ldir = work / f"legacy{len(legacy_jobs)}"
                ldir.mkdir()
                legacy_jobs[key] = dict(ljob, out=str(ldir))
            prepared.append({"index": i, "allow_unchecked": job.allow_unchecked,
                             "legacy_dir": legacy_jobs[key]["out"], "file": upgraded,
                             "module": job.module, "kwargs": kwargs, "shared": job.shared or {},
                             "rtol": job.rtol, "atol": job.atol, "seed": job.seed, "timing": timing,
                             "optimizer": upgraded_site.to_json() if upgraded_site else None})
        if not legacy_jobs:
            return results  # type: ignore[return-value]
        batch_file = work / "legacy_jobs.json"
        batch_file.write_text(json.dumps(list(legacy_jobs.values())))
        # legacy_boot puts each --user-dir first on sys.path in turn: the file's folder last, so it wins
        user_dirs = [str(Path(p).resolve()) for p in reversed(list(legacy_paths))] + [str(Path(legacy_py).parent)]
        lres = runner.run_legacy(str(runner.LEGACY_MODULE_DRIVER), driver=True,
                                 args=["--file", legacy_py, "--batch", str(batch_file)],
                                 legacy_python=legacy_python, timeout=timeout, platform=platform,
                                 cwd=str(Path(legacy_py).parent), user_dirs=user_dirs)
        modern_jobs = []
        for p in prepared:
            res = results[p["index"]]
            assert res is not None
            res.legacy = lres
            res.timings["legacy_wall_s"] = lres.wall_s
            ldir = Path(p["legacy_dir"])
            manifest = runner.read_json(ldir / "manifest.json")
            if manifest is None:
                res.status = "error"
                res.reason, res.detail = _error_from(lres, ldir, "legacy module")
                continue
            res.timings["legacy"] = _side_timings(lres, manifest.get("timings"))
            mdir = work / f"modern{p['index']}"
            mdir.mkdir()
            modern_jobs.append(dict(p, out=str(mdir)))
        n_proc = max(1, min(processes or 2, len(modern_jobs)))
        chunks = [modern_jobs[k::n_proc] for k in range(n_proc)]

        def run_chunk(k: int) -> runner.SideResult:
            bf = work / f"modern_jobs{k}.json"
            bf.write_text(json.dumps(chunks[k]))
            args = ["--batch", str(bf)]
            for extra in upgraded_paths:
                args += ["--sys-path", str(Path(extra).resolve())]
            return runner.run_modern(str(runner.MODERN_MODULE_DRIVER), args=args, timeout=timeout,
                                     platform=platform, cwd=str(Path(chunks[k][0]["file"]).parent))
        if not modern_jobs:
            mres_list: List[runner.SideResult] = []
        elif n_proc == 1:
            mres_list = [run_chunk(0)]
        else:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(n_proc) as pool:
                mres_list = list(pool.map(run_chunk, range(n_proc)))
        for k, chunk in enumerate(chunks):
            for p in chunk:
                _modern_result(results[p["index"]], mres_list[k], Path(p["out"]), p["allow_unchecked"])
        return results  # type: ignore[return-value]
    finally:
        runner.remove_workdir(work)


def _modern_result(res: ModuleResult, mres: runner.SideResult, mdir: Path, allow_unchecked: bool) -> None:
    res.upgraded = mres
    res.timings["upgraded_wall_s"] = mres.wall_s
    report = runner.read_json(mdir / "report.json")
    if report is None:
        errj = runner.read_json(mdir / "error.json") or {}
        res.reason, res.detail = _error_from(mres, mdir, "upgraded module")
        # the upgraded code raising while running (legacy ran fine) is a difference
        res.status = "differ" if errj.get("phase") in ("run", "convert", "optimizer-run") else "error"
        for r in errj.get("rows", []):
            res.rows.append(TensorRow.from_json(r))
        return
    res.platform = report.get("platform")
    res.draws = report.get("draws") or {}
    res.timings["upgraded"] = _side_timings(mres, report.get("timings"))
    for r in report["rows"]:
        res.rows.append(TensorRow.from_json(r))
    res.status = "ok" if res.rows and all(r.ok for r in res.rows) else "differ"
    if not res.rows:
        res.reason = "nothing to compare"
    too_little = [f"{mode}: {n} of {total}" for mode, n, total in _unchecked_by_mode(res.rows)
                  if n > MAX_UNCHECKED * total]
    if res.status == "ok" and too_little and not allow_unchecked:
        # agreement on zeros and constants is no evidence: not a pass
        res.status, res.reason = "differ", runner.REASON_UNCHECKED
        res.detail = (f"tensors not checked ({'; '.join(too_little)}), more than {MAX_UNCHECKED:.0%}: they are "
                      "zero, constant or noise on both sides, so they would agree with a wrong rewrite too. "
                      "Give inputs with a batch of 2 or more and varied values (--input), or accept this "
                      "with --allow-unchecked.")


def _unchecked_by_mode(rows: Sequence[TensorRow]) -> List[Tuple[str, int, int]]:
    """``(mode, rows not checked, rows)`` for each mode, in table order."""
    counts: Dict[str, List[int]] = {}
    for r in rows:
        c = counts.setdefault(r.mode, [0, 0])
        c[0] += bool(r.unchecked)
        c[1] += 1
    return [(mode, n, total) for mode, (n, total) in counts.items()]
