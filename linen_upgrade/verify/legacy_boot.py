"""Boot the legacy runtime: the unmodified flax 0.3.6 release on current jax.

This file runs *inside* the legacy-side subprocess, started by path
(``python legacy_boot.py ...``); it is never imported by the CLI process. It
imports only the standard library at top level, and keeps to Python 3.7
syntax, because with ``--legacy-python`` it runs in the user's own old
environment (then with ``--no-compat``: no compatibility layer at all).

How the compatibility layer works
---------------------------------
* The legacy flax folder goes first on ``sys.path``, so ``import flax`` runs the
  real legacy ``flax/__init__.py`` (which imports its early ``linen``, ``core``,
  ``optim`` and ``deprecated.nn``).
* A meta-path finder loads every legacy flax module -- and every module of the
  user's own code (the script's folder) -- with a private ``__builtins__``
  whose ``__import__`` hands out *proxy modules* for ``jax`` and its
  submodules. A proxy forwards every attribute to the real jax module and adds
  only the names current jax moved or removed (``jax.tree_multimap``,
  ``lax.tie_in``, ``jax.xla.DeviceArray``, ``jax.linear_util``, ``jax.util``, a
  ``jax.config`` module, ...; table ``_EXTRAS``/``_VIRTUAL`` below).
  The real jax modules are **not** modified, so nothing outside legacy code
  and user code sees a difference.
* Behavioural stand-ins: ``random.fold_in`` wraps python ints into uint32 (old
  jax did; legacy ``_fold_in_str`` passes negative ints), ``jax.core.find_top_trace``
  returns ``None`` for legacy code (jax has no trace levels any more, which
  disables ``flax.core.tracers``' check), ``flax.jax_utils.replicate`` is a current
  implementation and ``partial_eval_by_shape`` (behind ``init_by_shape``)
  evaluates on zeros (partial evaluation of that kind is gone from jax).
* ``flax.training.checkpoints`` imports ``tensorflow.io.gfile``; when tensorflow
  is not installed a small local-file ``gfile`` stands in for it.
"""
from __future__ import absolute_import, print_function

import builtins
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

BOOT_MODULE_NAME = "_linen_upgrade_legacy_boot"

_real_import = builtins.__import__
_HITS = set()          # compat names used (for diagnostics)
_PROXIES = {}          # module name -> proxy
_PROXY_ROOTS = []      # folders whose .py modules get the proxy builtins
_EXCLUDE_ROOTS = []    # never proxied (site-packages, the interpreter)
_TF_MISSING = None


# --------------------------------------------------------------------------
# the compat tables (filled lazily, when jax is first needed)
# --------------------------------------------------------------------------
def _np_int_types():
    import numpy as np
    return (int, np.integer)


def _make_fold_in():
    import jax
    import numpy as np
    real = jax.random.fold_in

    def fold_in(key, data):
        # old jax did jnp.uint32(data): negative python ints wrapped around.
        if isinstance(data, (int, np.integer)) and not isinstance(data, bool):
            data = int(data) % (2 ** 32)
        return real(key, data)
    fold_in.__doc__ = real.__doc__
    return fold_in


class _IndexHelper(object):
    def __getitem__(self, idx):
        return idx


def _ops_extras():
    def upd(op):
        def f(x, idx, y, indices_are_sorted=False, unique_indices=False):
            return getattr(x.at[idx], op)(y)
        return f
    return {"index": _IndexHelper(), "index_update": upd("set"), "index_add": upd("add"),
            "index_mul": upd("multiply"), "index_min": upd("min"), "index_max": upd("max")}


def _device_put_replicated(x, devices):
    import jax
    import jax.numpy as jnp
    import numpy as np
    mesh = jax.sharding.Mesh(np.array(devices), ("_replicated",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("_replicated"))

    def rep(a):
        stack = jnp.stack if isinstance(a, jax.Array) else np.stack
        return jax.device_put(stack([a] * len(devices)), sharding)
    return jax.tree_util.tree_map(rep, x)


def _device_put_sharded(shards, devices):
    import jax
    import jax.numpy as jnp
    import numpy as np
    mesh = jax.sharding.Mesh(np.array(devices), ("_sharded",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("_sharded"))
    return jax.tree_util.tree_map(lambda *xs: jax.device_put(jnp.stack(xs), sharding), *shards)


class _eval_context_when_concrete(object):
    """``jax.core.eval_context()`` as legacy flax.nn relied on it (old jax, before stackless tracing).

    flax.nn derives a parameter's key and value under ``eval_context()`` (``Module.param``,
    ``Module.__new__``, ``Module.state``). On old jax that made ops on *concrete* values eager --
    a parameter created inside a ``lax.scan`` body at init (a recurrent cell in
    ``jax_utils.scan_in_dim``) was a concrete array, not a tracer of the scan -- while ops on an outer
    transform's tracers (a jitted ``init``) were still staged. Current jax evaluates everything
    under it and rejects tracers. So: the real context when the frames the caller holds have
    concrete rngs, none at all when one of them is a tracer.
    """

    def __enter__(self):
        import jax
        caller = sys._getframe(1).f_locals
        rngs = [getattr(v, "rng", None) for v in caller.values()]
        if any(isinstance(r, jax.core.Tracer) for r in rngs):
            self._ctx = None
        else:
            self._ctx = jax.core.eval_context()
            self._ctx.__enter__()
        return None

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc) if self._ctx is not None else False


def _prod(xs):
    """Old ``jax.util.prod`` (``math.prod`` is Python 3.8+; this file keeps to 3.7)."""
    out = 1
    for x in xs:
        out *= x
    return out


def _extras_table():
    import functools
    import jax
    import jax.numpy as jnp
    tu = jax.tree_util
    ex = {
        "jax": {
            "tree_map": tu.tree_map, "tree_multimap": tu.tree_map,
            "tree_leaves": tu.tree_leaves, "tree_flatten": tu.tree_flatten,
            "tree_unflatten": tu.tree_unflatten, "tree_structure": tu.tree_structure,
            "tree_transpose": tu.tree_transpose,
            "ShapedArray": jax.core.ShapedArray,
            "host_count": jax.process_count, "host_id": jax.process_index,
            "host_ids": lambda *a: list(range(jax.process_count())),
            "partial": functools.partial,
            "device_put_replicated": _device_put_replicated,
            "device_put_sharded": _device_put_sharded,
        },
        "jax.tree_util": {"tree_multimap": tu.tree_map},
        "jax.lax": {"tie_in": lambda x, y: y},
        "jax.random": {"fold_in": _make_fold_in(), "KeyArray": jax.Array,
                       "PRNGKeyArray": jax.Array},
        "jax.nn": {"normalize": jax.nn.standardize},
        # jax has no trace levels any more; legacy flax.core.tracers compares
        # levels of find_top_trace() -- None gives -inf on both sides.
        "jax.core": {"find_top_trace": lambda *a, **k: None,
                     "eval_context": _eval_context_when_concrete},
        "jax.interpreters.xla": {"DeviceArray": jax.Array},
        "jax.xla": {"DeviceArray": jax.Array},
        "jax.pxla": {"ShardedDeviceArray": jax.Array},
        "jax.interpreters.pxla": {"ShardedDeviceArray": jax.Array},
        "jax.numpy": {"DeviceArray": jax.Array},
        "jax._src.numpy.lax_numpy": {"isin": jnp.isin},
        "jax.ops": _ops_extras(),
        "jax.config": {"config": jax.config},
        "jax.lib.xla_bridge": {},
        # jax.util was public until jax 0.4; legacy repos import partial, prod, safe_map from it
        "jax.util": {"partial": functools.partial, "prod": _prod},
    }
    return ex


def _virtual_table():
    """name -> callable giving the object a removed module forwards to."""
    def mod(name):
        return lambda: importlib.import_module(name)

    def jax_config():
        import jax
        return jax.config
    table = {
        "jax.linear_util": mod("jax.extend.linear_util"),
        "jax.config": jax_config,
        "jax.lib.xla_bridge": mod("jax._src.xla_bridge"),
        "jax.xla": mod("jax.interpreters.xla"),
        "jax.pxla": mod("jax.interpreters.pxla"),
        "jax.api": mod("jax"),
        "jax.util": mod("jax._src.util"),
        "jax.experimental.optimizers": mod("jax.example_libraries.optimizers"),
        "jax.experimental.stax": mod("jax.example_libraries.stax"),
    }
    if _tensorflow_missing():
        table.update({"tensorflow": lambda: None, "tensorflow.io": lambda: None,
                      "tensorflow.io.gfile": lambda: _gfile_module()})
    return table


_EXTRAS = None
_VIRTUAL = None


def _tables():
    global _EXTRAS, _VIRTUAL
    if _EXTRAS is None:
        _VIRTUAL = _virtual_table()
        _EXTRAS = _extras_table()
    return _EXTRAS, _VIRTUAL


def _tensorflow_missing():
    global _TF_MISSING
    if _TF_MISSING is None:
        try:
            _TF_MISSING = importlib.util.find_spec("tensorflow") is None
        except (ImportError, ValueError):
            _TF_MISSING = True
    return _TF_MISSING


def _gfile_module():
    """Local-file stand-in for ``tensorflow.io.gfile`` (used by flax.training.checkpoints)."""
    import glob as _glob
    import shutil
    g = types.ModuleType("tensorflow.io.gfile")

    def rename(src, dst, overwrite=False):
        if os.path.exists(dst) and not overwrite:
            raise OSError("destination exists: %s" % dst)
        os.replace(src, dst)

    def copy(src, dst, overwrite=False):
        if os.path.exists(dst) and not overwrite:
            raise OSError("destination exists: %s" % dst)
        shutil.copyfile(src, dst)

    def rmtree(path):
        shutil.rmtree(path)

    class GFile(object):
        def __init__(self, name, mode="r"):
            self.name = name
            self._f = open(name, mode)

        def size(self):
            return os.path.getsize(self.name)

        def __getattr__(self, attr):
            return getattr(self._f, attr)

        def __iter__(self):
            return iter(self._f)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()
    g.GFile = GFile
    g.exists = os.path.exists
    g.isdir = os.path.isdir
    g.listdir = os.listdir
    g.makedirs = lambda p: os.makedirs(p, exist_ok=True)
    g.mkdir = os.mkdir
    g.remove = os.remove
    g.rename = rename
    g.copy = copy
    g.rmtree = rmtree
    g.glob = _glob.glob
    return g


# --------------------------------------------------------------------------
# proxy modules
# --------------------------------------------------------------------------
class _Proxy(types.ModuleType):
    """A jax module as legacy code sees it: real attributes + compat extras."""

    def __init__(self, name, real):
        types.ModuleType.__init__(self, name)
        self.__dict__["_lu_real"] = real
        self.__dict__["__doc__"] = getattr(real, "__doc__", None)

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__") and attr not in ("__file__", "__version__", "__path__", "__all__"):
            raise AttributeError(attr)
        val = _resolve(self.__name__, self.__dict__["_lu_real"], attr)
        self.__dict__[attr] = val
        return val

    def __dir__(self):
        extras, _ = _tables()
        names = set(dir(self.__dict__["_lu_real"])) if self.__dict__["_lu_real"] is not None else set()
        return sorted(names | set(extras.get(self.__name__, {})))

    def __repr__(self):
        return "<legacy-compat proxy of module %r>" % self.__name__


def _resolve(modname, real, attr):
    extras, virtual = _tables()
    full = modname + "." + attr
    if full in virtual:
        _HITS.add(full)
        return proxy_module(full)
    ex = extras.get(modname)
    if ex and attr in ex:
        _HITS.add(full)
        return ex[attr]
    if real is None:
        raise AttributeError("module %r has no attribute %r" % (modname, attr))
    try:
        val = getattr(real, attr)
    except AttributeError:
        try:
            val = importlib.import_module(full)
        except ImportError:
            raise AttributeError("module %r has no attribute %r (not in the legacy compat layer either)"
                                 % (modname, attr))
    if isinstance(val, types.ModuleType) and val.__name__.partition(".")[0] == "jax":
        return proxy_module(val.__name__)
    return val


def proxy_module(name):
    """The proxy of jax module ``name`` (a real or a removed one)."""
    p = _PROXIES.get(name)
    if p is None:
        _, virtual = _tables()
        if name in virtual:
            real = virtual[name]()
        else:
            real = importlib.import_module(name)
        p = _PROXIES[name] = _Proxy(name, real)
    return p


def _is_redirected(name):
    root = name.partition(".")[0]
    if root == "jax":
        return True
    if root == "tensorflow":
        return _tensorflow_missing()
    return False


def _legacy_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and _is_redirected(name):
        _, virtual = _tables()
        if name not in virtual:
            try:
                _real_import(name, globals, locals, fromlist, level)
            except ImportError:
                # e.g. `import jax.lib.xla_bridge as xb`: parent real, child virtual
                parent = name.rpartition(".")[0]
                if not parent or not any(v.startswith(name + ".") for v in virtual):
                    raise
        if fromlist:
            return proxy_module(name)
        return proxy_module(name.partition(".")[0])
    return _real_import(name, globals, locals, fromlist, level)


_LEGACY_BUILTINS = dict(builtins.__dict__)
_LEGACY_BUILTINS["__import__"] = _legacy_import


# --------------------------------------------------------------------------
# finder/loader: legacy flax and user modules get the proxy builtins
# --------------------------------------------------------------------------
def _under(path, roots):
    path = os.path.realpath(path)
    for r in roots:
        if path == r or path.startswith(r + os.sep):
            return True
    return False


def _post_exec(module):
    name = module.__name__
    if name == "flax.jax_utils":
        _patch_jax_utils(module)
    elif name == "flax.core.axes_scan":
        _patch_axes_scan(module)
    elif name == "flax.serialization":
        module.np = _NumpyCompat(module.np)


class _NumpyCompat:
    """numpy with ``issctype``, which NumPy 2 removed and legacy
    ``flax.serialization`` calls on every leaf it serialises (numpy scalars)."""

    def __init__(self, np):
        self._np = np

    def issctype(self, rep):
        return isinstance(rep, type) and issubclass(rep, self._np.generic)

    def __getattr__(self, attr):
        return getattr(self._np, attr)


def _modern_flax_file(rel):
    """Path of a file of the current flax install (not the legacy one), or None."""
    legacy = _PROXY_ROOTS[0] if _PROXY_ROOTS else None
    for p in sys.path:
        if not p or (legacy and os.path.realpath(p) == legacy):
            continue
        cand = os.path.join(p, "flax", rel)
        if os.path.isfile(cand):
            return cand
    return None


def _patch_axes_scan(legacy_mod):
    """Early-Linen ``nn.scan`` partially evaluates the loop body with
    ``pe.trace_to_jaxpr`` (gone). The current flax ``axes_scan.scan`` (same
    contract, only jax imports) replaces it, sharing the legacy ``broadcast``
    sentinel."""
    path = _modern_flax_file(os.path.join("core", "axes_scan.py"))
    if path is None:
        return
    spec = importlib.util.spec_from_file_location("_linen_upgrade_modern_axes_scan", path)
    modern = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(modern)
    except Exception:  # keep the legacy one; nn.scan will report its own error
        return
    modern.broadcast = legacy_mod.broadcast
    legacy_mod.scan = modern.scan


class _LegacyLoader(importlib.machinery.SourceFileLoader):
    def exec_module(self, module):
        module.__dict__["__builtins__"] = _LEGACY_BUILTINS
        importlib.machinery.SourceFileLoader.exec_module(self, module)
        _post_exec(module)


class _AliasLoader(importlib.abc.Loader):
    """``flax.nn[.x]`` is ``flax.deprecated.nn[.x]`` (as in flax 0.3.6's own docs)."""

    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        # its submodules loaded already get their flax.nn names too: importing one anew
        # (``from flax.nn.stochastic import make_rng``) would set it as an attribute of
        # flax.nn, over the function of the same name (``nn.stochastic``: TypeError:
        # 'module' object is not callable)
        prefix = self.target + "."
        for name, sub in list(sys.modules.items()):
            if name.startswith(prefix):
                sys.modules.setdefault(spec.name + "." + name[len(prefix):], sub)
        return module

    def exec_module(self, module):
        pass


class _LegacyFinder(importlib.abc.MetaPathFinder):
    _SKIP = ("jax", "jaxlib", "numpy", "scipy", "ml_dtypes", "opt_einsum", "msgpack",
             "optax", "chex", "absl", "typing_extensions", "_")

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self._SKIP or name.startswith("_"):
            return None
        if name == "flax.nn" or name.startswith("flax.nn."):
            target = "flax.deprecated.nn" + name[len("flax.nn"):]
            return importlib.util.spec_from_loader(name, _AliasLoader(target))
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return None
        if not _under(spec.origin, _PROXY_ROOTS) or _under(spec.origin, _EXCLUDE_ROOTS):
            return None
        if not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        spec.loader = _LegacyLoader(spec.loader.name, spec.loader.path)
        return spec


def _patch_jax_utils(ju):
    import jax
    import jax.numpy as jnp

    def replicate(tree, devices=None):
        """Replicates arrays to multiple devices (current-jax implementation)."""
        return _device_put_replicated(tree, devices or jax.local_devices())

    def partial_eval_by_shape(fn, input_spec, *args, **kwargs):
        """Evaluate ``fn`` on zeros of the given shapes (stand-in for the removed
        partial evaluation). For ``init_by_shape``'s ``(output, params)`` result
        the output is returned as ShapeDtypeStructs, as the original did."""
        structs = [ju._parse_spec(spec) for spec in input_spec]
        zeros = [jnp.zeros(s.shape, s.dtype) for s in structs]
        out = fn(*zeros, *args, **kwargs)
        if isinstance(out, tuple) and len(out) == 2:
            y = jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype) if hasattr(x, "shape") else x, out[0])
            return (y, out[1])
        return out
    ju.replicate = replicate
    ju.partial_eval_by_shape = partial_eval_by_shape


def install_compat(legacy_root, user_dirs=()):
    """Put legacy flax first on sys.path and route its imports through the proxies."""
    legacy_root = os.path.realpath(legacy_root)
    if not os.path.isfile(os.path.join(legacy_root, "flax", "deprecated", "nn", "base.py")):
        raise RuntimeError("no legacy flax 0.3.6 under %s" % legacy_root)
    for mod in [m for m in sys.modules if m == "flax" or m.startswith("flax.")]:
        del sys.modules[mod]
    while legacy_root in sys.path:
        sys.path.remove(legacy_root)
    sys.path.insert(0, legacy_root)
    _PROXY_ROOTS[:] = [legacy_root] + [os.path.realpath(d) for d in user_dirs]
    excl = set()
    for p in sys.path:
        if p and ("site-packages" in p or "dist-packages" in p) and os.path.realpath(p) != legacy_root:
            excl.add(os.path.realpath(p))
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix):
        rp = os.path.realpath(p)
        if not _under(legacy_root, [rp]) and not any(_under(d, [rp]) for d in user_dirs):
            excl.add(rp)
    _EXCLUDE_ROOTS[:] = sorted(excl)
    if not any(isinstance(f, _LegacyFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _LegacyFinder())


def shims_hit():
    return sorted(_HITS)


# --------------------------------------------------------------------------
# running user code
# --------------------------------------------------------------------------
_COMPAT = {"on": False}


def load_user_module(path, name=None):
    """Import a user file as a module (with the compat builtins when active)."""
    path = os.path.abspath(path)
    name = name or "legacy_user_" + os.path.splitext(os.path.basename(path))[0]
    if _COMPAT["on"]:
        loader = _LegacyLoader(name, path)
    else:
        loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_script(path, argv=()):
    """Run a user script as ``__main__``."""
    path = os.path.abspath(path)
    sys.argv = [path] + list(argv)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = _LEGACY_BUILTINS if _COMPAT["on"] else builtins
    sys.modules["__main__"] = main
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    exec(code, main.__dict__)


def run_driver(path, argv=()):
    """Run one of linen-upgrade's own drivers (plain builtins, real jax)."""
    path = os.path.abspath(path)
    sys.argv = [path] + list(argv)
    main = types.ModuleType("__main__")
    main.__file__ = path
    sys.modules["__main__"] = main
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    exec(code, main.__dict__)


def run_recorded_script(path, argv, program_dir):
    """Program mode: run the script with its inits recorded and its dropout
    masks drawn by call order, as the upgraded side does (program_inits.py)."""
    import importlib.util as iu
    spec = iu.spec_from_file_location("_linen_upgrade_program_inits",
                                      os.path.join(os.path.dirname(os.path.realpath(__file__)),
                                                   "program_inits.py"))
    inits = iu.module_from_spec(spec)
    spec.loader.exec_module(inits)
    import jax
    random_modules = [jax.random]
    if _COMPAT["on"]:
        random_modules.append(proxy_module("jax.random"))
    rec = inits.install(program_dir, random_modules)
    with inits.same_draws.matched_draws(random_modules, []) as drawn:
        try:
            run_script(path, argv)
        finally:
            rec.finish(drawn)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="legacy_boot")
    ap.add_argument("--legacy-root", help="folder holding the legacy flax package")
    ap.add_argument("--no-compat", action="store_true",
                    help="the user's own old environment: no compat layer")
    ap.add_argument("--user-dir", action="append", default=[],
                    help="folders of user code that get the compat layer too")
    ap.add_argument("--program-dir",
                    help="with --script: record its inits and draw dropout masks by call order "
                         "(program mode, see program_inits.py)")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--script")
    g.add_argument("--driver")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    ns = ap.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    # our own folder must not shadow user modules (runner.py, keys.py, ...)
    here = os.path.dirname(os.path.realpath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != here]
    sys.modules[BOOT_MODULE_NAME] = sys.modules[__name__]
    user_dirs = list(ns.user_dir)
    target = ns.script or ns.driver
    if ns.script:
        user_dirs.append(os.path.dirname(os.path.abspath(ns.script)))
    for d in user_dirs:
        if d not in sys.path:
            sys.path.insert(0, d)
    if not ns.no_compat:
        if not ns.legacy_root:
            ap.error("--legacy-root is required unless --no-compat")
        install_compat(ns.legacy_root, user_dirs)
        _COMPAT["on"] = True
    if ns.script and ns.program_dir:
        run_recorded_script(target, args, ns.program_dir)
    elif ns.script:
        run_script(target, args)
    else:
        run_driver(target, args)
    if os.environ.get("LINEN_UPGRADE_SHIM_REPORT"):
        print("shims hit at run time:", shims_hit(), file=sys.stderr)


if __name__ == "__main__":
    main()
