"""Legacy side of module mode (run through legacy_boot.py --driver).

Initialises the legacy module on flax 0.3.6 under ``nn.stateful()``, then for
each mode (train/eval when ``apply`` has a ``train`` argument) runs a forward
pass under a mutable ``nn.stateful`` context and takes gradients of a fixed
scalar loss ``sum(output * projection)``. Writes ``manifest.json`` +
``arrays.npz`` (inputs, params, initial state, outputs, updated state,
gradients, projections) into ``--out``. On failure writes ``error.json``.

Python 3.7 syntax (may run in the user's own old environment).
"""
import argparse
import inspect
import json
import os
import sys
import traceback


def _fail(out, phase, exc):
    info = {"phase": phase, "type": type(exc).__name__, "message": str(exc)[:2000],
            "traceback": traceback.format_exc()[-6000:]}
    with open(os.path.join(out, "error.json"), "w") as f:
        json.dump(info, f)
    sys.stderr.write(info["traceback"])
    sys.exit(3)


def make_inputs(specs, seed, int_high):
    import numpy as np
    rs = np.random.RandomState(seed)
    arrays = []
    for shape, dtype in specs:
        dt = np.dtype(dtype)
        shape = tuple(int(d) for d in shape)
        if dt.kind == "f":
            arrays.append(rs.randn(*shape).astype(dt))
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("--inputs", required=True, help="JSON [[shape, dtype], ...]")
    ap.add_argument("--kwargs", default="{}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--int-high", type=int, default=4)
    ap.add_argument("--out", required=True)
    ns = ap.parse_args()
    out = ns.out
    import time
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
    from flax import nn
    try:
        specs = json.loads(ns.inputs)
        kwargs = json.loads(ns.kwargs)
        inputs = [jnp.asarray(a) for a in make_inputs(specs, ns.seed, ns.int_high)]
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
        rng = jax.random.PRNGKey(ns.seed)
        init_kw = dict(kwargs)
        init_kw.update(modes[0][1])

        def init_fn(rng, *xs):
            with nn.stateful() as init_state:
                with nn.stochastic(jax.random.PRNGKey(ns.seed + 1)):
                    _, params = cls.init(rng, *xs, **init_kw)
            return params, init_state.as_dict()
        # eagerly: legacy init leaks tracers under jax.jit (rngs cached in eval_context)
        params, state0 = init_fn(rng, *inputs)
        params = jax.tree_util.tree_map(np.asarray, params)
        state0 = jax.tree_util.tree_map(np.asarray, state0)
    except Exception as e:
        _fail(out, "init", e)
    t_init = time.time() - t0 - t_load
    store.add_tree("params", "", params)
    for skey in sorted(state0):
        store.add_tree("state", "", state0[skey], (skey,))
    rs = np.random.RandomState(ns.seed + 12345)
    try:
        for mode, mkw in modes:
            kw = dict(kwargs)
            kw.update(mkw)

            def forward(p, kw=kw):
                with nn.stateful(nn.Collection(dict(state0))) as new_state:
                    with nn.stochastic(jax.random.PRNGKey(ns.seed + 2)):
                        y = cls.call(p, *inputs, **kw)
                return y, new_state.as_dict()
            try:
                out_shapes = jax.eval_shape(forward, params)[0]
                jitted = True
            except Exception:
                out_shapes = forward(params)[0]
                jitted = False
            projs = []
            for leaf in jax.tree_util.tree_leaves(out_shapes):
                if jnp.issubdtype(leaf.dtype, jnp.floating):
                    projs.append(rs.randn(*leaf.shape).astype(np.float32))
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
            (_, (y, new_state)), grads = vg(params)
            for i, leaf in enumerate(jax.tree_util.tree_leaves(y)):
                store.add("output", mode, (str(i),), leaf)
                if projs[i] is not None:
                    store.add("proj", mode, (str(i),), projs[i])
            for skey in sorted(new_state):
                store.add_tree("state_after", mode, new_state[skey], (skey,))
            store.add_tree("grad", mode, grads)
    except Exception as e:
        _fail(out, "run", e)
    t_run = time.time() - t0 - t_load - t_init
    store.save(out, {"modes": modes, "kwargs": kwargs, "inputs": specs,
                     "platform": jax.devices()[0].platform, "jax": jax.__version__,
                     "timings": {"load_s": t_load, "init_s": t_init, "run_s": t_run}})


if __name__ == "__main__":
    main()
