"""The part of LU202's (model_apply) transformer for a Model handed over as a
function (``jax.vmap(model)``, ``jax.jit(model)``, ``functools.partial(model, ...)``,
``map(model, xs)``) or a parameter's default (``def f(x, m=model)``): a legacy Model
was callable, its params are not, and what the callee makes of it is not followed.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rules._cst import comma_list
from linen_upgrade.rules._usage import MODEL, UsageTransformer

# functions that call what they are given first (their result, or at once)
_CALLERS = frozenset({
    "jax.vmap", "jax.jit", "jax.pmap", "jax.checkpoint", "jax.remat", "jax.named_call", "jax.xmap",
    "jax.grad", "jax.value_and_grad", "jax.jacfwd", "jax.jacrev", "jax.hessian", "jax.eval_shape",
    "jax.jvp", "jax.vjp", "jax.linearize", "jax.lax.map", "jax.lax.scan", "functools.partial",
})


# of those, the ones whose function gets the inputs alone, positionally, where what they return is
# called so at once (jax.vmap(model)(xs)) or they call it themselves (map(model, xs))
_INPUTS_ONLY = frozenset({"jax.vmap", "jax.jit", "jax.pmap", "jax.checkpoint", "jax.remat", "jax.lax.map", "map"})
_CALL_AT_ONCE = frozenset({"jax.lax.map", "map"})


class Values(UsageTransformer):
    """A Model as the function argument of a call: converted where it is given the inputs alone,
    else a TODO; LU202's transformer (which has ``SiteCalls``) mixes it in."""

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        call = self.a.parent.get(id(original))
        if isinstance(call, cst.Call) and call.args[0] is original and original.keyword is None \
                and not original.star and id(call) in self.a.scope_of:
            t = self.a.type_at(original.value)
            caller = self._caller(call)
            if t is not None and t.kind == MODEL and caller is not None:
                applied = self._applied(call, caller, t, updated.value)
                if applied is not None:
                    self.fixed(f"{caller}(model) -> {caller}(partial(M().apply, {{'params': model}}))")
                    return updated.with_changes(value=applied)
                self.todo(f"a Model handed to {caller} as a function: the Model is its params now; hand over "
                          "functools.partial(M().apply, {'params': params}) (module keywords go to M(...))")
        return updated

    def _applied(self, call: cst.Call, caller: str, t, params: cst.BaseExpression) -> cst.BaseExpression | None:
        """``partial(M().apply, {'params': model})`` where ``caller`` gives it the inputs alone: a keyword
        may be an attribute of M, and the contexts of nn.stateful/nn.stochastic change what apply returns."""
        outer = self.a.parent.get(id(call))
        at_once = caller in _CALL_AT_ONCE or isinstance(outer, cst.Call) and outer.func is call and all(
            a.keyword is None and not a.star for a in outer.args)
        stateful, stochastic, problem = self.context()  # type: ignore[attr-defined]
        if caller not in _INPUTS_ONLY or not at_once or t.ref is None or stateful or stochastic or problem \
                or self.capture():  # type: ignore[attr-defined]
            return None
        new, mutable, _ = self.apply_call(t.ref, call, params, [])  # type: ignore[attr-defined]
        if not isinstance(new, cst.Call) or mutable:
            return None
        return cst.Call(cst.parse_expression(self.spell_partial()),  # type: ignore[attr-defined]
                        comma_list([cst.Arg(new.func), *new.args]))

    def _caller(self, call: cst.Call) -> str | None:
        """The name of the function ``call`` calls when it is one that calls its first argument."""
        scope = self.a.scope_of[id(call)]
        if isinstance(call.func, cst.Name) and call.func.value == "map" and scope.lookup("map") is None:
            return "map"
        qual = self.a.qual(call.func, scope) if isinstance(call.func, (cst.Name, cst.Attribute)) else None
        return qual if qual in _CALLERS else None
