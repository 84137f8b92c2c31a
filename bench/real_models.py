#!/usr/bin/env python
"""Real models as a benchmark (a script, not a test; CI does not run it).

    python bench/real_models.py                       # every case, CPU
    python bench/real_models.py --folder google__flax --case ResNet
    python bench/real_models.py --platform gpu         # on the accelerator (the table is always printed)

For each corpus folder named by a case (``bench/real_models_cases.py``):
copy ``../shared/corpus/<folder>`` twice into a temporary folder (made
writable), upgrade one copy with ``linen-upgrade rewrite <folder>`` (the whole
folder in one run, as a user would), then verify each case's class in module
mode -- the legacy copy on flax 0.3.6, the upgraded copy on current flax:
train and eval outputs, ``batch_stats`` updates, gradients, with the legacy
weights carried over and perturbed. One legacy process per file.

Prints one row per case: OK, DIFFER (numbers or structure differ: the
failing rows are named), NOT CHECKED (too little compared) or FAILS (it
could not run: the exception), the largest absolute and relative error over
the compared rows, and the wall time of the file's verification (shared by
the cases of one file). Exit status 0 whatever the verdicts (a benchmark).
The corpus is read at run time, never copied into the project.
"""
from __future__ import annotations

import argparse
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from real_models_cases import CASES, FIXUPS, PLACEHOLDERS, Case  # noqa: E402

from linen_upgrade.verify import legacy_env  # noqa: E402
from linen_upgrade.verify.module import ModuleJob, ModuleResult, parse_input_spec, verify_batch  # noqa: E402
from linen_upgrade.verify.runner import REASON_UNCHECKED  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"


def writable_copy(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
    for d, _, files in os.walk(dst):
        os.chmod(d, os.stat(d).st_mode | stat.S_IWUSR)
        for f in files:
            p = os.path.join(d, f)
            os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)


def upgrade_folder(folder: Path) -> str:
    """``linen-upgrade rewrite FOLDER``; returns its summary line."""
    proc = subprocess.run([sys.executable, "-c", "from linen_upgrade.cli import main; main()",
                           "rewrite", str(folder)], capture_output=True, text=True, cwd=str(ROOT))
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if "scanned" in l]
    return lines[-1].strip() if lines else f"exit {proc.returncode}"


# third-party packages the corpus files import at top level but the verified
# classes never use (data sets, configs, summaries); not installed here
STUBS = ("ml_collections", "ml_collections.config_dict", "tensorflow_datasets", "tensorflow",
         "tensorflow.io", "tensorflow.compat", "tensorflow.compat.v2", "tensorflow.compat.v1",
         "tensorboard", "tensorboard.plugins", "tensorboard.plugins.hparams", "tensorboard.plugins.hparams.api",
         "clu", "clu.metric_writers", "pandas", "h5py", "mpi4py")
STUB_SOURCE = (
    '"""Stand-in made by bench/real_models.py: any attribute is a stand-in too."""\n'
    "class _Stub:\n"
    "    def __init__(self, *a, **k): pass\n"
    "    def __call__(self, *a, **k): return _Stub()\n"
    "    def __getattr__(self, name): return _Stub()\n"
    "    def __mro_entries__(self, bases): return (object,)\n"
    "def __getattr__(name):\n"
    "    if name.startswith('__'): raise AttributeError(name)\n"
    "    return _Stub()\n")


def write_stubs(root: Path) -> Path:
    """A folder of stand-ins for :data:`STUBS`, to go last on both sides' sys.path."""
    for name in STUBS:
        d = root.joinpath(*name.split("."))
        d.mkdir(parents=True, exist_ok=True)
        (d / "__init__.py").write_text(STUB_SOURCE)
    return root


def prepare(copy: Path, folder: str) -> None:
    """Stand-ins for files the corpus left out; its redaction artifacts removed."""
    for rel, source in PLACEHOLDERS.get(folder, {}).items():
        if not (copy / rel).exists():
            (copy / rel).write_text(STUB_SOURCE if source is None else source)
    for old, new in FIXUPS.get(folder, ()):
        for f in copy.rglob("*.py"):
            text = f.read_text(errors="surrogateescape")
            if old in text:
                f.write_text(text.replace(old, new), errors="surrogateescape")


def verdict(res: ModuleResult) -> tuple:
    """``(status, max_abs, max_rel, reason)`` of one case."""
    checked = [r for r in res.rows if r.max_abs is not None and not r.unchecked and not r.noise]
    max_abs = max((r.max_abs for r in checked), default=None)
    max_rel = max((r.max_rel for r in checked if r.max_rel is not None), default=None)
    if res.status == "ok":
        return "OK", max_abs, max_rel, ""
    if res.reason == REASON_UNCHECKED:  # a "differ" whose rows all agree: too few of them checked anything
        return "NOT CHECKED", max_abs, max_rel, f"{res.reason}: {res.detail or ''}".strip()
    if res.status == "error":
        return "FAILS", max_abs, max_rel, f"{res.reason}: {res.detail or ''}".strip()
    bad = res.failed_rows
    if not bad:  # the upgraded code raised: a difference of behaviour
        return "DIFFER", max_abs, max_rel, f"{res.reason}: {res.detail or ''}".strip()
    shown = "; ".join(f"{r.mode} {r.kind} {r.path}" + (f" ({r.note})" if r.note else "") for r in bad[:3])
    return "DIFFER", max_abs, max_rel, f"{len(bad)} of {len(res.rows)} rows differ: {shown}"


def run(cases: list, corpus: Path, platform: str | None, timeout: float, keep: Path | None) -> list:
    work = Path(tempfile.mkdtemp(prefix="real-models-")) if keep is None else keep
    rows = []
    stubs = write_stubs(work / "stubs")
    try:
        by_folder = defaultdict(list)
        for c in cases:
            by_folder[c.folder].append(c)
        for folder, fcases in by_folder.items():
            legacy, upgraded = work / "legacy" / folder, work / "upgraded" / folder
            for d in (legacy, upgraded):
                if d.exists():
                    shutil.rmtree(d)
                writable_copy(corpus / folder, d)
                prepare(d, folder)
            t = time.perf_counter()
            summary = upgrade_folder(upgraded)
            print(f"{folder}: upgraded in {time.perf_counter() - t:.1f} s ({summary})", flush=True)
            by_file = defaultdict(list)
            for c in fcases:
                by_file[c.file].append(c)
            for file, group in by_file.items():
                jobs = [ModuleJob(c.module, str(upgraded / file), [parse_input_spec(s) for s in c.inputs],
                                  dict(c.kwargs), input_source="case") for c in group]
                t = time.perf_counter()
                results = verify_batch(str(legacy / file), jobs, platform=platform, timeout=timeout,
                                       legacy_paths=[str(stubs)] + [str(legacy / r) for r in group[0].roots],
                                       upgraded_paths=[str(stubs)] + [str(upgraded / r) for r in group[0].roots])
                wall = time.perf_counter() - t
                todos = (upgraded / file).read_text(errors="replace").count("TODO(linen-upgrade)")
                for c, res in zip(group, results):
                    status, max_abs, max_rel, reason = verdict(res)
                    if status != "OK" and todos:
                        reason += f" [upgraded file: {todos} TODO(linen-upgrade)]"
                    rows.append({"case": c, "status": status, "max_abs": max_abs, "max_rel": max_rel,
                                 "time": wall, "shared": len(group), "reason": reason,
                                 "platform": res.platform})
                    print(f"  {c.name}: {status} {reason[:200]}", flush=True)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def fmt_err(x) -> str:
    return "-" if x is None else f"{x:.1e}"


def table(rows: list) -> str:
    out = ["| case | kind | verdict | max abs err | max rel err | time | reason |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        c: Case = r["case"]
        shared = f" (file, {r['shared']} cases)" if r["shared"] > 1 else ""
        reason = (r["reason"] or "").replace("|", "\\|").replace("\n", " ")[:300]
        out.append(f"| `{c.name}` | {c.kind} | {r['status']} | {fmt_err(r['max_abs'])} | "
                   f"{fmt_err(r['max_rel'])} | {r['time']:.1f} s{shared} | {reason} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--folder", action="append", default=[], help="only these corpus folders")
    ap.add_argument("--case", action="append", default=[], help="only cases whose name contains this")
    ap.add_argument("--platform", choices=["cpu", "gpu", "tpu"], default=None)
    ap.add_argument("--timeout", type=float, default=600.0, help="per process, seconds")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    ns = ap.parse_args()
    if not ns.corpus.is_dir():
        raise SystemExit(f"no corpus at {ns.corpus} (--corpus)")
    cases = [c for c in CASES if (not ns.folder or c.folder in ns.folder)
             and (not ns.case or any(s in c.name for s in ns.case))]
    legacy_env.ensure()
    t = time.perf_counter()
    rows = run(cases, ns.corpus, ns.platform, ns.timeout, ns.keep)
    total = time.perf_counter() - t
    import jax
    import flax
    n_ok = sum(r["status"] == "OK" for r in rows)
    folders_ok = {r["case"].folder for r in rows if r["status"] == "OK"}
    platform = next((r["platform"] for r in rows if r["platform"]), ns.platform or "?")
    print()
    print(f"real models: {n_ok} of {len(rows)} cases agree, from {len(folders_ok)} of "
          f"{len({r['case'].folder for r in rows})} folders; platform {platform}; "
          f"jax {jax.__version__}, flax {flax.__version__} vs flax {legacy_env.FLAX_VERSION}; "
          f"{os.cpu_count()} cores; {total:.0f} s in all")
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
