"""LU103 module_partial: ``nn.Conv.partial(bias=False)`` -> ``functools.partial(nn.Conv, use_bias=False)``.

What it does
    Inside legacy module classes, ``M.partial(**kw)`` of a legacy module
    becomes ``functools.partial(M, **kw)`` (``from functools import partial``
    added once), with the module's renamed keywords (``bias`` ->
    ``use_bias``).  Calls through the partial are split by LU102.
    A ``.shared()``/``.partial()`` local that fixes call *inputs* (the
    index's split, ``Param.role``): ``enc = Encoder.shared(mask=m,
    train=train, depth=2, name='enc')`` -> ``enc = Encoder(depth=2,
    name='enc')``, and LU102 passes them at every call, ``enc(x)`` ->
    ``enc(x, mask=m, train=train)`` (``rules/_fixed_inputs.py``).
    ``functools.partial(nn.dropout, rate=r, deterministic=d)`` in a module body
    becomes the module ``nn.Dropout(rate=r, deterministic=d)`` (legacy's
    ``deterministic=False`` when not fixed): it takes the partial's calls,
    ``f(x)`` or ``f(x, rng=key)``, here or wherever it is handed, and has no
    parameters, so one instance serves them all (a call overriding what the
    partial fixed raises in Linen).
    The same for a local of a plain function that calls it (a module call:
    the function runs under an apply, see LU102).  A recurrent cell made once
    with no hidden size (``cell = nn.LSTMCell.shared(name='cell')``: legacy
    read it off the carry) gets ``features=`` from the one
    ``initialize_carry(rng, batch_dims, size)`` of its function, when
    ``size`` is a number or a name the function never rebinds.  An explicit
    state collection it fixes (``VirtualBatchNorm.partial(batch_stats=p)``) goes
    when it is None or the class's apply parameter that is only ever such a
    collection (LU104 drops that parameter): legacy then kept the state in the
    ``nn.stateful`` collection, as Linen keeps it in ``'batch_stats'``.
Why
    Linen modules are dataclasses: a partial of the class is a constructor
    with some attributes fixed, which is what ``Module.partial`` was.
Not converted (TODO)
    A ``functools.partial`` of ``nn.dropout`` fixing ``rng=`` or a positional
    argument, or leaving ``rate`` to its calls.  Fixed inputs whose value could differ at a call: the local used
    otherwise than called after its definition in the same function (passed
    on, called in a nested function or comprehension), a value other than
    constants, names not rebound after the definition (a local assigned once
    outside loops, a parameter never reassigned), attribute reads of
    ``self`` or of a global and operators over those, or a call that does
    not take them.  A plain function's local that it calls and also passes
    on or returns: the definition and its calls stay legacy.  A partial of a
    module that runs the definition it is given itself fixing keywords its
    apply does not take (that definition's attributes, which Linen puts in
    ``partial(<module>, ...)``: ``_wrapped_definitions``).  Other
    ``.partial`` outside module bodies belongs to the usage rules (LU2xx).
    A ``.partial`` whose calls LU102 cannot follow: held in a list, a dict, a
    tuple, a conditional or a call of a local value's method
    (``layers.append(...)``), or a local read by a function defined in the
    same body from its closure (``def jblock(y): return block(y)``) --
    converted, its calls would keep the legacy form (inputs first).
"""

from __future__ import annotations

import libcst as cst

from linen_upgrade.rule import Context, Example, NoChange, Rule
from linen_upgrade.rules._cells import carry_size
from linen_upgrade.rules._cst import PARTIALS, add_import, build_dotted, kwarg, spell_partial
from linen_upgrade.rules._fixed_inputs import FunctionScan, passes
from linen_upgrade.rules._initializers import Hidden, Initializers, initializer_slots, local_names, merged
from linen_upgrade.rules._modules import (LegacyBodyTransformer, drops_collection, is_function_module,
                                          spec_for_qual, split_params)
from linen_upgrade.rules._wrapped_definitions import given_attributes


class ModulePartial(Rule):
    id = "LU103"
    summary = "Module.partial(...) / .shared(...) inside modules -> functools.partial(Module, ...) / Module(...)"
    examples = [
        Example(
            "from flax import nn\n\n\nclass ResNet(nn.Module):\n    def apply(self, x, train=True):\n"
            "        conv = nn.Conv.partial(bias=False)\n"
            "        norm = nn.BatchNorm.partial(use_running_average=not train, momentum=0.9)\n"
            "        return norm(conv(x, 64, (7, 7)))\n",
            "from flax import nn\nfrom functools import partial\n\n\nclass ResNet(nn.Module):\n"
            "    def apply(self, x, train=True):\n"
            "        conv = partial(nn.Conv, use_bias=False)\n"
            "        norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9)\n"
            "        return norm(conv(x, 64, (7, 7)))\n",
        ),
        NoChange("import functools\n\n\nclass Transform:\n    def apply(self, f):\n"
                 "        return functools.partial(f)\n", name="plain class"),
    ]


    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        t = _Transformer(self, ctx)
        module = module.visit(t)
        if t.needed is not None:
            module = add_import(module, *t.needed)
        return module


class _Transformer(LegacyBodyTransformer):
    needed: tuple[str, str | None] | None = None  # the import functools.partial takes, once used

    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__(rule, ctx)
        self._initializers: Initializers | None = None
        self._hidden: list[Hidden] = []  # per enclosing function: the names it binds
        self._functions: list[cst.FunctionDef] = []
        self._assigned: dict[int, cst.Assign] = {}  # the value of ``x = ...`` -> the assignment
        self._scans: dict[int, FunctionScan] = {}  # per function, walked once for all its definitions
        # where LU102 splits the calls of a ``.partial``: a local's value, called at once, handed to a module,
        # returned; not in a list, a dict, a tuple unpacked, a comprehension, a conditional or another call
        self._followed: set[int] = set()

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self._initializers = Initializers(self.ctx)
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._hidden.append(local_names(node))
        self._functions.append(node)
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self._hidden.pop()
        self._functions.pop()
        return updated

    def visit_Assign(self, node: cst.Assign) -> bool:
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            self._assigned[id(node.value)] = node
            self._followed.add(id(node.value))
        return True

    def visit_Call(self, node: cst.Call) -> bool:
        self._followed.add(id(node.func))  # ``M.partial(...)(x)``
        func = node.func.value if isinstance(node.func, cst.Attribute) and node.func.attr.value in (
            "partial", "shared") else node.func
        # handed to a callee (``Block(x, conv=nn.Conv.partial(...))``, ``block_cls(x, conv=...)``): LU102
        # follows it into the modules of the run; not into a method of a local value (``layers.append(...)``)
        method_of_local = isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) \
            and func.value.value != "self" and self.resolve(func) is None
        if not method_of_local:
            self._followed.update(id(a.value) for a in node.args)
        return True

    def visit_Return(self, node: cst.Return) -> bool:
        if node.value is not None:
            self._followed.add(id(node.value))
        return True

    def _dropout_partial(self, call: cst.Call) -> cst.BaseExpression:
        """``functools.partial(nn.dropout, rate=r, deterministic=d)`` in a module body -> the
        module ``nn.Dropout(rate=r, deterministic=d)``: called as the partial was, ``f(x)`` or
        ``f(x, rng=key)``, wherever it is handed (it has no parameters, so one instance is many
        calls); a call the partial took otherwise (overriding a keyword it fixed) raises in Linen."""
        target, *rest = call.args
        keys = [a.keyword.value if a.keyword is not None and not a.star else None for a in rest]
        if None in keys or not set(keys) <= {"rate", "deterministic"} or "rate" not in keys \
                or not isinstance(target.value, cst.Attribute):  # (from flax.nn import dropout: rare)
            self.todo("functools.partial(flax.nn.dropout, ...) fixes more than rate= and deterministic= (or not "
                      "rate=): write nn.Dropout(rate, deterministic=...) and call it on the inputs by hand")
            return call
        args = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in rest]
        if "deterministic" not in keys:  # legacy's default; Linen's None asks it of every call
            args.append(kwarg("deterministic", cst.Name("False")))
        ctor = target.value.with_changes(attr=cst.Name("Dropout"))
        self.fixed("functools.partial(flax.nn.dropout, ...) -> nn.Dropout(...), called as the partial was")
        return cst.Call(func=ctor, args=args)

    def _not_moved(self, call: cst.Call, inputs: list[str], values: list[cst.BaseExpression],
                   shared: bool) -> str | None:
        """None when the ``inputs`` (Linen names) this definition fixes are passed
        at every call of its local instead (LU102 put them there: ``_fixed_inputs.py``)."""
        assign = self._assigned.get(id(call))
        if assign is None or not self._functions:
            return "it is not assigned to a local name"
        name = assign.targets[0].target.value  # type: ignore[attr-defined]
        scan = self._scan()
        why = scan.problem(assign, name, values)
        if why is not None:
            return why
        for c in scan.calls(name):  # a partial's call is split: its inputs go to the outer call
            target = c if shared else scan.outer.get(id(c))
            if target is None or not passes(target, inputs):
                return f"a call of {name} does not pass them"
        return None

    def _closure_read(self, call: cst.Call) -> str | None:
        """The function defined in the enclosing one that reads the local ``call`` is assigned to from
        its closure (``def jblock(y): return block(y)``): LU102 splits calls of the local in its own
        function and in the parameters it is handed to, not there."""
        assign = self._assigned.get(id(call))
        if assign is None or not self._functions:
            return None
        name = assign.targets[0].target.value  # type: ignore[attr-defined]
        scan = self._scan()
        for fn_name, fn in scan.nested.items():
            inner = scan.inner(fn)
            if name not in inner.params and name not in inner.bindings and any(
                    scan.start[id(fn)] <= order <= scan.end[id(fn)] for order, _ in scan.reads.get(name, [])):
                return fn_name
        return None

    def _scan(self) -> FunctionScan:
        fn = self._functions[-1]
        if id(fn) not in self._scans:
            self._scans[id(fn)] = FunctionScan(fn)
        return self._scans[id(fn)]

    def _in_plain_function(self, call: cst.Call) -> tuple[bool, str | None]:
        """Is ``call`` the definition of a local that a function outside module bodies calls
        (a legacy module call runs only under a module's apply: LU102 converts those calls),
        and why it stays legacy: a local also passed on or returned is not followed."""
        assign = self._assigned.get(id(call))
        if self.in_legacy_body or not self._functions or assign is None or any(
                is_function_module(self, f) for f in self._functions):
            return False, None
        name = assign.targets[0].target.value  # type: ignore[attr-defined]
        scan = self._scan()
        if name not in scan.called:
            return False, None  # a definition for top-level code (LU201) or returned (LU102 at its calls)
        return True, scan.only_called(assign, name)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        func = original.func
        if self.in_legacy_body and self.resolve(func) in PARTIALS and original.args \
                and self.resolve(original.args[0].value) == "flax.nn.dropout":
            return self._dropout_partial(updated)
        if not (isinstance(func, cst.Attribute) and func.attr.value in ("partial", "shared")):
            return updated
        plain, left = self._in_plain_function(original)
        if not (self.in_legacy_body or plain):
            return updated
        shared = func.attr.value == "shared"
        qual = self.resolve_class(func.value)
        spec = spec_for_qual(qual, self.ctx.index)
        legacy = self.ctx.index.legacy_module(qual)
        if spec is None or (legacy is not None and split_params(legacy.apply_params or ()).problem):
            return updated
        if left is not None:
            self.todo(f"{qual}.{func.attr.value}: {left}: the definition and its calls stay legacy "
                      "(convert them together by hand)")
            return updated
        closure = self._closure_read(original) if not shared else None
        if not shared and (id(original) not in self._followed or closure):
            where = f"read in the nested function {closure}" if closure else \
                "held in a list, a dict, a tuple, a conditional or another call"
            self.todo(f"{qual}.partial(...) is {where}, where calls of it are not followed: they keep the legacy "
                      "form (inputs first), so it stays legacy; convert it and its calls together by hand "
                      f"({cst.Module([]).code_for_node(func.value)}(<attributes>)(<inputs>))")
            return updated
        foreign = given_attributes(spec, [a.keyword.value for a in updated.args if a.keyword is not None])
        if foreign:
            self.todo(f"{qual}.{func.attr.value} fixes {', '.join(foreign)}: attributes of the module given as "
                      f"{spec.definition}, which it runs itself and which carries them in Linen: write "
                      f"{cst.Module([]).code_for_node(func.value)}({spec.definition}=partial(<module>, "
                      "<attributes>), ...) and pass the inputs at "
                      "each call by hand")
            return updated
        args = []
        dropped = False  # an explicit state collection that goes
        inputs: list[str] = []  # by their Linen names
        values: list[cst.BaseExpression] = []
        for a in updated.args:
            key = a.keyword.value if a.keyword is not None else None
            if a.star == "**":
                self.todo(f"{qual}.{func.attr.value} fixes keywords known only at run time "
                          f"({cst.Module([]).code_for_node(a).strip(', ')}), which this rule cannot split into "
                          "Linen attributes and call inputs: pass the attributes to the constructor and the "
                          "inputs at call time")
                return updated
            if key is not None and key in spec.manual and not a.star:
                if drops_collection(a, spec, qual, self.legacy_class, self.ctx.index):
                    self.fixed(f"{qual}.{func.attr.value}({key}=...) -> the 'batch_stats' collection")
                    dropped = True
                    continue  # legacy kept the state in the nn.stateful collection, Linen in 'batch_stats'
                self.todo(f"{qual}.{func.attr.value} fixes {key}: {spec.manual[key]}")
                return updated
            if a.star or key is None:
                self.todo(f"{qual}.{func.attr.value} fixes {key or 'a positional argument'}, which is not a "
                          "constructor attribute in Linen: pass it at call time")
                return updated
            if key in spec.inputs:
                inputs.append(spec.renames.get(key, key))
                values.append(a.value)
            else:
                args.append(a.with_changes(keyword=cst.Name(spec.renames.get(key, key))))
        if dropped and args:
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        why = self._not_moved(original, inputs, values, shared) if inputs else None
        if why is not None:
            self.todo(f"{qual}.{func.attr.value} fixes the call inputs {', '.join(inputs)}, which Linen takes at "
                      f"call time, not in the constructor: pass them at each call by hand ({why})")
            return updated
        if inputs:
            self.fixed(f"{qual}.{func.attr.value}(...): {', '.join(inputs)} passed at each call")
        target = updated.func.value  # type: ignore[attr-defined]
        if self._initializers is not None:  # Linen built-ins call init(key, shape, dtype)
            args, wrapped = self._initializers.adapt(args, initializer_slots(spec.legacy, legacy),
                                                     merged(self._hidden))
            for w in wrapped:
                self.fixed(f"legacy initializer {w} wrapped for Linen's init(key, shape, dtype)")
        if spec.features_from_carry and "features" not in {a.keyword.value for a in args if a.keyword}:
            size = carry_size(self._functions[-1], lambda e: self.resolve_class(e) == qual) \
                if shared and self._functions else None
            if size is None:
                self.todo(f"{qual}.{func.attr.value}: Linen cells need features=<hidden size>")
                return updated
            args = [kwarg("features", size), *args]  # legacy read it off the carry initialize_carry made
        if shared:  # one instance, called as often as needed: it takes the x64 attributes its calls would
            args += spec.x64_args(args)
            self.fixed(f"{qual}.shared(...) -> {qual}(...)")
            return updated.with_changes(func=target, args=args)
        spelled, self.needed = spell_partial(self.ctx.facts.imports, self._module)  # type: ignore[arg-type]
        fn = build_dotted(spelled)
        self.fixed(f"{qual}.partial(...) -> functools.partial({qual}, ...)")
        return updated.with_changes(func=fn, args=[cst.Arg(value=target), *args])
