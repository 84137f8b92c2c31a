"""A hook calling ``x.visit(self)`` during a ``FastVisitor``/``FastTransformer`` walk: the class walks
that subtree itself (as it walks from the root), calling the hooks LibCST's own walk would call, in
its order; a subclass's ``on_visit`` calling ``super().on_visit(node)`` still gets the hook as written."""

import libcst as cst

from linen_upgrade.transformer import FastTransformer, FastVisitor

SOURCE = '''
@dec(a)
def f(x, y=z):
    def g(w):
        return [v for v in w if v]
    return g(x) + y, (lambda q: q)(x)

class C(B):
    k = f(1, *s, **t)
'''


def _calls(base: type) -> list[str]:
    class Nested(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            self.seen.append(f"def {node.name.value}")
            for d in node.decorators:
                d.visit(self)
            node.body.visit(self)  # walked again by the hook, then not by the walk
            return False

        def visit_Name(self, node: cst.Name) -> None:
            self.seen.append(node.value)

        def leave_Call(self, original_node: cst.Call, *updated: cst.Call) -> cst.Call:
            self.seen.append("call")
            return updated[0] if updated else original_node  # type: ignore[return-value]

    visitor = Nested()
    cst.parse_module(SOURCE).visit(visitor)
    return visitor.seen


def test_a_hooks_walk_of_a_subtree_calls_what_libcsts_walk_calls():
    assert _calls(FastVisitor) == _calls(cst.CSTVisitor)
    assert _calls(FastTransformer) == _calls(cst.CSTTransformer)


class _Renames(FastTransformer):
    """Renames ``x`` inside the bodies it walks itself, and keeps the new bodies."""

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        return updated_node.with_changes(value="renamed") if original_node.value == "x" else updated_node

    def leave_FunctionDef(self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef) -> cst.FunctionDef:
        return updated_node.with_changes(body=original_node.body.visit(self))


class _PlainRenames(cst.CSTTransformer):
    leave_Name = _Renames.leave_Name
    leave_FunctionDef = _Renames.leave_FunctionDef


def test_a_hooks_transformed_subtree_is_libcsts():
    module = cst.parse_module(SOURCE)
    assert module.visit(_Renames()).code == module.visit(_PlainRenames()).code
    assert "renamed" in module.visit(_Renames()).code


class _Enters:
    """Notes each name entered in its own ``on_visit``, then hands the node to its base's."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Name):
            self.seen.append(node.value)
        return super().on_visit(node)  # type: ignore[misc]

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        node.body.visit(self)  # type: ignore[arg-type]
        return False


class _FastEnters(_Enters, FastVisitor):
    pass


class _PlainEnters(_Enters, cst.CSTVisitor):
    pass


def test_super_on_visit_is_the_hook_not_a_walk():
    fast, plain = _FastEnters(), _PlainEnters()
    cst.parse_module(SOURCE).visit(fast)
    cst.parse_module(SOURCE).visit(plain)
    assert fast.seen == plain.seen
    assert fast.seen.count("q") == 1 and fast.seen.count("x") == 3  # the lambda's body once, its parameter never
