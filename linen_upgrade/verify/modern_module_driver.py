"""Modern side of module mode (plain subprocess with current flax).

Reads the legacy side's ``manifest.json``/``arrays.npz``, carries the legacy
params and state over with ``linen_upgrade/keys.py`` (checked against
``jax.eval_shape`` of the upgraded module's ``init``), runs the upgraded Linen
module on the same inputs in the same modes, and compares outputs, updated
collections and gradients of the same scalar loss. Writes ``report.json``
(or ``error.json``) into ``--out``.

With ``--optimizer SPEC`` and a legacy run that took optimizer steps, it
builds the upgraded file's optax transform and replays the legacy gradients
of every step through ``tx.init`` / ``tx.update`` / ``optax.apply_updates``,
comparing the params after each step with the legacy optimizer's.

Random draws: both sides run their forward pass under
``same_draws.matched_draws`` (dropout masks and rng keys by call order), so
dropout is compared in train mode; when the two passes drew a different
number of masks or keys, the rows of that mode say so.

Not checked: a comparison that cannot fail on a wrong rewrite is reported as
``unchecked`` (with the reason), never as a pass: a gradient that is zero on
both sides, an output that is constant on both sides, and gradient noise --
a tensor whose legacy gradient norm is below ``NOISE_RATIO`` times the largest
gradient norm (a bias feeding a BatchNorm has a true gradient of zero), which
is reported, never failed, in the gradient comparison and in the optimizer
replay.
"""
import argparse
import dataclasses
import functools
import importlib.util
import inspect
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
NOISE_RATIO = 1e-6


def noise_paths(grads_by_path):
    """Paths whose gradient norm is < NOISE_RATIO * the largest one -> (norm, max norm)."""
    import numpy as np
    norms = {p: float(np.linalg.norm(np.asarray(g, dtype=np.float64).ravel()))
             for p, g in grads_by_path.items() if np.asarray(g).dtype.kind in "fc"}
    if not norms:
        return {}
    top = max(norms.values())
    if not top > 0:
        return {}
    return {p: (n, top) for p, n in norms.items() if n < NOISE_RATIO * top}


def mark_noise(row, norm, top):
    row["noise"] = True
    row["unchecked"] = "gradient is rounding noise (|g| %.2g < %g x max |g| %.2g)" % (norm, NOISE_RATIO, top)
    if not row["ok"]:
        add_note(row, "differs, not failed")
        row["ok"] = True


def within_gradient_rounding(row, top, rtol, atol):
    """A gradient that misses the element-wise tolerance by no more than ``rtol`` times the largest
    legacy gradient entry of the pass (plus ``atol``) passes, with a note: float32 rounding of the
    backward pass is relative to the gradients' overall scale, and a normalisation that cancels most
    of a tensor's gradient (a layer before a BatchNorm over a small batch) leaves its elements small
    beside that rounding; a rewrite that computes something else misses by far more."""
    d = row.get("max_abs")
    if row["ok"] or d is None or not d == d or row.get("note") or not top > 0:
        return
    if d <= atol + rtol * top:
        row["ok"] = True
        add_note(row, "within rounding of the largest gradient (|d| %.2g <= atol + rtol x %.2g)" % (d, top))


def add_note(row, text):
    row["note"] = (row.get("note") + "; " if row.get("note") else "") + text


def mark_degenerate(row, a_legacy, b_modern):
    """An output constant on both sides, or a gradient zero on both sides,
    that compared equal: marked ``unchecked`` (it would agree with a wrong
    rewrite just as well)."""
    import numpy as np
    a, b = np.asarray(a_legacy), np.asarray(b_modern)
    if not row["ok"] or a.shape != b.shape or a.size == 0:
        return
    if row["kind"] == "grad" and not a.any() and not b.any():
        row["unchecked"] = "gradient is zero on both sides"
    elif (row["kind"] == "output" and a.size > 1 and (a == a.flat[0]).all()
          and (b == b.flat[0]).all()):
        row["unchecked"] = "output is constant on both sides (every element %s)" % (a.flat[0],)


def build_from_spec(spec, namespace):
    if spec.get("call"):
        fn = namespace.get(spec["call"])
        if fn is None:
            raise NameError("no function %s() in %s" % (spec["call"], spec.get("file")))
        return fn()
    env = dict(namespace)
    for name, src in sorted((spec.get("bindings") or {}).items()):
        env[name] = eval(compile(src, "<default of %s>" % name, "eval"), namespace)
    code = compile(spec["expr"].strip(), "<optimizer at %s:%s>" % (spec.get("file"), spec.get("line")), "eval")
    return eval(code, env)


def _fail(out, phase, exc, extra=None):
    info = {"phase": phase, "type": type(exc).__name__, "message": str(exc)[:2000],
            "traceback": traceback.format_exc()[-6000:]}
    if extra:
        info.update(extra)
    with open(os.path.join(out, "error.json"), "w") as f:
        json.dump(info, f)
    sys.stderr.write(info["traceback"])
    raise JobFailed(phase)


def _load_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


same_draws = _load_file(os.path.join(HERE, "same_draws.py"), "_linen_upgrade_same_draws")


def _nest(entries, arrays, group, mode=""):
    tree = {}
    for e in entries:
        if e["group"] != group or e["mode"] != mode:
            continue
        d = tree
        for p in e["path"][:-1]:
            d = d.setdefault(p, {})
        d[e["path"][-1]] = arrays[e["key"]]
    return tree


def _to_dict(tree):
    if hasattr(tree, "items") and not hasattr(tree, "shape"):
        return {k: _to_dict(v) for k, v in tree.items()}
    return tree


def split_kwargs(cls, kwargs):
    """Linen: names that are dataclass fields go to the constructor, the rest to ``__call__``."""
    fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
    ctor = {k: v for k, v in kwargs.items() if k in fields}
    call = {k: v for k, v in kwargs.items() if k not in fields}
    return ctor, call


def map_mode_kwargs(cls, mode_kw):
    """The legacy ``train`` flag -> ``train`` (field or call arg), else ``deterministic``
    / ``use_running_average`` = not train."""
    if "train" not in mode_kw:
        return dict(mode_kw)
    fields = {f.name for f in dataclasses.fields(cls)}
    try:
        params = inspect.signature(cls.__call__).parameters
    except (TypeError, ValueError):
        params = {}
    has_var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    train = mode_kw["train"]
    rest = {k: v for k, v in mode_kw.items() if k != "train"}
    if "train" in fields or "train" in params or has_var_kw:
        rest["train"] = train
    elif "deterministic" in fields or "deterministic" in params:
        rest["deterministic"] = not train
    elif "use_running_average" in fields or "use_running_average" in params:
        rest["use_running_average"] = not train
    else:
        raise TypeError("the legacy module takes `train`, but the upgraded %s has no `train`, "
                        "`deterministic` or `use_running_average` argument or attribute" % cls.__name__)
    return rest


def draws_differ(legacy, upgraded, legacy_jax, jax_version):
    """Why the random draws of one mode could not be paired, or None."""
    if not legacy or not upgraded:
        return None
    if legacy["masks"] != upgraded["masks"]:
        return ("random draws not paired: legacy drew %d dropout masks, upgraded %d"
                % (legacy["masks"], upgraded["masks"]))
    # keys beyond one per mask: randomness the module draws itself (same numbers only on the same jax)
    other_l, other_u = legacy["keys"] - legacy["masks"], upgraded["keys"] - upgraded["masks"]
    if other_l != other_u:
        return ("random draws not paired: legacy asked for %d rng keys, upgraded %d"
                % (legacy["keys"], upgraded["keys"]))
    if max(other_l, other_u) > 0 and legacy_jax and legacy_jax != jax_version:
        return ("the module draws its own random numbers, made by jax %s (legacy) and %s (upgraded): "
                "they may differ" % (legacy_jax, jax_version))
    return None


def compare(a_legacy, b_modern, rtol, atol):
    import numpy as np
    a = np.asarray(a_legacy)
    b = np.asarray(b_modern)
    if a.shape != b.shape:
        return {"ok": False, "max_abs": None, "max_rel": None,
                "note": "shape %s (legacy) != %s (upgraded)" % (list(a.shape), list(b.shape))}
    if a.size == 0:
        return {"ok": True, "max_abs": 0.0, "max_rel": 0.0, "note": ""}
    if a.dtype.kind in "biu" and b.dtype.kind in "biu":
        d = np.abs(a.astype(np.int64) - b.astype(np.int64))
        return {"ok": bool((d == 0).all()), "max_abs": float(d.max()), "max_rel": 0.0 if (d == 0).all() else 1.0,
                "note": ""}
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    d = np.abs(a64 - b64)
    d = np.where(nan_a & nan_b, 0.0, d)
    finite = np.isfinite(d)
    max_abs = float(d[finite].max()) if finite.any() else float("nan")
    scale = float(np.abs(a64[np.isfinite(a64)]).max()) if np.isfinite(a64).any() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    ok = bool(np.allclose(b64, a64, rtol=rtol, atol=atol, equal_nan=True))
    note = ""
    if (nan_a != nan_b).any():
        note = "NaN in %s only" % ("legacy" if nan_a.any() else "upgraded")
    return {"ok": ok, "max_abs": max_abs, "max_rel": max_rel, "note": note}


def replay_optimizer(tx, manifest, entries, arrays, params, legacy_state, shared, template, keys,
                     rtol, atol, timing=False, times=None):
    """Replay the legacy gradients of each step through ``tx``; one row per
    param tensor: the error after the last step, the worst step, noise."""
    import numpy as np
    import jax
    import jax.numpy as jnp
    import optax

    def update(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s
    opt_state = tx.init(params)
    try:
        jitted = jax.jit(update)
        jax.eval_shape(jitted, params, opt_state, params)
        step_fn = jitted
    except Exception:  # python control flow in a custom transform: run eagerly
        step_fn = update

    def convert(group, mode):
        tree = _nest(entries, arrays, group, mode)
        return keys.convert_variables(tree, legacy_state or None, shared=shared, template=template)["params"]
    n = int(manifest["train_steps"])
    stats = {}   # path -> dict
    for k in range(1, n + 1):
        mode = "step%d" % k
        g_leg = convert("opt_grad", mode)
        g_paths = keys.tree_paths(g_leg)
        noisy = noise_paths(g_paths)
        g = jax.tree_util.tree_map(jnp.asarray, g_leg)
        if k == 1 and times is not None:  # first call: compile + run; with timing, a second one
            t = time.time()
            jax.block_until_ready(step_fn(params, opt_state, g))
            times["first_s"] = time.time() - t
            if timing:
                t = time.time()
                jax.block_until_ready(step_fn(params, opt_state, g))
                times["repeat_s"] = time.time() - t
        params, opt_state = step_fn(params, opt_state, g)
        pa = keys.tree_paths(convert("opt_params", mode))
        pb = keys.tree_paths(_to_dict(jax.tree_util.tree_map(np.asarray, params)))
        for p in sorted(set(pa) | set(pb)):
            st = stats.setdefault(p, {"ok": True, "worst_abs": -1.0, "worst_step": None, "noise": None,
                                      "last": None, "missing": None, "shape": None})
            if p not in pa or p not in pb:
                st["missing"] = "legacy" if p not in pa else "upgraded"
                st["ok"] = False
                continue
            r = compare(pa[p], pb[p], rtol, atol)
            st["shape"] = list(np.shape(pa[p]))
            st["last"] = r
            if not r["ok"]:
                st["ok"] = False
            a = r["max_abs"]
            if st["worst_step"] is None or (a is not None and a == a and a > st["worst_abs"]):
                st["worst_abs"] = a if a is not None else float("nan")
                st["worst_step"] = k
            if p in noisy and st["noise"] is None:
                st["noise"] = (k,) + noisy[p]
    rows = []
    for p in sorted(stats):
        st = stats[p]
        path = "params/" + "/".join(p)
        if st["missing"]:
            rows.append({"mode": "optim", "kind": "param", "path": path, "shape": st["shape"], "ok": False,
                         "max_abs": None, "max_rel": None,
                         "note": "missing on the %s side" % st["missing"]})
            continue
        r = dict(st["last"])
        r.update({"mode": "optim", "kind": "param", "path": path, "shape": st["shape"], "ok": st["ok"],
                  "worst_step": st["worst_step"], "worst_abs": st["worst_abs"]})
        note = "after %d steps; worst step %d (max abs err %.3g)" % (n, st["worst_step"], st["worst_abs"])
        r["note"] = note + ("; " + r["note"] if r.get("note") else "")
        if st["noise"] is not None:
            k, norm, top = st["noise"]
            mark_noise(r, norm, top)
            r["unchecked"] += " at step %d" % k
        rows.append(r)
    return rows


class JobFailed(Exception):
    pass


def run_job(job, keys, load):
    """One module comparison; writes report.json or error.json into job['out']."""
    out = job["out"]
    t0 = time.time()
    seed = int(job.get("seed", 0))
    rtol, atol = float(job.get("rtol", 1e-5)), float(job.get("atol", 1e-6))
    timing = bool(job.get("timing"))
    try:
        mod = load(job["file"])
    except Exception as e:
        _fail(out, "load", e)
    t_load = time.time() - t0
    try:
        cls = getattr(mod, job["module"])
    except AttributeError as e:
        _fail(out, "module-missing", e)
    import numpy as np
    import jax
    import jax.numpy as jnp
    import flax.core.scope
    import flax.linen as lnn
    # a module-level functools.partial of a Linen class is what the tool makes of
    # a legacy `Model.partial(...)` (ResNet18 = partial(ResNet, stage_sizes=...))
    linen_cls = cls.func if isinstance(cls, functools.partial) else cls
    if not (isinstance(linen_cls, type) and issubclass(linen_cls, lnn.Module)):
        _fail(out, "module-missing", TypeError("%s in %s is not a flax.linen Module" % (job["module"], job["file"])))
    legacy_dir = job["legacy_dir"]
    with open(os.path.join(legacy_dir, "manifest.json")) as f:
        manifest = json.load(f)
    legacy_draws = manifest.get("draws") or {}
    npz = np.load(os.path.join(legacy_dir, "arrays.npz"))
    arrays = {k: npz[k] for k in npz.files}
    entries = manifest["entries"]
    inputs = [jnp.asarray(arrays[e["key"]]) for e in entries if e["group"] == "input"]
    legacy_params = _nest(entries, arrays, "params")
    legacy_state = _nest(entries, arrays, "state")
    kwargs = dict(job.get("kwargs") or {})
    shared = dict(job.get("shared") or {})
    rows = []
    problems = []
    draws = {}  # mode -> what its forward pass drew (the last trace)
    timings = {"load_s": t_load}
    try:
        def build(mode_kw):
            kw = dict(kwargs)
            kw.update(map_mode_kwargs(linen_cls, mode_kw))
            ctor, call = split_kwargs(linen_cls, kw)
            return cls(**ctor), call
        model0, call0 = build(manifest["modes"][0][1])
        rngs = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 2)}
        template = _to_dict(jax.eval_shape(lambda: model0.init(rngs, *inputs, **call0)))
        converted = keys.convert_variables(legacy_params, legacy_state or None, shared=shared,
                                           template=template)
        problems = keys.compare_structure(converted, template)
        for path, problem in keys.compare_param_dtypes(converted, template):
            rows.append({"mode": "structure", "kind": "dtype", "path": path, "shape": None,
                         "ok": False, "max_abs": None, "max_rel": None, "note": problem})
    except Exception as e:
        _fail(out, "convert", e)
    t1 = time.time()
    timings["convert_s"] = t1 - t0 - t_load
    first_calls_s = repeat_calls_s = 0.0
    if problems:
        for path, problem in problems:
            rows.append({"mode": "structure", "kind": "variables", "path": path, "shape": None,
                         "ok": False, "max_abs": None, "max_rel": None, "note": problem})
    else:
        variables = {c: jax.tree_util.tree_map(jnp.asarray, v) for c, v in converted.items()}
        mutable = [c for c in variables if c != "params"]
        compile_s = 0.0
        key_methods = [(flax.core.scope.Scope, "make_rng")]
        try:
            for mode, mode_kw in manifest["modes"]:
                model, call = build(mode_kw)
                projs = {e["path"][0]: jnp.asarray(arrays[e["key"]]) for e in entries
                         if e["group"] == "proj" and e["mode"] == mode}
                first_row = len(rows)

                def forward(p, model=model, call=call, mode=mode):
                    v = dict(variables)
                    v["params"] = p
                    # dropout masks and rng keys by call order, as on the legacy side
                    with same_draws.matched_draws([jax.random], key_methods) as drawn:
                        if mutable:
                            y, upd = model.apply(v, *inputs, mutable=mutable, rngs={"dropout": rngs["dropout"]},
                                                 **call)
                        else:
                            y, upd = model.apply(v, *inputs, rngs={"dropout": rngs["dropout"]}, **call), {}
                    draws[mode] = drawn.as_dict()
                    return y, upd

                def loss(p, forward=forward, projs=projs):
                    y, upd = forward(p)
                    total = 0.0
                    for i, leaf in enumerate(jax.tree_util.tree_leaves(y)):
                        if str(i) in projs:
                            total = total + jnp.sum(leaf.astype(jnp.float32) * projs[str(i)])
                    return total, (y, upd)
                tc = time.time()
                vg = jax.value_and_grad(loss, has_aux=True)
                try:
                    vg_j = jax.jit(vg)
                    (_, (y, upd)), grads = vg_j(variables["params"])
                except Exception:  # python control flow on values: run eagerly
                    vg_j = vg
                    (_, (y, upd)), grads = vg(variables["params"])
                jax.block_until_ready(grads)
                compile_s += time.time() - tc
                first_calls_s += time.time() - tc
                if timing:
                    tc = time.time()
                    jax.block_until_ready(vg_j(variables["params"]))
                    repeat_calls_s += time.time() - tc
                # outputs
                leg_out = [(e["path"][0], arrays[e["key"]]) for e in entries
                           if e["group"] == "output" and e["mode"] == mode]
                mod_out = jax.tree_util.tree_leaves(y)
                if len(leg_out) != len(mod_out):
                    rows.append({"mode": mode, "kind": "output", "path": "output", "shape": None,
                                 "ok": False, "max_abs": None, "max_rel": None,
                                 "note": "legacy returns %d arrays, upgraded %d" % (len(leg_out), len(mod_out))})
                for (idx, a), b in zip(leg_out, mod_out):
                    r = compare(a, b, rtol, atol)
                    r.update({"mode": mode, "kind": "output", "path": "output[%s]" % idx,
                              "shape": list(np.shape(a))})
                    mark_degenerate(r, a, b)
                    rows.append(r)
                # updated state
                leg_after = _nest(entries, arrays, "state_after", mode)
                if leg_after or upd:
                    conv_after = keys.convert_variables(legacy_params, leg_after or None, shared=shared,
                                                        template=template)
                    conv_after.pop("params", None)
                    la = {(c,) + p: v for c in conv_after for p, v in keys.tree_paths(conv_after[c]).items()}
                    upd_d = _to_dict(upd)
                    lb = {(c,) + p: v for c in upd_d for p, v in keys.tree_paths(upd_d[c]).items()}
                    for p in sorted(set(la) | set(lb)):
                        path = "/".join(p)
                        if p not in lb:
                            rows.append({"mode": mode, "kind": "state", "path": path, "shape": list(np.shape(la[p])),
                                         "ok": False, "max_abs": None, "max_rel": None,
                                         "note": "updated by legacy, not returned by upgraded (missing `mutable`?)"})
                            continue
                        if p not in la:
                            rows.append({"mode": mode, "kind": "state", "path": path, "shape": list(np.shape(lb[p])),
                                         "ok": False, "max_abs": None, "max_rel": None,
                                         "note": "only in upgraded"})
                            continue
                        r = compare(la[p], lb[p], rtol, atol)
                        r.update({"mode": mode, "kind": "state", "path": path, "shape": list(np.shape(la[p]))})
                        rows.append(r)
                # gradients
                leg_grads = _nest(entries, arrays, "grad", mode)
                conv_g = keys.convert_variables(leg_grads, legacy_state or None, shared=shared,
                                                template=template)["params"]
                ga = keys.tree_paths(conv_g)
                gb = keys.tree_paths(_to_dict(grads))
                noisy = noise_paths(ga)
                top = max((float(np.abs(np.asarray(g, dtype=np.float64)).max()) for g in ga.values()
                           if np.size(g) and np.asarray(g).dtype.kind in "fc"), default=0.0)
                for p in sorted(set(ga) | set(gb)):
                    path = "params/" + "/".join(p)
                    if p not in ga or p not in gb:
                        rows.append({"mode": mode, "kind": "grad", "path": path, "shape": None, "ok": False,
                                     "max_abs": None, "max_rel": None,
                                     "note": "missing on the %s side" % ("legacy" if p not in ga else "upgraded")})
                        continue
                    r = compare(ga[p], gb[p], rtol, atol)
                    r.update({"mode": mode, "kind": "grad", "path": path, "shape": list(np.shape(ga[p]))})
                    within_gradient_rounding(r, top, rtol, atol)
                    if p in noisy:
                        mark_noise(r, *noisy[p])
                    mark_degenerate(r, ga[p], gb[p])
                    rows.append(r)
                unpaired = draws_differ(legacy_draws.get(mode), draws.get(mode), manifest.get("jax"),
                                        jax.__version__)
                if unpaired:
                    for r in rows[first_row:]:
                        add_note(r, unpaired)
        except Exception as e:
            _fail(out, "run", e, {"rows": rows})
        timings["run_s"] = compile_s
        if manifest.get("train_steps") and job.get("optimizer"):
            t_opt = time.time()
            try:
                spec = job["optimizer"]
                tx = build_from_spec(spec, mod.__dict__)
                if not hasattr(tx, "update") and hasattr(tx, "tx"):  # a TrainState
                    tx = tx.tx
                if not (hasattr(tx, "init") and hasattr(tx, "update")):
                    raise TypeError("%s is a %s, not an optax GradientTransformation"
                                    % (spec.get("expr") or spec.get("call"), type(tx).__name__))
            except Exception as e:
                _fail(out, "optimizer", e, {"rows": rows})
            try:
                times = {}
                rows.extend(replay_optimizer(tx, manifest, entries, arrays, variables["params"],
                                             legacy_state, shared, template, keys, rtol, atol,
                                             timing, times))
                first_calls_s += times.get("first_s", 0.0)
                repeat_calls_s += times.get("repeat_s", 0.0)
            except Exception as e:
                _fail(out, "optimizer-run", e, {"rows": rows})
            timings["optimizer_s"] = time.time() - t_opt
    timings["first_calls_s"] = first_calls_s
    timings["repeat_calls_s"] = repeat_calls_s if timing else None
    report = {"module": job["module"], "modes": [m for m, _ in manifest["modes"]], "rows": rows,
              "rtol": rtol, "atol": atol, "platform": jax.devices()[0].platform, "draws": draws,
              "timings": timings, "legacy_timings": manifest.get("timings"),
              "train_steps": manifest.get("train_steps") if job.get("optimizer") else None}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", required=True, help="JSON file: a list of jobs")
    ap.add_argument("--sys-path", action="append", default=[], help="extra import folders")
    ns = ap.parse_args()
    with open(ns.batch) as f:
        jobs = json.load(f)
    t0 = time.time()
    keys = _load_file(os.path.join(os.path.dirname(HERE), "keys.py"), "_linen_upgrade_keys")
    for extra in reversed(ns.sys_path):
        sys.path.insert(0, os.path.abspath(extra))
    import jax  # noqa: F401  (start-up: what every job needs)
    import flax.linen  # noqa: F401
    import optax  # noqa: F401
    ready = time.time()
    modules = {}

    def load(path):
        path = os.path.abspath(path)
        if path not in modules:
            folder = os.path.dirname(path)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            try:
                modules[path] = _load_file(path, "upgraded_user_%d_%s" % (
                    len(modules), os.path.splitext(os.path.basename(path))[0]))
            except Exception as e:
                modules[path] = e
        if isinstance(modules[path], Exception):
            raise modules[path]
        return modules[path]
    for job in jobs:
        try:
            run_job(job, keys, load)
        except JobFailed:
            continue
        path = os.path.join(job["out"], "report.json")
        with open(path) as f:
            report = json.load(f)
        report["timings"].update({"start_s": ready - t0, "ready_at": ready})
        with open(path, "w") as f:
            json.dump(report, f)


if __name__ == "__main__":
    main()
