"""Legacy side of module mode (run through legacy_boot.py --driver).

One process handles a batch of jobs (``--batch JOBS.json``: a list of
``{"module", "inputs", "kwargs", "seed", "perturb", "int_high", "train_steps",
"optimizer", "timing", "out"}``) on one legacy file, which is imported once.
For each job it initialises the legacy module on flax 0.3.6 under
``nn.stateful()`` (jitted), adds noise to the params (``perturb``; the
upgraded side gets the same params), then for each mode (train/eval when
``apply`` has a ``train`` argument) runs a forward pass under a mutable ``nn.stateful``
context and takes gradients of a fixed scalar loss ``sum(output *
projection)``. The forward pass draws its dropout masks and rng keys by call
order (``same_draws.py``), as the upgraded side does, and the counts go into
the manifest (``draws``). Writes ``manifest.json`` + ``arrays.npz`` (inputs,
params, initial state, outputs, updated state, gradients, projections) into
the job's ``out``; on failure ``error.json`` there (the other jobs go on).

With ``train_steps`` N and an ``optimizer`` site (see ``optimizer.py``) it also
builds the file's ``flax.optim`` optimizer, creates it on the params and takes
N steps in train mode, each on the gradients of a fresh random projection of
the outputs at the current params (state carried over). It stores each step's
gradients (``opt_grad``) -- the modern side replays them through the optax
transform -- and the params after each step (``opt_params``).

``timing``: also time a second call of each jitted function (compile vs run).

Python 3.7 syntax (may run in the user's own old environment).
"""
import argparse
import importlib.util
import inspect
import json
import os
import sys
import time
import traceback

T_START = time.time()
HERE = os.path.dirname(os.path.abspath(__file__))


def _load_same_draws():
    spec = importlib.util.spec_from_file_location("_linen_upgrade_same_draws",
                                                  os.path.join(HERE, "same_draws.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


same_draws = _load_same_draws()


class JobFailed(Exception):
    pass


def _fail(out, phase, exc):
    info = {"phase": phase, "type": type(exc).__name__, "message": str(exc)[:2000],
            "traceback": traceback.format_exc()[-6000:]}
    with open(os.path.join(out, "error.json"), "w") as f:
        json.dump(info, f)
    sys.stderr.write(info["traceback"])
    raise JobFailed(phase)


def build_from_spec(spec, namespace):
    """Evaluate an optimizer site (``optimizer.OptimizerSite.to_json()``) in a
    loaded file's namespace."""
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


def _randn(rs, shape, dtype):
    """Standard normal draws of ``shape`` as an array: ``randn()`` of a scalar
    shape is a Python float (a model whose output is one number: an energy, a loss)."""
    import numpy as np
    return np.asarray(rs.randn(*shape), dtype)


def make_inputs(specs, seed, int_high):
    import numpy as np
    rs = np.random.RandomState(seed)
    arrays = []
    for shape, dtype in specs:
        dt = np.dtype(dtype)
        shape = tuple(int(d) for d in shape)
        if dt.kind == "f":
            arrays.append(_randn(rs, shape, dt))
        elif dt.kind in "iu":
            arrays.append(rs.randint(0, int_high, size=shape).astype(dt))
        elif dt.kind == "b":
            arrays.append(rs.rand(*shape) > 0.5)
        else:
            raise ValueError("unsupported input dtype %s" % dtype)
    return arrays


class Store(object):
    def __init__(self):
        self.entries = []
        self.arrays = {}

    def add(self, group, mode, path, value):
        import numpy as np
        key = "a%d" % len(self.arrays)
        arr = np.asarray(value)
        self.arrays[key] = arr
        self.entries.append({"group": group, "mode": mode, "path": [str(p) for p in path],
                             "key": key, "shape": list(arr.shape), "dtype": str(arr.dtype)})

    def add_tree(self, group, mode, tree, prefix=()):
        if isinstance(tree, dict) or hasattr(tree, "items") and not hasattr(tree, "shape"):
            for k in sorted(tree.keys(), key=str):
                self.add_tree(group, mode, tree[k], prefix + (k,))
        else:
            self.add(group, mode, prefix, tree)

    def save(self, out, meta):
        import numpy as np
        np.savez(os.path.join(out, "arrays.npz"), **self.arrays)
        meta = dict(meta)
        meta["entries"] = self.entries
        with open(os.path.join(out, "manifest.json"), "w") as f:
            json.dump(meta, f)


def _timed(fn, args, timing, acc):
    """Call ``fn(*args)``; add the first call's time to acc['compile_s'] and, with
    ``timing``, a second call's to acc['run_s']."""
    import jax
    t = time.time()
    res = fn(*args)
    jax.block_until_ready(res)
    acc["compile_s"] += time.time() - t
    if timing:
        t = time.time()
        jax.block_until_ready(fn(*args))
        acc["run_s"] += time.time() - t
    return res


def perturb(params, scale, seed):
    """Every float parameter plus ``scale`` x its spread (its largest magnitude
    when constant, 1 when zero) of Gaussian noise: a zero bias or a
    zero-initialised BatchNorm scale (a ResNet block's last one) would
    otherwise zero the gradients of what they multiply, and agree with a
    rewrite that mixes those up."""
    import numpy as np
    import jax
    rs = np.random.RandomState(seed)

    def one(p):
        a = np.asarray(p)
        if a.dtype.kind not in "fc" or a.size == 0:
            return a
        spread = float(np.std(a)) or float(np.max(np.abs(a))) or 1.0
        return (a + scale * spread * rs.standard_normal(a.shape)).astype(a.dtype)
    return jax.tree_util.tree_map(one, params)


def draw_sources():
    """What :func:`same_draws.matched_draws` patches on this side: ``jax.random``
    as legacy code sees it (the compat layer's proxy) and as it is, and the
    method behind legacy ``nn.make_rng()`` (absent in a flax without it)."""
    import jax
    from flax import nn
    modules = [jax.random]
    boot = sys.modules.get("_linen_upgrade_legacy_boot")
    if boot is not None and boot._COMPAT["on"]:  # not in the user's own old environment
        modules.append(boot.proxy_module("jax.random"))
    frame = getattr(sys.modules.get(nn.make_rng.__module__), "_PRNGFrame", None)
    return modules, [(frame, "make_rng")] if frame is not None else []


def run_job(mod, job):
    out = job["out"]
    t0 = time.time()
    try:
        cls = getattr(mod, job["module"])
    except AttributeError as e:
        _fail(out, "module-missing", e)
    import numpy as np
    import jax
    import jax.numpy as jnp
    from flax import nn
    seed = int(job.get("seed", 0))
    timing = bool(job.get("timing"))
    acc = {"compile_s": 0.0, "run_s": 0.0}
    try:
        specs = job["inputs"]
        kwargs = dict(job.get("kwargs") or {})
        inputs = [jnp.asarray(a) for a in make_inputs(specs, seed, int(job.get("int_high", 4)))]
        try:
            sig = inspect.signature(cls.apply)
            has_train = "train" in sig.parameters
        except (TypeError, ValueError, AttributeError):
            has_train = False
        if has_train and "train" not in kwargs:
            modes = [["train", {"train": True}], ["eval", {"train": False}]]
        else:
            modes = [["apply", {}]]
        store = Store()
        for i, a in enumerate(inputs):
            store.add("input", "", (str(i),), a)
        rng = jax.random.PRNGKey(seed)
        init_kw = dict(kwargs)
        init_kw.update(modes[0][1])

        def init_fn(rng, *xs):
            with nn.stateful() as init_state:
                with nn.stochastic(jax.random.PRNGKey(seed + 1)):
                    _, params = cls.init(rng, *xs, **init_kw)
            return params, init_state.as_dict()
        # jitted (op-by-op legacy init compiles every op on its own: seconds);
        # eagerly when the module needs concrete values at init
        try:
            params, state0 = jax.jit(init_fn)(rng, *inputs)
        except Exception:
            params, state0 = init_fn(rng, *inputs)
        params = perturb(params, float(job.get("perturb") or 0.0), seed + 7)
        state0 = jax.tree_util.tree_map(np.asarray, state0)
    except JobFailed:
        raise
    except Exception as e:
        _fail(out, "init", e)
    t_init = time.time() - t0
    store.add_tree("params", "", params)
    for skey in sorted(state0):
        store.add_tree("state", "", state0[skey], (skey,))
    rs = np.random.RandomState(seed + 12345)
    first_out_shapes = None
    draws = {}  # mode -> what its forward pass drew (the last trace)
    random_modules, key_methods = draw_sources()
    try:
        for mode, mkw in modes:
            kw = dict(kwargs)
            kw.update(mkw)

            def forward(p, kw=kw, mode=mode):
                # dropout masks and rng keys by call order: the upgraded side draws the same
                with same_draws.matched_draws(random_modules, key_methods) as drawn:
                    with nn.stateful(nn.Collection(dict(state0))) as new_state:
                        with nn.stochastic(jax.random.PRNGKey(seed + 2)):
                            y = cls.call(p, *inputs, **kw)
                draws[mode] = drawn.as_dict()
                return y, new_state.as_dict()
            try:
                out_shapes = jax.eval_shape(forward, params)[0]
                jitted = True
            except Exception:
                out_shapes = forward(params)[0]
                jitted = False
            if first_out_shapes is None:
                first_out_shapes = (out_shapes, jitted)
            projs = []
            for leaf in jax.tree_util.tree_leaves(out_shapes):
                if jnp.issubdtype(leaf.dtype, jnp.floating):
                    projs.append(_randn(rs, leaf.shape, np.float32))
                else:
                    projs.append(None)

            def loss(p, projs=projs, forward=forward):
                yy, st = forward(p)
                total = 0.0
                for leaf, pr in zip(jax.tree_util.tree_leaves(yy), projs):
                    if pr is not None:
                        total = total + jnp.sum(leaf.astype(jnp.float32) * pr)
                return total, (yy, st)
            vg = jax.value_and_grad(loss, has_aux=True)
            if jitted:
                vg = jax.jit(vg)
            (_, (y, new_state)), grads = _timed(vg, (params,), timing, acc)
            for i, leaf in enumerate(jax.tree_util.tree_leaves(y)):
                store.add("output", mode, (str(i),), leaf)
                if projs[i] is not None:
                    store.add("proj", mode, (str(i),), projs[i])
            for skey in sorted(new_state):
                store.add_tree("state_after", mode, new_state[skey], (skey,))
            store.add_tree("grad", mode, grads)
    except Exception as e:
        _fail(out, "run", e)
    t_run = time.time() - t0 - t_init
    meta = {}
    n_steps = int(job.get("train_steps") or 0)
    if n_steps > 0:
        t_opt = time.time()
        try:
            spec = job["optimizer"]
            opt_def = build_from_spec(spec, mod.__dict__)
            from flax import optim as legacy_optim
            if isinstance(opt_def, legacy_optim.Optimizer):
                opt_def = opt_def.optimizer_def
            if not isinstance(opt_def, legacy_optim.OptimizerDef):
                raise TypeError("%s is a %s, not a flax.optim optimizer definition"
                                % (spec.get("expr") or spec.get("call"), type(opt_def).__name__))
        except Exception as e:
            _fail(out, "optimizer", e)
        try:
            train_steps(store, cls, params, state0, inputs, kwargs, modes[0][1], first_out_shapes,
                        opt_def, n_steps, seed, rs, timing, acc)
        except Exception as e:
            _fail(out, "optimizer-run", e)
        meta = {"train_steps": n_steps, "optimizer": type(opt_def).__name__,
                "optimizer_s": time.time() - t_opt}
    meta.update({"modes": modes, "kwargs": kwargs, "inputs": specs, "draws": draws,
                 "platform": jax.devices()[0].platform, "jax": jax.__version__,
                 "timings": {"init_s": t_init, "run_s": t_run, "optimizer_s": meta.get("optimizer_s"),
                             "first_calls_s": acc["compile_s"],
                             "repeat_calls_s": acc["run_s"] if timing else None}})
    store.save(out, meta)


def train_steps(store, cls, params, state0, inputs, kwargs, mode_kw, first_out_shapes, opt_def, n,
                seed, rs, timing, acc):
    """N optimizer steps in the first mode (train), state carried over; store
    the gradients and the params after each step."""
    import numpy as np
    import jax
    import jax.numpy as jnp
    from flax import nn
    kw = dict(kwargs)
    kw.update(mode_kw)
    out_shapes, jitted = first_out_shapes

    def loss(p, st, projs, rng):
        with nn.stateful(nn.Collection(dict(st))) as new_state:
            with nn.stochastic(rng):
                y = cls.call(p, *inputs, **kw)
        total = 0.0
        for leaf, pr in zip(jax.tree_util.tree_leaves(y), projs):
            if pr is not None:
                total = total + jnp.sum(leaf.astype(jnp.float32) * pr)
        return total, new_state.as_dict()

    vg = jax.value_and_grad(loss, has_aux=True)

    def apply(opt, g):
        return opt.apply_gradient(g)
    if jitted:
        vg = jax.jit(vg)
        apply = jax.jit(apply)
    opt = opt_def.create(jax.tree_util.tree_map(jnp.asarray, params))
    state = dict(state0)
    for k in range(1, n + 1):
        projs = [_randn(rs, leaf.shape, np.float32)
                 if jnp.issubdtype(leaf.dtype, jnp.floating) else None
                 for leaf in jax.tree_util.tree_leaves(out_shapes)]
        rng = jax.random.PRNGKey(seed + 100 + k)
        if k == 1:
            (_, new_state), g = _timed(vg, (opt.target, state, projs, rng), timing, acc)
            opt = _timed(apply, (opt, g), timing, acc)
        else:
            (_, new_state), g = vg(opt.target, state, projs, rng)
            opt = apply(opt, g)
        state = dict(new_state)
        store.add_tree("opt_grad", "step%d" % k, jax.tree_util.tree_map(np.asarray, g))
        store.add_tree("opt_params", "step%d" % k, jax.tree_util.tree_map(np.asarray, opt.target))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", required=True)
    ap.add_argument("--batch", required=True, help="JSON file: a list of jobs")
    ns = ap.parse_args()
    with open(ns.batch) as f:
        jobs = json.load(f)
    t0 = time.time()
    boot = sys.modules.get("_linen_upgrade_legacy_boot")
    try:
        if boot is not None:
            mod = boot.load_user_module(ns.file)
        else:  # pragma: no cover
            import importlib.util
            spec = importlib.util.spec_from_file_location("legacy_user", ns.file)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        import jax  # noqa: F401  (part of the start-up, whatever the user file imports)
        import flax.nn  # noqa: F401
    except Exception as e:
        for job in jobs:
            try:
                _fail(job["out"], "load", e)
            except JobFailed:
                pass
        sys.exit(3)
    ready = time.time()
    for job in jobs:
        try:
            run_job(mod, job)
        except JobFailed:
            continue
        path = os.path.join(job["out"], "manifest.json")
        with open(path) as f:
            manifest = json.load(f)
        manifest["timings"].update({"load_s": ready - t0, "ready_at": ready, "driver_start_at": T_START})
        with open(path, "w") as f:
            json.dump(manifest, f)


if __name__ == "__main__":
    main()
