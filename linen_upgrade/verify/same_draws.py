"""The same random draws on both sides of module mode.

Legacy ``flax.nn`` and Linen derive their random keys differently (legacy:
``fold_in`` of the ``nn.stochastic`` key by a counter; Linen: a hash of the
module path and the rng name), so the same dropout layer draws different
masks on the two sides and a correct rewrite would differ in train mode.
Both module drivers run their forward pass inside :func:`matched_draws`,
which makes the draws depend only on the order in which they are made:

* ``jax.random.bernoulli`` (what legacy ``nn.dropout``, legacy attention
  dropout and Linen ``nn.Dropout``/attention all call) returns the n-th mask
  of one deterministic sequence keyed by call order and shape, made with
  numpy (so it does not depend on the jax version either): the n-th dropout
  of the legacy pass and the n-th of the Linen pass get the same mask;
* every key the module asks for (legacy ``nn.make_rng()``, Linen
  ``self.make_rng(name)``) is the n-th key of one fixed sequence, so a
  module that draws other randomness itself (noise, sampling) gets the same
  numbers on both sides when both run the same jax.

The counts of masks and keys are recorded, so that the upgraded side can say
when the draws could not be paired. Nothing is patched outside the ``with``
block. Python 3.7 syntax, standard library only at import time (the legacy
driver may run in the user's old environment).
"""
import contextlib
import zlib

KEY_SEED = 20210  # the fixed key sequence: fold_in(PRNGKey(KEY_SEED), n)
_MISSING = object()


class Draws(object):
    """What one forward pass drew: ``masks`` bernoulli masks, ``keys`` rng keys."""

    def __init__(self):
        self.masks = 0
        self.keys = 0

    def as_dict(self):
        return {"masks": self.masks, "keys": self.keys}


def mask_uniforms(n, shape):
    """The uniforms behind the n-th mask of ``shape``: the mask is ``u < p``."""
    import numpy as np
    seed = zlib.crc32(repr((int(n), tuple(int(d) for d in shape))).encode())
    return np.random.RandomState(seed).random_sample(shape).astype(np.float32)


def _set(obj, name, value):
    """Set ``obj.name``; return a function restoring it (deleting it when it was
    absent from ``obj.__dict__``: a legacy jax proxy then resolves it again)."""
    old = obj.__dict__.get(name, _MISSING)
    setattr(obj, name, value)

    def restore():
        if old is _MISSING:
            delattr(obj, name)
        else:
            setattr(obj, name, old)
    return restore


@contextlib.contextmanager
def matched_draws(random_modules, key_methods):
    """Within the block, ``bernoulli`` of every module in ``random_modules``
    (the real ``jax.random`` and, on the legacy side, its proxy) draws the
    order-keyed masks, and every ``(cls, name)`` method of ``key_methods``
    (the rng source of the flax in use) returns the order-keyed keys. Yields
    the :class:`Draws` counts."""
    import jax
    import jax.numpy as jnp
    draws = Draws()
    key_dtype = getattr(getattr(jax, "dtypes", None), "prng_key", None)  # None on old jax

    def bernoulli(key, p=0.5, shape=None, *args, **kwargs):
        if shape is None:
            shape = jnp.shape(p)
        shape = tuple(int(d) for d in shape)
        u = mask_uniforms(draws.masks, shape)
        draws.masks += 1
        return jnp.asarray(u) < p

    def keyed(original):
        def make_rng(*args, **kwargs):
            key = original(*args, **kwargs)  # the original still checks its context
            new = jax.random.fold_in(jax.random.PRNGKey(KEY_SEED), draws.keys)
            draws.keys += 1
            if key_dtype is not None and jnp.issubdtype(key.dtype, key_dtype):  # typed stays typed
                new = jax.random.wrap_key_data(new, impl=jax.random.key_impl(key))
            return new
        return make_rng

    restores = []
    try:
        for mod in random_modules:
            restores.append(_set(mod, "bernoulli", bernoulli))
        for cls, name in key_methods:
            restores.append(_set(cls, name, keyed(cls.__dict__[name])))
        yield draws
    finally:
        for restore in reversed(restores):
            restore()
