"""The part of LU202's (model_apply) transformer for values that name
submodules by legacy paths: ``nn.Collection`` state (``state.as_dict()``,
``state['/Block_1/BatchNorm_1']``), captured outputs and
``model.truncate_at(path)`` -> Linen variable collections and intermediates,
nested by Linen names (``_usage_paths.linen_path``).
"""

from __future__ import annotations

import re

import libcst as cst

from linen_upgrade.rule import FastVisitor
from linen_upgrade.rules._usage import (CAPTURE, COLLECTION_METHODS, LEAF_READERS, MODEL, STATE, TRUNC, Analysis,
                                        UsageTransformer, parens)
from linen_upgrade.rules._usage_calls import subscript
from linen_upgrade.rules._usage_paths import legacy_key, linen_path, numbered_shared, renumbered
from linen_upgrade.rules._usage_types import string_value

# a legacy auto-name past the first submodule (``Dense_2``): the first, ``_0``, is the first of its class too
_AUTO_NAME = re.compile(r"([A-Z]\w*)_([1-9]\d*)")
# any legacy auto-name, a part of a legacy Collection key ('/Block_0/BatchNorm_1')
_MODULE_NAME = re.compile(r"[A-Z]\w*_\d+")


def renumbered_keys(module: cst.Module, a: Analysis) -> bool:
    """Does ``module`` index something by a legacy auto-name that Linen may number otherwise, or by
    a legacy Collection key naming auto-named modules (``state['/Block_1/BatchNorm_1']``)?"""
    keys: list[tuple[str, cst.SimpleString | None]] = []
    flat: list[cst.Subscript] = []

    class _Keys(FastVisitor):
        def visit_Subscript(self, node: cst.Subscript) -> None:
            if _flat_key(node) or _number_key(node) is not None and numbered_shared(a):
                flat.append(node)

        def visit_SimpleString(self, node: cst.SimpleString) -> None:
            key = auto_name(node)
            if key is not None:
                keys.append(key)

        def visit_FormattedString(self, node: cst.FormattedString) -> None:
            self.visit_SimpleString(node)  # type: ignore[arg-type]

    module.visit(_Keys())
    return bool(flat) or bool(keys) and any(renumbered(a, prefix) for prefix in {prefix for prefix, _ in keys})


def _flat_key(node: cst.Subscript) -> bool:
    """``x['/Block_1/BatchNorm_1']``, ``x[f'/Block_{i}/BatchNorm_0']``: a legacy Collection key with an
    auto-named module in it."""
    key = legacy_key(node)
    if key is not None:
        return any(_MODULE_NAME.fullmatch(part) for part in key.split("/"))
    return _formatted_key(node) is not None


def _number_key(node: cst.Subscript) -> str | None:
    """``params['0']`` -> '0': the name legacy gave a ``.shared()`` module made without one."""
    key = node.slice[0].slice if len(node.slice) == 1 else None
    value = key.value if isinstance(key, cst.Index) else None
    text = string_value(value) if isinstance(value, cst.SimpleString) else None
    return text if isinstance(text, str) and text.isdigit() else None


def _formatted_key(node: cst.Subscript) -> str | None:
    """``x[f'/Block_{i}/BatchNorm_0']`` -> its source: a legacy Collection key built at run time."""
    key = node.slice[0].slice if len(node.slice) == 1 else None
    value = key.value if isinstance(key, cst.Index) else None
    if isinstance(value, cst.FormattedString) and value.parts and isinstance(value.parts[0], cst.FormattedStringText) \
            and re.match(r"/[A-Z]\w*_", value.parts[0].value):
        return cst.Module([]).code_for_node(value)
    return None


def auto_name_key(node: cst.Subscript) -> tuple[str, cst.SimpleString | None] | None:
    """``params['Dense_2']`` -> ('Dense', the key); ``params[f'Conv_{i}']`` -> ('Conv', None)."""
    key = node.slice[0].slice if len(node.slice) == 1 else None
    return auto_name(key.value) if isinstance(key, cst.Index) else None


def auto_name(value: cst.BaseExpression) -> tuple[str, cst.SimpleString | None] | None:
    """``'Dense_2'`` -> ('Dense', the string); ``f'Conv_{i}'`` -> ('Conv', None)."""
    if isinstance(value, cst.SimpleString):
        match = _AUTO_NAME.fullmatch(str(string_value(value)))
        return (match.group(1), value) if match else None
    if isinstance(value, cst.FormattedString) and len(value.parts) > 1 \
            and isinstance(value.parts[0], cst.FormattedStringText) \
            and isinstance(value.parts[1], cst.FormattedStringExpression):
        match = re.fullmatch(r"([A-Z]\w*)_", value.parts[0].value)
        return (match.group(1), None) if match else None
    return None


def outputs(value: cst.BaseExpression, path: tuple[str, ...], listed: bool) -> cst.BaseExpression:
    """``value[p1][p2]['__call__']``: the outputs Linen sowed for that module (a
    tuple; legacy kept a list)."""
    for part in (*path, "__call__"):
        value = subscript(value, part)
    return cst.Call(cst.Name("list"), [cst.Arg(value)]) if listed else value


class Collections(UsageTransformer):
    """Collection keys, ``as_dict()``, captured outputs and ``truncate_at``; LU202's
    transformer calls ``_truncate``/``_collection`` from its ``leave_Call``."""

    def _truncate(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        """``model.truncate_at('/Dense_2')`` -> ``model`` (the params): its calls
        capture the intermediates and read that module's outputs."""
        t = self.a.type_at(original)
        path = t.items[0] if t is not None and t.kind == TRUNC else None
        if path is None:
            self.todo("model.truncate_at(<not a literal path>): apply(..., capture_intermediates=True, "
                      "mutable=['intermediates']) and read vars['intermediates'][...]['__call__'][0]")
            return updated
        if linen_path(self.a, t.ref, path) is None:
            self.todo(f"model.truncate_at({path!r}): the Linen name of that submodule is not known statically "
                      "(a loop, condition, .partial/.shared or helper method in apply, or no such path); read "
                      "vars['intermediates'][...]['__call__'] of apply(..., capture_intermediates=True, "
                      "mutable=['intermediates'])")
            return updated
        self.fixed("model.truncate_at(path) -> params (its calls capture intermediates)")
        return parens(updated.func.value)  # type: ignore[attr-defined]

    def _collection(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression | None:
        """``state.as_dict()`` -> ``state`` where only its leaves are read; None: not one."""
        func = original.func
        if not isinstance(func, cst.Attribute) or func.attr.value not in COLLECTION_METHODS:
            return None
        base = self.a.type_at(func.value)
        if base is None or base.kind not in (STATE, CAPTURE):
            return None
        parent = self.a.parent.get(id(original))
        if func.attr.value == "as_dict" and not original.args:
            if isinstance(parent, cst.Subscript) and parent.value is original and legacy_key(parent):
                return updated  # the key is translated with the subscript
            if isinstance(parent, cst.Arg) and base.kind == STATE:
                call = self.a.parent.get(id(parent))
                qual = self.a.qual(call.func, self.a.scope_of[id(call)]) \
                    if isinstance(call, cst.Call) and isinstance(call.func, (cst.Name, cst.Attribute)) else None
                if qual in LEAF_READERS:
                    self.fixed("state.as_dict() -> state (its leaves)")
                    return parens(updated.func.value)  # type: ignore[attr-defined]
            if base.kind == STATE and self._truth_tested(original, parent):
                self.fixed("state.as_dict() tested for emptiness -> state (empty exactly when the legacy one was)")
                return parens(updated.func.value)  # type: ignore[attr-defined]
        self.todo(f"nn.Collection.{func.attr.value}: the state is a Linen variable collection now, "
                  "nested {'Block_0': {'BatchNorm_0': ...}} with per-class numbering, not flat "
                  "'/Block_4/BatchNorm_1' keys (flax.traverse_util.flatten_dict(state, sep='/'))")
        return updated

    def _truth_tested(self, node: cst.BaseExpression, parent: cst.CSTNode | None) -> bool:
        """Is ``node`` only tested for truth (``if state.as_dict():``, ``not``, ``assert``, ``bool(...)``,
        an operand of ``and``/``or`` that is)?"""
        if isinstance(parent, (cst.If, cst.While, cst.IfExp, cst.Assert)):
            return parent.test is node
        if isinstance(parent, cst.UnaryOperation):
            return isinstance(parent.operator, cst.Not)
        if isinstance(parent, cst.BooleanOperation):
            return self._truth_tested(parent, self.a.parent.get(id(parent)))
        if isinstance(parent, cst.Arg):
            call = self.a.parent.get(id(parent))
            return isinstance(call, cst.Call) and len(call.args) == 1 and id(call) in self.a.scope_of \
                and self.a.builtin(call, self.a.scope_of[id(call)]) == "bool"
        return False

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript) -> cst.BaseExpression:
        """``state['/Block_4/BatchNorm_1']`` (or ``.as_dict()[...]``) -> ``state['Block_0']['BatchNorm_0']``;
        captured outputs ``outputs['/Dense_2']`` -> ``list(outputs['Dense_1']['__call__'])``."""
        result = super().leave_Subscript(original, updated)
        auto = auto_name_key(original) if result is updated and id(original) in self.a.scope_of else None
        if auto is not None:
            return self._auto_named(original, updated, *auto)
        number = _number_key(original) if result is updated and id(original) in self.a.scope_of else None
        if number is not None and numbered_shared(self.a):
            self.todo(f"the legacy key {number!r}: legacy named a .shared() module made without a name by a bare "
                      "number, Linen by its class (Dense_0): check which submodule this names")
            return updated
        key = legacy_key(original)
        formatted = _formatted_key(original) if key is None and result is updated else None
        if formatted is not None and id(original) in self.a.scope_of:
            t = self.a.type_at(original.value)
            if t is None or t.kind in (STATE, CAPTURE):
                self.todo(f"the legacy key {formatted}: Linen collections are nested dicts with per-class "
                          "numbering (state['Block_0']['BatchNorm_0']); build the path by hand")
        if key is None or id(original) not in self.a.scope_of or result is not updated:
            return result
        holder, new_holder = original.value, updated.value
        if isinstance(holder, cst.Call) and isinstance(holder.func, cst.Attribute) \
                and holder.func.attr.value == "as_dict" and not holder.args:
            holder, new_holder = holder.func.value, new_holder.func.value  # type: ignore[attr-defined]
        t = self.a.type_at(holder)
        if t is None and any(_MODULE_NAME.fullmatch(part) for part in key.split("/")):
            # a value not followed here (another file's state, a function's parameter)
            self.todo(f"the legacy key {key!r}: if this reads nn.Collection state or captured outputs, Linen's "
                      "are nested dicts with per-class numbering (state['Block_0']['BatchNorm_0'])")
        if t is None or t.kind not in (STATE, CAPTURE):
            return updated
        path = linen_path(self.a, t.ref, key)
        if path is None:
            self.todo(f"the legacy key {key!r}: Linen collections are nested dicts with per-class numbering; "
                      "the Linen name of that module is not known statically here")
            return updated
        self.fixed("legacy Collection key -> Linen path")
        if t.kind == STATE:
            for part in path:
                new_holder = subscript(new_holder, part)
            return new_holder.with_changes(lpar=updated.lpar, rpar=updated.rpar)
        return outputs(new_holder, path, not self._indexed(original))

    def leave_SimpleString(self, original: cst.SimpleString, updated: cst.SimpleString) -> cst.SimpleString:
        """A legacy auto-name anywhere but a subscript's key (renamed or marked with its subscript):
        ``{'LayerNorm_1': ...}``, ``params.get('Dense_2')``, ``'Dense_2' in params``, a
        ``flatten_dict`` path ``('Dense_2', 'kernel')``; where it goes is not followed, so where Linen
        may number that module otherwise a TODO says so."""
        auto = auto_name(original) if id(original) in self.a.scope_of else None
        parent = self.a.parent.get(id(original))
        if auto is not None and not (isinstance(parent, cst.Index)
                                     and isinstance(self.a.parent.get(id(parent)), cst.SubscriptElement)):
            self._renumbered_todo(*auto)
        return updated

    def leave_FormattedString(self, original: cst.FormattedString,
                              updated: cst.FormattedString) -> cst.FormattedString:
        self.leave_SimpleString(original, updated)  # type: ignore[arg-type]
        return updated

    def _auto_named(self, original: cst.Subscript, updated: cst.Subscript, prefix: str,
                    literal: cst.SimpleString | None) -> cst.BaseExpression:
        """``model.params['Block_1']['Dense_2']`` -> the Linen name where the order ``apply`` creates
        the submodules in is known; elsewhere a TODO where a module class of the file creates
        submodules of several classes unnamed (legacy counted them together, Linen per class)."""
        path = self._params_path(original) if literal is not None else None
        if path is not None:
            name = path[-1]
            if name != literal.evaluated_value:  # type: ignore[union-attr]
                self.fixed(f"params[{literal.value}] -> params[{name!r}] (Linen numbers submodules per class)")  # type: ignore[union-attr]
                new_key = literal.with_changes(value=f"{literal.quote}{name}{literal.quote}")  # type: ignore[union-attr]
                return updated.with_changes(slice=[updated.slice[0].with_changes(
                    slice=updated.slice[0].slice.with_changes(value=new_key))])
            return updated
        self._renumbered_todo(prefix, literal)
        return updated

    def _renumbered_todo(self, prefix: str, literal: cst.SimpleString | None) -> None:
        if renumbered(self.a, prefix):
            key = literal.value if literal is not None else f"f'{prefix}_{{...}}'"
            self.todo(f"the legacy auto-name {key}: legacy numbered a module's unnamed submodules with one "
                      f"counter, Linen per class ({prefix}_0, {prefix}_1, ... counting {prefix} modules only): "
                      "check which submodule this names")

    def _params_path(self, node: cst.Subscript) -> tuple[str, ...] | None:
        """The Linen module path of ``model.params['Block_1']['Dense_2']`` (literal keys down from the
        params of a Model whose module is known); None for any other subscript."""
        keys: list[str] = []
        value: cst.BaseExpression = node
        while isinstance(value, cst.Subscript):
            key = value.slice[0].slice if len(value.slice) == 1 else None
            if not (isinstance(key, cst.Index) and isinstance(key.value, cst.SimpleString)):
                return None
            keys.append(str(key.value.evaluated_value))
            value = value.value
        if not (isinstance(value, cst.Attribute) and value.attr.value == "params"):
            return None
        t = self.a.type_at(value.value)
        if t is None or t.kind != MODEL or t.ref is None:
            return None
        return linen_path(self.a, t.ref, "/" + "/".join(reversed(keys)))

    def _indexed(self, node: cst.CSTNode) -> bool:
        """``node[0]``: an integer index reads a tuple as it read the legacy list."""
        parent = self.a.parent.get(id(node))
        return isinstance(parent, cst.Subscript) and parent.value is node and len(parent.slice) == 1 \
            and isinstance(parent.slice[0].slice, cst.Index) and isinstance(parent.slice[0].slice.value, cst.Integer)
