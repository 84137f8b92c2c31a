"""``linen-upgrade status``: how far a tree's migration is, as a figure CI can ratchet.

It reads the tree as it is and rewrites nothing.  The share converted is a
share of *files*: a constructs-level share would need the constructs that are
already gone, which a tree no longer holds, and "what the tool could convert"
(``--check``) falls as the migration goes on instead of rising.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from linen_upgrade import config as config_mod, notebook
from linen_upgrade.constructs import TODO_KIND, count
from linen_upgrade.engine import SourceError, decode
from linen_upgrade.files import discover
from linen_upgrade.notebook import NotebookError
from linen_upgrade.tables.legacy_constructs import LEGACY_CONSTRUCTS

EXIT_OK, EXIT_UNDER, EXIT_ERROR = 0, 1, 2
# the order kinds are listed in: the table's, then the tool's own TODOs
KIND_ORDER = [*(row.kind for row in LEGACY_CONSTRUCTS), TODO_KIND]
_RULE = {row.kind: row.rule for row in LEGACY_CONSTRUCTS}


@dataclass
class FileStatus:
    path: str
    left: Counter[str]  # kind -> constructs left

    @property
    def converted(self) -> bool:
        return not self.left


@dataclass
class Status:
    files: list[FileStatus]  # the Flax files, sorted by path
    errors: list[str]

    @property
    def kinds(self) -> dict[str, int]:
        total: Counter[str] = sum((f.left for f in self.files), Counter())
        return {kind: total[kind] for kind in KIND_ORDER if total[kind]}

    @property
    def converted(self) -> int:
        return sum(f.converted for f in self.files)

    @property
    def share(self) -> float:
        """Percent of the Flax files that are converted (100 when there are none),
        rounded down: 2499 of 2500 must not read as 100%."""
        return math.floor(10000 * self.converted / len(self.files)) / 100 if self.files else 100.0

    @property
    def percent(self) -> str:
        return f"{math.floor(10 * self.share) / 10:.1f}%"

    def under(self, percent: float) -> bool:
        return self.converted * 100 < percent * len(self.files)  # exact: no rounding decides it


def _sources(path: Path) -> tuple[list[str], list[str]]:
    """Python sources and IPython text (``constructs.count``)."""
    data = path.read_bytes()
    if path.suffix == ".ipynb":
        return notebook.split_sources(data, str(path))
    return [decode(data, str(path))], []


def measure(files: list[Path]) -> Status:
    status = Status(files=[], errors=[])
    for path in sorted(files, key=str):
        try:
            left, flax_file = count(*_sources(path))
        except OSError as exc:
            status.errors.append(f"{path}: cannot read: {exc.strerror or exc}")
            continue
        except (SourceError, NotebookError) as exc:
            status.errors.append(str(exc))
            continue
        if flax_file or left:
            status.files.append(FileStatus(str(path), left))
    return status


def _listing(left: Counter[str]) -> str:
    return ", ".join(f"{kind} {left[kind]}" for kind in KIND_ORDER if left[kind])


def emit_text(status: Status, echo: Callable[[str], None]) -> None:
    kinds = status.kinds
    if kinds:
        width = max(map(len, kinds)) + 2
        echo("legacy constructs left, by kind (and the rule that converts it):")
        for kind, n in kinds.items():
            echo(f"  {kind:<{width}}{n:>6}  {_RULE.get(kind, '')}".rstrip())
        echo("by file:")
        for f in status.files:
            if f.left:
                echo(f"  {f.path}: {sum(f.left.values())} ({_listing(f.left)})")
    echo(f"converted: {status.converted} of {len(status.files)} Flax files ({status.percent}); "
         f"{sum(kinds.values())} legacy constructs left")


def emit_json(status: Status, echo: Callable[[str], None]) -> None:
    echo(json.dumps({
        "kinds": status.kinds,
        "files": [{"path": f.path, "converted": f.converted, "left": sum(f.left.values()),
                   "kinds": {k: f.left[k] for k in KIND_ORDER if f.left[k]}} for f in status.files],
        "summary": {"flax_files": len(status.files), "converted_files": status.converted,
                    "share_converted": status.share,
                    "constructs_left": sum(status.kinds.values())},
        "errors": status.errors,
    }, indent=2))


@click.command("status")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--fail-under", type=click.FloatRange(0, 100), default=None, metavar="PERCENT",
              help="Exit 1 when under PERCENT of the Flax files are converted.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip paths matching GLOB.")
def status_command(paths: tuple[str, ...], fail_under: float | None, fmt: str, exclude: tuple[str, ...]) -> None:
    """Count the legacy Flax constructs left in PATHS, per kind and per file,
    and the share of Flax files converted.  Rewrites nothing.

    \b
    A construct is a legacy spelling of linen_upgrade/tables/legacy_constructs.py
    (flax.nn and flax.optim imports, `def apply(self` and `Module.partial(` in
    Flax files, nn.Model, .init_by_shape(, .apply_gradient(, removed JAX names
    such as jax.tree_multimap, ...) in code: comments and strings do not count.
    A TODO(linen-upgrade) comment the tool left counts too.

    \b
    A Flax file is a .py file or notebook whose code names flax or that holds a
    construct; it is converted when it holds none.  Share converted = converted
    Flax files / Flax files (100% when there are none).  It rises as files are
    migrated, by the tool or by hand; what the tool would still convert on its
    own is `linen-upgrade --check`.

    Exit 0; 1 when --fail-under is not met; 2 when a file cannot be read (or a
    usage error).
    """
    try:
        cfg = config_mod.load(Path(paths[0]))
    except config_mod.ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    status = measure(list(discover(paths, [*cfg.exclude, *exclude])))
    echo = click.echo
    (emit_json if fmt == "json" else emit_text)(status, echo)
    for error in status.errors:
        click.echo(f"error: {error}", err=True)
    if status.errors:
        sys.exit(EXIT_ERROR)
    if fail_under is not None and status.under(fail_under):
        click.echo(f"linen-upgrade status: {status.percent} of the Flax files converted, "
                   f"under the required {fail_under:g}%", err=True)
        sys.exit(EXIT_UNDER)
    sys.exit(EXIT_OK)
