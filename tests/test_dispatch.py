"""The shortcuts rule passes take (issue 15): they must change nothing a rule sees or writes.

``transformer._Dispatch`` leaves whitespace, punctuation and nodes holding only those as they are
in a pass with no hook for them, and walks the tree itself instead of through LibCST's rebuilding
walk; ``analysis.walk.nodes`` lists a file's ``ast`` tree once for the facts' passes.  No timing
here: the figures are in docs/performance.md."""
from __future__ import annotations

import ast

import libcst as cst

from linen_upgrade.analysis.walk import nodes
from linen_upgrade.transformer import FastTransformer, FastVisitor

SOURCE = """\
import jax.numpy as jnp  # comment


def f(x, *, scale=(1.5)):
    if x is None:
        pass
    for i in range(3):  # loop
        if i:
            continue
        break
    y = jnp.sum((x), axis=(0)) * scale + 2j + ...
    return g(y, 'tag', name=("n"))
"""


class _Calls(FastTransformer):
    """A pass with one hook: each call gets a marker keyword, so the pass does change the tree."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[cst.Name] = []

    def visit_Name(self, node: cst.Name) -> None:
        self.names.append(node)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        return updated.with_changes(args=[*updated.args, cst.Arg(cst.Integer("0"), keyword=cst.Name("k"))])


class _PlainCalls(cst.CSTTransformer):
    """The same pass through LibCST's own dispatch, every node visited and rebuilt."""

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        return updated.with_changes(args=[*updated.args, cst.Arg(cst.Integer("0"), keyword=cst.Name("k"))])


def test_a_pass_skipping_tokens_and_leaves_writes_what_libcst_writes():
    module = cst.parse_module(SOURCE)
    fast = _Calls()
    new = module.visit(fast)
    assert new.code == module.visit(_PlainCalls()).code
    assert new.code.count(", k = 0)") == 3  # the hook ran: range(...), jnp.sum(...), g(...)
    # every name was still shown to visit_Name, the parenthesized (x) included
    assert [n.value for n in fast.names] == [n.value for n in _names(module)]
    assert any(n.lpar for n in fast.names if n.value == "x")


def _names(module: cst.Module) -> list[cst.Name]:
    found: list[cst.Name] = []

    class Names(cst.CSTVisitor):  # LibCST's own dispatch
        def visit_Name(self, node: cst.Name) -> None:
            found.append(node)

    module.visit(Names())
    return found


def test_a_visitor_with_a_hook_on_parentheses_still_sees_them():
    seen: list[str] = []

    class Parens(FastVisitor):
        def visit_LeftParen(self, node: cst.LeftParen) -> None:
            seen.append("(")

    cst.parse_module(SOURCE).visit(Parens())
    # the parentheses around 1.5, x, 0 and "n" (a call's and a definition's are not nodes)
    assert len(seen) == 4


def test_nodes_is_ast_walk_listed_once_per_tree():
    tree = ast.parse(SOURCE)
    listed = nodes(tree)
    assert len(listed) == len(list(ast.walk(tree)))
    assert all(a is b for a, b in zip(listed, ast.walk(tree)))
    assert nodes(tree) is listed  # the same tree again: not walked again
    other = ast.parse(SOURCE)
    assert nodes(other) is not listed and nodes(other)[0] is other


# every kind of node whose fields LibCST visits in an order of its own: decorators before the
# name, an f-string's format spec (absent in the first f-string part, present in a later one),
# a single ``import *`` against a sequence of names, ``match``, keyword-only and positional-only
# parameters, slices, comprehensions, lambdas, ``with`` items, ``try``/``except*``
EVERY_KIND = """\
from __future__ import annotations
from os import *
from . import a as b, c
import x.y as z


@dec(1)
@other
class C(Base, metaclass=M):
    attr: int = 3

    async def m(self, a, /, b=2, *args, c, d=4, **kw) -> list[int]:
        async with ctx() as (p, q), other:
            async for i in aiter():
                yield (await i)
        return [j for j in range(3) if j if not j]


def f(x):
    s = f"{x}" + f"{x!r:>{width}} and {x=}" + rf"{x:{'a'}.{3}f}"
    del s[1:2, ::3], t
    global g
    y = lambda q, *, r=1: q or r and not q
    z = {k: v for k, v in d.items()} | {*a, *b} | {**e}
    w = (yield from g) if x else x[0] @ x[-1] ** 2 // 3
    x += 1; x <<= 2
    assert x > 0, "no"
    try:
        raise ValueError from None
    except* (TypeError, ValueError) as e:
        pass
    else:
        nonlocal_ = ...
    finally:
        print(*w, sep="", **kw)
    while (n := x) is not None:
        break
    match x:
        case {"a": 1, **rest}:
            pass
        case Point(x=0, y=[1, *others]) | None as p if p:
            pass
        case _:
            return
"""


class _Record:
    """Every node entered and left (a mixin: a ``_Dispatch`` class takes it over too)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.seen.append(("enter", id(node)))
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.seen.append(("leave", id(original_node)))


class _Order(_Record, cst.CSTVisitor):
    """Through LibCST's own walk."""


class _FastOrder(_Record, FastVisitor):
    """Through ``_Dispatch``'s walk."""


class _FastOrderTransformer(_Record, FastTransformer):
    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> cst.CSTNode:  # type: ignore[override]
        super().on_leave(original_node)
        return updated_node


def test_the_walk_enters_and_leaves_every_node_in_libcsts_order():
    for source in (EVERY_KIND, SOURCE):
        module = cst.parse_module(source)
        plain, fast, fast_t = _Order(), _FastOrder(), _FastOrderTransformer()
        module.visit(plain)
        module.visit(fast)
        result = module.visit(fast_t)
        assert len(plain.seen) > 2 * len(source.split())  # the whitespace and punctuation too
        assert fast.seen == plain.seen
        assert fast_t.seen == plain.seen
        assert result is module  # nothing changed: no node rebuilt


class _Edits(FastTransformer):
    """Removes ``del`` statements, turns each ``pass`` into two statements, renames ``x``."""

    def leave_Del(self, original: cst.Del, updated: cst.Del) -> cst.RemovalSentinel:
        return cst.RemoveFromParent()

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        if isinstance(original.body[0], cst.Pass):
            return cst.FlattenSentinel([updated, cst.SimpleStatementLine([cst.Expr(cst.Name("done"))])])
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        return updated.with_changes(value="renamed") if original.value == "x" else updated


class _PlainEdits(cst.CSTTransformer):
    leave_Del = _Edits.leave_Del
    leave_SimpleStatementLine = _Edits.leave_SimpleStatementLine
    leave_Name = _Edits.leave_Name


def test_removals_flattened_statements_and_edits_come_out_as_libcsts():
    module = cst.parse_module(EVERY_KIND)
    new = module.visit(_Edits())
    assert new.code == module.visit(_PlainEdits()).code
    assert "del " not in new.code and new.code.count("done") == 3 and "renamed" in new.code
    # the statements nothing touched are the same objects as before: only changed parents are rebuilt
    assert new.body[0] is module.body[0]


def test_a_hook_walking_a_subtree_again_with_its_own_visitor():
    """``node.body.visit(self)`` from inside a hook (some rules' helper passes do) is LibCST's
    walk of that subtree; the outer walk goes on as before."""

    class Twice(FastVisitor):
        def __init__(self) -> None:
            super().__init__()
            self.names: list[str] = []
            self.inner = False

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            if not self.inner:
                self.inner = True
                node.body.visit(self)
                self.inner = False
            return True

        def visit_Name(self, node: cst.Name) -> None:
            self.names.append(node.value)

    visitor = Twice()
    cst.parse_module("def f(a):\n    return b\n").visit(visitor)
    assert visitor.names == ["b", "f", "a", "b"]


def test_a_tree_read_beside_another_file_is_its_own_rewrites_until_its_bytes_change():
    """``engine.tree_of``: the rules' readings of other files and a file's own rewrite share one
    parse per run; different bytes, or a new run (a new index), are parsed again."""
    from linen_upgrade.engine import tree_of
    from linen_upgrade.index import ProjectIndex

    run, data = ProjectIndex.build([]), b"import flax\n\nx = 1\n"
    read = tree_of("models.py", data, run)  # another file's rule reads models.py
    assert tree_of("models.py", data, run, keep=False) is read  # models.py's own rewrite
    edited = tree_of("models.py", b"import flax\n\nx = 2\n", run, keep=False)
    assert edited is not read and edited.code.endswith("x = 2\n")
    assert tree_of("models.py", data, ProjectIndex.build([])) is not read
    own = tree_of("train.py", data, run, keep=False)  # a rewrite keeps nothing for later
    assert tree_of("train.py", data, run, keep=False) is not own and own.code == data.decode()


def test_parents_are_libcsts_parent_node_provider():
    from libcst.metadata import MetadataWrapper, ParentNodeProvider

    from linen_upgrade.transformer import parents

    shared = cst.Name("shared")  # one node held in two places (a rule may build such a tree)
    module = cst.parse_module(EVERY_KIND)
    module = module.with_changes(body=[*module.body, cst.SimpleStatementLine([cst.Expr(shared)]),
                                       cst.SimpleStatementLine([cst.Expr(cst.Call(shared, args=[cst.Arg(shared)]))])])
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(ParentNodeProvider)
    found = parents(module)
    assert {id(k): id(v) for k, v in found.items()} == {id(k): id(v) for k, v in expected.items()}
    assert type(found[shared]) is cst.Call  # the parent left last: the call, after its argument


class _Hooked:
    """Hooks on nodes that are not whitespace or punctuation, recording each call (a mixin)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []

    def visit_Name(self, node: cst.Name) -> None:
        self.seen.append(("Name", id(node)))

    def visit_Call(self, node: cst.Call) -> bool:
        self.seen.append(("Call", id(node)))
        return not (type(node.func) is cst.Name and node.func.value == "aiter")  # one subtree not entered

    def leave_Call(self, original_node: cst.Call) -> None:
        self.seen.append(("/Call", id(original_node)))

    def leave_Attribute(self, original_node: cst.Attribute) -> None:
        self.seen.append(("/Attribute", id(original_node)))

    def visit_FormattedStringExpression(self, node: cst.FormattedStringExpression) -> None:
        self.seen.append(("FormattedStringExpression", id(node)))

    def visit_Param(self, node: cst.Param) -> None:
        self.seen.append(("Param", id(node)))


class _HookedPlain(_Hooked, cst.CSTVisitor):
    """Through LibCST's own walk."""


class _HookedFast(_Hooked, FastVisitor):
    """Whitespace and punctuation left out of the walk, hooks called from the table."""


def test_a_walk_leaving_whitespace_out_calls_the_hooks_libcsts_walk_calls():
    from linen_upgrade import transformer

    assert _HookedFast._skips_tokens and not _FastOrder._skips_tokens  # (a class of its own on_visit walks them)
    module = cst.parse_module(EVERY_KIND)
    plain = _HookedPlain()
    module.visit(plain)
    assert len(plain.seen) > 50
    for _ in range(2):  # the second time, each node's children come from the cache
        fast = _HookedFast()
        module.visit(fast)
        assert fast.seen == plain.seen
    assert transformer._KIDS
    transformer.forget_children()
    assert not transformer._KIDS


def test_a_node_is_walked_the_same_after_its_tree_was_rewritten():
    """The children cache holds nodes, not trees: a rewrite's new parents list their own
    children, and the nodes it kept are still walked as before."""
    module = cst.parse_module(EVERY_KIND)
    first = module.visit(_Edits())
    assert module.visit(_Edits()).code == first.code == module.visit(_PlainEdits()).code
    plain, fast = _HookedPlain(), _HookedFast()
    first.visit(plain)
    first.visit(fast)
    assert fast.seen == plain.seen


def test_subtree_is_ast_walk_listed_once_per_node():
    from linen_upgrade.analysis.walk import subtree

    tree = ast.parse(EVERY_KIND)
    nodes(tree)
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "f")
    listed = subtree(fn)
    assert all(a is b for a, b in zip(listed, ast.walk(fn), strict=True))
    assert subtree(fn) is listed
    nodes(ast.parse(SOURCE))  # another file: its functions are listed anew
    assert subtree(fn) is not listed and subtree(fn) == listed


def test_canonical_answers_are_kept_per_index():
    from linen_upgrade.index import ProjectIndex
    from linen_upgrade.resolve import canonical

    index = ProjectIndex(reexports={"pkg.Block": "pkg.layers.Block", "pkg.layers.Block": "pkg.deep.Block"})
    assert index.canonical("pkg.Block.partial") == "pkg.deep.Block.partial"
    assert index.canonical("pkg.Block.partial") == "pkg.deep.Block.partial"  # (kept)
    assert ProjectIndex(reexports={"pkg.Block": "pkg.other.Block"}).canonical("pkg.Block") == "pkg.other.Block"
    assert canonical("flax.nn.linear.Dense") == canonical("flax.nn.linear.Dense") == "flax.nn.Dense"
