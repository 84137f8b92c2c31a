"""Legacy ``M.call(params, x, ...)`` inside a module body, or ``M.call(params, x, ..., name='n')``
in a function an apply calls: the module applied with parameters given by hand, under its
parent (BERT-style code keeping TF's parameter tree in dicts it builds itself).

Legacy ``Module.call`` made a frame with the given params (never initialising: no rng), under
the current parent when there is one; ``name`` only prefixed the frame's path, which keys
nothing but ``nn.stateful`` state and collections (flax 0.3.6 ``base.py``: ``call``).  Its
Linen form is an unbound instance applied to those params, ``M(attrs, parent=None).apply(
{'params': params}, x)``: without ``parent=None``, Linen adopts a module made in a parent's
``@compact`` method, which takes an auto-name (``Dense_0``) and shifts its siblings'
(checked on flax 0.12.8).  The name is dropped: a root module's name names nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from linen_upgrade.rules._cst import comma_list, kwarg
from linen_upgrade.rules._modules import CallSpec, split_call

# what keys legacy values by module paths besides nn.stateful's state (which ``needs`` tells)
_PATH_KEYED = ("flax.nn.Collection", "flax.nn.capture_module_outputs")


def named_call(call: cst.Call, named: bool = True) -> bool:
    """``<definition>.call(...)``, with ``name=`` where ``named``."""
    return isinstance(call.func, cst.Attribute) and call.func.attr.value == "call" \
        and (not named or any(a.keyword is not None and a.keyword.value == "name" for a in call.args))


def explicit_params_call(call: cst.Call, spec: CallSpec, ctor: cst.BaseExpression, needs: frozenset[str],
                         facts, adapt: Callable[[cst.Call], cst.Call]) -> tuple[cst.Call | None, str | None]:
    """``M.call(params, *args, name=..., **kw)`` -> ``M(<attributes>, parent=None).apply({'params':
    params}, <inputs>)``, or (None, why not); ``adapt`` the split call ``M(<attributes>)(<inputs>)``
    (two-argument initializers)."""
    args = list(call.args)
    if not args or args[0].keyword is not None or args[0].star:
        return None, "pass the params first"
    if "state" in needs or facts.references(*_PATH_KEYED):
        return None, ("its name keys legacy state or collections under the parent's path, which the "
                      "module's own Linen apply does not keep: apply it with those collections by hand")
    if "rngs" in needs:
        return None, "it draws rngs, which legacy took from nn.stochastic: apply it with rngs= by hand"
    if "unknown" in needs:
        return None, "it runs modules this run cannot trace (which may keep state or draw rngs): convert by hand"
    if spec.manual or spec.definition or spec.features_from_carry or spec.forward is not None:
        return None, "its arguments need converting by hand: M(<attributes>, parent=None).apply(...)"
    rest = [a for a in args[1:] if not (a.keyword is not None and a.keyword.value == "name")]
    split, problem = split_call(call.with_changes(args=rest), spec, ctor)
    if split is None:
        return None, problem
    if not (isinstance(split, cst.Call) and isinstance(split.func, cst.Call)):
        return None, "its arguments need converting by hand: M(<attributes>, parent=None).apply(...)"
    split = adapt(split)
    made = split.func
    unbound = made.with_changes(args=comma_list([*made.args, kwarg("parent", cst.Name("None"))]))
    variables = cst.Dict([cst.DictElement(cst.SimpleString("'params'"), args[0].value)])
    return cst.Call(cst.Attribute(unbound, cst.Name("apply")),
                    comma_list([cst.Arg(variables), *split.args])), None
