"""LU101 module_definitions: ``def apply(self, x, features, ...)`` -> attributes + ``@nn.compact __call__``.

What it does
    In every class that resolves to a legacy ``flax.nn.Module`` (directly or
    through another legacy module of the run), the configuration parameters
    of ``apply`` become typed dataclass attributes, ``apply`` becomes
    ``@nn.compact def __call__`` with only the call inputs, and each use of an
    attribute in the body becomes ``self.<attr>`` (a body that reassigns one
    gets a local copy first).
Which parameters stay inputs
    The first positional one always; flags, masks, carries and rngs by name
    (``CALL_ARGUMENT_NAMES`` in ``linen_upgrade/tables/nn_modules.py``, and
    any ``*_rng``); any
    other one that the body uses as an array (sliced, ``.shape``, a ``jnp``
    argument, the input of a submodule call, added to an input) or that call
    sites anywhere in the run pass an array.  Configuration: what the body
    uses as a Python value (``range``, an ``if`` test, a submodule's
    ``features``) or call sites pass as a literal.  The project index
    decides once (``index.py``); the call-site rule LU102 makes the same
    split from the same function (``split_params``).
``*args``/``**kwargs`` only forwarded
    ``def apply(self, x, **kwargs): return nn.Dense(x, **kwargs)`` -> an
    attribute ``kwargs: Any = FrozenDict()`` and ``nn.Dense(**self.kwargs)(x)``;
    call sites pass ``kwargs={'features': 3}`` (Linen names), and inputs of
    the callee forwarded through it (``train=``) stay call arguments.
    ``*args`` -> ``args: Any = ()`` and ``nn.Dense(*self.args)(x)``, when the
    callee's Linen fields keep the legacy positional order (the index checks
    how far: Dense's features, bias -> use_bias, dtype); call sites pass
    ``args=(3,)``, and positional arguments past that order go by their legacy
    name into a ``**kwargs`` forwarded into the same calls (else a TODO there).
Mutable defaults
    ``widths=[8, 4]`` (a dict, a set) -> ``widths: Any =
    dataclasses.field(default_factory=lambda: [8, 4])``: a dataclass refuses
    a mutable default.  Linen hands a list attribute to the methods as a
    tuple and a dict as a FrozenDict, so the body may only read it (iterate,
    index, ``len``, ``in``, pass it to submodules).
Other methods
    They read the attributes as ``self.<attr>`` and lose the parameters that
    repeat one (legacy passed them all to module methods); their calls in
    the class lose the same arguments, each of which must pass that very
    attribute (``self._block(x, width)`` -> ``self._block(x)``).  Static and
    class methods have no instance: they keep their parameters and names.
    What ``apply`` stores on ``self`` for its helpers, as plain statements
    of its own before the helpers run (``self.num_nodes = x.shape[0]``),
    becomes a local handed to the helpers that read it, each called only
    from ``apply`` (``self._propagate(m, num_nodes=num_nodes)``); a store of a
    parameter that becomes the attribute of its name (``self.features =
    features``) goes (``rules/_stored_state.py``).
Not converted (TODO)
    A list or dict default the body does more than read (``widths + [2]``,
    ``append``, ``==``) or that reads names of the class body; a call of
    another method passing something else for a parameter that becomes an
    attribute, relying on its default, or a method used other than called;
    a method named like an attribute (the field's default would be the method);
    ``*args``/``**kwargs`` read in the body or forwarded into a callee of
    unknown signature, ``*args`` into a callee whose next legacy positional
    argument has another Linen place (``nn.BatchNorm``'s ``batch_stats``) or
    followed by keyword-only parameters; a parameter with conflicting
    evidence (used as an array and as a Python value); a parameter called
    ``name`` (legacy gave ``name=`` to the module: apply always saw its
    default; Linen's ``name`` is the module's); ``@nn.module_method``
    methods that LU105 (shared_setup) leaves (they still create submodules,
    or build a shared one differently from ``apply``): the decorator goes
    (Linen has none: kept, it would break the import of the whole file)
    and the TODO sits on the method, which raises when called; a class whose methods assign ``self.<name>``
    otherwise (in a branch or loop, in another method, read by a method another method calls, or
    before the store): legacy ran apply on a fresh
    instance, a Linen module raises at the assignment; a classmethod applying
    the class the legacy way (``cls.call(params, x)``); a class-level annotation
    without a value (``features: Sequence[int]``: inert in legacy, a required
    field in Linen).
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from linen_upgrade.rule import FIX_MARK, Context, Example, NoChange, Rule, todo_line
from linen_upgrade.rules._cst import add_import, attribute_uses, is_docstring
from linen_upgrade.rules._definitions import (ModuleParts, class_level, drop_repeated_arguments, is_field,
                                              method_with_attributes, name_clash, stored_on_self)
from linen_upgrade.rules._forwarding import Forwarding
from linen_upgrade.rules._stored_state import thread_stored
from linen_upgrade.rules._modules import split_params

_MODULE_BASES = frozenset({"flax.nn.Module", "flax.nn.base.Module"})
# legacy Module class methods that other libraries spell alike, so LU901 marks them only on a
# name it resolves to a legacy class; a classmethod's ``cls`` is one it cannot resolve
_CLASS_API = ("call", "init", "create")


class ModuleDefinitions(Rule):
    id = "LU101"
    # after the other LU1xx rules, which recognise legacy bodies by their ``apply``
    order = 10
    summary = "Legacy module classes: apply(self, x, features) -> dataclass attributes + @nn.compact __call__(self, x)"
    examples = [
        Example(
            "from flax import nn\n\n\nclass Dense(nn.Module):\n"
            "    def apply(self, inputs, features, use_bias=True):\n"
            "        kernel = self.param('kernel', (inputs.shape[-1], features), init)\n"
            "        y = jnp.dot(inputs, kernel)\n"
            "        if use_bias:\n"
            "            y = y + self.param('bias', (features,), zeros)\n"
            "        return y\n",
            "from flax import nn\nfrom typing import Any\n\n\nclass Dense(nn.Module):\n"
            "    features: Any\n"
            "    use_bias: bool = True\n\n"
            "    @nn.compact\n"
            "    def __call__(self, inputs):\n"
            "        kernel = self.param('kernel', (inputs.shape[-1], self.features), init)\n"
            "        y = jnp.dot(inputs, kernel)\n"
            "        if self.use_bias:\n"
            "            y = y + self.param('bias', (self.features,), zeros)\n"
            "        return y\n",
        ),
        Example(
            "import jax.numpy as jnp\nfrom flax import nn\n\n\nclass Head(nn.Module):\n"
            "    def apply(self, x, context, *args, **kwargs):\n"
            "        return nn.Dense(jnp.concatenate([x, context], -1), *args, **kwargs)\n",
            "import jax.numpy as jnp\nfrom flax import nn\nfrom flax.core import FrozenDict\nfrom typing import Any\n\n\n"
            "class Head(nn.Module):\n"
            "    args: Any = ()\n"
            "    kwargs: Any = FrozenDict()\n\n"
            "    @nn.compact\n"
            "    def __call__(self, x, context):\n"
            "        return nn.Dense(*self.args, **self.kwargs)(jnp.concatenate([x, context], -1))\n",
            name="array input by use, forwarded *args/**kwargs",
        ),
        Example(
            "from flax import nn\n\n\nclass MLP(nn.Module):\n"
            "    def apply(self, x, widths=[8, 4]):\n"
            "        for w in widths:\n            x = nn.Dense(x, w)\n        return x\n",
            "from flax import nn\nimport dataclasses\nfrom typing import Any\n\n\nclass MLP(nn.Module):\n"
            "    widths: Any = dataclasses.field(default_factory=lambda: [8, 4])\n\n"
            "    @nn.compact\n"
            "    def __call__(self, x):\n"
            "        for w in self.widths:\n            x = nn.Dense(x, w)\n        return x\n",
            name="a list default",
        ),
        NoChange("import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def apply(self, fn):\n"
                 "        return fn(self)\n", name="torch"),
    ]


    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        t = _Transformer(self, ctx)
        module = module.visit(t)
        for name, obj in sorted(t.imports):
            module = add_import(module, name, obj)
        return module


class _Transformer(ModuleParts):
    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        if not any(self.is_legacy_class(b.value) for b in original.bases):
            return updated
        body = list(updated.body.body)
        applies = [i for i, s in enumerate(body) if isinstance(s, cst.FunctionDef) and s.name.value == "apply"]
        if not applies:
            return updated
        apply_at = applies[0]
        # what apply keeps on self for its helpers (all in this body: no base class of the run's, and
        # no class of the run deriving from it, whose helpers would not take the value)
        if len(applies) == 1 and stored_on_self(body) and all(
                self.resolve_class(b.value) in _MODULE_BASES for b in original.bases) \
                and self.resolve_class(original.name) not in self.ctx.index.subclassed:
            body = thread_stored(body, apply_at, {a.name for a in split_params(self._apply_params(original)).attrs}) \
                or body
        problem = self._unsupported(original, body, applies)
        if problem:
            self.todo(problem)
            return updated
        params = self._apply_params(original)
        split = split_params(params)
        attr_names = {a.name for a in split.attrs}
        problem = split.problem or self.default_problem(
            body[apply_at], split.attrs, body, self.resolve_class(original.name), params) or name_clash(
            body, attr_names | {p.name for p in (split.star, split.forward) if p is not None})
        if not problem:
            body, problem = drop_repeated_arguments(body, attr_names)
        if problem:
            self.todo(problem)
            return updated
        if split.forward is not None or split.star is not None:
            forwarding = Forwarding(self, split)
            body[apply_at] = body[apply_at].visit(forwarding)
            if forwarding.problem:
                stars = [f"*{split.star.name}"] if split.star is not None else []
                stars += [f"**{split.forward.name}"] if split.forward is not None else []
                self.todo(f"{' and '.join(stars)} forwarded into a call that cannot be split: "
                          f"{forwarding.problem}")
                return updated
        for i, s in enumerate(body):
            if isinstance(s, cst.FunctionDef) and any(
                    (self.resolve(d.decorator) or "").endswith("module_method") for d in s.decorators):
                body[i] = self._unconverted_module_method(s)
        bare = _bare_annotations(original)
        if bare:  # features: Sequence[int] in a legacy class: inert there, a required dataclass field in Linen
            self.todo(f"class-level annotation without a value ({', '.join(bare)}): inert in legacy, a required "
                      "dataclass field in Linen (constructing the module raises): remove it or give it a default")
        for s in body:
            api = _class_api_use(s)
            if api:  # cls.call(params, x): a Linen class has no call, and cls has no attributes yet
                self.todo(f"classmethod {s.name.value} uses {api}, legacy Module API that a Linen module class "
                          "lacks: apply it as cls(<attributes>).apply({'params': params}, <inputs>) or init it")
        apply: cst.FunctionDef = body[apply_at]  # type: ignore[assignment]
        body[apply_at] = self._call_method(apply, split)
        attrs = {a.name for a in split.attrs}
        for i, s in enumerate(body):
            if isinstance(s, cst.FunctionDef) and i != apply_at and s.name.value != "setup" and not class_level(s):
                body[i] = method_with_attributes(s, attrs)
        fields = [self._field(apply, a) for a in split.attrs]
        if split.star is not None:
            fields.append(self._star_field(split.star))
        if split.forward is not None:
            fields.append(self._forward_field(split.forward))
        insert_at = 1 if body and is_docstring(body[0]) else 0
        # above a field another rule added (LU102's ``decode``): one block, no blank line between
        if fields and insert_at < len(body) and not _written(body[insert_at].leading_lines) \
                and not is_field(body[insert_at]):
            body[insert_at] = body[insert_at].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
            if insert_at == 0:  # the blank line goes after the fields
                fields[0] = fields[0].with_changes(leading_lines=())
        body[insert_at:insert_at] = fields
        self.fixed(f"class {original.name.value}: apply -> __call__")
        return updated.with_changes(body=updated.body.with_changes(body=body))


    def _unconverted_module_method(self, fn: cst.FunctionDef) -> cst.FunctionDef:
        """A module method LU105 left, without its decorator: Linen has none, and a kept one would
        break the import of the whole file (every class in it); a plain method that builds
        submodules raises when called instead, and the TODO on it says what to do."""
        message = (f"@nn.module_method {fn.name.value} is a plain method now (Linen has none): move the "
                   "submodules it builds to setup() (Linen builds them only there and in the @compact method, "
                   "and raises when this method is called) and call it with apply(..., method=...)")
        todo = cst.EmptyLine(comment=cst.Comment(todo_line(self.rule.id, message)))
        return fn.with_changes(
            decorators=[d for d in fn.decorators if not (self.resolve(d.decorator) or "").endswith("module_method")],
            leading_lines=[*fn.leading_lines, todo])


def _class_api_use(method: cst.BaseStatement) -> str | None:
    """``cls.call`` in a ``@classmethod`` of a legacy module (``def loss(cls, params, x): return
    cls.call(params, x)``): the first such use, spelled; None when there is none."""
    if not isinstance(method, cst.FunctionDef) or not method.params.params or not any(
            type(d.decorator) is cst.Name and d.decorator.value == "classmethod" for d in method.decorators):
        return None
    receiver = method.params.params[0].name.value
    uses, _ = attribute_uses(method.body, receiver, _CLASS_API)
    return f"{receiver}.{uses[0].attr.value}" if uses else None


def _bare_annotations(node: cst.ClassDef) -> list[str]:
    """The names a class body annotates without a value (``features: Sequence[int]``)."""
    return [a.target.value for stmt in node.body.body if isinstance(stmt, cst.SimpleStatementLine)
            for a in stmt.body if isinstance(a, cst.AnnAssign) and a.value is None and isinstance(a.target, cst.Name)]


def _written(lines: Sequence[cst.EmptyLine]) -> bool:
    """Lines above a statement that the file will show: not only the rules' fix marks (a nested
    class converted first carries one, which the engine drops)."""
    return any(line.comment is None or not line.comment.value.startswith(FIX_MARK.partition("{")[0])
               for line in lines)
