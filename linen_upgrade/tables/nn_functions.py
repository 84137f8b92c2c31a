"""Pure ``flax.nn`` functions of arrays that ``flax.linen`` dropped, kept as they were.

Each function below is flax 0.3.6's own code (``flax/nn/attention.py``,
Copyright The Flax Authors, Apache License 2.0), re-indented, its deprecation
note removed, and ``lax.tie_in`` (an identity since jax 0.2, removed since)
left out.  LU106 (``rules/nn_functions.py``) copies the source of the ones a
file uses into that file (the text of ``inspect.getsource``) and calls it
there, so the upgraded code computes exactly what it did, on current JAX.
Hence every function imports what it uses *inside its body*, has no
annotations and refers to nothing else in this module; its name is the name
it gets in the upgraded file.

``NN_FUNCTIONS``: the canonical legacy name (``resolve.canonical``) -> its copy.
A function joins only when Linen has no function that computes the same for
every argument: ``nn.make_attention_mask`` matches ``make_padding_mask`` for
one attention axis only, ``nn.make_causal_mask`` takes other arguments.
"""

from __future__ import annotations

from collections.abc import Callable


def _legacy_make_padding_mask(padding_mask_query,
                              padding_mask_key,
                              query_shape,
                              key_shape,
                              attention_axis=None,
                              segmentation_mask=False):
    """flax 0.3.6's ``flax.nn.attention.make_padding_mask``, kept because Linen
    has no equivalent (copied by linen-upgrade; Apache-2.0, The Flax Authors).

    Makes padding mask for attention weights.

    In case of 1d inputs (i.e., `[bs, len, features]`, the attention weights will
    be `[bs, len, len]` and this function makes a square matrix [len, len].

    Args:
      padding_mask_query: padding mask of query <bs, qdim1,.., qdimn>
      padding_mask_key: padding mask of query <bs, key1,.., keyn>
      query_shape: shape of the query
      key_shape: shape of the key, which is equal to the shape of value.
      attention_axis: axis over which attention is applied.
      segmentation_mask: bool: if true use equality on cartesian product rather
        than outer product for constructing segmentation masks.
    Returns:
      The padding mask for attention weights.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    assert query_shape[0] == key_shape[0]
    assert len(query_shape) == len(key_shape)

    ndim = len(key_shape)
    if attention_axis is None:
        attention_axis = tuple(range(1, ndim - 2))
    assert isinstance(attention_axis, tuple)
    for ax in attention_axis:
        if not (ndim >= 3 and 1 <= ax < ndim - 2):
            raise ValueError(
                'Attention axis must be between the batch axis and the last-two axes.'
            )

    mask_shape_final = (query_shape[0], 1)  # batch_size, 1 (for all heads)s
    for ax in attention_axis:
        mask_shape_final += (query_shape[ax],)
    for ax in attention_axis:
        mask_shape_final += (key_shape[ax],)

    padding_mask_query = padding_mask_query[..., None]
    padding_mask_key = padding_mask_key[..., None]
    perm = (0,) + tuple(np.flip(np.arange(padding_mask_key.ndim)))[:-1]
    if segmentation_mask:
        mask = jnp.equal(padding_mask_query, padding_mask_key.transpose(perm))
    else:
        mask = jnp.multiply(padding_mask_query, padding_mask_key.transpose(perm))

    mask = mask.reshape(mask_shape_final)
    mask = jax.lax.convert_element_type(mask, jnp.float32)
    return mask


def _legacy_make_causal_mask(key, attention_axis=None, self_mask=False):
    """flax 0.3.6's ``flax.nn.attention._make_causal_mask``, kept because Linen
    has no equivalent (copied by linen-upgrade; Apache-2.0, The Flax Authors;
    ``lax.tie_in``, an identity since jax 0.2, left out).

    Makes a causal mask, to be used for masking out the future for attention.

    In case of 1d inputs (i.e., `[bs, len, features]`, the attention weights will
    be `[bs, len, len]` and this function makes a square matrix [len, len] with
    zeros in upper triangle and ones in lower triangle.

    Args:
      key: shape of the key, which is equal to the shape of value and is
        assumed to be equal to the shape of the query (since this is used in
        self-attention when decoding).
      attention_axis: axis over which attention is applied.
      self_mask: if mask out the diagonal or not.

    Returns:
      A causal mask to be used to mask out future positions.
    """
    import jax.numpy as jnp
    from jax import lax

    if attention_axis is None:
        attention_axis = tuple(range(1, key.ndim - 2))
    assert isinstance(attention_axis, tuple)
    for ax in attention_axis:
        if not (key.ndim >= 3 and 1 <= ax < key.ndim - 2):
            raise ValueError(
                'Attention axis must be between the batch axis and the last-two axes.'
            )

    mask_shape = tuple([1] * (key.ndim - len(attention_axis) - 1))
    mask_shape_final = mask_shape
    for _ in range(2):
        flatten_dim = 1
        for ax in attention_axis:
            mask_shape_final += (key.shape[ax],)
            flatten_dim *= key.shape[ax]
        mask_shape += (flatten_dim,)

    def tri(n, m, k=0):
        x = jnp.arange(n, dtype=jnp.int32)
        y = jnp.arange(m, dtype=jnp.int32)
        mask = lax.ge(
            (lax.broadcast_in_dim(x, shape=(n, m), broadcast_dimensions=(0,))) + k,
            lax.broadcast(y, [n]))
        return mask

    k = -1 if self_mask else 0
    mask = tri(*mask_shape[-2:], k=k).reshape(mask_shape_final)
    return mask


def _legacy_invert_perm(perm):
    """flax 0.3.6's ``flax.nn.attention._invert_perm``, kept because Linen has
    no equivalent (copied by linen-upgrade; Apache-2.0, The Flax Authors):
    the permutation that undoes ``perm``."""
    perm_inv = [0] * len(perm)
    for i, j in enumerate(perm):
        perm_inv[j] = i
    return tuple(perm_inv)


def _legacy_dot_product_attention(query,
                                  key,
                                  value,
                                  dtype=None,
                                  bias=None,
                                  axis=None,
                                  broadcast_dropout=True,
                                  dropout_rng=None,
                                  dropout_rate=0.,
                                  deterministic=False,
                                  precision=None,
                                  make_rng=None):
    """flax 0.3.6's ``flax.nn.attention.dot_product_attention``, kept because
    Linen's takes other arguments (no ``axis``: one attention axis; ``mask``
    before ``dtype``) (copied by linen-upgrade; Apache-2.0, The Flax Authors;
    ``lax.tie_in``, an identity since jax 0.2, left out).  Legacy drew a
    missing ``dropout_rng`` from ``nn.stochastic``; the copy calls
    ``make_rng`` for it (linen-upgrade passes the module's
    ``self.make_rng('dropout')``).  ``dtype=None`` is legacy's float32.

    Computes dot-product attention given query, key, and value, over the
    ``axis`` dimensions of ``[batch_size, dim1, ..., dimN, num_heads,
    channels]`` inputs (default: all of dim1..dimN).
    """
    from collections.abc import Iterable

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    dtype = jnp.float32 if dtype is None else dtype
    assert key.shape[:-1] == value.shape[:-1]
    assert (query.shape[0:1] == key.shape[0:1] and
            query.shape[-1] == key.shape[-1])

    if axis is None:
        axis = tuple(range(1, key.ndim - 2))
    if not isinstance(axis, Iterable):
        axis = (axis,)
    assert key.ndim == query.ndim
    assert key.ndim == value.ndim
    for ax in axis:
        if not (query.ndim >= 3 and 1 <= ax < query.ndim - 2):
            raise ValueError('Attention axis must be between the batch '
                             'axis and the last-two axes.')
    depth = query.shape[-1]
    n = key.ndim
    # batch_dims is  <bs, <non-attention dims>, num_heads>
    batch_dims = tuple(np.delete(range(n), axis + (n - 1,)))
    # q & k -> (bs, <non-attention dims>, num_heads, <attention dims>, channels)
    qk_perm = batch_dims + axis + (n - 1,)
    key = key.transpose(qk_perm)
    query = query.transpose(qk_perm)
    # v -> (bs, <non-attention dims>, num_heads, channels, <attention dims>)
    v_perm = batch_dims + (n - 1,) + axis
    value = value.transpose(v_perm)

    query = query / jnp.sqrt(depth).astype(dtype)
    batch_dims_t = tuple(range(len(batch_dims)))
    attn_weights = lax.dot_general(
        query,
        key, (((n - 1,), (n - 1,)), (batch_dims_t, batch_dims_t)),
        precision=precision)

    # apply attention bias: masking, droput, proximity bias, ect.
    if bias is not None:
        attn_weights = attn_weights + bias

    # normalize the attention weights
    norm_dims = tuple(range(attn_weights.ndim - len(axis), attn_weights.ndim))
    attn_weights = jax.nn.softmax(attn_weights, axis=norm_dims)
    attn_weights = attn_weights.astype(dtype)

    # apply dropout
    if not deterministic and dropout_rate > 0.:
        if dropout_rng is None:
            if make_rng is None:
                raise ValueError('dropout needs dropout_rng (legacy drew it from nn.stochastic)')
            dropout_rng = make_rng()
        keep_prob = 1.0 - dropout_rate
        if broadcast_dropout:
            # dropout is broadcast across the batch+head+non-attention dimension
            dropout_dims = attn_weights.shape[-(2 * len(axis)):]
            dropout_shape = (tuple([1] * len(batch_dims_t)) + dropout_dims)
            keep = jax.random.bernoulli(dropout_rng, keep_prob, dropout_shape)
        else:
            keep = jax.random.bernoulli(dropout_rng, keep_prob, attn_weights.shape)
        multiplier = (keep.astype(attn_weights.dtype) /
                      jnp.asarray(keep_prob, dtype=dtype))
        attn_weights = attn_weights * multiplier

    # compute the new values given the attention weights
    wv_contracting_dims = (norm_dims, range(value.ndim - len(axis), value.ndim))
    y = lax.dot_general(
        attn_weights,
        value, (wv_contracting_dims, (batch_dims_t, batch_dims_t)),
        precision=precision)

    # back to (bs, dim1, dim2, ..., dimN, num_heads, channels)
    perm_inv = [0] * len(qk_perm)
    for i, j in enumerate(qk_perm):
        perm_inv[j] = i
    y = y.transpose(tuple(perm_inv))
    return y


# legacy ``dot_product_attention``'s positional parameters, in order (the copy's, less its ``make_rng``)
ATTENTION_PARAMS: tuple[str, ...] = _legacy_dot_product_attention.__code__.co_varnames[
    :_legacy_dot_product_attention.__code__.co_argcount - 1]

NN_FUNCTIONS: dict[str, Callable] = {
    "flax.nn.make_padding_mask": _legacy_make_padding_mask,
    "flax.nn._make_causal_mask": _legacy_make_causal_mask,
    "flax.nn._invert_perm": _legacy_invert_perm,
    "flax.nn.dot_product_attention": _legacy_dot_product_attention,
}
