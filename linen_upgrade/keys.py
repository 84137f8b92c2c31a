"""Legacy ``flax.nn`` variable names -> ``flax.linen`` names.

Pure Python (no jax, no numpy at import): leaves are any array-like objects
with ``.shape`` / ``.reshape``. Used by ``verify`` (to carry legacy weights
over) and by ``convert-checkpoint``.

The rules (measured, see api_mapping.md section 4):

* Legacy names an unnamed child ``f"{Class}_{n}"`` with **one counter per
  parent**, shared by all classes (and by unnamed ``.shared()`` calls, which
  are stored under the bare number, e.g. ``'7'``). Linen counts **per class**.
  So within each parent, sort the auto-named children by ``n`` and renumber
  them per class in that order. Explicit names are unchanged.
* Bare-number children need their class: ``shared={'7': 'Dense'}`` (or
  ``{'Block_4/7': 'Dense'}`` to address one parent).
* Renaming is computed on the **union** of the params tree and the state
  paths (a ``BatchNorm(bias=False, scale=False)`` has state but an empty
  params dict), then empty param dicts are dropped.
* Legacy ``nn.Collection`` state is flat: ``{'/Block_4/BatchNorm_1': {'mean':
  ..., 'var': ...}}``; Linen nests it under a collection (``batch_stats``).
* ``nn.SelfAttention`` is named ``MultiHeadDotProductAttention_k`` in legacy;
  Linen code using ``nn.SelfAttention`` names it ``SelfAttention_k``: pass
  ``class_aliases`` or a ``template`` (the Linen init structure) and the alias
  is chosen where the template has it.
* GroupNorm ``scale``/``bias`` have shape ``(1, ..., 1, C)`` in legacy and
  ``(C,)`` in Linen.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

Path = Tuple[str, ...]

_AUTO_RE = re.compile(r"^(?P<cls>[A-Za-z_][A-Za-z0-9_]*?)_(?P<n>\d+)$")
_BARE_RE = re.compile(r"^\d+$")

# legacy class prefix -> Linen class names that may replace it
KNOWN_ALIASES: Dict[str, Tuple[str, ...]] = {
    "MultiHeadDotProductAttention": ("SelfAttention",),
    "ConvLSTM": ("ConvLSTMCell",),
}


class KeyConversionError(ValueError):
    """The legacy tree cannot be renamed unambiguously."""


def _is_mapping(x: Any) -> bool:
    return isinstance(x, Mapping)


def split_auto_name(name: str) -> Optional[Tuple[str, int]]:
    """``'Dense_3'`` -> ``('Dense', 3)``; ``None`` for names without a counter."""
    m = _AUTO_RE.match(name)
    if not m:
        return None
    return m.group("cls"), int(m.group("n"))


def state_key_to_path(key: str) -> Path:
    """Legacy Collection key ``'/Block_4/BatchNorm_1'`` -> ``('Block_4', 'BatchNorm_1')``; ``'/'`` -> ``()``."""
    return tuple(p for p in key.split("/") if p)


def rename_level(names: Iterable[str], *, shared: Optional[Mapping[str, str]] = None,
                 explicit: Iterable[str] = (), class_aliases: Optional[Mapping[str, str]] = None,
                 ) -> Dict[str, str]:
    """Renaming of the child modules of one parent.

    ``names``: the child module names (not parameter names). ``shared``: bare
    number -> class name. ``explicit``: names never renumbered even if they look
    like ``Cls_N``. ``class_aliases``: legacy class prefix -> Linen class prefix.
    """
    shared = dict(shared or {})
    explicit = set(explicit)
    class_aliases = dict(class_aliases or {})
    names = list(names)
    auto: List[Tuple[int, str, str]] = []
    mapping: Dict[str, str] = {}
    for name in names:
        if name in explicit:
            mapping[name] = name
            continue
        if _BARE_RE.match(name):
            cls = shared.get(name)
            if cls is None:
                raise KeyConversionError(
                    f"child {name!r} is an unnamed `.shared()` module whose class is not in the "
                    f"checkpoint; pass shared={{{name!r}: 'ClassName'}}")
            auto.append((int(name), cls, name))
            continue
        parsed = split_auto_name(name)
        if parsed is None:
            mapping[name] = name
        else:
            auto.append((parsed[1], parsed[0], name))
    auto.sort()
    counters: Dict[str, int] = {}
    for _, cls, name in auto:
        cls = class_aliases.get(cls, cls)
        k = counters.get(cls, 0)
        counters[cls] = k + 1
        mapping[name] = f"{cls}_{k}"
    new_names = list(mapping.values())
    if len(set(new_names)) != len(new_names):
        dup = sorted({n for n in new_names if new_names.count(n) > 1})
        raise KeyConversionError(f"renaming produces duplicate names {dup} among {sorted(names)}; "
                                 "mark explicit names with explicit=...")
    return mapping


class _Node:
    __slots__ = ("children", "mapping")

    def __init__(self) -> None:
        self.children: Dict[str, "_Node"] = {}
        self.mapping: Dict[str, str] = {}


def _module_tree_of_params(params: Mapping, node: _Node) -> None:
    for k, v in params.items():
        if _is_mapping(v):
            _module_tree_of_params(v, node.children.setdefault(k, _Node()))


def _module_tree_of_template(template: Mapping) -> Dict:
    """Union of the module names of every collection in a Linen variables tree."""
    out: Dict = {}

    def add(tree: Mapping, dst: Dict) -> None:
        for k, v in tree.items():
            if _is_mapping(v):
                add(v, dst.setdefault(k, {}))
    for coll in template.values():
        if _is_mapping(coll):
            add(coll, out)
    return out


class KeyMap:
    """Renaming of every module path of one legacy model.

    Build it with :func:`build_key_map`; then convert params-shaped trees
    (params, gradients, optimizer per-param state) with :meth:`convert_params`
    and flat Collection state with :meth:`convert_state`.
    """

    def __init__(self, root: _Node):
        self._root = root

    def rename_path(self, path: Iterable[str]) -> Path:
        """Rename a module path (parameter/variable names at the end are kept)."""
        node: Optional[_Node] = self._root
        out = []
        for part in path:
            if node is not None and part in node.mapping:
                out.append(node.mapping[part])
                node = node.children.get(part)
            else:
                out.append(part)
                node = None
        return tuple(out)

    def mapping(self) -> Dict[Path, Path]:
        """Every module path -> its new path (for reports)."""
        out: Dict[Path, Path] = {}

        def walk(node: _Node, old: Path, new: Path) -> None:
            for k, child in node.children.items():
                o, n = old + (k,), new + (node.mapping.get(k, k),)
                out[o] = n
                walk(child, o, n)
        walk(self._root, (), ())
        return out

    def convert_params(self, params: Mapping, *, drop_empty: bool = True) -> Dict:
        def walk(tree: Mapping, node: Optional[_Node]) -> Dict:
            out: Dict = {}
            for k, v in tree.items():
                if _is_mapping(v):
                    child = node.children.get(k) if node is not None else None
                    new_k = node.mapping.get(k, k) if node is not None else k
                    sub = walk(v, child)
                    if sub or not drop_empty:
                        out[new_k] = sub
                else:
                    out[k] = v
            return out
        return walk(params, self._root)

    def convert_state(self, state: Mapping[str, Mapping], *, strip_prefix: Path = ()) -> Dict:
        """Flat legacy Collection dict -> nested dict (the contents of one Linen collection)."""
        out: Dict = {}
        for key, variables in state.items():
            path = state_key_to_path(key)
            if strip_prefix and path[:len(strip_prefix)] == tuple(strip_prefix):
                path = path[len(strip_prefix):]
            new = self.rename_path(path)
            dst = out
            for part in new:
                dst = dst.setdefault(part, {})
            if _is_mapping(variables):
                for var, val in variables.items():
                    if var in dst:
                        raise KeyConversionError(f"state variable {'/'.join(new + (var,))} given twice")
                    dst[var] = val
            else:
                dst[new[-1] if new else "value"] = variables
        return out


def _rename_fitting(names: Iterable[str], tmpl: Optional[Dict], *, shared: Mapping[str, str],
                    explicit: Iterable[str], class_aliases: Mapping[str, str]) -> Dict[str, str]:
    """:func:`rename_level`; with the Linen structure ``tmpl`` of this level,
    when its names do not all fit, the children the structure has verbatim are
    taken as explicit names that only look auto-numbered (``name='conv_a_2'``,
    which legacy keeps and the counter rule would renumber) -- if that fits."""
    names = list(names)

    def level(extra: Iterable[str] = ()) -> Dict[str, str]:
        return rename_level(names, shared=shared, explicit=set(explicit) | set(extra),
                            class_aliases=class_aliases)
    try:
        mapping, error = level(), None
    except KeyConversionError as e:
        mapping, error = None, e
    if tmpl is not None and (mapping is None or not set(mapping.values()) <= set(tmpl)):
        try:
            alt = level([n for n in names if n in tmpl])
        except KeyConversionError:
            alt = None
        if alt is not None and set(alt.values()) <= set(tmpl):
            return alt
    if mapping is None:
        raise error  # type: ignore[misc]
    return mapping


def build_key_map(params: Optional[Mapping] = None, state: Optional[Mapping[str, Any]] = None, *,
                  shared: Optional[Mapping[str, str]] = None, explicit: Iterable[str] = (),
                  class_aliases: Optional[Mapping[str, str]] = None,
                  template: Optional[Mapping] = None, strip_state_prefix: Path = ()) -> KeyMap:
    """Renaming for one legacy model, computed on the union of params and state.

    ``template``: the Linen variables structure (e.g. ``jax.eval_shape`` of
    ``model.init``), used to choose class aliases (SelfAttention) per parent.
    """
    root = _Node()
    if params:
        _module_tree_of_params(params, root)
    for key in (state or {}):
        path = state_key_to_path(key)
        if strip_state_prefix and path[:len(strip_state_prefix)] == tuple(strip_state_prefix):
            path = path[len(strip_state_prefix):]
        node = root
        for part in path:
            node = node.children.setdefault(part, _Node())
    shared = dict(shared or {})
    explicit = set(explicit)
    tmpl_tree = _module_tree_of_template(template) if template is not None else None

    def fill(node: _Node, old_path: Path, tmpl: Optional[Dict]) -> None:
        if not node.children:
            return
        level_shared = {}
        for k in node.children:
            qual = "/".join(old_path + (k,))
            if qual in shared:
                level_shared[k] = shared[qual]
            elif k in shared:
                level_shared[k] = shared[k]
        aliases = dict(class_aliases or {})
        if tmpl is not None:
            present = {split_auto_name(n)[0] for n in tmpl if split_auto_name(n)}
            for name in node.children:
                parsed = split_auto_name(name)
                if parsed and parsed[0] not in present and parsed[0] not in aliases:
                    for alt in KNOWN_ALIASES.get(parsed[0], ()):
                        if alt in present:
                            aliases[parsed[0]] = alt
                            break
        node.mapping = _rename_fitting(node.children, tmpl, shared=level_shared, explicit=explicit,
                                       class_aliases=aliases)
        for k, child in node.children.items():
            sub = tmpl.get(node.mapping[k]) if tmpl is not None else None
            fill(child, old_path + (k,), sub if _is_mapping(sub) else None)
    fill(root, (), tmpl_tree)
    return KeyMap(root)


def _leading_ones_to_vector(x: Any) -> Any:
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) > 1 and all(d == 1 for d in shape[:-1]):
        return x.reshape((shape[-1],))
    return x


def fit_to_template(tree: Mapping, template: Mapping) -> Dict:
    """Reshape leaves whose shape differs from the template's only by unit
    dimensions (legacy GroupNorm ``(1,1,1,C)`` -> ``(C,)``)."""
    def walk(t: Mapping, tm: Any) -> Dict:
        out: Dict = {}
        for k, v in t.items():
            sub = tm.get(k) if _is_mapping(tm) else None
            if _is_mapping(v):
                out[k] = walk(v, sub)
            elif sub is not None and hasattr(sub, "shape") and hasattr(v, "shape"):
                want = tuple(sub.shape)
                have = tuple(v.shape)
                if have != want and [d for d in have if d != 1] == [d for d in want if d != 1]:
                    v = v.reshape(want)
                out[k] = v
            else:
                out[k] = v
        return out
    return walk(tree, template)


def _reshape_groupnorm(params: Mapping, groupnorm: Callable[[Path], bool]) -> Dict:
    def walk(t: Mapping, path: Path) -> Dict:
        out: Dict = {}
        for k, v in t.items():
            if _is_mapping(v):
                out[k] = walk(v, path + (k,))
            elif k in ("scale", "bias") and groupnorm(path):
                out[k] = _leading_ones_to_vector(v)
            else:
                out[k] = v
        return out
    return walk(params, ())


def convert_variables(params: Mapping, state: Optional[Mapping[str, Any]] = None, *,
                      shared: Optional[Mapping[str, str]] = None, explicit: Iterable[str] = (),
                      class_aliases: Optional[Mapping[str, str]] = None,
                      collection: str = "batch_stats", template: Optional[Mapping] = None,
                      groupnorm: Optional[Iterable[str]] = None,
                      strip_state_prefix: Path = ()) -> Dict[str, Dict]:
    """Legacy ``(params, Collection.as_dict())`` -> Linen ``{'params': ..., collection: ...}``.

    ``groupnorm``: Linen module names (or '/'-joined paths) that are GroupNorm
    layers; modules auto-named ``GroupNorm_k`` are detected anyway, and with a
    ``template`` any unit-dimension difference is reshaped.
    """
    km = build_key_map(params, state, shared=shared, explicit=explicit,
                       class_aliases=class_aliases, template=template,
                       strip_state_prefix=strip_state_prefix)
    new_params = km.convert_params(params)
    gn = set(groupnorm or ())

    def is_gn(path: Path) -> bool:
        if not path:
            return False
        return (path[-1] in gn or "/".join(path) in gn
                or (split_auto_name(path[-1]) or ("",))[0] == "GroupNorm")
    new_params = _reshape_groupnorm(new_params, is_gn)
    out: Dict[str, Dict] = {"params": new_params}
    if state:
        out[collection] = km.convert_state(state, strip_prefix=strip_state_prefix)
    if template is not None:
        out = {c: fit_to_template(v, template.get(c, {})) for c, v in out.items()}
    return out


def tree_paths(tree: Mapping, prefix: Path = ()) -> Dict[Path, Any]:
    """Flatten a nested dict to ``{path: leaf}``."""
    out: Dict[Path, Any] = {}
    for k, v in tree.items():
        if _is_mapping(v):
            out.update(tree_paths(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def compare_structure(converted: Mapping, template: Mapping) -> List[Tuple[str, str]]:
    """Differences between a converted variables tree and the Linen template:
    ``[(path, problem)]`` with problems 'missing', 'unexpected', 'shape A != B'."""
    a, b = tree_paths(converted), tree_paths(template)
    problems: List[Tuple[str, str]] = []
    for p in sorted(set(b) - set(a)):
        problems.append(("/".join(p), "missing in converted legacy variables"))
    for p in sorted(set(a) - set(b)):
        problems.append(("/".join(p), "not in the upgraded model"))
    for p in sorted(set(a) & set(b)):
        sa, sb = tuple(getattr(a[p], "shape", ())), tuple(getattr(b[p], "shape", ()))
        if sa != sb:
            problems.append(("/".join(p), f"shape {sa} (legacy) != {sb} (upgraded)"))
    return problems


def compare_param_dtypes(converted: Mapping, template: Mapping) -> List[Tuple[str, str]]:
    """Parameters the upgraded model makes in another dtype than legacy did (an x64 run's float64
    against float32, say): ``[(path, 'dtype A (legacy) != B (upgraded)')]``.  State collections are
    not compared: Linen's BatchNorm keeps float32 statistics whatever legacy kept (``tables.x64``)."""
    a, b = tree_paths(converted.get("params", {})), tree_paths(template.get("params", {}))
    out: List[Tuple[str, str]] = []
    for p in sorted(set(a) & set(b)):
        da, db = getattr(a[p], "dtype", None), getattr(b[p], "dtype", None)
        if da is not None and db is not None and str(da) != str(db):
            out.append(("/".join(("params",) + p), f"dtype {da} (legacy) != {db} (upgraded)"))
    return out


def linen_module_path(path: Iterable[str],
                      children: Callable[[Path], Optional[Tuple[Iterable[str], Iterable[str]]]],
                      *, class_aliases: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """Legacy module path ``('Block_4', 'Dense_0')`` -> its Linen path (``('Block_0', 'Dense_0')``).

    ``children(prefix)`` gives the legacy child module names of the module at
    ``prefix`` (a legacy path) and which of them were named explicitly, or
    ``None`` when they are not known; each level is renamed with
    :func:`rename_level`, as the checkpoint keys are.  ``None`` when a level is
    unknown or the path names no child there.
    """
    out: List[str] = []
    prefix: Path = ()
    for part in path:
        level = children(prefix)
        if level is None:
            return None
        names, explicit = level
        try:
            mapping = rename_level(names, explicit=explicit, class_aliases=class_aliases)
        except KeyConversionError:
            return None
        if part not in mapping:
            return None
        out.append(mapping[part])
        prefix = prefix + (part,)
    return tuple(out)
