"""Per-file facts gathered with ``ast`` before any LibCST parse.

They decide whether a file is parsed at all (no rule applies → no LibCST),
feed the project index (legacy module classes and their ``apply``
signatures), and give every rule the import map.  Everything here is plain
data so it crosses process boundaries cheaply.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from linen_upgrade.resolve import ImportMap, canonical, import_map
from linen_upgrade.rule import SKIP_FILE_MARK, SKIP_MARK


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "pos", "kwonly", "varargs", "varkw"
    default: str | None  # source text of the default, None when required
    annotation: str | None = None


@dataclass
class ClassFacts:
    name: str
    bases: list[str]  # qualified where resolvable, else the local dotted name
    apply_params: list[Param] | None  # without ``self``; None when no ``apply``
    module_methods: list[str] = field(default_factory=list)
    lineno: int = 0


@dataclass(frozen=True)
class PartialArg:
    """``conv = nn.Conv.partial(bias=False); Block(x, conv=conv)``: inside
    ``Block``, the parameter ``conv`` is a partial of ``nn.Conv``."""

    callee: str  # the legacy module called (qualified, or local dotted)
    param: str
    target: str  # the module the partial was made of
    bound: frozenset[str]  # the keywords the partial fixed


@dataclass
class FileFacts:
    module_name: str
    imports: ImportMap
    # every dotted name the file references, resolved through its imports
    qualnames: set[str]
    classes: list[ClassFacts]
    has_skip_marks: bool
    skip_file: bool
    partial_args: list[PartialArg] = field(default_factory=list)
    # method-call shapes only a FrozenDict has: "pop/unpacked", "unfreeze()", "copy({})"
    frozendict_calls: set[str] = field(default_factory=set)

    def references(self, *prefixes: str) -> bool:
        return any(q == p or q.startswith(p + ".") for q in self.qualnames for p in prefixes)


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[Param]:
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = [
        Param(p.arg, "pos", ast.unparse(d) if d is not None else None,
              ast.unparse(p.annotation) if p.annotation else None)
        for p, d in zip(positional, defaults)
    ]
    if a.vararg:
        out.append(Param(a.vararg.arg, "varargs", None))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append(Param(p.arg, "kwonly", ast.unparse(d) if d is not None else None,
                         ast.unparse(p.annotation) if p.annotation else None))
    if a.kwarg:
        out.append(Param(a.kwarg.arg, "varkw", None))
    return out[1:] if out and out[0].kind == "pos" and out[0].name == "self" else out


def file_facts(tree: ast.Module, text: str, module_name: str) -> FileFacts:
    package = module_name.rpartition(".")[0]
    imports = import_map(tree, package)
    qualnames: set[str] = {canonical(v) for v in imports.aliases.values()}
    classes: list[ClassFacts] = []
    frozendict_calls: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr == "unfreeze" and not node.args and not node.keywords:
                frozendict_calls.add("unfreeze()")
            elif attr == "copy" and len(node.args) == 1 and isinstance(node.args[0], ast.Dict):
                frozendict_calls.add("copy({})")
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], (ast.Tuple, ast.List)) and len(node.targets[0].elts) == 2
              and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
              and node.value.func.attr == "pop" and len(node.value.args) == 1):
            frozendict_calls.add("pop/unpacked")
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = _dotted(node)
            if name:
                q = imports.resolve_dotted(name)
                if q:
                    qualnames.add(q)
        elif isinstance(node, ast.ClassDef):
            bases = []
            for b in node.bases:
                name = _dotted(b)
                if name:
                    bases.append(imports.resolve_dotted(name) or name)
            apply_params = None
            module_methods = []
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if item.name == "apply":
                        apply_params = _params(item)
                    for dec in item.decorator_list:
                        dname = _dotted(dec)
                        if dname and (imports.resolve_dotted(dname) or "").endswith("module_method"):
                            module_methods.append(item.name)
            classes.append(ClassFacts(node.name, bases, apply_params, module_methods, node.lineno))
    local_classes = {c.name for c in classes}

    def qualify(name: str) -> str:
        if name in local_classes:
            return f"{module_name}.{name}" if module_name else name
        return imports.resolve_dotted(name) or name

    partial_args: list[PartialArg] = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        partials: dict[str, tuple[str, frozenset[str]]] = {}
        for node in ast.walk(fn):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "partial"):
                target = _dotted(node.value.func.value)
                if target:
                    partials[node.targets[0].id] = (
                        qualify(target), frozenset(k.arg for k in node.value.keywords if k.arg))
        if not partials:
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Call):
                callee = _dotted(node.func)
                for kw in node.keywords:
                    if callee and kw.arg and isinstance(kw.value, ast.Name) and kw.value.id in partials:
                        target, bound = partials[kw.value.id]
                        partial_args.append(PartialArg(qualify(callee), kw.arg, target, bound))
    return FileFacts(
        module_name=module_name,
        imports=imports,
        qualnames=qualnames,
        classes=classes,
        has_skip_marks=SKIP_MARK in text,
        skip_file=SKIP_FILE_MARK in text,
        partial_args=partial_args,
        frozendict_calls=frozendict_calls,
    )
