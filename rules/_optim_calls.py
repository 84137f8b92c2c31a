"""Where LU302 (optim_train_state) lets an optimizer value go when a call
takes it as an argument: the calls that hand it back (a ``TrainState`` is a
pytree like the legacy ``Optimizer``), the calls that only read it, the
calls that save or restore it (the checkpoint layout changes), and the
wrappers (``jax.jit``/``pmap``, ``functools.partial``) a callee is reached
through.  A function of this file is followed by name (``_train_state.Plan``),
one of another file of the run by reading that file (``_optim_cross``);
anything else is a TODO.
"""

from __future__ import annotations

from typing import Callable

import libcst as cst

from linen_upgrade.tables.jax_renames import JAX_RENAMES

# calls that return their first argument wrapped, called with the same arguments (sharded_jit: gone from
# jax since 0.4, the file needs it by hand either way)
WRAPPERS = frozenset({"jax.jit", "jax.pmap", "jax.interpreters.sharded_jit.sharded_jit"})
PARTIAL = "functools.partial"


def current(qual: str | None) -> str | None:
    """A removed JAX name's current one (``jax.util.partial`` -> ``functools.partial``, ``jax.tree_multimap``
    -> ``jax.tree_util.tree_map``: the same function), as LU401 writes it; any other name as it is."""
    return JAX_RENAMES.get(qual, qual) if qual is not None else None

# calls whose result is the optimizer passed at this position, converted or not
PRESERVING = {
    "flax.jax_utils.replicate": 0,
    "flax.jax_utils.unreplicate": 0,
    "jax.device_get": 0,
    "jax.device_put": 0,
    "jax.block_until_ready": 0,
    "jax.tree_map": 1,  # leaf-wise: the same on the legacy Optimizer and on a TrainState
    "jax.tree_util.tree_map": 1,
}
# builtins (by bare name) that only look at the value
READERS = frozenset({"print", "repr", "str", "type", "id", "isinstance"})
# a TrainState is saved as {'step', 'params', 'opt_state'}, a legacy Optimizer as {'target', 'state'}:
# saving and restoring the whole optimizer (its position in the call) converts, with a TODO that the
# checkpoints already on disk need converting; the state-dict calls expose the layout to the code
SAVE_RESTORE = {
    "flax.training.checkpoints.save_checkpoint": 1,
    "flax.training.checkpoints.restore_checkpoint": 1,
}
SAVE_RESTORE_NOTE = ("the optimizer is a TrainState now, saved as {'step', 'params', 'opt_state'}; checkpoints "
                     "written by the legacy code ({'target', 'state'}) restore into it only after `linen-upgrade "
                     "convert-checkpoint`")
CHECKPOINTS = frozenset({
    "flax.serialization.to_state_dict",
    "flax.serialization.from_state_dict",
    "flax.serialization.to_bytes",
    "flax.serialization.from_bytes",
})
CHECKPOINT_HINT = ("a TrainState is saved as {'step', 'params', 'opt_state'}, a legacy Optimizer as "
                   "{'target', 'state'}: convert existing checkpoints with `linen-upgrade convert-checkpoint` "
                   "and restore them into the TrainState")


def unwrap(call: cst.Call, qual: Callable[[cst.BaseExpression], str | None]
           ) -> tuple[cst.BaseExpression, int] | None:
    """``jax.jit(f)`` / ``jax.pmap(f, ...)`` / ``functools.partial(jax.pmap,
    ...)(f)`` / ``functools.partial(f, a, k=v)`` -> (``f``, how many
    positional arguments the wrapper binds); None for any other call or
    unusual arguments."""
    q = current(qual(call.func))
    if isinstance(call.func, cst.Call) and current(qual(call.func.func)) == PARTIAL and call.func.args \
            and qual(call.func.args[0].value) in WRAPPERS:
        q = qual(call.func.args[0].value)
    if q not in WRAPPERS and q != PARTIAL or not call.args or call.args[0].star or call.args[0].keyword:
        return None
    if q in WRAPPERS:
        return call.args[0].value, 0
    if any(a.star for a in call.args[1:]):
        return None
    return call.args[0].value, sum(a.keyword is None for a in call.args[1:])


def bind(params: list[str], args: list[cst.Arg], shift: int) -> dict[str, cst.BaseExpression] | None:
    """The arguments of a call by parameter name (``shift`` positional ones
    bound by a ``functools.partial``); None where they cannot be bound."""
    out: dict[str, cst.BaseExpression] = {}
    position = shift
    for a in args:
        if a.star:
            return None
        if a.keyword is not None:
            out[a.keyword.value] = a.value
            continue
        if position >= len(params):
            return None
        out[params[position]] = a.value
        position += 1
    return out
