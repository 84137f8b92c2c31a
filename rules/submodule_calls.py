"""LU102 submodule_calls: ``nn.Dense(x, 500, name='z')`` -> ``nn.Dense(500, name='z')(x)``.

What it does
    Inside legacy module classes, splits every call of a legacy module into
    construction (attributes) and call (inputs): built-ins by the table
    ``linen_upgrade/tables/nn_modules.py`` (renamed arguments such as
    ``bias`` -> ``use_bias``, ``nn.dropout`` -> ``nn.Dropout``, legacy
    defaults that became ``None`` in Linen passed explicitly), user modules
    of the run by their own ``apply`` signatures (the same split LU101 makes),
    and calls through a local ``conv = nn.Conv.partial(...)``.
Why
    Linen constructors return a module instance; the inputs go to its call.
    A positional argument stays positional only while the legacy and Linen
    orders agree; otherwise it becomes a keyword.
Not converted (TODO)
    Attention masks and caches, ``*args``/``**kwargs`` calls, RNN cells whose
    ``features`` cannot be recovered from an ``initialize_carry`` call.
"""

from __future__ import annotations

import dataclasses

import libcst as cst

from linen_upgrade.rule import Context, Example, NoChange, Rule, RuleTransformer
from linen_upgrade.rules._cst import add_import, build_dotted, express
from linen_upgrade.rules._modules import CallSpec, defines_apply, split_call
from linen_upgrade.tables.nn_modules import BUILTIN_MODULES


class SubmoduleCalls(Rule):
    id = "LU102"
    summary = "Submodule calls in legacy modules: nn.Dense(x, 500) -> nn.Dense(500)(x), bias= -> use_bias=, ..."
    examples = [
        Example(
            "from flax import nn\n\n\nclass Encoder(nn.Module):\n    def apply(self, x):\n"
            "        x = nn.Dense(x, 500)\n        x = nn.relu(x)\n"
            "        z = nn.Dense(x, 500, name='latents', bias=False)\n        return z\n",
            "from flax import nn\n\n\nclass Encoder(nn.Module):\n    def apply(self, x):\n"
            "        x = nn.Dense(500)(x)\n        x = nn.relu(x)\n"
            "        z = nn.Dense(500, use_bias=False, name='latents')(x)\n        return z\n",
        ),
        Example(
            "from flax import nn\n\n\nclass Block(nn.Module):\n    def apply(self, x, train=True):\n"
            "        x = nn.BatchNorm(x, momentum=0.9)\n        return nn.dropout(x, 0.5, deterministic=not train)\n",
            "from flax import nn\n\n\nclass Block(nn.Module):\n    def apply(self, x, train=True):\n"
            "        x = nn.BatchNorm(momentum=0.9, use_running_average=False)(x)\n"
            "        return nn.Dropout(0.5, deterministic=not train)(x)\n",
            name="changed defaults made explicit",
        ),
        NoChange("from flax import linen as nn\n\n\nclass M(nn.Module):\n    @nn.compact\n"
                 "    def __call__(self, x):\n        return nn.Dense(3)(x)\n", name="linen"),
    ]

    def applies(self, ctx: Context) -> bool:
        return any(ctx.index.is_legacy_module(q) for q in ctx.facts.qualnames) or any(
            c.apply_params is not None for c in ctx.facts.classes)

    def transform(self, module: cst.Module, ctx: Context) -> cst.Module:
        t = _Transformer(self, ctx)
        module = module.visit(t)
        for name in sorted(t.imports):
            module = add_import(module, name)
        return module


class _Transformer(RuleTransformer):
    def __init__(self, rule: Rule, ctx: Context) -> None:
        super().__init__(rule, ctx)
        self.imports: set[str] = set()
        self._legacy_class_depth: list[bool] = []
        # per function: local name -> (spec, ctor-less bound keywords) of a legacy partial
        self._partials: list[dict[str, tuple[CallSpec, frozenset[str]]]] = []
        self._split: set[int] = set()

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        # only classes still in legacy form (LU101 renames apply after this rule)
        self._legacy_class_depth.append(any(self.is_legacy_class(b.value) for b in node.bases)
                                        and defines_apply(node))
        return True

    def visit_Call(self, node: cst.Call) -> bool:
        if isinstance(node.func, cst.Call):  # M(...)(x): already split
            self._split.add(id(node.func))
        return True

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self._legacy_class_depth.pop()
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._partials.append({})
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self._partials.pop()
        return updated

    def _in_legacy_module(self) -> bool:
        return bool(self._legacy_class_depth and self._legacy_class_depth[-1])

    def visit_Assign(self, node: cst.Assign) -> bool:
        # conv = nn.Conv.partial(bias=False): later calls of ``conv`` split like nn.Conv
        if (self._partials and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name)
                and isinstance(node.value, cst.Call) and isinstance(node.value.func, cst.Attribute)
                and node.value.func.attr.value == "partial"):
            spec = self._spec(node.value.func.value)
            if spec is not None:
                bound = frozenset(spec[0].renames.get(a.keyword.value, a.keyword.value)
                                  for a in node.value.args if a.keyword is not None)
                self._partials[-1][node.targets[0].target.value] = (spec[0], bound)
        return True

    def _spec(self, func: cst.BaseExpression) -> tuple[CallSpec, cst.BaseExpression] | None:
        """The call spec of a legacy module expression and its Linen constructor."""
        qual = self.resolve_class(func)
        row = BUILTIN_MODULES.get(qual or "")
        if row is not None:
            return CallSpec.builtin(row), self._linen_ctor(func, qual, row.linen)  # type: ignore[arg-type]
        legacy = self.ctx.index.legacy_module(qual)
        if legacy is not None and legacy.apply_params is not None:
            return CallSpec.user(legacy.apply_params), func
        return None

    def _linen_ctor(self, func: cst.BaseExpression, qual: str, linen: str) -> cst.BaseExpression:
        if qual.rsplit(".", 1)[-1] == linen:
            return func
        if isinstance(func, cst.Attribute):
            return func.with_changes(attr=cst.Name(linen))
        spelled, needed = express(f"flax.nn.{linen}", self.ctx.facts.imports)
        if needed:
            self.imports.add(needed)
        return build_dotted(spelled)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not self._in_legacy_module() or id(original) in self._split:
            return updated
        func = original.func
        spec = self._spec(func)
        bound: frozenset[str] = frozenset()
        ctor: cst.BaseExpression = updated.func
        if spec is not None:
            call_spec, ctor = spec
        elif isinstance(func, cst.Name) and self._partials and func.value in self._partials[-1]:
            call_spec, bound = self._partials[-1][func.value]
        else:
            return updated
        if not call_spec.is_legacy_call(original):
            return updated
        if call_spec.needs_features:
            self.todo(f"{_name(func)}: Linen cells need features=<hidden size>: pass the carry's size")
            return updated
        if bound:  # what the partial fixed is not overridden by a default
            call_spec = dataclasses.replace(
                call_spec, explicit={k: v for k, v in call_spec.explicit.items() if k not in bound})
        new, problem = split_call(updated, call_spec, ctor)
        if new is None:
            self.todo(f"{_name(func)}: {problem}")
            return updated
        self.fixed(f"{_name(func)}(x, ...) -> {_name(func)}(...)(x)")
        return new


def _name(expr: cst.BaseExpression) -> str:
    from linen_upgrade.resolve import dotted

    return dotted(expr) or "call"
