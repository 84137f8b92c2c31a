"""Legacy ``flax.optim`` optimizer state -> the optax state of the transform
LU301 emits for that optimizer (``shared/reference/api_mapping.md`` §3.4, §4.3).

The legacy state keeps one small dict of fields per parameter
(``param_states``, shaped like the params); optax keeps one params-shaped tree
per field inside the transform's state.  We build the very transform the table
emits (:func:`build_transform` evaluates ``optax_expression``), take its
``init(params)`` as the template, and fill every state field the row's
``state`` mapping names from the legacy fields; ``count`` fields get the step.

jax and optax are imported inside the functions: the CLI imports this module
cheaply.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from linen_upgrade.tables.optimizers import (MULTI, OPTIMIZERS, ConversionError, group_labels,
                                             optax_expression, row_for)

WEIGHT_NORM = "flax.optim.WeightNorm"


def _spec(value: Any) -> tuple[str, dict]:
    """A nested optimizer given as ``'Momentum'``, ``('Momentum', {...})`` or
    ``{'name': 'Momentum', **hyper}``."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, Mapping) and "name" in value:
        return value["name"], {k: v for k, v in value.items() if k != "name"}
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str):
        return value[0], dict(value[1] or {})
    raise ConversionError(f"expected an optimizer as NAME or (NAME, HYPER), got {value!r}")


def _pairs(hyper: Mapping[str, Any]) -> list[tuple[Any, tuple[str, dict]]]:
    """MultiOptimizer: ``{'traversals_and_optimizers': [(traversal, optimizer), ...]}``;
    a traversal is a ``ModelParamTraversal`` or a ``filter(path, value)``."""
    pairs = hyper.get("traversals_and_optimizers")
    if not pairs or set(hyper) != {"traversals_and_optimizers"}:
        raise ConversionError("MultiOptimizer needs {'traversals_and_optimizers': [(traversal, optimizer), ...]}")
    return [(t, _spec(o)) for t, o in pairs]


def _source(name: str, hyper: Mapping[str, Any], namespace: dict) -> tuple[str, list[str]]:
    """Optax source for ``name(**hyper)``; values that are not literals go into
    ``namespace`` under fresh names."""
    qual, _ = row_for(name)

    def value(v: Any) -> str:
        if v is None or isinstance(v, (bool, int, float, str)):
            return repr(v)
        key = f"_hyper_{len(namespace)}"
        namespace[key] = v
        return key

    if qual == MULTI:
        kwargs: dict[str, str] = {}
        helpers: list[str] = []
        for i, (traversal, (sub, sub_hyper)) in enumerate(_pairs(hyper)):
            key = f"group{i}_"
            namespace[key] = traversal
            src, hs = _source(sub, sub_hyper, namespace)
            kwargs[f"traversal_{i}"], kwargs[f"optimizer_{i}"] = key, src
            helpers += hs
        expr, hs = optax_expression(qual, kwargs)
        return expr, helpers + hs
    kwargs = {}
    helpers = []
    for k, v in hyper.items():
        if qual == WEIGHT_NORM and k == "wrapped_optimizer":
            kwargs[k], helpers = _source(*_spec(v), namespace)
        else:
            kwargs[k] = value(v)
    expr, hs = optax_expression(qual, kwargs)
    return expr, helpers + hs


def build_transform(optimizer_name: str, hyper: Mapping[str, Any]):
    """The optax transform LU301 emits for ``flax.optim.<optimizer_name>(**hyper)``,
    built from the same table row (helpers included)."""
    import typing

    import jax
    import jax.numpy as jnp
    import optax

    namespace: dict[str, Any] = {"optax": optax, "jax": jax, "jnp": jnp, "typing": typing}
    expr, helpers = _source(optimizer_name, dict(hyper), namespace)
    for src in dict.fromkeys(helpers):
        exec(compile(src, "<linen_upgrade.optax_legacy>", "exec"), namespace)
    return eval(compile(expr, "<optax expression>", "eval"), namespace)


def _lookup(tree: Any, path: tuple) -> Any:
    for entry in path:
        key = getattr(entry, "key", getattr(entry, "idx", getattr(entry, "name", entry)))
        if isinstance(tree, Mapping):
            tree = tree[key] if key in tree else tree[str(key)]
        else:
            tree = tree[key]
    return tree


def _path_text(path: tuple) -> str:
    return "/".join(str(getattr(e, "key", getattr(e, "idx", getattr(e, "name", e)))) for e in path)


def _from_field(template_tree: Any, legacy: Any, field: str) -> Any:
    """``template_tree`` (params-shaped) with each leaf taken from ``legacy``'s
    per-parameter field dict at the same path."""
    import jax
    import jax.numpy as jnp

    negate = field.startswith("-")
    name = field.lstrip("-")

    def take(path, leaf):
        try:
            fields = _lookup(legacy, path)
            value = fields[name]
        except (KeyError, IndexError, TypeError):
            raise ConversionError(f"legacy state has no field {name!r} for parameter "
                                  f"{_path_text(path)}") from None
        value = jnp.asarray(value, dtype=leaf.dtype)
        if value.shape != leaf.shape:
            raise ConversionError(f"legacy {name} of {_path_text(path)} has shape {value.shape}, "
                                  f"the optax state expects {leaf.shape}")
        return -value if negate else value
    return jax.tree_util.tree_map_with_path(take, template_tree)


def _restore_tree(template: Any, legacy: Any) -> Any:
    """``legacy`` (a state dict: dicts of arrays) in the structure of
    ``template`` (user state classes such as ``flax.struct`` dataclasses
    included), each leaf checked against the template's shape and dtype."""
    import jax
    import jax.numpy as jnp
    from flax import serialization

    try:
        restored = serialization.from_state_dict(template, legacy)
    except (KeyError, ValueError, TypeError) as e:
        raise ConversionError(f"the legacy param_states do not fit the optax state: {e}") from None

    def check(path, leaf, value):
        value = jnp.asarray(value, dtype=jnp.asarray(leaf).dtype)
        if value.shape != jnp.shape(leaf):
            raise ConversionError(f"legacy state {_path_text(path)} has shape {value.shape}, "
                                  f"the optax state expects {jnp.shape(leaf)}")
        return value
    return jax.tree_util.tree_map_with_path(check, template, restored)


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _fill(template: Any, legacy: Any, qual: str, hyper: Mapping[str, Any], step: Any, params: Any) -> Any:
    import jax
    import jax.numpy as jnp

    if qual == MULTI:
        pairs = _pairs(hyper)
        labels = group_labels([f"group{i}_" for i in range(len(pairs))])
        inner = dict(template.inner_states)
        for label, (_, (sub, sub_hyper)) in zip(labels, pairs):
            sub_q, _ = row_for(sub)
            masked = inner[label]
            inner[label] = masked._replace(
                inner_state=_fill(masked.inner_state, legacy, sub_q, sub_hyper, step, params))
        return template._replace(inner_states=inner)
    if qual == WEIGHT_NORM:
        sub, sub_hyper = _spec(hyper["wrapped_optimizer"])
        paths_leaves = jax.tree_util.tree_flatten_with_path(params)[0]
        directions: dict = {}
        scales: dict = {}
        for path, _ in paths_leaves:
            fields = _lookup(legacy, path)
            if fields is None:  # not optimised (a MultiOptimizer's frozen parameter)
                continue
            for dst, key in ((directions, "direction_state"), (scales, "scale_state")):
                node = dst
                for entry in path[:-1]:
                    node = node.setdefault(getattr(entry, "key", getattr(entry, "idx", entry)), {})
                last = path[-1]
                node[getattr(last, "key", getattr(last, "idx", last))] = fields[key]
        inner_legacy = {"direction": directions, "scale": scales}
        sub_q, _ = row_for(sub)
        return template._replace(
            inner_state=_fill(template.inner_state, inner_legacy, sub_q, sub_hyper, step, None),
            mult=_from_field(template.mult, legacy, "mult"))

    mapping = OPTIMIZERS[qual].state

    def walk(node: Any) -> Any:
        if _is_namedtuple(node):
            fields = mapping.get(type(node).__name__, {})
            new = {}
            for f in node._fields:
                value = getattr(node, f)
                spec = fields.get(f, "@step" if f == "count" else None)
                if spec == "@step":
                    new[f] = jnp.asarray(step, dtype=jnp.asarray(value).dtype)
                elif spec == "*":  # the per-parameter states as they are (a user OptimizerDef's)
                    new[f] = _restore_tree(value, legacy)
                elif spec is not None:
                    new[f] = _from_field(value, legacy, spec)
                elif not jax.tree_util.tree_leaves(value):
                    new[f] = value
                elif isinstance(value, tuple):  # a nested state (MaskedState, a chain)
                    new[f] = walk(value)
                else:
                    raise ConversionError(f"{qual}: no legacy field for {type(node).__name__}.{f}")
            return type(node)(**new)
        if isinstance(node, tuple):
            return tuple(walk(x) for x in node)
        if jax.tree_util.tree_leaves(node):
            raise ConversionError(f"{qual}: unexpected {type(node).__name__} in the optax state")
        return node
    return walk(template)


def optax_state_from_legacy(optimizer_name: str, hyper: Mapping[str, Any], legacy_state_dict: Mapping,
                            params: Any, rename: Callable[[Any], Any] | Any = None) -> Any:
    """The optax state of the transform LU301 emits for
    ``flax.optim.<optimizer_name>(**hyper)``, holding the legacy optimizer's state.

    ``legacy_state_dict``: ``to_state_dict(optimizer)['state']`` (``{'step',
    'param_states'}``; the whole ``{'target', 'state'}`` dict is accepted too),
    e.g. read back with ``flax.serialization.msgpack_restore``.  ``params``: the
    (Linen) params the state belongs to; its structure is ``tx.init(params)``'s.
    ``rename``: a ``linen_upgrade.keys.KeyMap`` or a callable that renames the
    legacy module keys of ``param_states`` to the Linen ones.
    ``hyper`` holds the legacy constructor's arguments as values; a wrapped
    optimizer (``WeightNorm``) is ``NAME`` or ``(NAME, HYPER)``; a user subclass
    (``'OptimizerDef'``) is ``{'definition': instance of the upgraded class}``; ``MultiOptimizer``
    takes ``{'traversals_and_optimizers': [(traversal or filter, (NAME, HYPER)), ...]}``.
    """
    if "state" in legacy_state_dict and "param_states" not in legacy_state_dict:
        legacy_state_dict = legacy_state_dict["state"]
    step = legacy_state_dict["step"]
    param_states = legacy_state_dict["param_states"]
    # an nn.Model target serialised as {'params': ...} (api_mapping.md §4.3)
    if (isinstance(param_states, Mapping) and set(param_states) == {"params"}
            and isinstance(params, Mapping) and "params" not in params):
        param_states = param_states["params"]
    if rename is not None:
        param_states = (rename.convert_params(param_states, drop_empty=False)
                        if hasattr(rename, "convert_params") else rename(param_states))
    qual, row = row_for(optimizer_name)
    if row.status != "auto" or qual == "flax.optim.DynamicScale":
        raise ConversionError(f"{optimizer_name}: no optax state to map to")
    hyper = _with_learning_rate(qual, hyper)
    template = build_transform(qual, hyper).init(params)
    return _fill(template, param_states, qual, hyper, step, params)


def _with_learning_rate(qual: str, hyper: Mapping[str, Any]) -> dict:
    """A constant learning rate does not shape the state: a checkpoint's
    hyperparameters may leave it out (it was often given to apply_gradient).
    A schedule does (optax counts its steps): pass it when the code uses one."""
    hyper = dict(hyper)
    if qual == MULTI:
        hyper["traversals_and_optimizers"] = [
            (t, (sub, _with_learning_rate(row_for(sub)[0], sub_hyper))) for t, (sub, sub_hyper) in _pairs(hyper)]
    elif qual == WEIGHT_NORM and "wrapped_optimizer" in hyper:
        sub, sub_hyper = _spec(hyper["wrapped_optimizer"])
        hyper["wrapped_optimizer"] = (sub, _with_learning_rate(row_for(sub)[0], sub_hyper))
    elif "learning_rate" in OPTIMIZERS[qual].param_names and hyper.get("learning_rate") is None:
        hyper["learning_rate"] = 1.0
    return hyper
