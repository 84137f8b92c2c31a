"""Find the optimizer a file builds, for ``verify --train-steps``.

Static (``ast``, standard library only): in the legacy file, a call resolving
to ``flax.optim.<X>(...)`` (``optim.Momentum(...)``, ``flax.optim.Adam(...)``,
``from flax.optim import Adam; Adam(...)``, a local ``OptimizerDef``
subclass); in the upgraded file, the outermost call resolving to ``optax.*``
that builds a gradient transformation (``optax.sgd(...)``,
``optax.chain(...)``; schedules, losses and ``apply_updates`` are not
transforms). The call's source text is evaluated later, by each side's driver,
in the namespace of the loaded file; names that are parameters of the
enclosing function are bound to their default values.

Or the user names a function: ``--optimizer FUNC`` (both files) or
``--optimizer LEGACY_FUNC:UPGRADED_FUNC``; it is called without arguments and
returns the ``OptimizerDef`` (legacy; an ``Optimizer`` is accepted too) or the
optax ``GradientTransformation`` (upgraded; a ``TrainState`` is accepted too).
"""
from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

LEGACY_OPTIMIZERS = frozenset({
    "GradientDescent", "Momentum", "Adam", "Adagrad", "RMSProp", "LAMB", "LARS", "Adafactor",
    "Adadelta", "AdaBelief", "WeightNorm", "MultiOptimizer"})

# optax callables that do not build a GradientTransformation
_NOT_A_TRANSFORM = re.compile(
    r"(^apply_updates$|^incremental_update$|^periodic_update$|schedule|loss|cross_entropy|"
    r"^global_norm$|^safe_|^smooth_labels$|^tree_|State$|^MaskedNode$|^inject_|^hessian|"
    r"^hvp$|^fisher|^power_iteration$|^matrix_inverse_pth_root$|^multi_normal$|^huber|"
    r"^cosine_similarity$|^kl_divergence|^ctc|^convex_|^hinge|^sigmoid_|^log_cosh$|"
    r"^squared_error$|^l2_|^poly_loss|^make_perturbed_fun$|^scale_gradient$)")
_NOT_A_TRANSFORM_NAMESPACES = frozenset({"schedules", "losses", "tree_utils", "tree", "projections",
                                         "second_order", "assignment", "perturbations"})


class OptimizerNotFound(LookupError):
    """No optimizer could be found (or evaluated) in a file."""


@dataclass
class OptimizerSite:
    """Where a file builds its optimizer, and how a driver rebuilds it."""
    file: str
    name: str                        # 'Momentum', 'sgd', 'chain', or the function named
    expr: Optional[str] = None       # source text of the call (None with ``call``)
    call: Optional[str] = None       # a zero-argument function to call instead
    bindings: Dict[str, str] = field(default_factory=dict)   # enclosing-function defaults
    func: Optional[str] = None       # enclosing function, if any
    line: Optional[int] = None
    note: str = ""

    def to_json(self) -> Dict:
        return asdict(self)

    def describe(self) -> str:
        where = f"line {self.line}" if self.line else Path(self.file).name
        if self.call:
            return f"{self.call}() ({where})"
        text = " ".join((self.expr or "").split())
        if len(text) > 90:
            text = text[:87] + "..."
        return f"`{text}` ({where}{', in ' + self.func + '()' if self.func else ''})"


def parse_optimizer_option(value: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """``'make_opt'`` -> ``('make_opt', 'make_opt')``; ``'a:b'`` -> ``('a', 'b')``."""
    if not value:
        return None, None
    legacy, sep, upgraded = value.partition(":")
    legacy, upgraded = legacy.strip(), (upgraded.strip() if sep else legacy.strip())
    return legacy or None, upgraded or None


# ---------------------------------------------------------------------------
# import resolution
# ---------------------------------------------------------------------------
def _dotted(node: ast.AST) -> Optional[List[str]]:
    parts: List[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def _aliases(tree: ast.Module) -> Dict[str, str]:
    """Local name -> fully qualified name, from every import in the file."""
    out: Dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    out.setdefault(top, top)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _qualified(func: ast.AST, aliases: Dict[str, str]) -> Optional[str]:
    parts = _dotted(func)
    if not parts or parts[0] not in aliases:
        return None
    return ".".join([aliases[parts[0]]] + parts[1:])


def _enclosing_functions(tree: ast.Module) -> Dict[int, ast.FunctionDef]:
    """id(node) -> innermost enclosing function, for every node inside a function."""
    out: Dict[int, ast.FunctionDef] = {}

    def visit(node: ast.AST, fn: Optional[ast.FunctionDef]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn
            if fn is not None:
                out[id(child)] = fn
            visit(child, inner)
    visit(tree, None)
    return out


def _defaults(fn: ast.FunctionDef, source: str) -> Dict[str, str]:
    args = fn.args
    out: Dict[str, str] = {}
    pos = args.posonlyargs + args.args
    for a, d in zip(pos[len(pos) - len(args.defaults):], args.defaults):
        out[a.arg] = ast.get_source_segment(source, d) or ""
    for a, d in zip(args.kwonlyargs, args.kw_defaults):
        if d is not None:
            out[a.arg] = ast.get_source_segment(source, d) or ""
    return out


def _bindings(call: ast.Call, fn: Optional[ast.FunctionDef], source: str, where: str) -> Dict[str, str]:
    """Parameters of the enclosing function that the call uses -> their default's source."""
    if fn is None:
        return {}
    names = {n.id for n in ast.walk(call) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    params = {a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs}
    for extra in (fn.args.vararg, fn.args.kwarg):
        if extra is not None:
            params.add(extra.arg)
    defaults = _defaults(fn, source)
    used = sorted(names & params)
    missing = [n for n in used if n not in defaults]
    if missing:
        raise OptimizerNotFound(
            f"{where}: the optimizer uses {', '.join(missing)}, argument(s) of {fn.name}() without a "
            "default value; name a function that builds it with --optimizer FUNC")
    assigned = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            assigned.add(node.id)
    local = sorted((names & assigned) - params)
    if local:
        raise OptimizerNotFound(
            f"{where}: the optimizer uses local variable(s) {', '.join(local)} of {fn.name}(); "
            "name a function that builds it with --optimizer FUNC")
    return {n: defaults[n] for n in used}


def _parse(path: str) -> Tuple[str, ast.Module]:
    try:
        source = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise OptimizerNotFound(f"cannot read {path}: {e}")
    try:
        return source, ast.parse(source)
    except SyntaxError as e:
        raise OptimizerNotFound(f"{path}: syntax error: {e}")


def _top_level_functions(tree: ast.Module) -> Dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _named_function(path: str, name: str, kind: str) -> OptimizerSite:
    source, tree = _parse(path)
    fns = _top_level_functions(tree)
    if name not in fns:
        raise OptimizerNotFound(f"{path}: no top-level function {name}() (from --optimizer)")
    return OptimizerSite(file=str(path), name=name, call=name, line=fns[name].lineno, func=name)


def _choose(sites: List[Tuple[ast.Call, Optional[ast.FunctionDef], str]], source: str, path: str,
            prefer_func: Optional[str], what: str) -> OptimizerSite:
    if prefer_func:
        preferred = [s for s in sites if s[1] is not None and s[1].name == prefer_func]
        if preferred:
            sites = preferred
    distinct = {" ".join((ast.get_source_segment(source, c) or "").split()) for c, _, _ in sites}
    call, fn, name = sites[0]
    expr = ast.get_source_segment(source, call) or ""
    where = f"{path}:{call.lineno}"
    site = OptimizerSite(file=str(path), name=name, expr=expr, func=fn.name if fn else None,
                         line=call.lineno, bindings=_bindings(call, fn, source, where))
    if len(distinct) > 1:
        lines = ", ".join(str(c.lineno) for c, _, _ in sites)
        site.note = (f"{len(distinct)} different {what} in the file (lines {lines}); using the one on "
                     f"line {call.lineno} (choose with --optimizer FUNC)")
    return site


def find_legacy_optimizer(path: str, func: Optional[str] = None) -> OptimizerSite:
    """The ``flax.optim`` optimizer definition the legacy file builds."""
    if func:
        return _named_function(path, func, "legacy")
    source, tree = _parse(path)
    aliases = _aliases(tree)
    # local OptimizerDef subclasses
    local_defs = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for b in node.bases:
                q = _qualified(b, aliases) or ".".join(_dotted(b) or [])
                if q.endswith("OptimizerDef"):
                    local_defs.add(node.name)
    enclosing = _enclosing_functions(tree)
    sites = []
    nested = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in nested:
            continue
        q = _qualified(node.func, aliases)
        name = None
        if q and q.startswith("flax.optim.") and q.split(".")[-1] in LEGACY_OPTIMIZERS:
            name = q.split(".")[-1]
        elif isinstance(node.func, ast.Name) and node.func.id in local_defs:
            name = node.func.id
        if name is None:
            continue
        for inner in ast.walk(node):
            if inner is not node and isinstance(inner, ast.Call):
                nested.add(id(inner))
        sites.append((node, enclosing.get(id(node)), name))
    if not sites:
        raise OptimizerNotFound(f"{path}: no flax.optim optimizer found (e.g. optim.Momentum(...)); "
                                "name a function that returns one with --optimizer FUNC")
    sites.sort(key=lambda s: (s[0].lineno, s[0].col_offset))
    return _choose(sites, source, path, None, "flax.optim optimizers")


def _is_transform(qualified: str) -> bool:
    parts = qualified.split(".")
    if parts[0] != "optax" or len(parts) < 2:
        return False
    if any(p in _NOT_A_TRANSFORM_NAMESPACES for p in parts[1:-1]):
        return False
    return not _NOT_A_TRANSFORM.search(parts[-1])


def find_optax_transform(path: str, func: Optional[str] = None,
                         prefer_func: Optional[str] = None) -> OptimizerSite:
    """The optax transform the upgraded file builds (outermost ``optax.*`` call).
    ``prefer_func``: the legacy optimizer's enclosing function; a call inside a
    function of the same name wins."""
    if func:
        return _named_function(path, func, "upgraded")
    source, tree = _parse(path)
    aliases = _aliases(tree)
    enclosing = _enclosing_functions(tree)
    sites = []
    nested = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in nested:
            continue
        q = _qualified(node.func, aliases)
        if q is None and isinstance(node.func, ast.Call):
            # optax.inject_hyperparams(optax.adam)(learning_rate=...)
            inner_q = _qualified(node.func.func, aliases)
            if inner_q in ("optax.inject_hyperparams", "optax.inject_stateful_hyperparams"):
                q = inner_q
        elif q is not None and q.split(".")[-1].startswith("inject_"):
            continue  # the transform is the call of its result
        if not q or not (_is_transform(q) or q.split(".")[-1].startswith("inject_")):
            continue
        for inner in ast.walk(node):
            if inner is not node and isinstance(inner, ast.Call):
                nested.add(id(inner))
        sites.append((node, enclosing.get(id(node)), q.split(".")[-1]))
    if not sites:
        raise OptimizerNotFound(f"{path}: no optax transform found (e.g. optax.sgd(...)); "
                                "name a function that returns one with --optimizer FUNC")
    sites.sort(key=lambda s: (s[0].lineno, s[0].col_offset))
    return _choose(sites, source, path, prefer_func, "optax transforms")
