"""``with nn.stateful(...)`` / ``nn.stochastic(...)`` / ``nn.capture_module_outputs()``
blocks for the usage rules: what a block sets (``Frame``) and the init/apply
sites that run inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import libcst as cst

from linen_upgrade.rule import FastVisitor
from linen_upgrade.rules._usage_paths import legacy_key

if TYPE_CHECKING:
    from linen_upgrade.rules._usage_analysis import Analysis
    from linen_upgrade.rules._usage_types import Ty


@dataclass
class Frame:
    """One ``with nn.stateful(...)`` / ``nn.stochastic(...)`` block being rewritten."""

    node: cst.With
    state: cst.BaseExpression | None = None  # the collection passed in
    state_given: bool = False  # nn.stateful(...) present
    state_name: cst.BaseExpression | None = None  # `as new_state`
    mutable: bool = True
    rng: cst.BaseExpression | None = None
    sites: int = 0
    done: int = 0
    problem: str | None = None
    kinds: set[str] = field(default_factory=set)
    capture_name: cst.BaseExpression | None = None  # `nn.capture_module_outputs() as outputs`


def parse_with(node: cst.With, a: Analysis) -> Frame | None:
    """A frame when every item of the ``with`` is nn.stateful/nn.stochastic."""
    frame = Frame(node)
    scope = a.scope_of.get(id(node))
    if scope is None:
        return None
    kinds = []
    for item in node.items:
        call = item.item
        qual = a.qual(call.func, scope) if isinstance(call, cst.Call) else None
        if qual not in ("flax.nn.stateful", "flax.nn.stochastic", "flax.nn.capture_module_outputs"):
            return None if not kinds else replace(frame, problem="a with statement mixing nn.stateful/"
                                                  "nn.stochastic with other context managers")
        kinds.append(qual)
        assert isinstance(call, cst.Call)
        if any(x.star for x in call.args):
            frame.problem = f"{qual} with *args: convert by hand"
            continue
        if qual == "flax.nn.capture_module_outputs":
            if item.asname is None or not isinstance(item.asname.name, cst.Name) or call.args:
                frame.problem = "nn.capture_module_outputs() without `as name`: convert by hand"
            else:
                frame.capture_name = item.asname.name
            continue
        if qual == "flax.nn.stochastic":
            frame.rng = a.arg(call, 0, "rng")
            if item.asname is not None:
                frame.problem = "nn.stochastic(...) as name: convert by hand"
            continue
        frame.state_given = True
        frame.state = a.arg(call, 0, "state")
        if isinstance(frame.state, cst.Name) and frame.state.value == "None":
            frame.state = None
        mutable = a.arg(call, 1, "mutable")
        if mutable is not None:
            if not (isinstance(mutable, cst.Name) and mutable.value in ("True", "False")):
                frame.problem = "nn.stateful(..., mutable=<expression>): choose mutable= by hand"
            frame.mutable = not (isinstance(mutable, cst.Name) and mutable.value == "False")
        if item.asname is not None:
            if not isinstance(item.asname.name, cst.Name):
                frame.problem = "nn.stateful(...) as <not a name>: convert by hand"
            frame.state_name = item.asname.name
    if len(kinds) != len(set(kinds)):
        frame.problem = "the same context manager twice in one with statement"
    return frame


# statements and expressions whose body may run several times
_LOOPS = (cst.For, cst.While, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)


class SiteCounter(FastVisitor):
    """The init/apply sites in a with block's body; one in a loop counts as several (each run
    draws the block's next rng and sees the state the runs before it left)."""

    def __init__(self, a: Analysis) -> None:
        super().__init__()
        self.a = a
        self.count = 0
        self.kinds: set[str] = set()
        self.sites: list[tuple[str, Ty]] = []
        self.loops = 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # runs later, outside the block

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.loops += isinstance(node, _LOOPS)
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        super().on_leave(original_node)
        self.loops -= isinstance(original_node, _LOOPS)

    def visit_Call(self, node: cst.Call) -> None:
        site = self.a.site(node)
        if site is not None:
            self.count += 2 if self.loops else 1
            self.kinds.add(site[0])
            self.sites.append(site)


def count_sites(body: cst.CSTNode, a: Analysis) -> tuple[int, set[str]]:
    counter = SiteCounter(a)
    body.visit(counter)
    return counter.count, counter.kinds


def read_by_key(node: cst.With, frame: Frame, a: Analysis) -> bool:
    """Is every use of ``as outputs`` a read of one legacy key (which has a Linen path)?"""
    name = frame.capture_name.value  # type: ignore[union-attr]
    scope = a.scope_of[id(node)].node
    uses: list[cst.Name] = []

    class _Uses(FastVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            if n.value == name and n is not frame.capture_name:
                uses.append(n)

    scope.visit(_Uses())
    parent = a.parent.get
    for use in uses:
        p = parent(id(use))
        if isinstance(p, cst.Attribute) and p.value is use and p.attr.value == "as_dict":
            call = parent(id(p))
            if not (isinstance(call, cst.Call) and call.func is p and not call.args):
                return False
            use, p = call, parent(id(call))
        if not (isinstance(p, cst.Subscript) and p.value is use and legacy_key(p)):
            return False
    return True


# statements a block that only draws keys may hold
_DRAW_STATEMENTS = (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.Expr)
# what else its calls may reach: jax.random, jax.numpy and numpy, none of whose functions below calls
# back into Python (a callback such as jax.tree_util.tree_map(draw, x) may draw from the frame itself)
_DRAW_CALLS = ("jax.random.", "jax.numpy.", "numpy.")
_CALLBACKS = frozenset({"vectorize", "apply_along_axis", "apply_over_axes", "piecewise", "frompyfunc",
                        "fromfunction", "seterrcall"})


def key_draws(node: cst.With, frame: Frame, a: Analysis) -> list[cst.Call] | None:
    """``with nn.stochastic(key): rng = nn.make_rng()`` with no module call: the ``nn.make_rng()``
    calls of the block, in the order they run, when its statements only draw keys (simple statements
    whose other calls are jax.random's, jax.numpy's or numpy's, no draw in a target, a lambda, a
    comprehension or a branch) and the key, read at each draw instead of once on entry, is the
    value it was: nothing in the block rebinds a name it reads, and a key other than a name or
    ``jax.random.PRNGKey(seed)`` is drawn once, before anything else is called; else None."""
    scope = a.scope_of.get(id(node))
    if frame.rng is None or frame.state_given or frame.capture_name is not None or frame.problem or scope is None:
        return None
    body = node.body.body if isinstance(node.body, cst.IndentedBlock) else [node.body]
    if not all(isinstance(s, cst.SimpleStatementLine) and all(isinstance(x, _DRAW_STATEMENTS) for x in s.body)
               for s in body):
        return None
    draws: list[cst.Call] = []
    bound: set[str] = set()  # every name of the block's targets (`key = ...`, `self.key = ...`, `(key := ...)`)
    # run a draw never, or many times, or out of source order
    forbidden = (cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp, cst.IfExp,
                 cst.BooleanOperation)

    class _Names(FastVisitor):
        def __init__(self, into: set[str]) -> None:
            super().__init__()
            self.into = into

        def visit_Name(self, n: cst.Name) -> None:
            self.into.add(n.value)

    class _Calls(FastVisitor):
        ok = True
        left = 0  # calls run so far
        called = 0  # calls run before the first draw

        def visit_Call(self, call: cst.Call) -> None:
            qual = a.qual(call.func, scope) or ""
            if qual == "flax.nn.make_rng" and not call.args:
                self.called = self.called if draws else self.left
                draws.append(call)
            elif not qual.startswith(_DRAW_CALLS) or qual.rpartition(".")[2] in _CALLBACKS:
                self.ok = False
            keyword = False
            for x in call.args:  # f(k=a(), *b()) runs b() before a()
                keyword = keyword or x.keyword is not None
                self.ok = self.ok and not (keyword and x.star == "*")

        def leave_Call(self, call: cst.Call) -> None:
            self.left += 1

        def visit_NamedExpr(self, n: cst.NamedExpr) -> None:
            n.target.visit(_Names(bound))

        def visit_Comparison(self, n: cst.Comparison) -> None:
            self.ok = self.ok and len(n.comparisons) == 1  # a < b < c may stop before c

        def on_visit(self, n: cst.CSTNode) -> bool:
            self.ok = self.ok and not isinstance(n, forbidden)
            return super().on_visit(n)

    calls = _Calls()
    for statement in body:
        for small in statement.body:  # type: ignore[union-attr]
            targets = [t.target for t in getattr(small, "targets", ())] + (
                [small.target] if isinstance(small, (cst.AnnAssign, cst.AugAssign)) else [])
            before = len(draws)
            for target in targets:
                target.visit(calls)
                target.visit(_Names(bound))
            if len(draws) != before:
                return None  # legacy drew the value's key first
            (small.value if small.value is not None else cst.Name("None")).visit(calls)  # type: ignore[union-attr]
    key = frame.rng
    read: set[str] = set()
    key.visit(_Names(read))
    # a name reads one value however often; an attribute may be a property drawing a new key each read
    pure = isinstance(key, cst.Name) or (
        isinstance(key, cst.Call) and a.qual(key.func, scope) == "jax.random.PRNGKey"
        and all(isinstance(x.value, (cst.Integer, cst.Name)) for x in key.args))
    if not calls.ok or not draws or read & bound or (not pure and (len(draws) > 1 or calls.called)):
        return None
    return draws
