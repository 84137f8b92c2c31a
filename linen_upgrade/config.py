"""``[tool.linen-upgrade]`` in the nearest ``pyproject.toml``; the CLI overrides it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


class ConfigError(Exception):
    pass


@dataclass
class Config:
    select: list[str] = field(default_factory=list)  # rule ids or slugs; empty = all
    ignore: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)  # globs, matched against paths
    jobs: int | None = None
    format: str = "text"
    # where legacy ``self.state`` lands; shared with verify and convert-checkpoint
    state_collection: str = "batch_stats"
    # the rng kind ``nn.make_rng()`` / ``nn.stochastic`` become
    rng_kind: str = "dropout"
    source: Path | None = None  # the pyproject.toml it came from
    verify: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_table(cls, table: dict[str, Any], source: Path | None = None) -> Config:
        known = {f.name.replace("_", "-"): f.name for f in fields(cls) if f.name != "source"}
        kwargs: dict[str, Any] = {}
        for key, value in table.items():
            attr = known.get(key) or known.get(key.replace("_", "-"))
            if attr is None:
                raise ConfigError(f"{source}: unknown key [tool.linen-upgrade] {key!r}; "
                                  f"known: {', '.join(sorted(known))}")
            kwargs[attr] = value
        for key in ("select", "ignore", "exclude"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = [kwargs[key]]
        return cls(**kwargs, source=source)


def find_pyproject(start: Path) -> Path | None:
    start = start.resolve()
    for directory in [start, *start.parents] if start.is_dir() else start.parents:
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load(start: Path, explicit: Path | None = None) -> Config:
    path = explicit or find_pyproject(start)
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    table = data.get("tool", {}).get("linen-upgrade", {})
    return Config.from_table(table, source=path)
