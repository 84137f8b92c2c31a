"""Libraries that never make a legacy flax value out of nothing.

A call into one of them whose arguments hold no legacy value (literals, or values
such calls made) returns something that is not a ``Model``, an optimizer or a
module definition: the usage analysis types it ``OPAQUE`` (``_usage_types``), so a
parameter given one at a call and a Model at another is a conflict, not a Model.
A library may still hand back a legacy value it is given (``pickle.loads(
pickle.dumps(model))``, ``jax.device_get(model)``): those calls are not opaque,
their arguments being legacy or untyped.  flax itself is absent, as are the
libraries of the run (``Analysis._opaque_call`` checks the run's table first).
"""

from __future__ import annotations

import sys

# third-party libraries of the JAX research stack that build no flax.nn values
_THIRD_PARTY = frozenset({
    "absl", "chex", "clu", "einops", "h5py", "jax", "jaxlib", "matplotlib", "ml_collections",
    "msgpack", "numpy", "optax", "pandas", "PIL", "scipy", "sklearn", "tensorflow",
    "tensorflow_datasets", "tqdm", "yaml",
})

LIBRARIES = frozenset(sys.stdlib_module_names) | _THIRD_PARTY

# built-in functions whose result is never a legacy value, whatever they are given
OPAQUE_BUILTINS = frozenset({
    "bool", "bytes", "float", "format", "hash", "id", "input", "int", "isinstance", "len", "open",
    "range", "repr", "str",
})
