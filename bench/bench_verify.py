#!/usr/bin/env python
"""Time ``linen-upgrade verify`` on the ResNet fixture (a script, not a test).

    python bench/bench_verify.py                 # CPU (what CI has), 1 run
    python bench/bench_verify.py --repeat 3      # median of 3 runs
    python bench/bench_verify.py --platform gpu  # on an accelerator, when there is one

Verifies ``fixtures/verify/modules/resnet_legacy.py`` against
``resnet_upgraded.py`` (module ``ResNet``: train + eval outputs, batch_stats,
gradients, and ``--train-steps`` optimizer steps), with ``timing`` on: every
compiled function is called a second time, so that compile and run split.
Per side:

* start    -- the subprocess until it is ready: python, imports of jax and flax
              (legacy: the compat layer, flax 0.3.6 and the user file), optax;
* init     -- legacy only: jitted ``Module.init`` (compile + run);
* compile  -- first calls of the jitted forward/gradient functions (both modes)
              and of the first optimizer step: tracing + XLA compile + one run;
* run      -- a second call of each of those (what a compiled step costs);
* process  -- the subprocess's wall time (start + everything + writing .npz).

``total`` is the wall time of the whole ``verify_module`` call (the legacy
process, then the upgraded one). The legacy runtime is installed first and not
timed. The baseline (issue 13's goal: verify within 3x of it) is one modern
init + train-mode apply + gradient of the same upgraded model in a fresh
process, imports and compiles included. The last block is markdown for the README.
"""
from __future__ import annotations

import argparse
import os
import platform as pyplatform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from linen_upgrade.verify import legacy_env  # noqa: E402
from linen_upgrade.verify.module import verify_module  # noqa: E402

FIX = ROOT / "fixtures" / "verify" / "modules"
COLUMNS = ("start", "init", "compile", "run", "process")
KEYS = {"start": "start_s", "init": "init_s", "compile": "first_calls_s", "run": "repeat_calls_s",
        "process": "process_wall_s"}


def one_run(platform: str | None, steps: int) -> dict:
    t = time.perf_counter()
    res = verify_module(str(FIX / "resnet_legacy.py"), str(FIX / "resnet_upgraded.py"), "ResNet",
                        train_steps=steps, platform=platform, timing=True)
    total = time.perf_counter() - t
    if res.status != "ok":
        raise SystemExit(f"verify did not pass: {res.status} {res.reason} {res.detail}")
    out = {"total": total, "tensors": len(res.rows), "platform": res.platform}
    for side in ("legacy", "upgraded"):
        t = res.timings.get(side) or {}
        out[side] = {c: t.get(KEYS[c]) for c in COLUMNS}
    return out


# one modern init + train-mode apply (batch_stats updated) + gradient of the upgraded ResNet
_BASELINE = """
import importlib.util, sys
import jax, jax.numpy as jnp
spec = importlib.util.spec_from_file_location("resnet_upgraded", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
model = mod.ResNet(num_classes=10)
x = jnp.ones((2, 16, 16, 3), jnp.float32)
variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
def loss(params):
    y, updates = model.apply({**variables, 'params': params}, x, mutable=['batch_stats'])
    return jnp.mean(y ** 2), updates
(value, _), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables['params'])
jax.block_until_ready(grads)
"""


def baseline(platform: str) -> float:
    """Wall time of the modern baseline process (see the module docstring)."""
    env = {**os.environ, "JAX_PLATFORMS": platform}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", _BASELINE, str(FIX / "resnet_upgraded.py")], check=True, env=env)
    return time.perf_counter() - t


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(x):
    if x is None:
        return "-"
    return f"{x:.2f} s" if x >= 0.1 else f"{x * 1000:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--platform", choices=["cpu", "gpu", "tpu"], default="cpu")
    ap.add_argument("--repeat", type=int, default=1, help="runs; figures are medians")
    ap.add_argument("--train-steps", type=int, default=5)
    ns = ap.parse_args()
    t = time.perf_counter()
    legacy_env.ensure()
    print(f"legacy runtime ready in {time.perf_counter() - t:.1f} s ({legacy_env.env_path()})")
    runs = []
    for i in range(ns.repeat):
        r = one_run(ns.platform, ns.train_steps)
        runs.append(r)
        print(f"run {i + 1}: {r['total']:.2f} s, {r['tensors']} tensors compared, platform {r['platform']}")
    agg = {side: {c: median([r[side][c] for r in runs]) for c in COLUMNS} for side in ("legacy", "upgraded")}
    total = median([r["total"] for r in runs])
    base = median([baseline(ns.platform) for _ in range(ns.repeat)])
    import jax
    import flax
    cpu = pyplatform.processor() or pyplatform.machine()
    print()
    print(f"verify ResNet fixture (2x16x16x3, 4 blocks, {ns.train_steps} optimizer steps); "
          f"platform {runs[0]['platform']}; {os.cpu_count()} cores ({cpu}); jax {jax.__version__}, "
          f"flax {flax.__version__} vs flax {legacy_env.FLAX_VERSION}; median of {ns.repeat}")
    print()
    print("| side | start (subprocess + imports) | init | compile (first calls) | run (second calls) | process wall |")
    print("|---|---|---|---|---|---|")
    for side, label in (("legacy", "legacy (flax 0.3.6)"), ("upgraded", "upgraded (flax.linen + optax)")):
        a = agg[side]
        print(f"| {label} | {fmt(a['start'])} | {fmt(a['init'])} | {fmt(a['compile'])} | {fmt(a['run'])} "
              f"| {fmt(a['process'])} |")
    print(f"| **total** (`verify_module`, sides in turn) | | | | | **{fmt(total)}** |")
    ratio = total / base
    print(f"| baseline: one modern init + apply + grad, fresh process | | | | | {fmt(base)} |")
    print()
    print(f"verify / baseline: {ratio:.2f}x (goal <= 3x: {'met' if ratio <= 3 else 'MISSED'})")


if __name__ == "__main__":
    main()
