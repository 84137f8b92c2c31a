"""LU302's optimizers kept in an attribute of a plain class of the file
(``self.optimizer = d.create(p)`` in ``Trainer.__init__``, stepped in its
methods, read as ``trainer.optimizer.target`` by code holding an instance).

Which values are ``Trainer``'s optimizer attribute is decided by data flow
inside the file: ``self.<attr>`` in the methods of the class (or of its
subclasses defined here), and ``<name>.<attr>`` where every binding of
``<name>`` is a call of the class.  Anything else that could reach the
attribute makes the optimizer stay legacy (``problems``): the class used in
another file of the run, an instance or ``self`` handed to other code, the
attribute read or assigned on a value that is not known to be an instance.
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rule import FastVisitor
from linen_upgrade.rules._optim import assigned_names


class Attributes(FastVisitor):
    """What the file does with the attributes and instances of its plain classes."""

    def __init__(self) -> None:
        super().__init__()
        self.bases: dict[str, set[str]] = {}  # class -> its bases, as written
        self.owner: dict[int, str] = {}  # id(self.<attr> in a method) -> its class
        self.by_attr: dict[str, list[cst.Attribute]] = {}  # attribute name -> every node reading or setting it
        # name -> the values assigned to it (None: bound otherwise, a parameter, a loop variable, ...)
        self.bound: dict[str, list[cst.BaseExpression | None]] = {}
        self.instance_uses: dict[str, list[cst.Name]] = {}  # name -> its reads not as `name.<attr>`
        self.bare_self: set[str] = set()  # classes whose methods hand `self` itself to other code
        self._classes: list[str] = []
        self._in_method: list[bool] = []
        self._bases_of: set[int] = set()  # ids of `x` in `x.attr`
        self._instances: dict[str, frozenset[str]] = {}

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.append(node.name.value)
        self.bases[node.name.value] = {cst.Module([]).code_for_node(a.value) for a in node.bases}

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        # a method's body: directly in a class; a function nested in it keeps its `self`
        self._in_method.append(bool(self._classes) or bool(self._in_method and self._in_method[-1]))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._in_method.pop()

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            if isinstance(t.target, cst.Name):
                self.bound.setdefault(t.target.value, []).append(node.value)
                self._bases_of.add(id(t.target))  # a binding, not a use
            else:
                self._bound_otherwise(t.target)

    def _bound_otherwise(self, target: cst.CSTNode) -> None:
        for name in assigned_names(target):
            self.bound.setdefault(name, []).append(None)

    def visit_Param(self, node: cst.Param) -> None:
        self._bound_otherwise(node.name)
        self._bases_of.add(id(node.name))  # a binding, not a use

    def visit_For(self, node: cst.For) -> None:
        self._bound_otherwise(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._bound_otherwise(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._bound_otherwise(node.name)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bound_otherwise(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._bound_otherwise(node.target)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.by_attr.setdefault(node.attr.value, []).append(node)
        self._bases_of.add(id(node.value))
        if isinstance(node.value, cst.Name) and node.value.value == "self" and self._classes \
                and self._in_method and self._in_method[-1]:
            self.owner[id(node)] = self._classes[-1]

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "super":
            self._bases_of.update(id(a.value) for a in node.args)  # super(Trainer, self).__init__(...)

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) in self._bases_of:
            return
        if node.value == "self" and self._classes and self._in_method and self._in_method[-1]:
            self.bare_self.add(self._classes[-1])
        self.instance_uses.setdefault(node.value, []).append(node)

    def family(self, cls: str) -> set[str]:
        """``cls`` and the classes of this file deriving from it."""
        found, grew = {cls}, True
        while grew:
            more = {c for c, bs in self.bases.items() if bs & found} - found
            found |= more
            grew = bool(more)
        return found

    def instances(self, cls: str) -> frozenset[str]:
        """Names every binding of which is a call of ``cls`` (or a class deriving from it); asked for
        every attribute the optimizer rule reads, so kept once made (the file is read by then)."""
        if cls not in self._instances:
            family = self.family(cls)
            self._instances[cls] = frozenset(
                n for n, values in self.bound.items()
                if all(isinstance(v, cst.Call) and isinstance(v.func, cst.Name) and v.func.value in family
                       for v in values))
        return self._instances[cls]

    def holder(self, node: cst.BaseExpression) -> tuple[str, str] | None:
        """(class, attribute) of ``self.<attr>`` in a method, else None (instances: ``holds``)."""
        if isinstance(node, cst.Attribute) and id(node) in self.owner:
            return self.owner[id(node)], node.attr.value
        return None

    def holds(self, node: cst.BaseExpression, kept: set[tuple[str, str]]) -> bool:
        """Is ``node`` one of the ``kept`` (class, attribute) pairs: ``self.<attr>`` in the methods
        of the class or a subclass, or ``<instance>.<attr>``?"""
        if not isinstance(node, cst.Attribute) or not kept:
            return False
        for cls, attr in kept:
            if node.attr.value != attr:
                continue
            if id(node) in self.owner and self.owner[id(node)] in self.family(cls):
                return True
            if isinstance(node.value, cst.Name) and node.value.value in self.instances(cls):
                return True
        return False

    def problems(self, kept: set[tuple[str, str]], module: cst.Module, used_elsewhere) -> list[str]:
        """Why the optimizer attributes ``kept`` cannot be followed (nothing: they can)."""
        out: list[str] = []
        for cls, attr in sorted(kept):
            family = self.family(cls)
            if any(used_elsewhere(c) for c in family):
                out.append(f"{cls} keeps the optimizer in self.{attr} and is used in other files")
            if self.bare_self & family:
                out.append(f"{cls} hands self to other code, which may read self.{attr}")
            for base in sorted(set().union(*(self.bases[c] for c in family)) - set(self.bases) - {"object"}):
                out.append(f"{cls} derives from {base}, defined elsewhere, whose methods may read self.{attr}")
            for name in sorted(self.instances(cls)):
                if self.instance_uses.get(name):
                    out.append(f"{name} (a {cls} holding the optimizer in .{attr}) is passed on or used whole")
            for node in self.by_attr.get(attr, []):
                if not self.holds(node, {(cls, attr)}):
                    out.append(f"{module.code_for_node(node)}: .{attr} of a value that is not known to be a "
                               f"{cls}")
        return out

