"""``linen-upgrade convert-checkpoint``: legacy ``flax.nn`` / ``flax.optim``
checkpoints -> Linen variables + optax state, as msgpack or an Orbax checkpoint.

A legacy checkpoint is the msgpack that ``flax.serialization.to_bytes`` (or
``flax.training.checkpoints.save_checkpoint``) wrote of a ``flax.optim.Optimizer``
(``{'target', 'state': {'step', 'param_states'}}``), of an ``nn.Model``
(``{'params'}``), of a params dict, or of a dict holding one of those plus an
``nn.Collection`` (flat ``'/Block_4/BatchNorm_1'`` keys). The conversion
(api_mapping.md sections 3.4 and 4):

* module keys are renumbered per class and ``Collection`` state is nested into
  ``batch_stats`` by :mod:`linen_upgrade.keys` (the rules ``verify`` uses);
* the per-parameter optimizer state, renamed the same way, becomes the optax
  state of the transform that the optax rule emits for that optimizer
  (``linen_upgrade.optim_state.optax_state_from_legacy``);
* with ``--model``, the result must have exactly the paths and shapes of
  ``jax.eval_shape(model.init, ...)`` of the upgraded Linen model.

The output is ``{'params', 'batch_stats'?, 'opt_state'?, 'step'}`` in
``flax.serialization`` state-dict form: restore it with
``flax.serialization.from_bytes(target, data)`` (msgpack) or
``restore(path, target)`` (either format), where ``target`` holds
``tx.init(params)`` as ``opt_state``.

Only the standard library and click are imported at module level (a rewrite
run must never import jax); jax, flax, optax and orbax are imported inside
the functions that need them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from linen_upgrade.files import atomic_write

EXIT_OK, EXIT_ERROR = 0, 2
FORMATS = ("msgpack", "orbax")

# Legacy per-parameter state fields of each flax.optim optimizer (api_mapping.md
# 3.4). Used to check --optimizer against the file and to suggest a name when it
# is missing; the mapping itself belongs to linen_upgrade.optim_state. None: not
# checked (the fields are those of the wrapped optimizers).
LEGACY_FIELDS: dict[str, frozenset[str] | None] = {
    "GradientDescent": frozenset(),
    "Momentum": frozenset({"momentum"}),
    "Adam": frozenset({"grad_ema", "grad_sq_ema"}),
    "Adagrad": frozenset({"G"}),
    "RMSProp": frozenset({"v", "mg"}),
    "LAMB": frozenset({"grad_ema", "grad_sq_ema"}),
    "LARS": frozenset({"momentum"}),
    "Adafactor": frozenset({"v_row", "v_col", "v", "m"}),
    "Adadelta": frozenset({"sq_avg", "acc_delta"}),
    "AdaBelief": frozenset({"grad_ema", "grad_sq_ema"}),
    "WeightNorm": frozenset({"direction_state", "scale_state", "mult"}),
    "MultiOptimizer": None,
}

# keys of an already converted (Linen / optax) checkpoint
_MODERN_KEYS = ("batch_stats", "opt_state")
_ORBAX_MARKERS = ("_CHECKPOINT_METADATA", "_METADATA", "commit_success.txt", "manifest.ocdbt")
_MAX_LISTED = 25
_KIND_TEXT = {"optimizer": "flax.optim Optimizer", "model": "nn.Model", "params": "params dict"}


class CheckpointError(Exception):
    """The checkpoint cannot be converted (bad input, mismatch, refused write): exit 2."""


class _Absent:
    """A parameter without this optimizer field (filled in to keep the key tree whole)."""

    def __repr__(self) -> str:
        return "<absent>"


class _Empty:
    """An empty dict inside a per-parameter state (e.g. WeightNorm ``scale_state`` of a vector)."""

    def __repr__(self) -> str:
        return "{}"


_ABSENT, _EMPTY = _Absent(), _Empty()


# --------------------------------------------------------------------------- reading


@dataclass
class LegacyCheckpoint:
    """What was found in a legacy checkpoint (the legacy key names, unconverted)."""

    source: str
    kind: str                                 # 'optimizer' | 'model' | 'params'
    params: dict
    where: str = ""                           # location in the file, e.g. "['optimizer']"
    state: dict | None = None                 # flat nn.Collection dict
    state_source: str = ""
    param_states: dict | None = None          # mirrors params, legacy field dict per leaf
    step: int | None = None
    ignored: list[str] = field(default_factory=list)
    description: str = ""                     # for the summary


def _is_array(x: Any) -> bool:
    import numpy as np
    return isinstance(x, (np.ndarray, np.generic))


def _is_params(tree: Any) -> bool:
    """A nested dict whose leaves are all arrays (empty dicts allowed), with at least one array."""
    if not isinstance(tree, Mapping) or not tree:
        return False
    found = False

    def walk(t: Mapping) -> bool:
        nonlocal found
        for k, v in t.items():
            if not isinstance(k, str) or k.startswith("/"):
                return False
            if isinstance(v, Mapping):
                if not walk(v):
                    return False
            elif _is_array(v):
                found = True
            else:
                return False
        return True
    return walk(tree) and found


def _is_collection(tree: Any) -> bool:
    return (isinstance(tree, Mapping) and bool(tree)
            and all(isinstance(k, str) and k.startswith("/") for k in tree))


def _is_optimizer(tree: Any) -> bool:
    return (isinstance(tree, Mapping) and "target" in tree and isinstance(tree.get("state"), Mapping)
            and "param_states" in tree["state"] and "step" in tree["state"])


def _is_model(tree: Any) -> bool:
    return isinstance(tree, Mapping) and set(tree) == {"params"} and _is_params(tree["params"])


def _scalar_int(x: Any) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if _is_array(x) and getattr(x, "shape", None) == () and getattr(x, "dtype", None) is not None \
            and x.dtype.kind in "iu":
        return int(x)
    return None


def _describe(x: Any) -> str:
    if isinstance(x, Mapping):
        return f"a dict with keys {sorted(map(str, x))[:8]}"
    if _is_array(x):
        return f"an array of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def _latest_in_dir(path: Path) -> Path:
    """``flax.training.checkpoints`` folder -> its newest ``checkpoint_<step>`` file."""
    if any((path / m).exists() for m in _ORBAX_MARKERS):
        raise CheckpointError(f"{path}: this is an Orbax checkpoint, not a legacy flax checkpoint")
    candidates = []
    for f in path.iterdir():
        m = re.fullmatch(r"(?P<prefix>.*?)(?P<step>-?\d+(?:\.\d+)?)", f.name)
        if f.is_file() and m and not f.name.endswith("tmp"):
            candidates.append((float(m.group("step")), f))
    if not candidates:
        raise CheckpointError(f"{path}: a folder without legacy checkpoint files (checkpoint_<step>)")
    return max(candidates, key=lambda c: c[0])[1]


def load_msgpack(path: str | os.PathLike) -> tuple[Any, Path]:
    """Read a flax msgpack file (or the newest ``checkpoint_<step>`` in a folder)."""
    p = Path(path)
    if p.is_dir():
        p = _latest_in_dir(p)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or e}") from None
    if not data:
        raise CheckpointError(f"{p}: empty file")
    from flax import serialization
    try:
        tree = serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises many types; all mean the same to the user
        raise CheckpointError(f"{p}: not a flax msgpack checkpoint, or truncated "
                              f"({type(e).__name__}: {str(e)[:200]})") from None
    return tree, p


def classify(tree: Any, source: str = "<checkpoint>") -> LegacyCheckpoint:
    """Recognise the legacy layout of a restored state dict."""
    if not isinstance(tree, Mapping) or not tree:
        raise CheckpointError(f"{source}: not a legacy flax checkpoint: the file holds {_describe(tree)}")
    if _is_optimizer(tree):
        return _from_optimizer(tree, source, "")
    if _is_model(tree):
        return LegacyCheckpoint(source, "model", _plain(tree["params"]))
    if _is_collection(tree):
        raise CheckpointError(f"{source}: this is an nn.Collection (state) file; give the params or "
                              "optimizer checkpoint as INPUT and this file with --state")
    opts, models, states, other = [], [], [], []
    step: int | None = None
    for k, v in tree.items():
        if _is_optimizer(v):
            opts.append(k)
        elif _is_collection(v):
            states.append(k)
        elif _is_model(v) or (k in ("params", "target") and _is_params(v)):
            models.append(k)
        elif k == "step" and _scalar_int(v) is not None:
            step = _scalar_int(v)
        else:
            other.append(k)
    modern = [k for k in _MODERN_KEYS if k in tree and not _is_collection(tree[k])]
    if modern:
        raise CheckpointError(f"{source}: looks like a Linen/optax checkpoint already (has {modern}); "
                              "nothing to convert")
    if len(opts) > 1 or len(states) > 1 or (not opts and len(models) > 1):
        raise CheckpointError(f"{source}: ambiguous: several optimizers/models/states at keys "
                              f"{sorted(opts + models + states)}")
    if opts:
        ckpt = _from_optimizer(tree[opts[0]], source, f"[{opts[0]!r}]")
        ckpt.ignored = sorted(str(k) for k in models + other)
    elif models:
        v = tree[models[0]]
        params = v["params"] if _is_model(v) else v
        ckpt = LegacyCheckpoint(source, "model" if _is_model(v) else "params", _plain(params),
                                where=f"[{models[0]!r}]", step=step, ignored=sorted(map(str, other)))
    elif _is_params(tree):
        return LegacyCheckpoint(source, "params", _plain(tree))
    else:
        raise CheckpointError(f"{source}: not a legacy flax checkpoint: no Optimizer "
                              "({'target', 'state': {'step', 'param_states'}}), nn.Model ({'params'}) "
                              f"or params tree of arrays among the keys {sorted(map(str, tree))[:12]}")
    if states:
        ckpt.state = _plain(tree[states[0]])
        ckpt.state_source = f"{source}[{states[0]!r}]"
    if ckpt.step is None:
        ckpt.step = step
    return ckpt


def _plain(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def _from_optimizer(opt: Mapping, source: str, where: str) -> LegacyCheckpoint:
    target, state = opt["target"], opt["state"]
    param_states = state["param_states"]
    if _is_model(target):
        kind = "flax.optim Optimizer over an nn.Model"
        params = target["params"]
        if not (isinstance(param_states, Mapping) and set(param_states) == {"params"}):
            raise CheckpointError(f"{source}{where}: optimizer state does not mirror its nn.Model target")
        param_states = param_states["params"]
    elif _is_params(target):
        kind = "flax.optim Optimizer over a params dict"
        params = target
    else:
        raise CheckpointError(f"{source}{where}: the optimizer's target is {_describe(target)}, "
                              "not an nn.Model or a params tree of arrays")
    step = _scalar_int(state["step"])
    if step is None:
        hint = ""
        if _is_array(state["step"]) and getattr(state["step"], "ndim", 0) == 1:
            hint = " (saved from a replicated optimizer? use --unreplicate)"
        raise CheckpointError(f"{source}{where}: optimizer state.step is {_describe(state['step'])}, "
                              "not an integer" + hint)
    ckpt = LegacyCheckpoint(source, "optimizer", _plain(params), where=where, step=step,
                            param_states=_plain(param_states), description=kind)
    _per_leaf_states(ckpt.params, ckpt.param_states, f"{source}{where}")  # validates the mirror
    return ckpt


def load_state(path: str | os.PathLike, *, replicated: bool = False) -> tuple[dict, str]:
    """A separately saved ``nn.Collection`` (``to_bytes(collection)``), or a dict holding one."""
    tree, p = load_msgpack(path)
    if replicated:
        tree = unreplicate(tree, str(p))
    if _is_collection(tree):
        return _plain(tree), str(p)
    if isinstance(tree, Mapping):
        found = [k for k, v in tree.items() if _is_collection(v)]
        if len(found) == 1:
            return _plain(tree[found[0]]), f"{p}[{found[0]!r}]"
    raise CheckpointError(f"{p}: --state: not an nn.Collection state (a dict with '/module/path' keys); "
                          f"the file holds {_describe(tree)}")


def unreplicate(tree: Any, source: str = "<checkpoint>") -> Any:
    """The first copy of every array of a checkpoint saved from ``jax_utils.replicate``
    (a leading device axis on every array, the step included)."""
    sizes: set[int] = set()

    def walk(t: Any, path: str) -> Any:
        if isinstance(t, Mapping):
            return {k: walk(v, f"{path}/{k}") for k, v in t.items()}
        if _is_array(t):
            if getattr(t, "ndim", 0) == 0:
                raise CheckpointError(f"{source}: --unreplicate: {path or '/'} is a scalar, "
                                      "not replicated over devices")
            sizes.add(t.shape[0])
            return t[0]
        return t
    out = walk(tree, "")
    if len(sizes) > 1:
        raise CheckpointError(f"{source}: --unreplicate: the arrays' leading axes differ "
                              f"({sorted(sizes)}); not a replicated checkpoint")
    return out


def read_legacy(path: str | os.PathLike, state_path: str | os.PathLike | None = None, *,
                replicated: bool = False) -> LegacyCheckpoint:
    tree, p = load_msgpack(path)
    if replicated:
        tree = unreplicate(tree, str(p))
    ckpt = classify(tree, str(p))
    if state_path is not None:
        if ckpt.state is not None:
            raise CheckpointError(f"--state given, but {ckpt.state_source} already holds the "
                                  "nn.Collection state; drop --state")
        ckpt.state, ckpt.state_source = load_state(state_path, replicated=replicated)
    return ckpt


# --------------------------------------------------------------------------- optimizer state


def _get(tree: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(tree, Mapping) or part not in tree:
            return _ABSENT
        tree = tree[part]
    return tree


def _per_leaf_states(params: Mapping, param_states: Any, where: str) -> dict[tuple[str, ...], Any]:
    from linen_upgrade import keys
    out = {}
    bad = []
    for path in keys.tree_paths(params):
        s = _get(param_states, path)
        if s is _ABSENT:
            bad.append("/".join(path))
        out[path] = s
    if bad:
        raise CheckpointError(f"{where}: optimizer state does not mirror its target; no state for "
                              + _listing(bad))
    return out


def _flatten_fields(leaf_state: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(leaf_state, Mapping):
        if not leaf_state and prefix:
            return {prefix: _EMPTY}
        out: dict[tuple[str, ...], Any] = {}
        for k, v in leaf_state.items():
            out.update(_flatten_fields(v, prefix + (k,)))
        return out
    return {prefix: leaf_state}


def legacy_fields(ckpt: LegacyCheckpoint) -> set[str]:
    """Top-level per-parameter state field names (``{'momentum'}``; ``set()`` for GradientDescent)."""
    names: set[str] = set()
    for s in _per_leaf_states(ckpt.params, ckpt.param_states, ckpt.source).values():
        if isinstance(s, Mapping):
            names |= set(s)
    return names


def candidates_for(fields: set[str]) -> list[str]:
    return [n for n, f in LEGACY_FIELDS.items() if f is not None and f == fields]


def parse_optimizer_spec(text: str) -> tuple[str, dict]:
    """``'Momentum:{"beta": 0.9}'`` -> ``('Momentum', {'beta': 0.9})``; names are matched
    case-insensitively, ``optim.`` / ``flax.optim.`` prefixes dropped."""
    name, sep, hyper_txt = text.partition(":")
    name = name.strip()
    for prefix in ("flax.optim.", "optim."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    canonical = {n.lower(): n for n in LEGACY_FIELDS}
    name = canonical.get(name.lower(), name)
    if not name.isidentifier():
        raise CheckpointError(f"--optimizer {text!r}: expected NAME[:JSON], e.g. "
                              "'Momentum:{\"learning_rate\": 0.1, \"beta\": 0.9}'")
    hyper: Any = {}
    if sep:
        try:
            hyper = json.loads(hyper_txt)
        except ValueError as e:
            raise CheckpointError(f"--optimizer {text!r}: hyperparameters are not JSON: {e}") from None
        if not isinstance(hyper, dict):
            raise CheckpointError(f"--optimizer {text!r}: hyperparameters must be a JSON object")
    return name, hyper


def convert_param_states(ckpt: LegacyCheckpoint, convert_tree: Any) -> dict:
    """The legacy per-parameter state in the Linen key tree: a tree shaped like the
    converted params with the legacy field dict at each leaf. ``convert_tree`` maps a
    legacy params-shaped tree to its converted params tree."""
    from linen_upgrade import keys
    per_leaf = _per_leaf_states(ckpt.params, ckpt.param_states, ckpt.source)
    flat = {path: _flatten_fields(s) for path, s in per_leaf.items()}
    field_paths = sorted({f for d in flat.values() for f in d})
    converted: dict[tuple[str, ...], dict] = {}
    for f in field_paths:
        tree: dict = {}
        for path in keys.tree_paths(ckpt.params):
            dst = tree
            for part in path[:-1]:
                dst = dst.setdefault(part, {})
            dst[path[-1]] = flat[path].get(f, _ABSENT)
        # empty param dicts of param-less modules must stay for the renaming
        _add_empty_dicts(ckpt.params, tree)
        for new_path, v in keys.tree_paths(convert_tree(tree)).items():
            converted.setdefault(new_path, {})[f] = v
    out: dict = {}
    for new_path in keys.tree_paths(convert_tree(ckpt.params)):
        fields = {f: v for f, v in converted.get(new_path, {}).items() if v is not _ABSENT}
        if () in fields:
            leaf: Any = fields[()]
        else:
            leaf = {}
            for f, v in fields.items():
                dst = leaf
                for part in f[:-1]:
                    dst = dst.setdefault(part, {})
                dst[f[-1]] = {} if v is _EMPTY else v
        dst = out
        for part in new_path[:-1]:
            dst = dst.setdefault(part, {})
        dst[new_path[-1]] = leaf
    return out


def _add_empty_dicts(src: Mapping, dst: dict) -> dict:
    """Copy the dict skeleton of ``src`` into ``dst``."""
    for k, v in src.items():
        if isinstance(v, Mapping):
            _add_empty_dicts(v, dst.setdefault(k, {}))
    return dst


def _optax_state(name: str, hyper: dict, legacy_state: dict, params: dict) -> Any:
    """The optax state of the transform LU301 emits for this optimizer."""
    from linen_upgrade.optim_state import optax_state_from_legacy

    try:
        return optax_state_from_legacy(name, hyper, legacy_state, params)
    except CheckpointError:
        raise
    except Exception as e:  # unknown optimizer, bad hyperparameters: the user's input
        raise CheckpointError(f"--optimizer {name}: cannot map its state to optax: "
                              f"{type(e).__name__}: {str(e)[:500]}") from None


# --------------------------------------------------------------------------- the upgraded model


def parse_input_spec(text: str) -> tuple[tuple[int, ...], str]:
    from linen_upgrade.verify.module import InputSpecError
    from linen_upgrade.verify.module import parse_input_spec as parse
    try:
        return parse(text)
    except InputSpecError as e:
        raise CheckpointError(f"--input: {e}") from None


def model_template(model_spec: str, inputs: list[tuple[tuple[int, ...], str]], kwargs: dict,
                   seed: int = 0) -> tuple[dict, str]:
    """``jax.eval_shape`` of the upgraded Linen model's ``init``: its variables'
    structure and shapes. ``model_spec`` is ``FILE:CLASS``; ``kwargs`` that are
    dataclass fields go to the constructor, the rest to ``__call__``."""
    import dataclasses
    import importlib.util

    file, sep, cls_name = model_spec.rpartition(":")
    if not sep or not file or not cls_name.isidentifier():
        raise CheckpointError(f"--model {model_spec!r}: expected FILE:CLASS, e.g. model.py:CNN")
    path = Path(file)
    if not path.is_file():
        raise CheckpointError(f"--model: {file}: no such file")
    import jax
    import jax.numpy as jnp
    import flax.linen as lnn
    mod_name = f"_linen_upgrade_model_{abs(hash(str(path.resolve())))}"
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    except Exception as e:
        raise CheckpointError(f"--model: cannot import {file}: {type(e).__name__}: {e}") from None
    finally:
        sys.path.remove(str(path.resolve().parent))
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, lnn.Module)):
        raise CheckpointError(f"--model: {file} has no flax.linen Module named {cls_name}")
    if not inputs:
        raise CheckpointError("--model needs the input shapes: --input SHAPE[:DTYPE] (once per input)")
    fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
    ctor = {k: v for k, v in kwargs.items() if k in fields}
    call = {k: v for k, v in kwargs.items() if k not in fields}
    specs = [jax.ShapeDtypeStruct(shape, jnp.dtype(dtype)) for shape, dtype in inputs]
    rngs = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    try:
        model = cls(**ctor)
        variables = jax.eval_shape(lambda *xs: model.init(rngs, *xs, **call), *specs)
    except Exception as e:
        raise CheckpointError(f"--model: {cls_name}.init failed on inputs "
                              f"{[list(s) + [d] for s, d in inputs]} with {kwargs}: "
                              f"{type(e).__name__}: {str(e)[:500]}") from None
    return _plain(variables), f"{cls_name} in {file}"


# --------------------------------------------------------------------------- conversion


@dataclass
class Conversion:
    tree: dict                                   # {'params', collection?, 'opt_state'?, 'step'}
    renames: list[tuple[str, str]]
    notes: list[str]
    state_prefix: tuple[str, ...] = ()


def _replicated_shape(problem: str) -> bool:
    m = re.fullmatch(r"shape (\(.*\)) \(legacy\) != (\(.*\)) \(upgraded\)", problem)
    if not m:
        return False
    import ast
    have, want = ast.literal_eval(m.group(1)), ast.literal_eval(m.group(2))
    return len(have) == len(want) + 1 and tuple(have[1:]) == tuple(want)


def _auto_state_prefix(params: Mapping, state: Mapping) -> tuple[str, ...]:
    """``Module.init(rng, x, name='net')`` prefixes the state keys (``'/net/BatchNorm_1'``)
    but not the params: strip a common first component that the params do not have."""
    from linen_upgrade import keys
    paths = [keys.state_key_to_path(k) for k in state]
    firsts = {p[0] for p in paths if p}
    if len(firsts) != 1 or any(not p for p in paths):
        return ()
    (first,) = firsts
    if first in params:
        return ()
    if all(len(p) > 1 and (p[1] in params) for p in paths):
        return (first,)
    return ()


def _optimizer_state_text(ckpt: LegacyCheckpoint) -> str:
    fields = ", ".join(sorted(legacy_fields(ckpt))) or "none"
    step = f", step {ckpt.step}" if ckpt.step is not None else ""
    return f"flax.optim optimizer state (per-parameter fields: {fields}{step})"


def convert(ckpt: LegacyCheckpoint, *, optimizer: tuple[str, dict] | None = None,
            collection: str = "batch_stats", shared: Mapping[str, str] | None = None,
            explicit: tuple[str, ...] = (), template: Mapping | None = None,
            state_prefix: tuple[str, ...] | None = None,
            drop_optimizer_state: bool = False) -> Conversion:
    """Legacy checkpoint -> ``{'params', collection?, 'opt_state'?, 'step'}`` (optax
    NamedTuples in ``opt_state``). Raises :class:`CheckpointError` when the result does
    not match ``template`` (the upgraded model's variables), and when the checkpoint
    holds optimizer state but neither ``optimizer`` nor ``drop_optimizer_state`` says
    what becomes of it."""
    from linen_upgrade import keys
    if optimizer is not None and drop_optimizer_state:
        raise CheckpointError("--optimizer and --drop-optimizer-state exclude each other")
    if ckpt.param_states is not None and optimizer is None and not drop_optimizer_state:
        # dropping it unasked would silently lose a training run's state
        cands = candidates_for(legacy_fields(ckpt))
        raise CheckpointError(
            f"{ckpt.source}{ckpt.where} holds {_optimizer_state_text(ckpt)}: pass --optimizer NAME[:JSON]"
            + (f" (one of {', '.join(cands)})" if cands else "")
            + " to convert it, or --drop-optimizer-state to leave it out")
    notes: list[str] = []
    state = ckpt.state or None
    if state is not None and state_prefix is None:
        state_prefix = _auto_state_prefix(ckpt.params, state)
        if state_prefix:
            notes.append(f"state keys carry the prefix /{'/'.join(state_prefix)} (Module.init(..., "
                         f"name={state_prefix[0]!r})); stripped")
    state_prefix = tuple(state_prefix or ())
    opts = dict(shared=dict(shared or {}), explicit=tuple(explicit), collection=collection,
                template=template, strip_state_prefix=state_prefix)
    try:
        km = keys.build_key_map(ckpt.params, state, shared=opts["shared"], explicit=opts["explicit"],
                                template=template, strip_state_prefix=state_prefix)
        variables = keys.convert_variables(ckpt.params, state, **opts)  # type: ignore[arg-type]
    except keys.KeyConversionError as e:
        raise CheckpointError(f"cannot rename the legacy keys: {e}") from None
    renames = [("/".join(o), "/".join(n)) for o, n in km.mapping().items() if o != n]
    if template is None:
        aliased = sorted({"/".join(n) for n in km.mapping().values()
                          if (keys.split_auto_name(n[-1]) or ("",))[0] in keys.KNOWN_ALIASES})
        if aliased:
            alts = sorted({a for n in aliased for a in keys.KNOWN_ALIASES[keys.split_auto_name(
                n.rsplit("/", 1)[-1])[0]]})
            notes.append(f"{_listing(aliased)} keep their legacy class name; if the upgraded code "
                         f"uses {' / '.join(alts)} instead, pass --model so they are renamed to match")
    if template is not None:
        wanted = [c for c in ("params", collection) if c in template or c in variables]
        problems = keys.compare_structure({c: variables.get(c, {}) for c in wanted},
                                          {c: template.get(c, {}) for c in wanted})
        if problems:
            old_of = {n: o for o, n in km.mapping().items()}

            def legacy_name(path: str) -> str:
                parts = tuple(path.split("/"))
                old = old_of.get(parts[1:-1])
                if old is None or old == parts[1:-1]:
                    return ""
                return f" [legacy {'/'.join(old + parts[-1:])}]"
            lines = [f"  {p}: {why}" + (legacy_name(p) if "missing" not in why else "")
                     for p, why in problems[:_MAX_LISTED]]
            if len(problems) > _MAX_LISTED:
                lines.append(f"  ... and {len(problems) - _MAX_LISTED} more")
            hint = ""
            if collection in template and collection not in variables:
                hint = f"\n(the model has {collection!r} but the checkpoint has no nn.Collection state: --state FILE)"
            extra = sorted(set(template) - {"params", collection})
            if collection in variables and collection not in template and len(extra) == 1:
                hint += f"\n(the model keeps its statistics in {extra[0]!r}: --collection {extra[0]})"
            if all(_replicated_shape(why) for _, why in problems):
                hint += "\n(every legacy shape has an extra leading axis: saved replicated? use --unreplicate)"
            raise CheckpointError("the converted checkpoint does not match the upgraded model "
                                  f"({len(problems)} differences):\n" + "\n".join(lines) + hint)
        others = sorted(set(template) - set(wanted))
        if others:
            notes.append(f"the model also has the collections {others}; not in a legacy checkpoint, "
                         "left out")
    tree: dict = {"params": variables["params"]}
    if collection in variables:
        tree[collection] = variables[collection]
    if ckpt.param_states is not None:
        fields = legacy_fields(ckpt)
        if optimizer is None:
            notes.append(f"{_optimizer_state_text(ckpt)} left out (--drop-optimizer-state)")
        else:
            name, hyper = optimizer
            expected = LEGACY_FIELDS.get(name)
            if expected is not None and fields != expected:
                cands = candidates_for(fields)
                raise CheckpointError(
                    f"--optimizer {name}: its state has the fields {sorted(expected) or 'none'}, but the "
                    f"checkpoint's has {sorted(fields) or 'none'}"
                    + (f" (written by {' or '.join(cands)})" if cands else ""))

            def convert_tree(t: dict) -> dict:
                return keys.convert_variables(
                    t, state, shared=opts["shared"], explicit=opts["explicit"],
                    template={"params": template["params"]} if template is not None else None,
                    strip_state_prefix=state_prefix)["params"]
            legacy_state = {"step": int(ckpt.step or 0),
                            "param_states": convert_param_states(ckpt, convert_tree)}
            tree["opt_state"] = _optax_state(name, hyper, legacy_state, tree["params"])
    elif optimizer is not None:
        raise CheckpointError(f"--optimizer {optimizer[0]} given, but {ckpt.source} holds no optimizer "
                              f"state (it is a {ckpt.kind})")
    if ckpt.step is None:
        notes.append("no step in the checkpoint; step = 0")
    tree["step"] = int(ckpt.step or 0)
    return Conversion(tree, renames, notes, state_prefix)


# --------------------------------------------------------------------------- writing / restoring


def to_state_dict(tree: Mapping) -> dict:
    """flax state-dict form with numpy leaves (what both output formats hold)."""
    import numpy as np
    from flax import serialization

    def np_leaves(t: Any) -> Any:
        if isinstance(t, Mapping):
            return {k: np_leaves(v) for k, v in t.items()}
        if t is None or isinstance(t, (int, float, str, bytes)):
            return t
        return np.asarray(t)
    return np_leaves(serialization.to_state_dict(dict(tree)))


def default_format(output: str) -> str:
    return "orbax" if output.endswith(("/", os.sep)) or Path(output).is_dir() else "msgpack"


def _is_orbax_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in _ORBAX_MARKERS)


def check_output(output: Path, force: bool) -> None:
    """Refuse before any work: an existing output without --force, or a folder that
    is not an Orbax checkpoint (never deleted, even with --force)."""
    if output.is_dir():
        if not any(output.iterdir()):
            return  # an empty folder made for the output
        if not force:
            raise CheckpointError(f"{output} exists; use --force to replace it")
        if not _is_orbax_dir(output):
            raise CheckpointError(f"{output} is a folder that is not an Orbax checkpoint; "
                                  "not replacing it, even with --force")
    elif output.exists() or output.is_symlink():
        if not force:
            raise CheckpointError(f"{output} exists; use --force to replace it")


def write_checkpoint(tree: Mapping, output: str | os.PathLike, fmt: str, *, force: bool = False) -> Path:
    """Write atomically (a temporary sibling, then rename); replace only with ``force``."""
    out = Path(output)
    check_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    sd = to_state_dict(tree)
    if fmt == "msgpack":
        from flax import serialization
        data = serialization.msgpack_serialize(sd)
        if out.is_dir():
            _swap_dir_for(out, lambda tmp: tmp.write_bytes(data))
        else:
            atomic_write(out, data)
    elif fmt == "orbax":
        _swap_dir_for(out, lambda tmp: _orbax_save(tmp, sd))
    else:
        raise CheckpointError(f"unknown format {fmt!r} (one of {FORMATS})")
    return out


def _orbax_save(path: Path, sd: dict) -> None:
    import orbax.checkpoint as ocp
    ckptr = ocp.StandardCheckpointer()
    try:
        ckptr.save(path.absolute(), sd)
        ckptr.wait_until_finished()
    finally:
        ckptr.close()


def _swap_dir_for(out: Path, make: Any) -> None:
    """Build the new output inside a hidden temporary folder next to ``out``, then
    rename it into place (moving an old ``out`` aside first, deleting it last)."""
    tmpdir = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".lu-tmp"))
    try:
        new = tmpdir / "new"
        make(new)
        if out.exists() or out.is_symlink():
            old = tmpdir / "old"
            os.replace(out, old)
            try:
                os.replace(new, out)
            except BaseException:
                os.replace(old, out)
                raise
        else:
            os.replace(new, out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def restore(path: str | os.PathLike, target: Any = None) -> Any:
    """Read a converted checkpoint (msgpack file or Orbax folder) as a state dict, or,
    given ``target`` (e.g. ``{'params': ..., 'batch_stats': ..., 'opt_state':
    tx.init(params), 'step': 0}``), as that structure."""
    import numpy as np
    from flax import serialization
    p = Path(path)
    if p.is_dir():
        import orbax.checkpoint as ocp
        import warnings
        ckptr = ocp.StandardCheckpointer()
        try:
            with warnings.catch_warnings():
                # "Sharding info not provided when restoring": single host, numpy leaves
                warnings.simplefilter("ignore", UserWarning)
                sd = ckptr.restore(p.absolute())
        finally:
            ckptr.close()

        def np_leaves(t: Any) -> Any:
            if isinstance(t, Mapping):
                return {k: np_leaves(v) for k, v in t.items()}
            return t if isinstance(t, (int, float)) or t is None else np.asarray(t)
        sd = np_leaves(sd)
    else:
        sd = serialization.msgpack_restore(p.read_bytes())
    if target is None:
        return sd
    return serialization.from_state_dict(target, sd)


# --------------------------------------------------------------------------- command line


def _listing(items: list[str]) -> str:
    head = ", ".join(items[:_MAX_LISTED])
    return head + (f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def _count_leaves(tree: Any) -> int:
    if isinstance(tree, Mapping):
        return sum(_count_leaves(v) for v in tree.values())
    if isinstance(tree, tuple):
        return sum(_count_leaves(v) for v in tree)
    return 0 if tree is None else 1


def _structure(state: Any) -> str:
    """``(TraceState, EmptyState)`` for an optax state."""
    if isinstance(state, tuple) and not hasattr(state, "_fields"):
        return "(" + ", ".join(_structure(s) for s in state) + ")"
    return type(state).__name__


def _json_object(text: str, option: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{option}: not JSON: {e}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{option}: must be a JSON object")
    return value


@click.command("convert-checkpoint")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.argument("output", required=False, metavar="[OUTPUT]")
@click.option("--state", "state_file", type=click.Path(exists=True), default=None,
              help="A separately saved nn.Collection (to_bytes(collection) / .as_dict()) "
                   "holding the BatchNorm statistics.")
@click.option("--collection", default=None,
              help="Linen collection that receives the legacy nn.Collection state (default: "
                   "state-collection of [tool.linen-upgrade] in the nearest pyproject.toml, else "
                   "batch_stats).")
@click.option("--state-prefix", default=None, metavar="PATH",
              help="Drop this leading module path from the state keys (legacy "
                   "Module.init(..., name='net') wrote '/net/...'); detected when omitted.")
@click.option("--optimizer", "optimizer_spec", default=None, metavar="NAME[:JSON]",
              help="The legacy flax.optim optimizer and its hyperparameters, e.g. "
                   "'Momentum:{\"learning_rate\": 0.1, \"beta\": 0.9}'; its state becomes the optax "
                   "state of the transform the optax rule emits for it.")
@click.option("--drop-optimizer-state", is_flag=True,
              help="Leave the checkpoint's optimizer state out (without it, a checkpoint holding "
                   "optimizer state needs --optimizer).")
@click.option("--model", "model_spec", default=None, metavar="FILE:CLASS",
              help="The upgraded Linen model: every converted path and shape must match "
                   "jax.eval_shape of its init, else nothing is written.")
@click.option("--input", "inputs", multiple=True, metavar="SHAPE[:DTYPE]",
              help="Input of the model's init, e.g. 2,8,8,3:float32 (repeat per positional input).")
@click.option("--kwargs", "kwargs_json", default="{}", metavar="JSON",
              help="Model keyword arguments: dataclass fields go to the constructor, the rest to __call__.")
@click.option("--shared", "shared_json", default="{}", metavar="JSON",
              help="Classes of unnamed .shared() modules stored under bare numbers, e.g. '{\"7\": \"Dense\"}'.")
@click.option("--explicit", multiple=True, metavar="NAME",
              help="A module name that looks auto-generated (Dense_3) but was given explicitly; "
                   "kept as is.")
@click.option("--unreplicate", is_flag=True,
              help="The checkpoint was saved from a jax_utils.replicate'd optimizer/state: keep the "
                   "first copy of every array.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format (default: orbax when OUTPUT ends with / or is a folder, else msgpack).")
@click.option("--force", is_flag=True, help="Replace an existing OUTPUT.")
@click.option("--dry-run", is_flag=True, help="Convert and check, write nothing.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
def convert_checkpoint_command(input_path: str, output: str | None, state_file: str | None, collection: str | None,
                               state_prefix: str | None, optimizer_spec: str | None,
                               drop_optimizer_state: bool, model_spec: str | None, inputs: tuple[str, ...],
                               kwargs_json: str, shared_json: str, explicit: tuple[str, ...], unreplicate: bool, fmt: str | None, force: bool,
                               dry_run: bool, quiet: bool) -> None:
    """Convert a legacy flax.nn / flax.optim checkpoint at INPUT into a Linen + optax
    checkpoint at OUTPUT: {'params', 'batch_stats', 'opt_state', 'step'}.

    \b
    INPUT: msgpack written by flax.serialization.to_bytes / save_checkpoint of an
    Optimizer, an nn.Model, a params dict, or a dict holding one of those and an
    nn.Collection; or a save_checkpoint folder (its newest checkpoint_<step>).

    Exit 0 on success, 2 on any error (nothing is written then).
    """
    try:
        summary = _run(input_path, output, state_file, collection, state_prefix, optimizer_spec,
                       drop_optimizer_state, model_spec, inputs, kwargs_json, shared_json, explicit,
                       unreplicate, fmt, force, dry_run)
    except CheckpointError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_ERROR)
    if not quiet:
        click.echo("\n".join(summary))
    sys.exit(EXIT_OK)


def _run(input_path: str, output: str | None, state_file: str | None, collection: str | None,
         state_prefix: str | None, optimizer_spec: str | None, drop_optimizer_state: bool,
         model_spec: str | None, inputs: tuple[str, ...], kwargs_json: str, shared_json: str, explicit: tuple[str, ...],
         replicated: bool, fmt: str | None, force: bool, dry_run: bool) -> list[str]:
    if output is None and not dry_run:
        raise CheckpointError("missing OUTPUT (or --dry-run)")
    if inputs and not model_spec:
        raise CheckpointError("--input is for --model")
    if collection is None:
        from linen_upgrade import config as config_mod
        try:
            collection = config_mod.load(Path.cwd()).state_collection
        except config_mod.ConfigError as e:
            raise CheckpointError(str(e)) from None
    if not collection.isidentifier():
        raise CheckpointError(f"--collection {collection!r}: not a collection name")
    kwargs = _json_object(kwargs_json, "--kwargs")
    shared = _json_object(shared_json, "--shared")
    optimizer = parse_optimizer_spec(optimizer_spec) if optimizer_spec else None
    specs = [parse_input_spec(s) for s in inputs]
    if output is not None:
        fmt = fmt or default_format(output)
        if not dry_run:
            check_output(Path(output), force)

    ckpt = read_legacy(input_path, state_file, replicated=replicated)
    lines = [f"read    {ckpt.source}{ckpt.where}: {ckpt.description or _KIND_TEXT[ckpt.kind]}, "
             f"{_count_leaves(ckpt.params)} parameter arrays"
             + (f", step {ckpt.step}" if ckpt.step is not None else "")]
    if ckpt.param_states is not None:
        fields = sorted(legacy_fields(ckpt))
        lines.append(f"        per-parameter optimizer state: {', '.join(fields) or 'none (GradientDescent)'}")
    if ckpt.state is not None:
        lines.append(f"state   {ckpt.state_source}: nn.Collection, {len(ckpt.state)} entries "
                     f"({_listing(sorted(ckpt.state))}) -> {collection}")
    if ckpt.ignored:
        lines.append(f"ignored keys {ckpt.ignored}")

    template = None
    model_name = ""
    if model_spec:
        template, model_name = model_template(model_spec, specs, kwargs)
    conv = convert(ckpt, optimizer=optimizer, collection=collection, shared=shared, explicit=explicit,
                   template=template, drop_optimizer_state=drop_optimizer_state,
                   state_prefix=tuple(p for p in state_prefix.split("/") if p) if state_prefix is not None
                   else None)
    if conv.renames:
        lines.append(f"renamed {len(conv.renames)} modules:")
        lines += [f"  {old} -> {new}" for old, new in conv.renames]
    else:
        lines.append("renamed nothing (the legacy names are the Linen names)")
    if "opt_state" in conv.tree and optimizer is not None:
        hyper = json.dumps(optimizer[1], sort_keys=True) if optimizer[1] else ""
        lines.append(f"optimizer {optimizer[0]}{hyper} -> opt_state {_structure(conv.tree['opt_state'])}, "
                     f"{_count_leaves(to_state_dict({'o': conv.tree['opt_state']}))} arrays")
    if template is not None:
        lines.append(f"checked against {model_name}: every path and shape matches")
    lines += [f"note    {n}" for n in conv.notes]
    parts = ", ".join(f"{k} ({_count_leaves(to_state_dict({k: v}))} arrays)" if k != "step" else f"step {v}"
                      for k, v in conv.tree.items())
    if dry_run:
        lines.append(f"dry run: would write {parts}" + (f" to {output} ({fmt})" if output else ""))
    else:
        assert output is not None and fmt is not None
        out = write_checkpoint(conv.tree, output, fmt, force=force)
        lines.append(f"wrote   {out} ({fmt}): {parts}")
    return lines
