"""Recurrent cells for LU102 (submodule_calls): the legacy static
``Cell.initialize_carry(rng, batch_dims, size[, init_fn])`` -> the Linen
cell's ``initialize_carry(rng, input_shape)`` (ConvLSTM included), and the
carry a cell call reads its ``features`` from.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from linen_upgrade.rule import FastVisitor, RuleTransformer
from linen_upgrade.transformer import target_names
from linen_upgrade.rules._cst import kwarg
from linen_upgrade.rules._initializers import Hidden, Initializers, adapter
from linen_upgrade.rules._modules import CallSpec
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES


class CellCalls(RuleTransformer):
    """The part of LU102's transformer that converts ``initialize_carry``; the
    transformer provides ``_initializers`` (this file's user initializers) and ``hidden_names()``,
    ``_in_legacy_module()`` and ``_linen_ctor()``."""

    _initializers: Initializers | None

    def hidden_names(self) -> Hidden:
        raise NotImplementedError

    def _initialize_carry(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        """``Cell.initialize_carry(rng, batch_dims, size, init_fn)`` (a static method) ->
        ``Cell(features=..., carry_init=init_fn).initialize_carry(rng, input_shape)``:
        Linen reads the batch (and spatial) dimensions off an input shape and the
        features off the cell."""
        func = original.func
        assert isinstance(func, cst.Attribute)
        qual = self.resolve_class(func.value)
        row = BUILTIN_MODULES.get(qual or "")
        if row is None or row.carry_size is None:
            return updated
        bound = _bind_carry_args(updated)
        if bound is None:
            self.todo(f"{qual}.initialize_carry: pass (rng, batch_dims, size[, init_fn])")
            return updated
        dims, size = bound["batch_dims"], bound["size"]
        if row.carry_size == "features":
            # legacy mem_shape = batch_dims + (size,); Linen: input_shape[:-1] + (features,)
            ctor_args = [kwarg("features", size)]
            shape = _concat_shape(dims, [cst.Element(cst.Integer("1"))])
        else:
            # ConvLSTM: legacy mem_shape = batch_dims + size, size = spatial dims + (features,);
            # Linen's is input_shape[:-1] + (features,) whatever the kernel rank, so the input
            # shape is batch_dims + size and kernel_size only needs the right rank
            if isinstance(size, cst.Tuple) and size.elements and not any(
                    isinstance(e, cst.StarredElement) for e in size.elements):
                features = size.elements[-1].value
                kernel = cst.Tuple([cst.Element(cst.Integer("1")) for _ in size.elements[1:]]) \
                    if len(size.elements) > 2 else cst.parse_expression("(1,)")
                tail = [e.with_changes(comma=cst.MaybeSentinel.DEFAULT) for e in size.elements]
            elif isinstance(size, (cst.Name, cst.Attribute)):
                code = cst.Module([]).code_for_node(size)
                features = cst.parse_expression(f"{code}[-1]")
                kernel = cst.parse_expression(f"(1,) * (len({code}) - 1)")
                tail = [cst.StarredElement(size)]
            elif (isinstance(size, cst.BinaryOperation) and isinstance(size.operator, cst.Add)
                  and isinstance(size.right, cst.Tuple) and len(size.right.elements) == 1
                  and isinstance(size.right.elements[0], cst.Element)):
                # spatial + (features,), e.g. x.shape[1:-1] + (4,)
                features = size.right.elements[0].value
                code = cst.Module([]).code_for_node(size.left)
                kernel = cst.parse_expression(f"(1,) * len({code})")
                tail = [cst.StarredElement(size.left), cst.Element(features)]
            else:
                self.todo(f"{qual}.initialize_carry: size is not a tuple or a name: "
                          "construct the cell with features= and pass (*batch_dims, *size)")
                return updated
            ctor_args = [kwarg("features", features), kwarg("kernel_size", kernel)]
            shape = _concat_shape(dims, tail)
        if "init_fn" in bound:
            init = bound["init_fn"]
            if self._initializers is not None and self._initializers.needs_adapter(init, self.hidden_names()):
                init = adapter(init)  # Linen calls carry_init(key, shape, dtype)
            ctor_args.append(kwarg("carry_init", init))
        # the attributes the cell's calls get (in x64 runs legacy carries took jax's default float)
        explicit = CallSpec.builtin(row, self.ctx.index.x64).explicit
        ctor_args.extend(kwarg(k, cst.parse_expression(v)) for k, v in explicit.items())
        if self._in_legacy_module():
            # unbound: inside a compact module a bound helper cell would take the
            # name LSTMCell_0 from the real one (Linen counts constructions)
            ctor_args.append(kwarg("parent", cst.Name("None")))
        cell = cst.Call(func=self._linen_ctor(func.value, qual, row.linen), args=ctor_args)  # type: ignore[arg-type]
        self.fixed(f"{qual}.initialize_carry -> {row.linen}(features=...).initialize_carry")
        return cst.Call(func=cst.Attribute(value=cell, attr=cst.Name("initialize_carry")),
                        args=[cst.Arg(bound["rng"]), cst.Arg(shape)], lpar=updated.lpar, rpar=updated.rpar)


_CARRY_ARGS = ("rng", "batch_dims", "size", "init_fn")


def _bind_carry_args(call: cst.Call) -> dict[str, cst.BaseExpression] | None:
    out: dict[str, cst.BaseExpression] = {}
    for i, a in enumerate(call.args):
        key = a.keyword.value if a.keyword is not None else (_CARRY_ARGS[i] if i < 4 else None)
        if a.star or key not in _CARRY_ARGS or key in out:
            return None
        out[key] = a.value
    return out if {"rng", "batch_dims", "size"} <= set(out) else None


def _concat_shape(dims: cst.BaseExpression, tail: list[cst.BaseElement]) -> cst.Tuple:
    """``batch_dims + tail`` as one tuple literal (``(8, 1)``, ``(*dims, 1)``)."""
    if isinstance(dims, cst.Tuple):
        head: list[cst.BaseElement] = [e.with_changes(comma=cst.MaybeSentinel.DEFAULT) for e in dims.elements]
    else:
        head = [cst.StarredElement(dims)]
    return cst.Tuple([*head, *tail])


def carry_size(fn: cst.FunctionDef, is_cell: Callable[[cst.BaseExpression], bool]) -> cst.BaseExpression | None:
    """The hidden size of the cell ``fn`` makes (``.shared``, no ``features``): the ``size`` of its one
    ``Cell.initialize_carry(rng, batch_dims, size)`` where that is a number, or a name ``fn`` never
    binds (a parameter of ``apply`` becomes an attribute): the legacy cell read it off that carry."""
    sizes: list[cst.BaseExpression | None] = []
    bound: set[str] = set()

    class _Scan(FastVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            if not (isinstance(call.func, cst.Attribute) and call.func.attr.value == "initialize_carry"):
                return
            cell = call.func.value
            if is_cell(cell):  # the legacy static call
                args = _bind_carry_args(call)
                sizes.append(args["size"] if args is not None else None)
            elif isinstance(cell, cst.Call) and is_cell(cell.func):  # as LU102 converted it
                sizes.append(next((a.value for a in cell.args if a.keyword and a.keyword.value == "features"), None))

        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            bound.update(n.value for n in target_names(node.target))

        def visit_For(self, node: cst.For) -> None:
            bound.update(n.value for n in target_names(node.target))

    fn.body.visit(_Scan())
    size = sizes[0] if len(sizes) == 1 else None
    if isinstance(size, cst.Integer) or (isinstance(size, cst.Name) and size.value not in bound):
        return size
    return None


def carry_arg(call: cst.Call) -> cst.BaseExpression | None:
    """The carry argument, if it is a plain name/attribute/subscript (safe to read twice)."""
    carry = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "carry"),
                 call.args[0].value if call.args and call.args[0].keyword is None else None)
    if isinstance(carry, (cst.Name, cst.Attribute, cst.Subscript)):
        return carry
    return None
