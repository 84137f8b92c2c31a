"""Click commands ``legacy-env`` and ``verify``.

Imports only click and the standard library at top level (the rewrite CLI
must start fast); everything heavy is imported inside the commands.

Register in the main group with::

    from linen_upgrade.verify.commands import legacy_env, verify
    cli.add_command(legacy_env)
    cli.add_command(verify)
"""
from __future__ import annotations

import json
import sys

import click

from .program import REASON_UNPAIRED
from .runner import REASON_UNCHECKED

EXIT_OK, EXIT_DIFFER, EXIT_ERROR = 0, 1, 2
EXECUTES_NOTICE = "note: verify executes the legacy and the upgraded code (both files run as Python programs)."


@click.group("legacy-env")
def legacy_env():
    """The legacy runtime: flax 0.3.6 (no dependencies) in a cache folder."""


@legacy_env.command("install")
@click.option("--from", "from_path", type=click.Path(exists=True),
              help="A flax-0.3.6 wheel, or a folder containing one (no package registry needed).")
@click.option("--force", is_flag=True, help="Reinstall even if present.")
def legacy_env_install(from_path, force):
    """Install flax 0.3.6 into the cache (pip install --no-deps --target)."""
    from . import legacy_env as le
    try:
        path = le.install(from_path=from_path, force=force)
    except le.LegacyEnvError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_ERROR)
    click.echo(f"legacy flax {le.FLAX_VERSION} installed in {path}")


@legacy_env.command("path")
def legacy_env_path():
    """Print the folder of the legacy runtime."""
    from . import legacy_env as le
    click.echo(str(le.env_path()))


@legacy_env.command("info")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def legacy_env_info(fmt):
    """Show where the legacy runtime is and whether it is installed."""
    from . import legacy_env as le
    info = le.info()
    if fmt == "json":
        click.echo(json.dumps(info, indent=1))
        return
    click.echo(f"path:      {info['path']}")
    click.echo(f"installed: {'yes' if info['installed'] else 'no'} (flax {info['flax_version']})")
    marker = info.get("marker") or {}
    if marker.get("source"):
        click.echo(f"source:    {marker['source']}")
    click.echo(f"cache:     set ${info['cache_env_var']} to move it")


def _fmt(x):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def _print_module(res, echo=None, label=None):
    echo = echo or click.echo
    verdict = "NOT CHECKED ENOUGH" if res.reason == REASON_UNCHECKED else res.status.upper()
    echo(f"module {label or res.module}: {verdict}"
         + (f"  ({res.reason})" if res.reason else ""))
    if res.detail:
        echo(f"  {res.detail}")
    if res.inputs:
        src = {"init_by_shape": "from the legacy init_by_shape call", "config": "from [tool.linen-upgrade.verify]"
               }.get(res.input_source or "", "")
        src = "; ".join(x for x in (src, res.input_note) if x)
        echo(f"  inputs {', '.join('x'.join(map(str, s)) + ':' + d for s, d in res.inputs)}"
             + (f" ({src})" if src else "") + (f"; kwargs {json.dumps(res.kwargs)}" if res.kwargs else ""))
    if res.rows:
        from .module import PERTURB
        echo(f"  weights: the legacy init plus {PERTURB:.0%} noise, carried over to the upgraded side")
    drawn = {m: d for m, d in res.draws.items() if d.get("masks") or d.get("keys")}
    if drawn:
        echo("  random draws, paired by call order: " + ", ".join(
            f"{m} {d['masks']} dropout mask(s), {d['keys']} rng key(s)" for m, d in drawn.items()))
    if res.optimizer:
        o = res.optimizer
        echo(f"  optimizer: {o['steps']} steps of legacy {o['legacy']} vs upgraded {o.get('upgraded') or '?'}, "
             "replaying the legacy gradients")
        for note in o.get("notes") or ():
            echo(f"  note: {note}")
    if res.rows:
        header = ("mode", "tensor", "shape", "max abs err", "max rel err", "ok")
        table = [header]
        for r in res.rows:
            path = f"{r.kind}:{r.path}" if r.kind != "variables" else r.path
            verdict = "DIFF" if not r.ok else (f"not checked: {r.unchecked}" if r.unchecked else "ok")
            table.append((r.mode, path, "x".join(map(str, r.shape)) if r.shape is not None else "-",
                          _fmt(r.max_abs), _fmt(r.max_rel), verdict + (f"  ({r.note})" if r.note else "")))
        widths = [max(len(str(row[i])) for row in table) for i in range(5)]
        for row in table:
            echo("  " + "  ".join(str(c).ljust(w) for c, w in zip(row[:5], widths)) + "  " + row[5])
    bad = len(res.failed_rows)
    unchecked = len(res.unchecked_rows)
    echo(f"  {len(res.rows)} tensors compared, {bad} differ"
         + (f", {unchecked} not checked (zero, constant or noise on both sides)" if unchecked else "")
         + f"; rtol={res.rtol:g} atol={res.atol:g}"
         + (f"; platform {res.platform}" if res.platform else ""))


def _print_program(res):
    click.echo(f"program: {res.status.upper()}" + (f"  ({res.reason})" if res.reason else ""))
    if res.detail:
        click.echo(f"  {res.detail}")
    for m in res.mismatches[:50]:
        if m.kind == "number":
            click.echo(f"  line {m.line}, token {m.token}: legacy {m.legacy} vs upgraded {m.upgraded} "
                       f"(abs err {_fmt(m.abs_err)}, rel err {_fmt(m.rel_err)})")
        else:
            click.echo(f"  line {m.line}, token {m.token}: {m.kind}: legacy {m.legacy!r} vs upgraded {m.upgraded!r}")
    if len(res.mismatches) > 50:
        click.echo(f"  ... {len(res.mismatches) - 50} more")
    paired = [r["upgraded_class"] for r in res.inits if r["paired"]]
    if res.inits:
        click.echo(f"  started from the legacy weights: {len(paired)} of {len(res.inits)} init(s) paired"
                   + (f" ({', '.join(paired)})" if paired else ""))
    for note in res.notes:
        click.echo(f"  note: {note}")
    if res.status != "error" or res.reason == REASON_UNPAIRED:
        click.echo(f"  {res.lines} lines, {res.numbers} numbers compared, {len(res.mismatches)} differ; "
                   f"max abs err {_fmt(res.max_abs_err)}, max rel err {_fmt(res.max_rel_err)}; "
                   f"rtol={res.rtol:g} atol={res.atol:g}")


def _exit_code(statuses):
    if any(s == "error" for s in statuses):
        return EXIT_ERROR
    if any(s == "differ" for s in statuses):
        return EXIT_DIFFER
    return EXIT_OK


@click.command("verify")
@click.argument("legacy_file", type=click.Path(dir_okay=False))
@click.argument("upgraded_file", type=click.Path(dir_okay=False))
@click.option("--module", "modules", multiple=True, metavar="NAME",
              help="Module (class) to verify; repeat for several.")
@click.option("--run", "program", is_flag=True,
              help="Program mode: run both scripts and compare every number they print.")
@click.option("--input", "inputs", multiple=True, metavar="SHAPE[:DTYPE]",
              help="Input shape, e.g. 2,8,8,3:float32 (repeat per positional input). Default: "
                   "[tool.linen-upgrade.verify.modules.NAME] input, else the legacy file's init_by_shape call.")
@click.option("--kwargs", "kwargs_json", default=None, metavar="JSON",
              help="Legacy apply keyword arguments; Linen gets those that are attributes as "
                   "constructor arguments and the rest as call arguments. Default: the config's kwargs; "
                   "with inputs from init_by_shape, the literal keywords of its `.partial(...)`.")
@click.option("--shared", "shared_json", default=None, metavar="JSON",
              help="Classes of unnamed .shared() modules stored under bare numbers, e.g. '{\"7\": \"Dense\"}'.")
@click.option("--train-steps", type=click.IntRange(min=0), default=None,
              help="Also take N steps of the legacy file's flax.optim optimizer and replay their "
                   "gradients through the upgraded file's optax transform, comparing the params.")
@click.option("--optimizer", default=None, metavar="FUNC[:FUNC]",
              help="With --train-steps: a zero-argument function returning the optimizer (legacy: the "
                   "OptimizerDef, upgraded: the optax transform); LEGACY_FUNC:UPGRADED_FUNC when the "
                   "names differ. Default: found in each file (optim.X(...) / optax.x(...)).")
@click.option("--allow-unchecked", is_flag=True,
              help="Module mode: pass even when more than a quarter of the tensors were not checked "
                   "(zero gradients or constant outputs on both sides, gradient noise).")
@click.option("--rtol", type=float, default=None, help="Relative tolerance (module 1e-5, program 2e-4).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance (default 1e-6).")
@click.option("--platform", type=click.Choice(["cpu", "gpu", "tpu"]), default=None,
              help="JAX backend for both sides (default: what jax picks).")
@click.option("--legacy-python", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Run the legacy side with this python (your old env with real old flax) instead "
                   "of the bundled flax 0.3.6 runtime.")
@click.option("--timeout", type=float, default=None,
              help="Time limit per side (per subprocess), seconds (default 600).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Read [tool.linen-upgrade.verify] from this file instead of the pyproject.toml "
                   "nearest to LEGACY_FILE.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def verify(legacy_file, upgraded_file, modules, program, inputs, kwargs_json, shared_json, train_steps,
           optimizer, allow_unchecked, rtol, atol, platform, legacy_python, timeout, config_path, fmt):
    """Prove LEGACY_FILE and UPGRADED_FILE compute the same numbers.

    Exit 0 when all agree, 1 when any differ, 2 when it could not run.
    """
    from pathlib import Path

    from . import settings as settings_mod
    click.echo(EXECUTES_NOTICE, err=(fmt == "json"))
    if not program and not modules:
        click.echo("error: give --module NAME (module mode) or --run (program mode)", err=True)
        sys.exit(EXIT_ERROR)
    if program and modules:
        click.echo("error: --run and --module are exclusive", err=True)
        sys.exit(EXIT_ERROR)
    try:
        kwargs = json.loads(kwargs_json) if kwargs_json is not None else None
        shared = json.loads(shared_json) if shared_json is not None else None
        if not isinstance(kwargs, (dict, type(None))) or not isinstance(shared, (dict, type(None))):
            raise ValueError("must be a JSON object")
    except ValueError as e:
        click.echo(f"error: --kwargs/--shared: {e}", err=True)
        sys.exit(EXIT_ERROR)
    try:
        start = Path(legacy_file).resolve().parent
        cfg = settings_mod.load(start if start.is_dir() else Path.cwd(),
                                Path(config_path) if config_path else None)
    except settings_mod.VerifyConfigError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_ERROR)
    platform = platform or cfg.platform
    legacy_python = legacy_python or cfg.legacy_python
    timeout = timeout if timeout is not None else (cfg.timeout or 600.0)
    if program:
        from .program import DEFAULT_ATOL, DEFAULT_RTOL, verify_run
        res = verify_run(legacy_file, upgraded_file,
                         rtol=DEFAULT_RTOL if rtol is None else rtol,
                         atol=DEFAULT_ATOL if atol is None else atol, timeout=timeout,
                         legacy_python=legacy_python, platform=platform)
        if fmt == "json":
            click.echo(json.dumps(res.to_json(), indent=1, default=str))
        else:
            _print_program(res)
        sys.exit(_exit_code([res.status]))

    from .module import DEFAULT_ATOL, DEFAULT_RTOL, InputSpecError, ModuleJob, parse_input_spec, verify_batch
    try:
        specs = [parse_input_spec(s) for s in inputs] or None
    except InputSpecError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_ERROR)
    jobs = []
    for name in dict.fromkeys(modules):
        r = settings_mod.resolve(cfg, name, legacy_file, inputs=specs, kwargs=kwargs, shared=shared,
                                 train_steps=train_steps, optimizer=optimizer, rtol=rtol, atol=atol)
        jobs.append(ModuleJob(name, upgraded_file, r.inputs, r.kwargs, r.train_steps, r.optimizer, r.shared,
                              DEFAULT_RTOL if r.rtol is None else r.rtol,
                              DEFAULT_ATOL if r.atol is None else r.atol, input_source=r.input_source,
                              allow_unchecked=allow_unchecked))
    # every module in one legacy process (and the upgraded sides in up to two)
    results = verify_batch(legacy_file, jobs, platform=platform, legacy_python=legacy_python, timeout=timeout)
    if fmt == "text":
        for res in results:
            _print_module(res)
    code = _exit_code([r.status for r in results])
    if fmt == "json":
        click.echo(json.dumps({"results": [r.to_json() for r in results], "exit_code": code},
                              indent=1, default=str))
    else:
        n_ok = sum(r.status == "ok" for r in results)
        too_little = any(r.reason == REASON_UNCHECKED for r in results)
        click.echo(f"summary: {n_ok}/{len(results)} modules agree"
                   + ("" if code == 0 else (" - could not run" if code == 2 else
                                            " - some differ or were not checked enough" if too_little else
                                            " - some differ")))
    sys.exit(code)
