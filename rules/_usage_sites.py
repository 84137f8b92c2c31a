"""The part of the usage rules' transformer that writes Linen ``init``/``apply``
calls at legacy sites (LU201 ``init_site``, LU202 ``apply_call`` and the
unpacking of the updates a mutable apply returns).
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rules._cst import build_dotted, comma_list, express, kwarg, spell_partial
from linen_upgrade.rules._parameterless import params_of
from linen_upgrade.rules._usage import UsageTransformer
from linen_upgrade.rules._usage_calls import string
from linen_upgrade.rules._usage_frames import Frame
from linen_upgrade.rules._usage_types import CALL_HELPER, INPUTS_HELPER, PARTIAL_HELPER, ModuleRef

# statements that run their body only sometimes (or many times)
_GUARDS = tuple(getattr(cst, n) for n in ("If", "For", "While", "Try", "TryStar", "Match") if hasattr(cst, n))


class SiteCalls(UsageTransformer):
    """Linen init/apply calls at the sites of a rule, in the contexts of their with-frames."""

    def apply_call(self, ref: ModuleRef, at: cst.Call, params: cst.BaseExpression, args: list[cst.Arg],
                   method: str | None = None, truncated: bool = False
                   ) -> tuple[cst.Call | cst.Subscript | None, bool, str | None]:
        """``Ctor(attrs).apply(variables, inputs, ...)`` with the contexts of the
        site (``...[0]`` where the updates are dropped); (call, whether it returns updates, problem).  Inside
        nn.capture_module_outputs, or for a truncated model, the intermediates
        are captured too."""
        stateful, stochastic, problem = self.context()
        if problem:  # reported once, on the with statement
            return None, False, None
        capture = self.capture() is not None or truncated
        if truncated and stateful is not None and stateful.mutable:
            return None, False, ("a truncated model called inside a mutable nn.stateful block: "
                                 "apply(..., capture_intermediates=True, mutable=['batch_stats', 'intermediates']) "
                                 "returns both; unpack them by hand")
        if method is not None:
            attrs: set[str] = set()
            for choice in ref.choices or (ref,):  # (a definition chosen at run time: any of its classes')
                spec = self.a.spec(choice.qual)
                assert spec is not None
                attrs |= set(spec.legacy) - spec.inputs
            ctor_part = [a for a in args if a.keyword is not None and a.keyword.value in attrs]
            call_args = [a for a in args if not (a.keyword is not None and a.keyword.value in attrs)]
            ctor, _, problem = self.constructor(ref, at, ctor_part)
            inputs = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in call_args]
        else:
            ctor, inputs, problem = self.constructor(ref, at, args)
        if ctor is None:
            return None, False, problem
        variables = [cst.DictElement(string("params"), params)]
        if stateful is not None and stateful.state is not None:
            variables.append(cst.DictElement(string(self.ctx.config.state_collection), stateful.state))
        extra: list[cst.Arg] = []
        if method is not None:  # by name where the class is known only at run time
            owner = None if ref.choices else self.spell(ref.qual)
            if owner is None and not ref.choices:
                return None, False, f"{ref.qual.rpartition('.')[2]}'s file cannot be imported from here by any name"
            extra.append(kwarg("method", string(method) if owner is None else
                               cst.Attribute(value=owner, attr=cst.Name(method))))
        rngs = self.rngs(None, stochastic)
        if rngs is not None:
            extra.append(kwarg("rngs", rngs))
        # legacy kept no state outside nn.stateful (BatchNorm normalised with the batch's statistics and
        # wrote nothing; reading it raised): Linen's apply needs the collection mutable, and its updates go
        discard = stateful is None and not capture and any(
            "state" in self.ctx.index.needs(c.qual) for c in ref.choices or (ref,))
        collections = [self.ctx.config.state_collection] if discard or stateful is not None and stateful.mutable else []
        if capture:
            extra.append(kwarg("capture_intermediates", cst.Name("True")))
            collections.append("intermediates")
        if collections:
            extra.append(kwarg("mutable", cst.List([cst.Element(string(c)) for c in collections])))
        # a constructor call, or (a TrainState's apply_fn) already the apply function
        # (or the apply_fn parameter its callers give the function)
        apply = ctor if isinstance(ctor, (cst.Attribute, cst.Name)) else cst.Attribute(value=ctor, attr=cst.Name("apply"))
        call = cst.Call(func=apply, args=comma_list([cst.Arg(cst.Dict(variables)), *inputs, *extra]))
        if discard:
            return cst.Subscript(call, [cst.SubscriptElement(cst.Index(cst.Integer("0")))]), False, None
        return call, bool(collections), None

    def _inputs_by_shape(self, specs: cst.BaseExpression) -> list[cst.Arg] | None:
        """Legacy ``init_by_shape`` input specs -> zero inputs, parsed as legacy
        ``flax.jax_utils._parse_spec`` does: a 2-sequence whose first item is
        iterable is ``(shape, dtype)``, anything else a float32 shape.  A literal
        list gets one ``jnp.zeros`` per spec where its form decides, else a call
        of the emitted helper (``SPEC_HELPER``); any other expression becomes
        ``*[helper(spec) for spec in specs]``.  None when the helper's name is taken."""
        if isinstance(specs, (cst.List, cst.Tuple)) and not any(
                isinstance(el, cst.StarredElement) for el in specs.elements):
            each = [self._input_of(el.value) for el in specs.elements]
            return None if None in each else [cst.Arg(e) for e in each]  # type: ignore[arg-type]
        helper = self._spec_helper()
        if helper is None:
            return None
        each = cst.ListComp(elt=cst.Call(func=cst.Name(helper), args=[cst.Arg(cst.Name("spec"))]),
                            for_in=cst.CompFor(target=cst.Name("spec"), iter=specs))
        return [cst.Arg(each, star="*")]

    def _input_of(self, spec: cst.BaseExpression) -> cst.BaseExpression | None:
        form = _spec_form(spec, self._is_dtype)
        if form is None:
            helper = self._spec_helper()
            return cst.Call(func=cst.Name(helper), args=[cst.Arg(spec)]) if helper is not None else None
        zeros, needed = express("jax.numpy.zeros", self.ctx.facts.imports)
        if needed:
            self.imports.add((needed, None))
        if form == "shape":
            shape, dtype = spec, build_dotted(express("jax.numpy.float32", self.ctx.facts.imports)[0])
        else:
            shape, dtype = (e.value for e in spec.elements)  # type: ignore[attr-defined]
        if isinstance(shape, cst.Tuple) and shape.lpar and shape.elements:  # () keeps its own
            shape = shape.with_changes(lpar=[], rpar=[])
        if isinstance(shape, cst.Tuple) and not shape.lpar:
            shape = shape.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        return cst.Call(func=build_dotted(zeros), args=[
            cst.Arg(shape, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), cst.Arg(dtype)])

    def _helper(self, name: str, source) -> str | None:
        """``name`` of a function this rule writes once into the file (``source()`` gives its text),
        None when the file binds that name to something else."""
        module = self.a.module_scope.node
        ours = any(isinstance(s, cst.FunctionDef) and s.name.value == name for s in module.body)  # type: ignore
        if name in self.a.module_scope.bound and not ours:
            return None
        if name not in self.helpers:
            self.helpers[name] = source()
        return name

    def _spec_helper(self) -> str | None:
        """The emitted spec helper (``SPEC_HELPER``)."""
        def source() -> str:
            zeros, needed = express("jax.numpy.zeros", self.ctx.facts.imports)
            f32, _ = express("jax.numpy.float32", self.ctx.facts.imports)
            if needed:
                self.imports.add((needed, None))
            return _SPEC_SOURCE.format(name=SPEC_HELPER, zeros=zeros, f32=f32)
        return self._helper(SPEC_HELPER, source)

    def partial_helper(self) -> str | None:
        """The emitted ``PARTIAL_HELPER``, for ``M.partial(**config)``."""
        def source() -> str:
            fields, needed = express("dataclasses.fields", self.ctx.facts.imports)
            if needed:
                self.imports.add((needed, None))
            return _PARTIAL_SOURCE.format(name=PARTIAL_HELPER, partial=self.spell_partial(), fields=fields)
        return self._helper(PARTIAL_HELPER, source)

    def call_helper(self) -> str | None:
        """The emitted ``CALL_HELPER``, for ``fn = M.call`` (a legacy method taken as a value)."""
        return self._helper(CALL_HELPER, lambda: _CALL_SOURCE.format(name=CALL_HELPER))

    def inputs_helper(self) -> str | None:
        """The emitted ``INPUTS_HELPER``, for ``M.partial(...)`` fixing call inputs."""
        return self._helper(INPUTS_HELPER, lambda: INPUTS_SOURCE.format(name=INPUTS_HELPER))

    def spell_partial(self) -> str:
        """How this file writes ``functools.partial`` (imported once)."""
        spelled, needed = spell_partial(self.ctx.facts.imports, self._module)  # type: ignore[arg-type]
        if needed is not None:
            self.imports.add(needed)
        return spelled

    def _is_dtype(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.SimpleString):
            return node.evaluated_value in _DTYPES
        qual = self.a.qual(node) if isinstance(node, (cst.Name, cst.Attribute)) else None
        return bool(qual) and qual.split(".")[0] in ("jax", "numpy") and qual.rsplit(".", 1)[-1] in _DTYPES

    def init_site(self, original: cst.Call, updated: cst.Call, ref) -> cst.BaseExpression | None:
        """``M.init``/``init_by_shape``/``create``/``create_by_shape`` -> Linen ``init``,
        with the unpacking site fixed (see LU201); None (and a TODO) when it cannot."""
        method = original.func.attr.value  # type: ignore[attr-defined]
        stateful, stochastic, problem = self.context()
        if problem:
            return None
        if stateful is not None and (stateful.state is not None or not stateful.mutable):
            self.todo(f"{method} inside nn.stateful(state): Linen's init makes fresh variables; merge by hand")
            return None
        args = list(updated.args)
        if not args or args[0].star or (args[0].keyword is not None and args[0].keyword.value != "_rng"):
            self.todo(f"{method}: pass the rng first")
            return None
        rng, rest = args[0].value, args[1:]
        inputs: list[cst.Arg] = []
        if method.endswith("_by_shape"):
            specs = rest[0].value if rest and rest[0].keyword is None else next(
                (a.value for a in rest if a.keyword is not None and a.keyword.value == "input_specs"), None)
            rest = [a for a in rest if a.value is not specs]
            inputs = self._inputs_by_shape(specs) if specs is not None else None
            if inputs is None:
                self.todo(f"{method}: no input specs, or the file binds {SPEC_HELPER} to something else: "
                          "call init on jnp.zeros(shape, dtype) of each input")
                return None
            if any(a.star for a in inputs) and any(a.keyword is None for a in rest):
                self.todo(f"{method}: positional arguments after input specs of unknown length: "
                          "pass them by keyword")
                return None
        named = next((a for a in rest if a.keyword is not None and a.keyword.value == "name"), None)
        if named is not None and isinstance(named.value, (cst.SimpleString, cst.Name)) \
                and not self.ctx.facts.references(*_NAMED_KEYS):
            # the root's name changes no parameter (flax 0.3.6: the same params with and without it), only
            # the '/name/...' keys of state and collections, which this file makes none of; Linen names the root
            rest = [a for a in rest if a is not named]
            self.fixed(f"{method}(..., name=...): the root module's name dropped (Linen names it)")
        starred = [a for a in inputs if a.star]
        ctor, call_inputs, problem = self.constructor(ref, original, [a for a in inputs if not a.star] + rest)
        if ctor is None:
            self.todo(f"{method}: {problem}")
            return None
        call_inputs = [*starred, *call_inputs]
        rngs = self.rngs(rng, stochastic)
        state = stateful.state_name if stateful is not None else None
        quals = [c.qual for c in ref.choices] or [ref.qual]

        def build(name: str) -> cst.Call:
            return cst.Call(func=cst.Attribute(value=ctor, attr=cst.Name(name)), args=[
                cst.Arg(rngs, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")) if call_inputs
                        else cst.MaybeSentinel.DEFAULT), *call_inputs])

        coll = self.ctx.config.state_collection
        parent = self.a.parent.get(id(original))
        if isinstance(parent, cst.Subscript) and parent.value is original and len(parent.slice) == 1 \
                and isinstance(parent.slice[0].slice, cst.Index) and state is None:
            index = parent.slice[0].slice.value
            if isinstance(index, cst.Integer) and index.value in ("0", "1"):
                self.fixed(f"{method} -> Linen init")
                if index.value == "1":
                    self.subscripts[id(parent)] = params_of(build("init"), quals, self.ctx)
                    return build("init")
                self.subscripts[id(parent)] = cst.Subscript(build("init_with_output"), [
                    cst.SubscriptElement(cst.Index(cst.Integer("0")))])
                return build("init_with_output")
        if isinstance(parent, cst.Expr) and state is None:  # the result is dropped (an init that must raise)
            self.fixed(f"{method} -> Linen init")
            return build("init")
        assign = parent if isinstance(parent, cst.Assign) and parent.value is original else None
        target = assign.targets[0].target if assign is not None and len(assign.targets) == 1 else None
        if not (isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2
                and not any(isinstance(e, cst.StarredElement) for e in target.elements)
                and self.statement_of(original) is not None):
            self.todo(f"{method} returned (y, params); Linen's init returns the variables: "
                      "unpack `variables['params']` by hand")
            return None
        if state is not None and stateful is not None and self.guarded(self.statement_of(original), stateful):
            self.todo(f"{method} under a condition or loop inside nn.stateful() as ...: convert by hand")
            return None
        y, params = (e.value for e in target.elements)
        code = cst.Module([]).code_for_node
        discard = isinstance(y, cst.Name) and y.value == "_"
        if discard and state is None:
            self.retarget[id(assign)] = params
            self.fixed(f"{method} -> Linen init")
            return params_of(build("init"), quals, self.ctx)
        holder = cst.Name(self.fresh("variables", original)) if state is not None else params
        self.retarget[id(assign)] = holder if discard else cst.Tuple(
            [cst.Element(y), cst.Element(holder)], lpar=[], rpar=[])
        self.add_post(original, f"{code(params)} = {code(params_of(holder, quals, self.ctx))}")
        if state is not None:
            # a model without state has no such collection in Linen (legacy gave an empty one)
            self.add_post(original, f"{code(state)} = {code(holder)}.get({coll!r}, {{}})")
        self.fixed(f"{method} -> Linen init")
        return build("init" if discard else "init_with_output")

    def mutable_result(self, site: cst.Call, new: cst.Call) -> tuple[cst.BaseExpression | None, str | None]:
        """A call in a mutable stateful (or capture_module_outputs) block returns
        ``(y, updates)``: ``y = model(x)`` -> ``y, new_state = ...`` +
        ``new_state = new_state['batch_stats']``; a call inside a larger
        expression is hoisted into ``outputs, new_state = ...`` before its
        statement; with both collections the updates are split after it.
        (what replaces the site, problem)"""
        stateful, _, _ = self.context()
        capture = self.capture()
        outs: list[tuple[Frame, cst.BaseExpression | None, str]] = []
        if stateful is not None and stateful.mutable:
            outs.append((stateful, stateful.state_name, self.ctx.config.state_collection))
        if capture is not None:
            outs.append((capture, capture.capture_name, "intermediates"))
        named = [(n, c) for _, n, c in outs if n is not None]
        code = cst.Module([]).code_for_node
        stmt = self.statement_of(site)
        for frame, name, _ in outs:
            if stmt is not None and name is not None and self.guarded(stmt, frame):
                what = "nn.stateful(...)" if frame is stateful else "nn.capture_module_outputs()"
                return None, (f"a module call under a condition or loop inside {what} as {code(name)}: "
                              "the state would not always be bound; convert by hand")
        if len(named) == 1:
            name, coll = named[0]
        elif not named:
            name, coll = None, ""
        else:
            name, coll = cst.Name(self.fresh("updates", site)), ""
        state: cst.BaseExpression = name if name is not None else cst.Name("_")

        def split() -> list[str]:
            if name is None:
                return []
            if coll:
                return [f"{code(name)} = {code(name)}[{coll!r}]"]
            return [f"{code(n)} = {code(name)}[{c!r}]" for n, c in named]
        assign = self.enclosing(site, cst.Assign)
        if isinstance(assign, cst.Assign) and assign.value is site and len(assign.targets) == 1 \
                and stmt is not None:
            target = assign.targets[0].target
            if isinstance(target, (cst.Tuple, cst.List)) and not target.lpar:
                target = target.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            self.retarget[id(assign)] = cst.Tuple([cst.Element(target), cst.Element(state)], lpar=[], rpar=[])
            for line in split():
                self.add_post(site, line)
            return new, None
        if stmt is None or self._conditional(site, stmt):
            return None, ("a module call inside a mutable nn.stateful block, in a lambda, comprehension or "
                          "condition: Linen's apply returns (y, updates); unpack them by hand")
        outputs = cst.Name(self.fresh("outputs", site))
        hoisted = cst.SimpleStatementLine(body=[cst.Assign(
            targets=[cst.AssignTarget(cst.Tuple([cst.Element(outputs), cst.Element(state)], lpar=[], rpar=[]))],
            value=new)])
        self.pre.setdefault(id(stmt), []).append(hoisted)
        self.pre[id(stmt)].extend(cst.parse_statement(line) for line in split())
        return outputs, None

    def guarded(self, stmt: cst.CSTNode, frame: Frame) -> bool:
        """Is ``stmt`` inside an if/loop/try between it and the with statement of ``frame``?"""
        p = self.a.parent.get(id(stmt))
        while p is not None and p is not frame.node:
            if isinstance(p, _GUARDS):
                return True
            p = self.a.parent.get(id(p))
        return False


def _spec_form(spec: cst.BaseExpression, is_dtype) -> str | None:
    """"shape" or "pair" when the written form of one spec decides how legacy
    ``_parse_spec`` reads it; None when only its value at run time can."""
    if not isinstance(spec, (cst.Tuple, cst.List)) or any(isinstance(e, cst.StarredElement) for e in spec.elements):
        return None
    if len(spec.elements) != 2:
        return "shape"
    first, second = (e.value for e in spec.elements)
    if isinstance(first, (cst.Tuple, cst.List)) or (isinstance(first, cst.Attribute) and first.attr.value == "shape"):
        return "pair"
    if isinstance(first, cst.Integer) or (isinstance(first, cst.UnaryOperation)
                                          and isinstance(first.expression, cst.Integer)):
        return "shape"
    return "pair" if is_dtype(second) else None  # an int and a dtype would not make a shape


# emitted once into a file whose init_by_shape specs are known only at run time
SPEC_HELPER = "_input_from_spec"
# legacy _parse_spec tested isinstance(spec[0], collections.abc.Iterable): the same as asking for
# __iter__, with no name a file may bind to something else (``collections = [...]``)
_SPEC_SOURCE = '''def {name}(spec):
    """A zero input for a legacy init_by_shape spec: (shape, dtype), or a bare shape (float32)."""
    spec = tuple(spec)
    if len(spec) == 2 and hasattr(spec[0], "__iter__"):
        return {zeros}(tuple(spec[0]), spec[1])
    return {zeros}(spec, {f32})
'''

# emitted once into a file with a ``M.partial(**kwargs)`` whose keys are known only at run time
_PARTIAL_SOURCE = '''def {name}(cls, **kwargs):
    """Legacy Module.partial(**kwargs) with keywords known only at run time: a partial of the
    Linen class, whose constructor takes only its attributes (call inputs go to apply)."""
    module = cls
    while isinstance(module, {partial}):
        module = module.func
    inputs = sorted(set(kwargs) - {{f.name for f in {fields}(module)}})
    if inputs:
        raise TypeError(f"{{module.__name__}}.partial: {{inputs}} are call inputs in Linen, not "
                        "attributes: pass them where the module is applied")
    return {partial}(cls, **kwargs)
'''

# emitted once into a file that takes legacy ``M.call`` as a value (``jax.pmap(ResNet.call)``)
_CALL_SOURCE = '''def {name}(module):
    """Legacy Module.call as a function value: call(params, *inputs) applies the Linen module."""
    def call(params, *args, **kwargs):
        return module.apply({{'params': params}}, *args, **kwargs)
    return call
'''

# emitted once into a file with a ``M.partial(...)`` that fixes call inputs of a class of the run
INPUTS_SOURCE = '''def {name}(cls, **inputs):
    """Legacy Module.partial fixing call inputs: a subclass taking them unless the call passes them."""

    class WithInputs(cls):
        def __call__(self, *args, **kwargs):
            return super().__call__(*args, **{{**inputs, **kwargs}})

    WithInputs.__name__ = WithInputs.__qualname__ = cls.__name__  # auto-named cls_<n>, as legacy named it
    return WithInputs
'''

# what keys legacy state by module paths that a root module's name prefixes ('/name/BatchNorm_0')
_NAMED_KEYS = ("flax.nn.stateful", "flax.nn.Collection", "flax.nn.capture_module_outputs")

_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
                     "uint8", "uint16", "uint32", "uint64", "bool_", "complex64", "complex128"})
