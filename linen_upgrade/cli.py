"""``linen-upgrade``: the command line.

``linen-upgrade PATH...`` rewrites (the default command); ``rules``,
``verify``, ``legacy-env``, ``convert-checkpoint`` and ``status`` are sub-commands.  The
verify commands live in ``linen_upgrade.verify.commands`` and are imported
only when named, so a rewrite run never imports jax.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from linen_upgrade import __version__, config as config_mod
from linen_upgrade.files import ReadOnlyError, discover, write_source
from linen_upgrade.registry import SelectionError, all_rules, select_ids

EXIT_OK, EXIT_CHANGED, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
# tests stop a run after this many written files to send it Ctrl-C at a known point
TEST_PAUSE_ENV = "LINEN_UPGRADE_TEST_PAUSE_AFTER_WRITES"
_WRITTEN = "linen_upgrade.written"  # ctx.meta: the files a run has rewritten so far

# sub-commands defined elsewhere: name -> "module:attribute", imported on use
_LAZY_COMMANDS = {
    "verify": "linen_upgrade.verify.commands:verify",
    "legacy-env": "linen_upgrade.verify.commands:legacy_env",
    "convert-checkpoint": "linen_upgrade.checkpoints:convert_checkpoint_command",
    "status": "linen_upgrade.status:status_command",
}


class DefaultGroup(click.Group):
    """A group whose default command is ``rewrite``: ``linen-upgrade src/``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = self._first_word(args)
        if first < len(args) and args[first] in self.list_commands(ctx):
            args = self._options_after_command(ctx, args, first)
        elif not args or args[0] not in ("--help", "-h", "--version"):
            args = ["rewrite", *args]
        return super().parse_args(ctx, args)

    def _first_word(self, args: list[str]) -> int:
        """The index of the first argument that is neither an option nor an option's value."""
        options = {**_options_of(self.commands["rewrite"]), **_options_of(self)}
        i = 0
        while i < len(args) and args[i].startswith("-") and args[i] != "-":
            if args[i] == "--":  # only paths follow
                return len(args)
            i += 1 + _takes_value(options.get(args[i]))
        return i

    def _options_after_command(self, ctx: click.Context, args: list[str], at: int) -> list[str]:
        """Options before a sub-command (``linen-upgrade -v verify a.py b.py``) go after it when
        it has them; the others stay with the group (``-v``/``-q``: accepted by all)."""
        own = _options_of(self.get_command(ctx, args[at]))
        before, moved = [], []
        i = 0
        while i < at:
            name = args[i].partition("=")[0]
            option = own.get(name) or _options_of(self).get(name)
            width = 1 + (_takes_value(option) and "=" not in args[i])
            (moved if name in own else before).extend(args[i:i + width])
            i += width
        return [*before, args[at], *moved, *args[at + 1:]]

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # click would say "Aborted!" and exit 1, the "changed" code
            written = ctx.meta.get(_WRITTEN, [])
            lines = [f"interrupted: {len(written)} file{'s' * (len(written) != 1)} rewritten before Ctrl-C"
                     + (":" if written else "; nothing written"), *(f"  {path}" for path in written)]
            if written:
                lines.append("the others are unchanged; run the same command again to finish")
            click.echo("\n".join(lines), err=True)
            sys.exit(EXIT_INTERRUPTED)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_available_lazy()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in _available_lazy():
            module, _, attr = _LAZY_COMMANDS[name].partition(":")
            command = getattr(importlib.import_module(module), attr)
        return command


def _options_of(command: click.Command | None) -> dict[str, click.Option]:
    return {name: p for p in getattr(command, "params", ()) if isinstance(p, click.Option) for name in p.opts}


def _takes_value(option: click.Option | None) -> bool:
    return option is not None and not option.is_flag and not option.count


def _available_lazy() -> list[str]:
    import importlib.util

    return [name for name, target in _LAZY_COMMANDS.items()
            if importlib.util.find_spec(target.partition(":")[0]) is not None]


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=False)
@click.version_option(__version__, prog_name="linen-upgrade")
# before a sub-command that has them, -q/-v are its own; before one that has not, accepted
@click.option("-q", "--quiet", is_flag=True, help="The sub-command's -q (accepted before any sub-command).")
@click.option("-v", "--verbose", count=True, help="The sub-command's -v (accepted before any sub-command).")
def cli(quiet: bool, verbose: int) -> None:
    """Upgrade legacy flax.nn / flax.optim code to flax.linen + optax.

    \b
    linen-upgrade PATH...            rewrite files in place (the default command;
                                     see `linen-upgrade rewrite --help`)
    linen-upgrade --check --diff .   CI: show what would change, exit 1 if anything would
    linen-upgrade rules              list every rule with an example
    linen-upgrade status --fail-under 80 .
                                     legacy constructs left per kind and file, share of
                                     Flax files converted; exit 1 under 80% (`status --help`)
    """


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


class _Progress:
    """A one-line progress bar on stderr, only for terminals and long runs."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < 50:
            return
        width = 30
        filled = width * done // total
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} files")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 60 + "\r")


@cli.command("rewrite")
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@click.option("--diff", "diff", is_flag=True, help="Print a unified diff; write nothing.")
@click.option("--check", is_flag=True, help='Write nothing; say "would rewrite FILE".')
@click.option("--exit-zero-even-if-changed", is_flag=True, help="Exit 0 even when files change.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: all cores).")
@click.option("--select", multiple=True, metavar="RULE", help="Only these rules (id, family prefix or slug).")
@click.option("--ignore", multiple=True, metavar="RULE", help="Skip these rules.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip paths matching GLOB.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default=None,
              help="Report format (default: text).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Read [tool.linen-upgrade] from this file instead of the nearest pyproject.toml.")
@click.option("--stdin-filename", default="-", help="Name to report for source read from stdin.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.option("-v", "--verbose", count=True, help="Also list every rewrite made.")
@click.option("--force", is_flag=True, help="Also rewrite read-only files.")
@click.option("--verify", "verify_after", is_flag=True,
              help="Then verify every legacy module of the rewritten files that has inputs (config or "
                   "init_by_shape): runs the original and the rewritten code. Exit 0 all agree, 1 any "
                   "differ, 2 could not verify.")
def rewrite(paths: tuple[str, ...], diff: bool, check: bool, exit_zero_even_if_changed: bool,
            jobs: int | None, select: tuple[str, ...], ignore: tuple[str, ...],
            exclude: tuple[str, ...], fmt: str | None, config_path: str | None,
            stdin_filename: str, quiet: bool, verbose: int, force: bool, verify_after: bool) -> None:
    """Rewrite legacy Flax code in PATHS (files or folders; - for stdin)."""
    from linen_upgrade import pipeline, report

    if not paths:  # what black and pre-commit do with an empty file list
        if not quiet:
            click.echo("no paths given; nothing to do (use - to read from stdin)", err=True)
        sys.exit(EXIT_OK)
    start = Path(paths[0]) if paths[0] != "-" else Path.cwd()
    try:
        cfg = config_mod.load(start if start.exists() else Path.cwd(),
                              Path(config_path) if config_path else None)
    except config_mod.ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    if select:
        cfg.select = _split(select)
    if ignore:
        cfg.ignore = _split(ignore)
    if exclude:
        cfg.exclude = _split(exclude)
    if fmt:
        cfg.format = fmt
    if cfg.format not in ("text", "json", "github"):
        raise click.UsageError(f"unknown format {cfg.format!r}")
    try:
        rule_ids = select_ids(cfg.select, cfg.ignore)
    except SelectionError as exc:
        raise click.UsageError(str(exc)) from exc
    mode = "diff" if diff else "check" if check else "write"
    out = click.echo
    err = lambda s: click.echo(s, err=True)  # noqa: E731

    if "-" in paths:
        if len(paths) > 1:
            raise click.UsageError("- (stdin) cannot be combined with other paths")
        data = click.get_binary_stream("stdin").read()
        result = pipeline.rewrite_text(data, stdin_filename, cfg, rule_ids)
        if mode == "write":
            click.get_binary_stream("stdout").write(result.new if result.changed else data)
            out = err  # the source owns stdout
        results, scanned = [result], 1
    else:
        try:
            files = list(discover(paths, cfg.exclude))
        except FileNotFoundError as exc:
            raise click.UsageError(str(exc)) from exc
        progress = _Progress(sys.stderr.isatty() and not quiet and cfg.format == "text")
        run = pipeline.run(files, cfg, rule_ids, jobs or cfg.jobs or pipeline.default_jobs(), progress)
        progress.close()
        results, scanned = run.results, run.scanned
        if mode == "write":
            _write_all(results, force)

    summary = report.summarize(results, scanned, mode)
    if cfg.format == "json":
        report.emit_json(results, summary, out)
    elif cfg.format == "github":
        report.emit_github(results, summary, out)
    else:
        report.emit_text(results, summary, out, err, verbose, quiet)

    if verify_after:  # imports no jax: the sides run in subprocesses
        from linen_upgrade.verify.after_rewrite import verify_rewritten

        code = verify_rewritten(results, cfg, mode, out if cfg.format == "text" else err, stdin="-" in paths)
        sys.exit(EXIT_ERROR if summary.failed else code)
    if summary.failed:
        sys.exit(EXIT_ERROR)
    if summary.changed and not exit_zero_even_if_changed:
        sys.exit(EXIT_CHANGED)
    sys.exit(EXIT_OK)


@cli.command("rules")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text")
def rules_command(fmt: str) -> None:
    """List every rule: id, summary, and a before/after example."""
    import json
    import textwrap

    from linen_upgrade.rule import Example

    rules = all_rules()
    if fmt == "json":
        click.echo(json.dumps([
            {"id": r.id, "name": r.name, "summary": r.summary,
             "examples": [{"before": e.before, "after": e.after} for e in r.examples
                          if isinstance(e, Example)]}
            for r in rules], indent=2))
        return
    if fmt == "markdown":
        click.echo("| id | rule | summary |\n|---|---|---|")
        for r in rules:
            click.echo(f"| {r.id} | `{r.name}` | {r.summary} |")
        return
    for r in rules:
        click.echo(f"{r.id} {r.name}: {r.summary}")
        example = next((e for e in r.examples if isinstance(e, Example)), None)
        if example:
            click.echo("  before:")
            click.echo(textwrap.indent(example.before.rstrip("\n"), "    "))
            click.echo("  after:")
            click.echo(textwrap.indent(example.after.rstrip("\n"), "    "))
        click.echo("")


def _write_all(results: list, force: bool) -> None:
    """Write every changed file, noting each in the context (Ctrl-C names them).  Ctrl-C
    lets the file being written finish: never half a file, never a temporary left behind."""
    import os

    written = click.get_current_context().meta.setdefault(_WRITTEN, [])
    for r in results:
        if not r.changed or r.error is not None:
            continue
        with _interrupt_after():
            try:
                write_source(Path(r.path), r.new, force=force)
                written.append(r.path)
            except ReadOnlyError as exc:
                r.error, r.new = f"{r.path}: not rewritten: {exc.strerror}", None
            except OSError as exc:
                r.error, r.new = f"{r.path}: cannot write: {exc.strerror or exc}", None
        if os.environ.get(TEST_PAUSE_ENV) == str(len(written)):
            click.echo(f"paused after {len(written)} writes", err=True)
            import time

            time.sleep(60)


@contextlib.contextmanager
def _interrupt_after() -> Iterator[None]:
    """Holds Ctrl-C (SIGINT) back until the block is done, then raises it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's
        yield
        return
    pending: list[object] = []
    previous = signal.signal(signal.SIGINT, lambda *_: pending.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="linen-upgrade", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_ERROR
    except Exception:  # a bug of ours: exit 2, never the "changed" code 1
        import traceback

        traceback.print_exc()
        click.echo("linen-upgrade: internal error (please report it with the traceback above)", err=True)
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
