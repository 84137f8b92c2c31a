"""Small optax transforms that reproduce the ``flax.optim`` update rules optax
has no exact built-in for (facts: ``shared/reference/api_mapping.md`` §3.1).

LU301 copies the source of the ones a file needs into that file (the text of
``inspect.getsource``), so upgraded code runs on plain optax, without
linen-upgrade.  Hence every function here imports what it uses *inside its
body*, has no annotations, and refers to nothing else in this module --
``weight_norm`` aside, which is copied together with ``WeightNormState``
(and ``import typing``).  Importing this module imports nothing heavy.

``optax_from_optimizer_def`` (with ``from_param_update``,
``from_apply_gradient`` and ``ParamUpdateState``) is the transform of a user subclass of
``flax.optim.OptimizerDef``: LU301 turns the class into a plain class and
copies these three into the file.  ``LegacyLAMB`` (with its two state
classes) is the base it copies in for a subclass of ``flax.optim.LAMB``.
"""

from __future__ import annotations

import typing


def scale_by_legacy_adagrad(eps=1e-8):
    """``flax.optim.Adagrad``'s scaling: ``G += g**2; g / (sqrt(G) + eps)``.

    ``optax.adagrad`` differs: its accumulator starts at 0.1 and its eps sits
    inside the square root.  Chain with ``optax.scale_by_learning_rate(lr)``.
    """
    import jax
    import jax.numpy as jnp
    import optax

    def init_fn(params):
        return optax.ScaleByRssState(sum_of_squares=jax.tree_util.tree_map(jnp.zeros_like, params))

    def update_fn(updates, state, params=None):
        del params
        sum_of_squares = jax.tree_util.tree_map(
            lambda g, acc: acc + jnp.square(g), updates, state.sum_of_squares)
        updates = jax.tree_util.tree_map(
            lambda g, acc: g / (jnp.sqrt(acc) + eps), updates, sum_of_squares)
        return updates, optax.ScaleByRssState(sum_of_squares=sum_of_squares)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_legacy_lamb_trust_ratio():
    """``flax.optim.LAMB``'s trust ratio ``|p| / |u|`` (1 when both are 0).

    ``optax.scale_by_trust_ratio`` uses 1 whenever ``|p| == 0``; LAMB used 0,
    so a zero-initialised parameter (a bias) never moves.  Same here.
    """
    import jax
    import jax.numpy as jnp
    import optax

    def update_fn(updates, state, params):
        def scale(u, p):
            param_norm = jnp.linalg.norm(p)
            update_norm = jnp.linalg.norm(u)
            ratio = jnp.where(param_norm + update_norm > 0., param_norm / update_norm, 1.)
            return ratio * u
        return jax.tree_util.tree_map(scale, updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def scale_by_legacy_lars(weight_decay=0.0, trust_coefficient=0.001, eps=0.0):
    """``flax.optim.LARS``'s scaling: ``r * (g + wd * p)`` with
    ``r = tc * |p| / (|g| + wd * |p| + eps)`` (1 when ``|g|`` or ``|p|`` is 0).

    ``optax.lars`` computes ``r`` from ``|g + wd * p|`` instead.  Chain with
    ``optax.scale_by_learning_rate(lr)`` and ``optax.trace(decay=beta)``.
    """
    import jax
    import jax.numpy as jnp
    import optax

    def update_fn(updates, state, params):
        def scale(g, p):
            param_norm = jnp.linalg.norm(p)
            grad_norm = jnp.linalg.norm(g)
            ratio = trust_coefficient * param_norm / (grad_norm + weight_decay * param_norm + eps)
            ratio = jnp.where(jnp.logical_or(grad_norm == 0., param_norm == 0.), 1., ratio)
            return ratio * (g + weight_decay * p)
        return jax.tree_util.tree_map(scale, updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def legacy_adafactor(learning_rate, factored=True, multiply_by_parameter_scale=True, beta1=None,
                     decay_rate=0.8, step_offset=0, clipping_threshold=1.0, weight_decay_rate=None,
                     min_dim_size_to_factor=128, epsilon1=1e-30, epsilon2=1e-3, dtype_momentum=None):
    """``flax.optim.Adafactor`` with its own ``epsilon2`` (the floor of the
    parameter scale), which ``optax.adafactor`` fixes at 1e-3; otherwise the
    chain ``optax.adafactor`` builds, with the legacy argument names.
    """
    import jax.numpy as jnp
    import optax

    chain = [optax.scale_by_factored_rms(factored, decay_rate, step_offset,
                                         min_dim_size_to_factor, epsilon1)]
    if clipping_threshold is not None:
        chain.append(optax.clip_by_block_rms(clipping_threshold))
    chain.append(optax.scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        chain.append(optax.scale_by_param_block_rms(epsilon2))
    if beta1 is not None:
        chain.append(optax.ema(beta1, debias=False,
                               accumulator_dtype=jnp.float32 if dtype_momentum is None else dtype_momentum))
    if weight_decay_rate is not None:
        chain.append(optax.add_decayed_weights(weight_decay_rate))
    chain.append(optax.scale(-1))
    return optax.chain(*chain)


class WeightNormState(typing.NamedTuple):
    """State of ``weight_norm``: the wrapped transform's state over
    ``{'direction': ..., 'scale': ...}``, and each kernel's multiplier."""

    inner_state: typing.Any
    mult: typing.Any


def weight_norm(inner, wn_decay=0.0, wn_eps=1e-8):
    """``flax.optim.WeightNorm``: ``inner`` steps the direction ``v`` and the
    scale ``s`` of every kernel ``w = s * v / |v|`` (norm over all axes but the
    last); parameters with ``size <= shape[-1]`` (vectors) go to ``inner`` as
    they are.  ``wn_decay`` is an L2 decay of ``v``.  (Not ``flax.linen.WeightNorm``,
    which reparametrises a layer.)
    """
    import jax
    import jax.numpy as jnp
    import optax

    def is_kernel(p):
        return p.size > p.shape[-1]

    def norm(x):
        return jnp.sqrt(jnp.square(x).sum(tuple(range(x.ndim - 1)), keepdims=True))

    def init_fn(params):
        leaves, treedef = jax.tree_util.tree_flatten(params)
        scales = [norm(p) if is_kernel(p) else () for p in leaves]
        directions = [p / s if is_kernel(p) else p for p, s in zip(leaves, scales)]
        wn_params = {'direction': treedef.unflatten(directions), 'scale': treedef.unflatten(scales)}
        return WeightNormState(inner.init(wn_params), treedef.unflatten(scales))

    def update_fn(updates, state, params):
        leaves, treedef = jax.tree_util.tree_flatten(params)
        grads = treedef.flatten_up_to(updates)
        mults = treedef.flatten_up_to(state.mult)
        d_p, d_g, s_p, s_g = [], [], [], []
        for p, m, g in zip(leaves, mults, grads):
            if is_kernel(p):
                axes = tuple(range(p.ndim - 1))
                direction = p / m
                scale_grad = jnp.sum(g * direction, axis=axes, keepdims=True)
                direction_grad = m * (g - scale_grad * direction)
                if wn_decay != 0:
                    direction_grad = direction_grad + wn_decay * direction
                d_p.append(direction)
                d_g.append(direction_grad)
                s_p.append(norm(p) * jnp.sign(m))
                s_g.append(scale_grad)
            else:
                d_p.append(p)
                d_g.append(g)
                s_p.append(())
                s_g.append(())
        wn_params = {'direction': treedef.unflatten(d_p), 'scale': treedef.unflatten(s_p)}
        wn_grads = {'direction': treedef.unflatten(d_g), 'scale': treedef.unflatten(s_g)}
        wn_updates, inner_state = inner.update(wn_grads, state.inner_state, wn_params)
        new_wn = optax.apply_updates(wn_params, wn_updates)
        new_leaves, new_mults = [], []
        for d, s in zip(treedef.flatten_up_to(new_wn['direction']),
                        treedef.flatten_up_to(new_wn['scale'])):
            if is_kernel(d):
                m = s / (wn_eps + norm(d))
                new_leaves.append(d * m)
                new_mults.append(m)
            else:
                new_leaves.append(d)
                new_mults.append(())
        new_updates = treedef.unflatten([n - p for n, p in zip(new_leaves, leaves)])
        return new_updates, WeightNormState(inner_state, treedef.unflatten(new_mults))

    return optax.GradientTransformation(init_fn, update_fn)


def traversal_labels(**groups):
    """``param_labels`` for ``optax.multi_transform`` from the traversals of a
    ``flax.optim.MultiOptimizer``: each keyword names a group and gives a
    ``flax.traverse_util.ModelParamTraversal`` or its filter function
    ``filter(path, value)`` (``path`` like ``'/Dense_0/kernel'``).  Parameters no
    group selects get the label ``'frozen'`` (map it to ``optax.set_to_zero()``);
    one selected by two groups is an error, as it was in ``flax.optim``.
    """
    import flax

    def label_fn(params):
        flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), keep_empty_nodes=True)
        selected = {}
        for name, group in groups.items():
            if hasattr(group, 'update'):  # a Traversal: ask it, on the real values
                marker = object()
                marked = flax.traverse_util.flatten_dict(
                    flax.core.unfreeze(group.update(lambda _: marker, params)), keep_empty_nodes=True)
                keys = {k for k, v in marked.items() if v is marker}
            else:
                keys = {k for k, v in flat.items() if v is not flax.traverse_util.empty_node
                        and group('/' + '/'.join(k), v)}
            for k in keys:
                if k in selected:
                    raise ValueError(f"parameter {'/'.join(k)} is selected by both "
                                     f"{selected[k]!r} and {name!r}")
                selected[k] = name
        labels = {k: v if v is flax.traverse_util.empty_node else selected.get(k, 'frozen')
                  for k, v in flat.items()}
        labels = flax.traverse_util.unflatten_dict(labels)
        return flax.core.freeze(labels) if isinstance(params, flax.core.FrozenDict) else labels

    return label_fn


class ParamUpdateState(typing.NamedTuple):
    """State of ``from_param_update`` and ``from_apply_gradient``: the legacy
    ``OptimizerState`` fields (a user ``apply_gradient`` makes the next one with
    ``.replace``, as it did the legacy one)."""

    step: typing.Any
    param_states: typing.Any

    def replace(self, **fields):
        return self._replace(**fields)


def from_param_update(init_param_state, apply_param_gradient, hyper_params):
    """An optax transform running a user ``flax.optim.OptimizerDef``'s own
    per-parameter bodies unchanged.

    For subclasses of ``OptimizerDef`` (``flax.optim`` is gone): the class
    becomes a plain class keeping ``self.hyper_params``, ``init_param_state``
    and ``apply_param_gradient``, and
    ``tx = from_param_update(opt.init_param_state, opt.apply_param_gradient, opt.hyper_params)``
    (``optax_from_optimizer_def(opt)``).
    """
    import jax
    import jax.numpy as jnp
    import optax

    def init_fn(params):
        return ParamUpdateState(jnp.asarray(0, jnp.int32),
                                jax.tree_util.tree_map(init_param_state, params))

    def update_fn(updates, state, params):
        leaves, treedef = jax.tree_util.tree_flatten(params)
        states = treedef.flatten_up_to(state.param_states)
        grads = treedef.flatten_up_to(updates)
        out = [apply_param_gradient(state.step, hyper_params, p, s, g)
               for p, s, g in zip(leaves, states, grads)]
        new_updates = treedef.unflatten([new_p - p for (new_p, _), p in zip(out, leaves)])
        return new_updates, ParamUpdateState(state.step + 1, treedef.unflatten([s for _, s in out]))

    return optax.GradientTransformation(init_fn, update_fn)


def from_apply_gradient(init_param_state, whole_tree_update, hyper_params):
    """An optax transform running a user ``flax.optim.OptimizerDef``'s own
    ``apply_gradient(hyper_params, params, state, grads)`` (the whole-tree update
    it overrode: gradient clipping, Shampoo) on the legacy state fields."""
    import jax
    import jax.numpy as jnp
    import optax

    def init_fn(params):
        return ParamUpdateState(jnp.asarray(0, jnp.int32),
                                jax.tree_util.tree_map(init_param_state, params))

    def update_fn(updates, state, params):
        new_params, new_state = whole_tree_update(hyper_params, params, state, updates)
        return jax.tree_util.tree_map(lambda new, p: new - p, new_params, params), new_state

    return optax.GradientTransformation(init_fn, update_fn)


class LegacyLAMBHyperParams(typing.NamedTuple):
    """``flax.optim.LAMB``'s hyper-parameters, the same fields in the same order."""

    learning_rate: typing.Any
    beta1: typing.Any
    beta2: typing.Any
    weight_decay: typing.Any
    eps: typing.Any

    def replace(self, **fields):
        return self._replace(**fields)


class LegacyLAMBParamState(typing.NamedTuple):
    """``flax.optim.LAMB``'s per-parameter state, the same fields in the same order."""

    grad_ema: typing.Any
    grad_sq_ema: typing.Any


class LegacyLAMB:
    """What a subclass of ``flax.optim.LAMB`` that has its own
    ``apply_param_gradient`` takes from it: ``__init__``
    (the same signature and defaults) and ``init_param_state``.  The subclass
    derives from this plain class instead and runs in
    ``optax_from_optimizer_def``."""

    def __init__(self, learning_rate=None, beta1=0.9, beta2=0.999, weight_decay=0, eps=1e-6):
        self.hyper_params = LegacyLAMBHyperParams(learning_rate, beta1, beta2, weight_decay, eps)

    def init_param_state(self, param):
        import jax.numpy as jnp
        return LegacyLAMBParamState(jnp.zeros_like(param), jnp.zeros_like(param))


class PerStepState(typing.NamedTuple):
    """State of ``optax_from_optimizer_def(d, per_step=...)``: the hyper-parameters each step gives
    (``hyperparams``, which ``_apply_gradients_with`` sets, as for ``optax.inject_hyperparams``) and
    the state of the transform run with them."""

    hyperparams: typing.Any
    inner: typing.Any


def optax_from_optimizer_def(optimizer_def, per_step=()):
    """The optax transform of an instance of a former ``flax.optim.OptimizerDef``
    subclass: its own ``init_param_state`` and ``apply_gradient`` (when it
    overrode it) or ``apply_param_gradient``, with its ``hyper_params``, as
    ``Optimizer.apply_gradient(grads)`` ran them.  ``per_step``: the
    hyper-parameters each step gives (legacy ``apply_gradient(g,
    learning_rate=lr)``), kept in the state and put into ``hyper_params`` with
    ``.replace`` for the update, as legacy ``update_hyper_params`` did."""
    import jax.numpy as jnp
    import optax

    def transform(hyper_params):
        if hasattr(optimizer_def, "apply_gradient"):
            return from_apply_gradient(optimizer_def.init_param_state, optimizer_def.apply_gradient, hyper_params)
        return from_param_update(optimizer_def.init_param_state, optimizer_def.apply_param_gradient, hyper_params)
    if not per_step:
        return transform(optimizer_def.hyper_params)

    def init_fn(params):
        # a value the definition left unset (None) is a placeholder every step replaces
        values = {name: jnp.asarray(0.0 if getattr(optimizer_def.hyper_params, name) is None
                                    else getattr(optimizer_def.hyper_params, name)) for name in per_step}
        return PerStepState(values, transform(optimizer_def.hyper_params).init(params))

    def update_fn(updates, state, params):
        inner = transform(optimizer_def.hyper_params.replace(**state.hyperparams))
        updates, new_inner = inner.update(updates, state.inner, params)
        return updates, PerStepState(state.hyperparams, new_inner)

    return optax.GradientTransformation(init_fn, update_fn)


def legacy_compute_gradient(loss_fn, params):
    """``optimizer.compute_gradient(loss_fn)`` of a legacy ``flax.optim.Optimizer``
    whose target is ``params``, for code that keeps its result whole: ``(loss,
    grad)`` where ``loss_fn`` returns an array, ``(loss, aux, grad)`` where it
    returns a ``(loss, aux)`` pair (flax 0.3.6 chose by the returned value's type)."""
    import jax
    import numpy as np

    returned_array = []

    def loss_and_aux(p):
        out = loss_fn(p)
        returned_array.append(isinstance(out, (jax.Array, np.ndarray, np.generic)))
        return (out, None) if returned_array[-1] else out

    (loss, aux), grad = jax.value_and_grad(loss_and_aux, has_aux=True)(params)
    return (loss, grad) if returned_array[-1] else (loss, aux, grad)
