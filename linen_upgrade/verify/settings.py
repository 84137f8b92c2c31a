"""``[tool.linen-upgrade.verify]``: what ``verify`` needs to know per module.

Standard library only. Example (``pyproject.toml``)::

    [tool.linen-upgrade.verify]
    rtol = 1e-5                  # defaults for every module
    atol = 1e-6
    train-steps = 5              # optimizer steps to compare (0: none)
    timeout = 600                # seconds per side
    platform = "cpu"             # cpu | gpu | tpu
    legacy-python = "/opt/old-env/bin/python"

    [tool.linen-upgrade.verify.modules.CNN]
    input = ["1,28,28,1:float32"]          # one SHAPE[:DTYPE] per positional input
    kwargs = {num_classes = 10}            # legacy apply keyword arguments
    shared = {"7" = "Dense"}               # classes of unnamed .shared() modules
    train-steps = 5
    optimizer = "create_optimizer"         # FUNC or LEGACY_FUNC:UPGRADED_FUNC
    rtol = 1e-4

A module table may be keyed ``"path/to/file.py:NAME"`` (relative to the
pyproject folder) to apply to one file only; it wins over the plain ``NAME``.
Command-line flags win over the configuration; the configuration wins over the
legacy file's own ``init_by_shape`` call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from .module import InputSpec, InputSpecError, parse_input_spec

PLATFORMS = ("cpu", "gpu", "tpu")


class VerifyConfigError(ValueError):
    """``[tool.linen-upgrade.verify]`` is malformed."""


@dataclass
class ModuleSettings:
    inputs: Optional[List[InputSpec]] = None
    kwargs: Optional[Dict[str, Any]] = None
    shared: Optional[Dict[str, str]] = None
    train_steps: Optional[int] = None
    optimizer: Optional[str] = None
    rtol: Optional[float] = None
    atol: Optional[float] = None


@dataclass
class VerifySettings:
    rtol: Optional[float] = None
    atol: Optional[float] = None
    train_steps: Optional[int] = None
    timeout: Optional[float] = None
    platform: Optional[str] = None
    legacy_python: Optional[str] = None
    modules: Dict[str, ModuleSettings] = field(default_factory=dict)
    source: Optional[Path] = None

    def module(self, name: str, file: Optional[str] = None) -> ModuleSettings:
        """Settings of module ``name`` (of ``file``, when a file-specific table exists)."""
        if file is not None and self.source is not None:
            try:
                rel = Path(file).resolve().relative_to(self.source.resolve().parent).as_posix()
            except ValueError:
                rel = None
            if rel is not None and f"{rel}:{name}" in self.modules:
                return self.modules[f"{rel}:{name}"]
        return self.modules.get(name, ModuleSettings())


def _key(k: str) -> str:
    return k.replace("_", "-")


def _number(where: str, key: str, v: Any, kind: type) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
        raise VerifyConfigError(f"{where}: {key} must be {'an integer' if kind is int else 'a number'}, "
                                f"got {v!r}")
    if v < 0:
        raise VerifyConfigError(f"{where}: {key} must not be negative")
    return kind(v)


def _inputs(where: str, v: Any) -> List[InputSpec]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v:
        raise VerifyConfigError(f"{where}: input must be a list of \"SHAPE[:DTYPE]\" strings, got {v!r}")
    out = []
    for item in v:
        if isinstance(item, list) and all(isinstance(d, int) for d in item):
            out.append((tuple(item), "float32"))
            continue
        if not isinstance(item, str):
            raise VerifyConfigError(f"{where}: input entries are strings like \"2,8,8,3:float32\", got {item!r}")
        try:
            out.append(parse_input_spec(item))
        except InputSpecError as e:
            raise VerifyConfigError(f"{where}: {e}")
    return out


_MODULE_KEYS = ("input", "kwargs", "shared", "train-steps", "optimizer", "rtol", "atol")
_TOP_KEYS = ("rtol", "atol", "train-steps", "timeout", "platform", "legacy-python", "modules")


def _module(where: str, table: Any) -> ModuleSettings:
    if not isinstance(table, Mapping):
        raise VerifyConfigError(f"{where} must be a table")
    ms = ModuleSettings()
    for k, v in table.items():
        key = _key(k)
        if key in ("input", "inputs"):
            ms.inputs = _inputs(where, v)
        elif key in ("kwargs", "shared"):
            if not isinstance(v, Mapping):
                raise VerifyConfigError(f"{where}: {key} must be a table, got {v!r}")
            setattr(ms, key, dict(v))
        elif key == "train-steps":
            ms.train_steps = _number(where, key, v, int)
        elif key == "optimizer":
            if not isinstance(v, str) or not v.strip():
                raise VerifyConfigError(f"{where}: optimizer must be \"FUNC\" or \"LEGACY_FUNC:UPGRADED_FUNC\"")
            ms.optimizer = v.strip()
        elif key in ("rtol", "atol"):
            setattr(ms, key, _number(where, key, v, float))
        else:
            raise VerifyConfigError(f"{where}: unknown key {k!r}; known: {', '.join(_MODULE_KEYS)}")
    return ms


def parse(table: Optional[Mapping[str, Any]], source: Optional[Path] = None) -> VerifySettings:
    """Validate the ``[tool.linen-upgrade.verify]`` table (``Config.verify``)."""
    where = f"{source}: [tool.linen-upgrade.verify]" if source else "[tool.linen-upgrade.verify]"
    vs = VerifySettings(source=source)
    for k, v in (table or {}).items():
        key = _key(k)
        if key in ("rtol", "atol"):
            setattr(vs, key, _number(where, key, v, float))
        elif key == "train-steps":
            vs.train_steps = _number(where, key, v, int)
        elif key == "timeout":
            vs.timeout = _number(where, key, v, float)
        elif key == "platform":
            if v not in PLATFORMS:
                raise VerifyConfigError(f"{where}: platform must be one of {', '.join(PLATFORMS)}, got {v!r}")
            vs.platform = v
        elif key == "legacy-python":
            if not isinstance(v, str):
                raise VerifyConfigError(f"{where}: legacy-python must be a path")
            p = Path(v).expanduser()
            if not p.is_absolute() and source is not None:
                p = source.parent / p
            vs.legacy_python = str(p)
        elif key == "modules":
            if not isinstance(v, Mapping):
                raise VerifyConfigError(f"{where}: modules must be a table of tables")
            for name, mt in v.items():
                vs.modules[name] = _module(f"{where.rstrip(']')}.modules.{name}]", mt)
        else:
            raise VerifyConfigError(f"{where}: unknown key {k!r}; known: {', '.join(_TOP_KEYS)}")
    return vs


def load(start: Path, explicit: Optional[Path] = None) -> VerifySettings:
    """The verify settings of the nearest ``pyproject.toml`` (or ``explicit``)."""
    from linen_upgrade import config as config_mod
    try:
        cfg = config_mod.load(start, explicit)
    except config_mod.ConfigError as e:
        raise VerifyConfigError(str(e))
    return parse(cfg.verify, cfg.source)


@dataclass
class Resolved:
    """Everything one module's verification needs, with where each came from."""
    inputs: Optional[List[InputSpec]]
    input_source: Optional[str]
    kwargs: Optional[Dict[str, Any]]
    shared: Dict[str, str]
    train_steps: int
    optimizer: Optional[str]
    rtol: Optional[float]
    atol: Optional[float]


def resolve(settings: VerifySettings, name: str, file: Optional[str] = None, *,
            inputs: Optional[List[InputSpec]] = None, kwargs: Optional[Dict[str, Any]] = None,
            shared: Optional[Dict[str, str]] = None, train_steps: Optional[int] = None,
            optimizer: Optional[str] = None, rtol: Optional[float] = None,
            atol: Optional[float] = None) -> Resolved:
    """Flags (the keyword arguments; ``None`` = not given) > module table > top table.
    ``inputs``/``kwargs`` left ``None`` fall back to the legacy file's ``init_by_shape``."""
    ms = settings.module(name, file)

    def first(*vals: Any) -> Any:
        return next((v for v in vals if v is not None), None)
    if inputs:
        src: Optional[str] = "--input"
    elif ms.inputs:
        inputs, src = ms.inputs, "config"
    else:
        inputs, src = None, None
    return Resolved(
        inputs=inputs, input_source=src,
        kwargs=first(kwargs, ms.kwargs),
        shared=dict(first(shared, ms.shared) or {}),
        train_steps=int(first(train_steps, ms.train_steps, settings.train_steps, 0)),
        optimizer=first(optimizer, ms.optimizer),
        rtol=first(rtol, ms.rtol, settings.rtol),
        atol=first(atol, ms.atol, settings.atol))
