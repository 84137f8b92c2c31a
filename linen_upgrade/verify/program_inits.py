"""Program mode, legacy side: record the variables the legacy script creates.

Legacy ``flax.nn`` and Linen draw different initial weights from the same
PRNG key, so two correct programs that initialise from a key print different
numbers. ``legacy_boot.py --program-dir DIR`` calls :func:`install` before it
runs the script: every top-level ``Module.init`` (``init_by_shape``,
``create`` and ``create_by_shape`` go through it) is recorded in call order --
its class, its params and the state it stored in the active ``nn.stateful``
collection -- into ``DIR/init_<n>.npz``; :func:`finish` writes
``DIR/legacy.json``. The upgraded side (``modern_program_boot.py``) hands
init n's variables to its n-th Linen ``init``.

An init run under a jax transformation (``jax.jit(Model.init)``) yields
tracers: its values are saved by ``jax.debug.callback`` when the compiled
function runs (never, under ``jax.eval_shape``: then it is "not captured").

The whole script also draws its dropout masks by call order
(``same_draws.py``) and each init draws from a sequence of its own, so the
masks drawn while initialising (legacy init runs the forward pass) do not
shift those of the training steps.

Python 3.7 syntax, standard library only at import time (it may run in the
user's own old environment).
"""
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load_sibling(filename, name):
    """One of this folder's files as a module (this folder is not on sys.path)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, filename))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


same_draws = load_sibling("same_draws.py", "_linen_upgrade_same_draws")


def flatten(tree, prefix=()):
    """Nested dicts -> ``[(path, leaf)]`` in sorted key order."""
    if hasattr(tree, "items") and not hasattr(tree, "shape"):
        out = []
        for k in sorted(tree.keys(), key=str):
            out.extend(flatten(tree[k], prefix + (str(k),)))
        return out
    return [(prefix, tree)]


def save_arrays(path, groups):
    """``groups``: name -> [(path, leaf)]; writes ``path`` (npz) and returns its
    manifest ``[{"group", "path", "key"}]``."""
    import numpy as np
    arrays, manifest = {}, []
    for group in sorted(groups):
        for p, leaf in groups[group]:
            key = "a%d" % len(arrays)
            arrays[key] = np.asarray(leaf)
            manifest.append({"group": group, "path": list(p), "key": key})
    np.savez(path, **arrays)
    return manifest


class Recorder(object):
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.inits = []
        self.depth = 0

    def record(self, cls, params, new_state):
        """Save one top-level init's variables (now, or when its jitted code runs)."""
        import jax
        index = len(self.inits)
        entry = {"index": index, "class": getattr(cls, "__name__", str(cls)), "captured": False}
        self.inits.append(entry)
        groups = {"params": flatten(params), "state": flatten(new_state)}
        leaves = [leaf for g in groups.values() for _, leaf in g]
        npz = os.path.join(self.out_dir, "init_%d.npz" % index)

        def write(*values):
            it = iter(values)
            filled = {g: [(p, next(it)) for p, _ in items] for g, items in groups.items()}
            entry["arrays"] = save_arrays(npz, filled)
            entry["file"] = os.path.basename(npz)
            entry["captured"] = True

        if not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
            write(*leaves)
        elif hasattr(jax, "debug") and hasattr(jax.debug, "callback"):
            jax.debug.callback(write, *leaves)
        else:
            entry["problem"] = "ran under a jax transformation; its values could not be read"

    def finish(self, drawn):
        with open(os.path.join(self.out_dir, "legacy.json"), "w") as f:
            json.dump({"inits": self.inits, "draws": drawn.as_dict()}, f)


def install(out_dir, random_modules):
    """Patch legacy ``nn.Module.init`` to record top-level inits; returns the
    :class:`Recorder`. ``random_modules``: what ``bernoulli`` is patched on."""
    from flax import nn
    base = sys.modules[nn.Module.__module__]
    original = nn.Module.__dict__["init"].__func__
    rec = Recorder(out_dir)

    def init(cls, _rng, *args, **kwargs):
        if rec.depth or base._module_stack:  # a nested call, or init_by_shape's own
            return original(cls, _rng, *args, **kwargs)
        collection = base._state_stack[-1] if base._state_stack else None
        before = dict(collection.state) if collection is not None else {}
        rec.depth += 1
        try:
            # init's masks come from a sequence of their own (see the module doc)
            with same_draws.matched_draws(random_modules, []):
                y, params = original(cls, _rng, *args, **kwargs)
        finally:
            rec.depth -= 1
        new_state = {}
        if collection is not None:
            new_state = {k: v for k, v in collection.state.items()
                         if k not in before or before[k] is not v}
        rec.record(cls, params, new_state)
        return y, params

    nn.Module.init = classmethod(init)
    return rec
