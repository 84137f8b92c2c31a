"""Modern side of module mode (plain subprocess with current flax).

Reads the legacy side's ``manifest.json``/``arrays.npz``, carries the legacy
params and state over with ``linen_upgrade/keys.py`` (checked against
``jax.eval_shape`` of the upgraded module's ``init``), runs the upgraded Linen
module on the same inputs in the same modes, and compares outputs, updated
collections and gradients of the same scalar loss. Writes ``report.json``
(or ``error.json``) into ``--out``.
"""
import argparse
import dataclasses
import importlib.util
import inspect
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def _fail(out, phase, exc, extra=None):
    info = {"phase": phase, "type": type(exc).__name__, "message": str(exc)[:2000],
            "traceback": traceback.format_exc()[-6000:]}
    if extra:
        info.update(extra)
    with open(os.path.join(out, "error.json"), "w") as f:
        json.dump(info, f)
    sys.stderr.write(info["traceback"])
    sys.exit(3)


def _load_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("--legacy-dir", required=True)
    ap.add_argument("--kwargs", default="{}")
    ap.add_argument("--shared", default="{}")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ns = ap.parse_args()
    out = ns.out
    t0 = time.time()
    keys = _load_file(os.path.join(os.path.dirname(HERE), "keys.py"), "_linen_upgrade_keys")
    sys.path.insert(0, os.path.dirname(os.path.abspath(ns.file)))
    try:
        mod = _load_file(os.path.abspath(ns.file), "upgraded_user_" +
                         os.path.splitext(os.path.basename(ns.file))[0])
    except Exception as e:
        _fail(out, "load", e)
    t_load = time.time() - t0
    try:
        cls = getattr(mod, ns.module)
    except AttributeError as e:
        _fail(out, "module-missing", e)
    import numpy as np
    import jax
    import jax.numpy as jnp
    import flax.linen as lnn
    if not (isinstance(cls, type) and issubclass(cls, lnn.Module)):
        _fail(out, "module-missing", TypeError("%s in %s is not a flax.linen Module" % (ns.module, ns.file)))
    with open(os.path.join(ns.legacy_dir, "manifest.json")) as f:
        manifest = json.load(f)
    npz = np.load(os.path.join(ns.legacy_dir, "arrays.npz"))
    arrays = {k: npz[k] for k in npz.files}
    entries = manifest["entries"]
    inputs = [jnp.asarray(arrays[e["key"]]) for e in entries if e["group"] == "input"]
    legacy_params = _nest(entries, arrays, "params")
    legacy_state = _nest(entries, arrays, "state")
    kwargs = json.loads(ns.kwargs)
    shared = json.loads(ns.shared)
    rows = []
    problems = []
    timings = {"load_s": t_load}
    try:
        def build(mode_kw):
            kw = dict(kwargs)
            kw.update(map_mode_kwargs(cls, mode_kw))
            ctor, call = split_kwargs(cls, kw)
            return cls(**ctor), call
        model0, call0 = build(manifest["modes"][0][1])
        rngs = {"params": jax.random.PRNGKey(ns.seed), "dropout": jax.random.PRNGKey(ns.seed + 2)}
        template = _to_dict(jax.eval_shape(lambda: model0.init(rngs, *inputs, **call0)))
        converted = keys.convert_variables(legacy_params, legacy_state or None, shared=shared,
                                           template=template)
        problems = keys.compare_structure(converted, template)
    except Exception as e:
        _fail(out, "convert", e)
    t1 = time.time()
    timings["convert_s"] = t1 - t0 - t_load
    if problems:
        for path, problem in problems:
            rows.append({"mode": "structure", "kind": "variables", "path": path, "shape": None,
                         "ok": False, "max_abs": None, "max_rel": None, "note": problem})
    else:
        variables = {c: jax.tree_util.tree_map(jnp.asarray, v) for c, v in converted.items()}
        mutable = [c for c in variables if c != "params"]
        compile_s = 0.0
        try:
            for mode, mode_kw in manifest["modes"]:
                model, call = build(mode_kw)
                projs = {e["path"][0]: jnp.asarray(arrays[e["key"]]) for e in entries
                         if e["group"] == "proj" and e["mode"] == mode}

                def forward(p, model=model, call=call):
                    v = dict(variables)
                    v["params"] = p
                    if mutable:
                        y, upd = model.apply(v, *inputs, mutable=mutable, rngs={"dropout": rngs["dropout"]}, **call)
                    else:
                        y, upd = model.apply(v, *inputs, rngs={"dropout": rngs["dropout"]}, **call), {}
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
                    (_, (y, upd)), grads = jax.jit(vg)(variables["params"])
                except Exception:  # python control flow on values: run eagerly
                    (_, (y, upd)), grads = vg(variables["params"])
                jax.block_until_ready(grads)
                compile_s += time.time() - tc
                # outputs
                leg_out = [(e["path"][0], arrays[e["key"]]) for e in entries
                           if e["group"] == "output" and e["mode"] == mode]
                mod_out = jax.tree_util.tree_leaves(y)
                if len(leg_out) != len(mod_out):
                    rows.append({"mode": mode, "kind": "output", "path": "output", "shape": None,
                                 "ok": False, "max_abs": None, "max_rel": None,
                                 "note": "legacy returns %d arrays, upgraded %d" % (len(leg_out), len(mod_out))})
                for (idx, a), b in zip(leg_out, mod_out):
                    r = compare(a, b, ns.rtol, ns.atol)
                    r.update({"mode": mode, "kind": "output", "path": "output[%s]" % idx,
                              "shape": list(np.shape(a))})
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
                        r = compare(la[p], lb[p], ns.rtol, ns.atol)
                        r.update({"mode": mode, "kind": "state", "path": path, "shape": list(np.shape(la[p]))})
                        rows.append(r)
                # gradients
                leg_grads = _nest(entries, arrays, "grad", mode)
                conv_g = keys.convert_variables(leg_grads, legacy_state or None, shared=shared,
                                                template=template)["params"]
                ga = keys.tree_paths(conv_g)
                gb = keys.tree_paths(_to_dict(grads))
                for p in sorted(set(ga) | set(gb)):
                    path = "params/" + "/".join(p)
                    if p not in ga or p not in gb:
                        rows.append({"mode": mode, "kind": "grad", "path": path, "shape": None, "ok": False,
                                     "max_abs": None, "max_rel": None,
                                     "note": "missing on the %s side" % ("legacy" if p not in ga else "upgraded")})
                        continue
                    r = compare(ga[p], gb[p], ns.rtol, ns.atol)
                    r.update({"mode": mode, "kind": "grad", "path": path, "shape": list(np.shape(ga[p]))})
                    rows.append(r)
        except Exception as e:
            _fail(out, "run", e, {"rows": rows})
        timings["run_s"] = compile_s
    report = {"module": ns.module, "modes": [m for m, _ in manifest["modes"]], "rows": rows,
              "rtol": ns.rtol, "atol": ns.atol, "platform": jax.devices()[0].platform,
              "timings": timings, "legacy_timings": manifest.get("timings"),
              "key_map": None}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
