"""Program mode, upgraded side: run the upgraded script on current flax,
starting from the legacy script's weights and dropout masks.

    python modern_program_boot.py --legacy-dir DIR --report FILE SCRIPT [ARGS...]

``DIR`` holds what the legacy side recorded (``program_inits.py``): the n-th
Linen ``Module.init`` / ``init_with_output`` call at top level gets the n-th
legacy init's params and state, renamed with the checkpoint key rules
(``keys.convert_variables``, against the structure Linen's own init would
create). When they cannot be paired -- no n-th legacy init, an init the
legacy side could not read, a tree that does not match -- the call runs the
real init (the program goes on) and the report says which and why. The
script draws its dropout masks by call order like the legacy side, each init
from a sequence of its own. ``FILE`` gets the report (inits and draws).

The script runs as ``__main__`` with ``sys.argv`` and ``sys.path[0]`` as under
``python SCRIPT``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


same_draws = _load(os.path.join(HERE, "same_draws.py"), "_linen_upgrade_same_draws")
keys = _load(os.path.join(os.path.dirname(HERE), "keys.py"), "_linen_upgrade_keys")


def load_legacy_init(legacy_dir: str, entry: dict):
    """``(params, state)`` of one recorded legacy init: nested dicts of numpy arrays."""
    import numpy as np
    arrays = np.load(os.path.join(legacy_dir, entry["file"]))
    trees = {"params": {}, "state": {}}
    for a in entry["arrays"]:
        node = trees[a["group"]]
        *parents, leaf = a["path"]
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = arrays[a["key"]]
    return trees["params"], trees["state"]


class CarryOver:
    """The patched inits: call n gets legacy init n's variables."""

    def __init__(self, legacy_dir: str, legacy_inits: list):
        self.legacy_dir = legacy_dir
        self.legacy_inits = legacy_inits
        self.inits: list = []
        self.depth = 0

    def carried(self, module, rngs, args, kwargs, original_iwo):
        """What the n-th top-level ``init_with_output`` returns: ``(y, variables)``."""
        import jax
        import jax.numpy as jnp
        from flax.core import freeze
        from flax.core.frozen_dict import FrozenDict
        rec = {"index": len(self.inits), "class": type(module).__name__, "paired": False}
        self.inits.append(rec)
        with same_draws.matched_draws([jax.random], []):  # init's own masks, as on the legacy side
            try:
                template = jax.eval_shape(lambda: original_iwo(module, rngs, *args, **kwargs))[1]
            except Exception:  # an init that needs concrete values
                template = original_iwo(module, rngs, *args, **kwargs)[1]
        variables, rec["problem"] = self.pair(rec["index"], template)
        if variables is None:
            with same_draws.matched_draws([jax.random], []):
                return original_iwo(module, rngs, *args, **kwargs)
        rec["paired"] = True
        variables = jax.tree_util.tree_map(lambda v, t: jnp.asarray(v, t.dtype), variables,
                                           _plain(template))
        if isinstance(template, FrozenDict):
            variables = freeze(variables)
        # the output of init_with_output, from the carried-over variables
        apply_rngs = dict(rngs) if isinstance(rngs, dict) else {"params": rngs}
        with same_draws.matched_draws([jax.random], []):
            y, _ = module.apply(variables, *args, rngs=apply_rngs, mutable=True,
                                **{k: v for k, v in kwargs.items()
                                   if k not in ("mutable", "capture_intermediates")})
        return y, variables

    def pair(self, index: int, template):
        """``(variables, None)``, or ``(None, why they cannot be paired)``."""
        if index >= len(self.legacy_inits):
            return None, (f"the legacy program made {len(self.legacy_inits)} init(s); "
                          f"this is init {index + 1}")
        entry = self.legacy_inits[index]
        if not entry.get("captured"):
            return None, (f"legacy init {index + 1} ({entry['class']}): "
                          + entry.get("problem", "its values were never computed (jax.eval_shape?)"))
        params, state = load_legacy_init(self.legacy_dir, entry)
        tmpl = _plain(template)
        others = [c for c in tmpl if c != "params"]
        collection = others[0] if len(others) == 1 else "batch_stats"
        try:
            converted = keys.convert_variables(params, state or None, template=tmpl,
                                               collection=collection)
        except keys.KeyConversionError as e:
            return None, f"legacy init {index + 1} ({entry['class']}): its names cannot be converted: {e}"
        problems = keys.compare_structure(converted, tmpl)
        if problems:
            shown = "; ".join(f"{p}: {why}" for p, why in problems[:4])
            more = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
            return None, (f"legacy init {index + 1} ({entry['class']}) does not match the upgraded "
                          f"init's variables: {shown}{more}")
        return converted, None

    def install(self) -> None:
        import flax.linen as lnn
        original_iwo = lnn.Module.init_with_output
        original_init = lnn.Module.init
        carry = self

        def init_with_output(module, rngs, *args, **kwargs):
            if carry.depth:
                return original_iwo(module, rngs, *args, **kwargs)
            carry.depth += 1
            try:
                return carry.carried(module, rngs, args, kwargs, original_iwo)
            finally:
                carry.depth -= 1

        def init(module, rngs, *args, **kwargs):
            if carry.depth:
                return original_init(module, rngs, *args, **kwargs)
            return init_with_output(module, rngs, *args, **kwargs)[1]

        lnn.Module.init_with_output = init_with_output
        lnn.Module.init = init


def _plain(tree):
    """FrozenDicts -> dicts (the key rules work on plain mappings)."""
    if hasattr(tree, "items") and not hasattr(tree, "shape"):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--legacy-dir", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("script")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    ns = ap.parse_args()
    with open(os.path.join(ns.legacy_dir, "legacy.json")) as f:
        legacy = json.load(f)
    script = os.path.abspath(ns.script)
    sys.argv = [script, *ns.args]
    sys.path[0] = os.path.dirname(script)  # as `python SCRIPT` has it (not this folder)
    import jax
    carry = CarryOver(ns.legacy_dir, legacy["inits"])
    carry.install()
    with same_draws.matched_draws([jax.random], []) as drawn:
        try:
            runpy.run_path(script, run_name="__main__")
        finally:
            with open(ns.report, "w") as f:
                json.dump({"inits": carry.inits, "draws": drawn.as_dict()}, f)


if __name__ == "__main__":
    main()
