"""Module classes defined in the body of another class (``class Outer(nn.Module):`` holding
``class Inner(nn.Module)``), reached as ``self.Inner`` in Outer's methods or as ``Outer.Inner``.

The facts know a file's classes by their own name (``Inner``), wherever they are defined, so
such an attribute names that class when it is the file's only class of the name; a second
class of that name leaves the call to a TODO (which one legacy ran is not known here).
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.facts import joined


def nested_class(node: cst.BaseExpression, owner: cst.ClassDef | None, self_name: str | None,
                 module: cst.Module | None, facts) -> tuple[str | None, bool]:
    """(the qualified name of the class ``node`` reaches, or None; whether it names a nested
    class at all) for ``<self_name>.Inner`` (``owner`` the class around the method whose first
    parameter is ``self_name``) or ``Outer.Inner`` (``Outer`` a module-level class of ``module``)."""
    if not (isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name)):
        return None, False
    base = node.value.value
    if base != self_name:
        owner = next((s for s in module.body if isinstance(s, cst.ClassDef) and s.name.value == base), None) \
            if module is not None else None
    name = node.attr.value
    if owner is None or not any(isinstance(s, cst.ClassDef) and s.name.value == name for s in owner.body.body):
        return None, False
    if sum(c.name == name for c in facts.classes) != 1:
        return None, True
    return joined(facts.module_name, name), True
