"""JAX names that legacy Flax code used and current JAX removed or moved.

One row per old qualified name.  ``JAX_RENAMES``: a plain rename, same
arguments.  ``JAX_INDEX_OPS``: the ``jax.ops.index_*`` functions and the
``x.at[idx]`` method that replaces each.  Checked against the installed jax
by ``tests/test_tables.py``.
"""

from __future__ import annotations

JAX_RENAMES: dict[str, str] = {
    "jax.tree_map": "jax.tree_util.tree_map",
    "jax.tree_multimap": "jax.tree_util.tree_map",
    "jax.tree_util.tree_multimap": "jax.tree_util.tree_map",
    "jax.tree_leaves": "jax.tree_util.tree_leaves",
    "jax.tree_flatten": "jax.tree_util.tree_flatten",
    "jax.tree_unflatten": "jax.tree_util.tree_unflatten",
    "jax.tree_structure": "jax.tree_util.tree_structure",
    "jax.tree_transpose": "jax.tree_util.tree_transpose",
    "jax.tree_reduce": "jax.tree_util.tree_reduce",
    "jax.tree_all": "jax.tree_util.tree_all",
    "jax.host_id": "jax.process_index",
    "jax.host_count": "jax.process_count",
    "jax.nn.normalize": "jax.nn.standardize",
    "jax.util.partial": "functools.partial",
    # jax 0.2's top-level re-export of functools.partial (jax/api.py)
    "jax.partial": "functools.partial",
    # jax.profiler's 0.2 names; the new ones take the same arguments
    "jax.profiler.trace_function": "jax.profiler.annotate_function",
    "jax.profiler.TraceContext": "jax.profiler.TraceAnnotation",
    "jax.profiler.StepTraceContext": "jax.profiler.StepTraceAnnotation",
    "jax.experimental.optimizers": "jax.example_libraries.optimizers",
    "jax.experimental.stax": "jax.example_libraries.stax",
    "jax.abstract_arrays.ShapedArray": "jax.core.ShapedArray",
    "jax.interpreters.xla.DeviceArray": "jax.Array",
    "jax.interpreters.pxla.ShardedDeviceArray": "jax.Array",
    "jax.pxla.ShardedDeviceArray": "jax.Array",
    "jax.xla.DeviceArray": "jax.Array",
    "jax.numpy.DeviceArray": "jax.Array",
    # `from jax.config import config`: the module jax.config is gone, the object stays
    "jax.config.config": "jax.config",
    # an identity helper for building indices; numpy's is the same object kind
    "jax.ops.index": "jax.numpy.index_exp",
}

# jax.ops.index_update(x, idx, y) -> x.at[idx].set(y)
JAX_INDEX_OPS: dict[str, str] = {
    "jax.ops.index_update": "set",
    "jax.ops.index_add": "add",
    "jax.ops.index_mul": "multiply",
    "jax.ops.index_min": "min",
    "jax.ops.index_max": "max",
}
