"""LibCST's node classes answer ``isinstance``/``issubclass`` by their hierarchy alone once
``linen_upgrade.transformer`` is imported (``_plain_node_checks``): the same answers as
``ABCMeta``'s as long as no node class has a virtual subclass or a ``__subclasshook__``."""

import abc

import libcst as cst
import pytest

from linen_upgrade import transformer


def _node_classes() -> list[type]:
    found, todo = set(), [cst.CSTNode]
    while todo:
        kind = todo.pop()
        if kind not in found:
            found.add(kind)
            todo.extend(kind.__subclasses__())
    return sorted(found, key=lambda k: (k.__module__, k.__qualname__))


def test_every_node_class_has_the_plain_checks():
    assert all(type(kind) is transformer._NodeMeta for kind in _node_classes())


def test_no_virtual_subclass_or_hook():
    """What ``ABCMeta`` would answer beyond the hierarchy: registered classes, ``__subclasshook__``."""
    for kind in _node_classes():
        registry = abc._get_dump(kind)[0]  # (registry, cache, negative cache, version)
        assert not registry, kind
        assert all("__subclasshook__" not in vars(k) for k in kind.__mro__ if k is not object), kind


def test_answers_follow_the_hierarchy():
    name, call = cst.Name("x"), cst.parse_expression("f(x)")
    assert isinstance(name, cst.BaseExpression) and isinstance(name, cst.BaseAssignTargetExpression)
    assert not isinstance(name, cst.Attribute) and not isinstance(call, cst.BaseStatement)
    assert isinstance(call, (cst.Name, cst.Call)) and not isinstance(3, cst.CSTNode)
    assert issubclass(cst.FunctionDef, cst.BaseCompoundStatement) and not issubclass(cst.Name, cst.BaseStatement)
    for kind in _node_classes():
        for base in (cst.CSTNode, cst.BaseExpression, cst.BaseStatement, cst.BaseSmallStatement):
            assert issubclass(kind, base) == (base in kind.__mro__), (kind, base)


def test_abstract_classes_still_refuse_instances():
    with pytest.raises(TypeError):
        cst.BaseExpression()  # type: ignore[abstract]


def test_a_class_defined_later_inherits_them():
    class Marker(cst.Name):
        pass

    assert type(Marker) is transformer._NodeMeta
    assert isinstance(Marker("x"), cst.Name) and not isinstance(cst.Name("x"), Marker)
