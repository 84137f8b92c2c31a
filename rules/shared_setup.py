"""LU105 shared_setup: helper methods that create ``.shared()`` submodules -> ``setup()``; ``@nn.module_method`` -> a plain method.

What it does
    In a legacy module class, a method whose body is ``return
    M.shared(...)`` (or a tuple of them) and is called as ``decoder =
    self._create_decoder()`` from ``apply`` or a ``@nn.module_method``
    becomes an attribute made in ``setup()`` (``self.decoder = M(...)``),
    every use of the local becomes ``self.decoder``, and the helper goes.
    ``@nn.module_method`` is dropped (call it with ``apply(..., method=)``),
    as is the ``**kwargs`` that received the legacy hyper-parameters.
Submodules built again in each method
    ``cell = Cell.shared(hidden=hidden, name='cell')`` in ``apply`` and the
    same call in a ``@nn.module_method`` (legacy found one set of parameters
    by the name), or ``self.cell = Cell.shared(...)`` kept by ``apply``: one
    ``self.cell = Cell(hidden=hidden, name='cell')`` in ``setup()``, after
    the statements computing its arguments from the hyper-parameters (``if
    hidden is None: hidden = 2 * classes``, assignments and ``if`` blocks
    without calls, the same in every method); each method reads
    ``self.cell`` and the module method becomes a plain one (a hyper-parameter
    it rebinds starts from ``hidden = self.hidden``).  ``self.table = table``
    in ``apply`` goes: a hyper-parameter is that attribute already, an input
    is read as ``table``.
Helpers of the hyper-parameters
    A helper returning any expression of named ``.shared()`` submodules
    (``[nn.Dense.shared(features=width, name='d%d' % i) for i in
    range(depth)]``), called as ``self._layers(width, depth)`` with the
    ``apply`` parameters that become attributes, is built once in
    ``setup()`` (``self.layers = [nn.Dense(features=self.width, name=...)
    ...]``) and every call becomes ``self.layers``: the helper's name
    without a leading verb (``_create_heads`` -> ``heads``).
Why
    Linen shares a submodule by keeping one instance; ``setup`` makes the
    instances once, and any method may use them (the guide's AutoEncoder).
    A class may have ``setup`` and one ``@nn.compact`` method together, so
    inline submodules of ``apply`` keep working.
Naming
    The attribute takes the legacy ``name=`` when there is one, so
    checkpoint keys are unchanged; otherwise the local variable's name.
Not converted (TODO)
    A shared submodule that the methods build differently (another call,
    other statements before it, a name that is a hyper-parameter in one and
    a global in the other), from anything but hyper-parameters and such
    statements, or without a literal ``name=``; a module method whose
    default for a hyper-parameter it reads differs from ``apply``'s (one
    attribute cannot hold both).  A helper whose calls pass anything but
    the hyper-parameters (or different ones), that is used other than
    called, or that makes a submodule without ``name=`` (legacy names would
    change); a module method that still creates submodules (a plain Linen
    method may not: LU101 drops its decorator and puts its TODO on it).
"""

from __future__ import annotations

import keyword

import libcst as cst

from linen_upgrade.rule import Context, Example, FastVisitor, Rule, RuleTransformer
from linen_upgrade.rules._cst import code, is_docstring
from linen_upgrade.rules._definitions import method_with_attributes, reassigned_names, replace_calls, self_uses
from linen_upgrade.rules._initializers import Initializers, initializer_slots
from linen_upgrade.rules._inline_shared import (InlinePlan, ReadInputs, expression_key, legacy_name, loads,
                                                 plan_inline_shared)
from linen_upgrade.transformer import target_names
from linen_upgrade.rules._modules import (CallSpec, SelfAttributes, creates_module, defines_apply,
                                          spec_for_qual, split_params)


class SharedSetup(Rule):
    id = "LU105"
    order = -1  # before LU102/LU103 split or rewrite the .shared() calls
    summary = "Helper methods creating .shared() submodules -> setup(); @nn.module_method -> plain method"
    examples = [
        Example(
            "from flax import nn\n\n\nclass AutoEncoder(nn.Module):\n"
            "    def _create_decoder(self):\n        return Decoder.shared(name='decoder')\n\n"
            "    def apply(self, x, latents=20):\n        decoder = self._create_decoder()\n"
            "        z = Encoder(x, latents, name='encoder')\n        return decoder(z)\n\n"
            "    @nn.module_method\n    def generate(self, z, **unused_kwargs):\n"
            "        decoder = self._create_decoder()\n        return nn.sigmoid(decoder(z))\n",
            "from flax import nn\n\n\nclass AutoEncoder(nn.Module):\n"
            "    def setup(self):\n        self.decoder = Decoder()\n\n"
            "    def apply(self, x, latents=20):\n"
            "        z = Encoder(x, latents, name='encoder')\n        return self.decoder(z)\n\n"
            "    def generate(self, z):\n        return nn.sigmoid(self.decoder(z))\n",
        ),
        Example(
            "from flax import nn\n\n\nclass Tower(nn.Module):\n"
            "    def _layers(self, width):\n"
            "        return [nn.Dense.shared(features=width, name=f'd{i}') for i in range(2)]\n\n"
            "    def apply(self, x, width=8):\n        for layer in self._layers(width):\n"
            "            x = layer(x)\n        return x\n",
            "from flax import nn\n\n\nclass Tower(nn.Module):\n"
            "    def setup(self):\n"
            "        self.layers = [nn.Dense(features=self.width, name=f'd{i}') for i in range(2)]\n\n"
            "    def apply(self, x, width=8):\n        for layer in self.layers:\n"
            "            x = layer(x)\n        return x\n",
            name="a helper of the hyper-parameters",
        ),
    ]


    def transformer(self, ctx: Context) -> RuleTransformer:
        return _Transformer(self, ctx)


def _shared_calls(method: cst.FunctionDef) -> list[cst.Call] | None:
    """The ``M.shared(...)`` calls a helper returns, if that is all it does."""
    body = [s for s in method.body.body if not is_docstring(s)]  # type: ignore[union-attr]
    if len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine):
        return None
    ret = body[0].body[0]
    if not isinstance(ret, cst.Return) or ret.value is None:
        return None
    values = [e.value for e in ret.value.elements] if isinstance(ret.value, cst.Tuple) else [ret.value]
    calls = [v for v in values if isinstance(v, cst.Call) and isinstance(v.func, cst.Attribute)
             and v.func.attr.value == "shared"]
    return calls if len(calls) == len(values) else None


class _UseAttributes(SelfAttributes):
    """Drop ``v = self._helper()`` and read ``v`` as ``self.<attr>``; a call of a
    helper built in setup() becomes its attribute."""

    def __init__(self, helpers: set[str], locals_: dict[str, str], built: dict[str, str]) -> None:
        super().__init__(locals_)
        self.helpers = helpers
        self.built = built

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        f = original.func
        if (isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name) and f.value.value == "self"
                and f.attr.value in self.built):
            return cst.Attribute(value=cst.Name("self"), attr=cst.Name(self.built[f.attr.value]),
                                 lpar=updated.lpar, rpar=updated.rpar)
        return updated

    def leave_SimpleStatementLine(self, original, updated):
        stmt = original.body[0]
        if (len(original.body) == 1 and isinstance(stmt, cst.Assign)
                and isinstance(stmt.value, cst.Call) and isinstance(stmt.value.func, cst.Attribute)
                and isinstance(stmt.value.func.value, cst.Name) and stmt.value.func.value.value == "self"
                and stmt.value.func.attr.value in self.helpers):
            return cst.RemoveFromParent()
        return updated


class _Transformer(RuleTransformer):
    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        if not (any(self.is_legacy_class(b.value) for b in original.bases) and defines_apply(original)):
            return updated
        methods = [s for s in updated.body.body if isinstance(s, cst.FunctionDef)]
        module_methods = {m.name.value for m in methods if self._is_module_method(m)}
        helpers = {m.name.value: calls for m in methods if m.name.value != "apply"
                   and m.name.value not in module_methods and _takes_nothing(m)
                   and (calls := _shared_calls(m)) is not None}
        # the other helpers returning .shared() submodules: built by one expression in setup()
        built = {m.name.value: value for m in methods if m.name.value != "apply"
                 and m.name.value not in module_methods and m.name.value not in helpers
                 and (value := _returned(m)) is not None and _shared_calls_in(value)}
        by_name = {m.name.value: m for m in methods}
        hyper = self._apply_attrs(original)
        problem = _default_problem(by_name, module_methods, hyper)
        inline = problem or plan_inline_shared(
            by_name, module_methods, hyper, set(by_name) | {p.name for p in self._apply_params(original)},
            lambda expr: creates_module(self, expr))
        if isinstance(inline, str):
            self.todo(inline)
            return updated
        if not helpers and not module_methods and not built and inline is None:
            return updated
        setup_built: list[cst.BaseStatement] = []
        built_attrs: dict[str, str] = {}
        for name, value in built.items():
            fn = next(m for m in methods if m.name.value == name)
            done = self._build_in_setup(original, fn, value, module_methods)
            if isinstance(done, str):
                self.todo(f"{name} builds .shared() submodules: {done}; build them in setup() by hand")
                return updated
            built_attrs[name], line = done
            setup_built.append(line)
        # which local each helper result is bound to, in apply and the module methods
        attrs: dict[tuple[str, int], str] = {}
        locals_: dict[str, str] = {}
        for m in methods:
            if m.name.value != "apply" and m.name.value not in module_methods:
                continue
            for stmt in m.body.body:  # type: ignore[union-attr]
                bound = self._helper_binding(stmt, helpers)
                if bound is None:
                    continue
                helper, targets = bound
                for i, var in enumerate(targets):
                    call = helpers[helper][i]
                    attr = attrs.setdefault((helper, i), legacy_name(call) or var)
                    if locals_.get(var, attr) != attr:
                        self.todo(f"{var} names different shared submodules in different methods")
                        return updated
                    locals_[var] = attr
        for helper in helpers:  # the helper goes: every use must be a binding rewritten above
            uses = sum(len(self_uses(m, helper)) for m in methods)
            if uses != sum(self._helper_binding(stmt, {helper: ()}) is not None for m in methods
                           if m.name.value == "apply" or m.name.value in module_methods
                           for stmt in m.body.body):  # type: ignore[union-attr]
                self.todo(f"{helper} is used other than in `name = self.{helper}()`: build its submodules "
                          "in setup() by hand")
                return updated
        inline_attrs = inline.attrs if inline is not None else set()
        if len({*attrs.values(), *built_attrs.values(), *inline_attrs}) < len(attrs) + len(built_attrs) + len(inline_attrs):
            self.todo("two helpers' submodules would get the same attribute in setup(): rename one")
            return updated
        setup_lines = []
        for (helper, i), attr in sorted(attrs.items(), key=lambda kv: kv[1]):
            call = helpers[helper][i]
            new = self._construct(call)
            if new is None:
                self.todo(f"{helper}: cannot build {attr} in setup() automatically")
                return updated
            setup_lines.append(cst.parse_statement(f"self.{attr} = x").with_changes(
                body=[cst.Assign(targets=[cst.AssignTarget(cst.parse_expression(f"self.{attr}"))], value=new)]))
        setup_lines += setup_built
        if inline is not None:
            built_inline = self._inline_setup(inline, hyper)
            if built_inline is None:
                self.todo("a shared submodule that cannot be built in setup() automatically")
                return updated
            setup_lines += built_inline
        rewrite = _UseAttributes(set(helpers), locals_, built_attrs)
        body: list[cst.BaseStatement] = []
        for stmt in updated.body.body:
            if isinstance(stmt, cst.FunctionDef) and (stmt.name.value in helpers or stmt.name.value in built):
                continue
            if isinstance(stmt, cst.FunctionDef) and (stmt.name.value == "apply"
                                                      or stmt.name.value in module_methods):
                if inline is not None:
                    stmt = _without_bindings(stmt, inline)
                stmt = stmt.visit(rewrite)
            body.append(stmt)
        # a plain Linen method may not create submodules (only setup() and the @compact one may):
        # a module method still creating some keeps its decorator here; LU101 drops it and leaves its TODO
        creators = self._creators(body)
        body = [self._plain_method(s) if isinstance(s, cst.FunctionDef) and s.name.value in module_methods
                and s.name.value not in creators else s for s in body]
        if setup_lines:
            setup = cst.FunctionDef(
                name=cst.Name("setup"), params=cst.Parameters(params=[cst.Param(cst.Name("self"))]),
                body=cst.IndentedBlock(body=setup_lines))
            at = 1 if body and is_docstring(body[0]) else 0
            if at < len(body) and not body[at].leading_lines and isinstance(body[at], cst.FunctionDef):
                body[at] = body[at].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
            body.insert(at, setup)
        self.fixed(f"class {original.name.value}: shared submodules -> setup()")
        return updated.with_changes(body=updated.body.with_changes(body=body))

    def _build_in_setup(self, cls: cst.ClassDef, fn: cst.FunctionDef, value: cst.BaseExpression,
                        module_methods: set[str]) -> tuple[str, cst.SimpleStatementLine] | str:
        """``self.<attr> = <value>`` for setup(), with the helper's parameters read as the
        hyper-parameters every call passes them; or why not."""
        p = fn.params
        if p.posonly_params or p.kwonly_params or isinstance(p.star_arg, cst.Param) or p.star_kwarg:
            return "its parameters are not plain"
        params = [q.name.value for q in p.params[1:]]
        attrs = self._apply_attrs(cls)
        methods = {m.name.value: m for m in cls.body.body if isinstance(m, cst.FunctionDef)}
        passed: dict[str, str] | None = None
        for caller in methods.values():
            uses = self_uses(caller, fn.name.value)
            if uses and caller.name.value != "apply" and caller.name.value not in module_methods:
                return f"{caller.name.value} uses it"
            reassigned = reassigned_names(caller.body)
            for use in uses:
                if not isinstance(use, cst.Call):
                    return "it is used other than called"
                bound = _bind(use, params)
                if bound is None or any(n not in attrs or n in reassigned for n in bound.values()):
                    return "a call passes values other than the module's hyper-parameters"
                if passed is not None and bound != passed:
                    return "calls pass different hyper-parameters"
                passed = bound
        if passed is None:
            return "nothing calls it"
        if _comprehension_targets(value) & set(params):
            return "a comprehension rebinds one of its parameters"
        calls = _shared_calls_in(value)
        if not all(any(a.keyword is not None and a.keyword.value == "name" for a in c.args) for c in calls):
            return "a submodule without name= (Linen would name it by its place in setup)"
        attr = _attr_name(fn.name.value)
        taken = set(methods) | set(attrs) | {a.name for a in self._apply_params(cls)}
        if attr is None or attr in taken:
            return f"no free attribute name for it ({attr} is taken)" if attr else "no attribute name for it"
        constructed = {}
        for c in calls:
            new = self._construct(c, keep_name=True)
            if new is None:
                return "a .shared() call that cannot be built in setup()"
            constructed[id(c)] = new
        value = replace_calls(value, constructed).visit(SelfAttributes(passed))
        line = cst.SimpleStatementLine(body=[cst.Assign(
            targets=[cst.AssignTarget(cst.parse_expression(f"self.{attr}"))], value=value)])
        return attr, line

    def _inline_setup(self, plan: InlinePlan, attrs: set[str]) -> list[cst.BaseStatement] | None:
        """setup()'s statements for the shared submodules of ``plan``: the locals they
        are made from, then ``self.<attr> = M(..., name=...)``; the hyper-parameters read
        as ``self.<attr>`` (a local copy where the statements rebind one)."""
        lines: list[cst.BaseStatement] = []
        for stmt in plan.setup:
            call = stmt.body[0].value if isinstance(stmt, cst.SimpleStatementLine) else None  # type: ignore[attr-defined]
            if id(call) in plan.calls:
                new = self._construct(call, keep_name=True)  # type: ignore[arg-type]
                if new is None:
                    return None
                # the line's comments go along with it
                stmt = stmt.with_changes(body=[cst.Assign(
                    targets=[cst.AssignTarget(cst.parse_expression(f"self.{plan.calls[id(call)]}"))], value=new)])
            lines.append(stmt.with_changes(leading_lines=[e for e in stmt.leading_lines if e.comment]))
        fn = cst.FunctionDef(name=cst.Name("setup"), params=cst.Parameters(params=[cst.Param(cst.Name("self"))]),
                             body=cst.IndentedBlock(body=lines))
        return list(method_with_attributes(fn, attrs, every_attribute=True).body.body)  # type: ignore[union-attr]

    def _apply_params(self, cls: cst.ClassDef):
        legacy = self.ctx.index.legacy_module(self.resolve_class(cls.name))
        return legacy.apply_params if legacy is not None and legacy.apply_params is not None else ()

    def _apply_attrs(self, cls: cst.ClassDef) -> set[str]:
        """The ``apply`` parameters LU101 makes attributes (``self.<name>`` in every method)."""
        split = split_params(self._apply_params(cls))
        return set() if split.problem else {a.name for a in split.attrs}

    def _creators(self, body: list[cst.BaseStatement]) -> set[str]:
        """Methods that create submodules: legacy module calls, ``.shared()``, or a call of such a method."""
        methods = {s.name.value: s for s in body if isinstance(s, cst.FunctionDef)}
        found = {name for name, m in methods.items() if self._creates(m)}
        changed = True
        while changed:
            more = {name for name, m in methods.items() if name not in found
                    and any(self_uses(m, other) for other in found)}
            found |= more
            changed = bool(more)
        return found

    def _creates(self, fn: cst.FunctionDef) -> bool:
        creates = False
        rule = self

        class V(FastVisitor):
            def visit_Call(self, node: cst.Call) -> None:
                nonlocal creates
                f = node.func
                if isinstance(f, cst.Attribute) and f.attr.value == "shared":
                    creates = True
                elif isinstance(f, cst.Call) and isinstance(f.func, cst.Attribute) and f.func.attr.value == "partial":
                    creates = True
                elif creates_module(rule, f):
                    creates = True
        fn.body.visit(V())
        return creates

    def _is_module_method(self, fn: cst.FunctionDef) -> bool:
        return any(self.resolve(d.decorator) == "flax.nn.module_method" for d in fn.decorators)

    @staticmethod
    def _helper_binding(stmt, helpers) -> tuple[str, list[str]] | None:
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1):
            return None
        assign = stmt.body[0]
        value = assign.value
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
                and isinstance(value.func.value, cst.Name) and value.func.value.value == "self"
                and value.func.attr.value in helpers and not value.args):
            return None
        target = assign.targets[0].target
        names = [e.value for e in target.elements] if isinstance(target, cst.Tuple) else [target]
        if not all(isinstance(n, cst.Name) for n in names):
            return None
        return value.func.attr.value, [n.value for n in names]  # type: ignore[union-attr]

    def _construct(self, call: cst.Call, keep_name: bool = False) -> cst.Call | None:
        """``M.shared(features=3, name='x')`` -> ``M(features=3)`` (setup names it by its
        attribute), or ``M(features=3, name='x')`` with ``keep_name``; as LU103 makes a
        ``.shared`` instance: a legacy initializer wrapped for Linen's ``init(key, shape, dtype)``,
        and in an x64 run the attributes its calls would take (``tables.x64``)."""
        target = call.func.value  # type: ignore[attr-defined]
        qual = self.resolve_class(target)
        # only legacy modules have .shared: an unknown one keeps its keywords as they are
        spec = spec_for_qual(qual, self.ctx.index) or CallSpec(
            (), frozenset(), (), (), {}, {}, {})
        args = []
        for a in call.args:
            if a.star or a.keyword is None or a.keyword.value in spec.inputs:
                return None
            if a.keyword.value != "name" or keep_name:
                args.append(a.with_changes(keyword=cst.Name(spec.renames.get(a.keyword.value, a.keyword.value))))
        args, _ = Initializers(self.ctx).adapt(args, initializer_slots(spec.legacy, self.ctx.index.legacy_module(qual)))
        args += spec.x64_args(args)
        if args:
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return cst.Call(func=target, args=args)

    def _plain_method(self, fn: cst.FunctionDef) -> cst.FunctionDef:
        decorators = [d for d in fn.decorators if self.resolve(d.decorator) != "flax.nn.module_method"]
        params = fn.params
        if isinstance(params.star_kwarg, cst.Param):
            # legacy passed the module's hyper-parameters here; Linen methods see self.<attr>
            params = params.with_changes(star_kwarg=None)
            if params.params:
                params = params.with_changes(params=[*params.params[:-1], params.params[-1].with_changes(
                    comma=cst.MaybeSentinel.DEFAULT)])
        self.fixed(f"@nn.module_method {fn.name.value} -> plain method")
        return fn.with_changes(decorators=decorators, params=params)


def _default_problem(methods: dict[str, cst.FunctionDef], module_methods: set[str], attrs: set[str]) -> str | None:
    """A module method's default for a hyper-parameter other than apply's: legacy
    used it when the model was made without that keyword; in Linen it reads the
    attribute (apply's default)."""
    apply = methods.get("apply")
    if apply is None:
        return None
    defaults = {p.name.value: p.default for p in apply.params.params}
    for name in sorted(module_methods):
        for p in methods[name].params.params:
            mine, theirs = p.default, defaults.get(p.name.value)
            if p.name.value in attrs and mine is not None and (theirs is None or expression_key(mine) != expression_key(theirs)) \
                    and p.name.value in loads(methods[name].body):
                return (f"{name} defaults {p.name.value} to {code(mine)} and apply to "
                        f"{code(theirs) if theirs is not None else 'nothing'}: one value for both (a Linen "
                        "attribute) would change one of them; make them agree")
    return None


def _without_bindings(fn: cst.FunctionDef, plan: InlinePlan) -> cst.FunctionDef:
    """``fn`` without the statements setup() took over, its locals naming them read as ``self.<attr>``."""
    kept = [s for s in fn.body.body if id(s) not in plan.dropped]  # type: ignore[union-attr]
    body = fn.body.with_changes(body=kept).visit(SelfAttributes(plan.renames.get(fn.name.value, {})))
    if fn.name.value == "apply" and plan.inputs:
        body = body.visit(ReadInputs(plan.inputs))
    return fn.with_changes(body=body)


def _takes_nothing(fn: cst.FunctionDef) -> bool:
    p = fn.params
    return len(p.params) == 1 and not (p.posonly_params or p.kwonly_params or isinstance(p.star_arg, cst.Param)
                                       or p.star_kwarg)


def _returned(method: cst.FunctionDef) -> cst.BaseExpression | None:
    """The value a method returns, if returning it is all it does."""
    body = [s for s in method.body.body if not is_docstring(s)]  # type: ignore[union-attr]
    if len(body) == 1 and isinstance(body[0], cst.SimpleStatementLine) and len(body[0].body) == 1 \
            and isinstance(body[0].body[0], cst.Return):
        return body[0].body[0].value
    return None


def _shared_calls_in(node: cst.CSTNode) -> list[cst.Call]:
    found: list[cst.Call] = []

    class V(FastVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            if isinstance(call.func, cst.Attribute) and call.func.attr.value == "shared":
                found.append(call)
    node.visit(V())
    return found


def _bind(call: cst.Call, params: list[str]) -> dict[str, str] | None:
    """Each parameter -> the name passed for it, when every one is passed a plain name."""
    bound: dict[str, str] = {}
    for i, a in enumerate(call.args):
        if a.star or not isinstance(a.value, cst.Name):
            return None
        key = a.keyword.value if a.keyword is not None else (params[i] if i < len(params) else None)
        if key not in params or key in bound:
            return None
        bound[key] = a.value.value
    return bound if len(bound) == len(params) else None


def _comprehension_targets(node: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class V(FastVisitor):
        def visit_CompFor(self, comp: cst.CompFor) -> None:
            found.update(n.value for n in target_names(comp.target))
    node.visit(V())
    return found


def _attr_name(helper: str) -> str | None:
    """``_create_layers`` -> ``layers``: the helper's name without the verb."""
    name = helper.lstrip("_")
    for verb in ("create_", "make_", "build_", "get_"):
        if name.startswith(verb) and name[len(verb):].isidentifier():
            name = name[len(verb):]
            break
    return name if name.isidentifier() and not keyword.iskeyword(name) and name != "setup" else None
