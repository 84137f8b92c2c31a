"""Module mode: initialise a legacy module on flax 0.3.6, carry its params and
state over to the upgraded Linen module, and compare outputs (train and eval),
updated ``batch_stats`` and gradients of a fixed scalar loss, tensor by tensor.

Standard library only at import time.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import runner

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6

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


def inputs_from_init_by_shape(legacy_py: str, module_name: str) -> Optional[List[InputSpec]]:
    """Read the input specs of ``MODULE.init_by_shape(rng, [(shape, dtype), ...])``
    in the legacy file (literal shapes, or names bound to literal tuples at
    module level). ``None`` when there is no such call we can read."""
    try:
        tree = ast.parse(Path(legacy_py).read_text())
    except (OSError, SyntaxError):
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

    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("init_by_shape", "create_by_shape")):
            continue
        base = node.func.value
        # Module.init_by_shape / Module.partial(...).init_by_shape
        while isinstance(base, ast.Call) and isinstance(base.func, ast.Attribute):
            base = base.func.value
        if not (isinstance(base, ast.Name) and base.id == module_name):
            continue
        spec_node = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "input_specs"), None)
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
        return specs
    return None


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
    legacy: Optional[runner.SideResult] = None
    upgraded: Optional[runner.SideResult] = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed_rows(self) -> List[TensorRow]:
        return [r for r in self.rows if not r.ok]

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
    return f"{label}: {runner.REASON_ERROR} ({phase})", detail


def verify_module(legacy_py: str, upgraded_py: str, module_name: str,
                  inputs: Optional[Sequence[InputSpec]] = None, kwargs: Optional[Dict[str, Any]] = None,
                  train_steps: int = 0, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                  platform: Optional[str] = None, *, legacy_python: Optional[str] = None,
                  timeout: float = runner.DEFAULT_TIMEOUT, shared: Optional[Dict[str, str]] = None,
                  seed: int = 0) -> ModuleResult:
    """Verify one module. ``kwargs`` are the legacy ``apply`` keyword arguments;
    on the Linen side those that are dataclass fields go to the constructor and
    the rest to ``__call__``. ``train_steps`` (optimizer comparison) is not
    implemented yet and is ignored."""
    return verify_module_variants(legacy_py, [upgraded_py], module_name, inputs, kwargs, train_steps,
                                  rtol, atol, platform, legacy_python=legacy_python, timeout=timeout,
                                  shared=shared, seed=seed)[0]


def verify_module_variants(legacy_py: str, upgraded_pys: Sequence[str], module_name: str,
                           inputs: Optional[Sequence[InputSpec]] = None,
                           kwargs: Optional[Dict[str, Any]] = None, train_steps: int = 0,
                           rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                           platform: Optional[str] = None, *, legacy_python: Optional[str] = None,
                           timeout: float = runner.DEFAULT_TIMEOUT,
                           shared: Optional[Dict[str, str]] = None, seed: int = 0) -> List[ModuleResult]:
    """Like :func:`verify_module` for several upgraded files against one legacy
    file: the legacy side runs once."""
    kwargs = dict(kwargs or {})
    legacy_py = str(Path(legacy_py).resolve())
    upgraded_pys = [str(Path(u).resolve()) for u in upgraded_pys]

    def err(status, reason, detail):
        return [ModuleResult(module_name, status, reason, detail, rtol=rtol, atol=atol) for _ in upgraded_pys]
    for f in [legacy_py] + upgraded_pys:
        if not Path(f).is_file():
            return err("error", runner.REASON_NO_FILE, f)
    if not inputs:
        inputs = inputs_from_init_by_shape(legacy_py, module_name)
    if not inputs:
        return err("error", runner.REASON_MISSING_INPUTS,
                   f"no --input given and no readable `{module_name}.init_by_shape(...)` call in {legacy_py}")
    inputs = [(tuple(int(d) for d in s), str(dt)) for s, dt in inputs]
    work = runner.make_workdir()
    ldir = work / "legacy"
    ldir.mkdir()
    try:
        largs = ["--file", legacy_py, "--module", module_name, "--inputs", json.dumps(inputs),
                 "--kwargs", json.dumps(kwargs), "--seed", str(seed), "--out", str(ldir)]
        lres = runner.run_legacy(str(runner.LEGACY_MODULE_DRIVER), driver=True, args=largs,
                                 legacy_python=legacy_python, timeout=timeout, platform=platform,
                                 cwd=str(Path(legacy_py).parent),
                                 user_dirs=[str(Path(legacy_py).parent)])
        results = []
        for i, upgraded_py in enumerate(upgraded_pys):
            res = ModuleResult(module_name, "ok", rtol=rtol, atol=atol,
                               inputs=[[list(s), d] for s, d in inputs])
            res.legacy = lres
            res.timings["legacy_wall_s"] = lres.wall_s
            results.append(res)
            if not lres.ok or not (ldir / "manifest.json").is_file():
                res.status = "error"
                res.reason, res.detail = _error_from(lres, ldir, "legacy module")
                continue
            manifest = runner.read_json(ldir / "manifest.json") or {}
            res.timings["legacy"] = manifest.get("timings")
            mdir = work / f"modern{i}"
            mdir.mkdir()
            margs = ["--file", upgraded_py, "--module", module_name, "--legacy-dir", str(ldir),
                     "--kwargs", json.dumps(kwargs), "--shared", json.dumps(shared or {}),
                     "--rtol", repr(rtol), "--atol", repr(atol), "--seed", str(seed), "--out", str(mdir)]
            mres = runner.run_modern(str(runner.MODERN_MODULE_DRIVER), args=margs, timeout=timeout,
                                     platform=platform, cwd=str(Path(upgraded_py).parent))
            res.upgraded = mres
            res.timings["upgraded_wall_s"] = mres.wall_s
            report = runner.read_json(mdir / "report.json")
            if report is None:
                errj = runner.read_json(mdir / "error.json") or {}
                res.reason, res.detail = _error_from(mres, mdir, "upgraded module")
                # the upgraded code raising while running (legacy ran fine) is a difference
                res.status = "differ" if errj.get("phase") in ("run", "convert") else "error"
                for r in errj.get("rows", []):
                    res.rows.append(TensorRow(**{k: r.get(k) for k in TensorRow.__dataclass_fields__}))
                continue
            res.platform = report.get("platform")
            res.timings["upgraded"] = report.get("timings")
            for r in report["rows"]:
                res.rows.append(TensorRow(**{k: r.get(k) for k in TensorRow.__dataclass_fields__}))
            res.status = "ok" if res.rows and all(r.ok for r in res.rows) else "differ"
            if not res.rows:
                res.reason = "nothing to compare"
        return results
    finally:
        runner.remove_workdir(work)
