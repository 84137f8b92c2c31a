#!/usr/bin/env python
"""linen-upgrade benchmark (a script, not a test).

    python bench/bench.py            # full run, about 2 minutes on 2 cores
    python bench/bench.py --quick    # smaller corpus, fewer repetitions (< 1 min)
    python bench/bench.py --profile  # also print where the in-process time goes
    python bench/bench.py --real-only  # only e., the real corpus (-j 2 vs -j 1 among them)
    python bench/bench.py --large    # only g., one large legacy file of 5k, 10k and 20k lines
    python bench/bench.py --startup  # only d., start-up of single files

Builds a corpus in a temporary folder -- the installed jax, flax and optax
``.py`` sources plus the legacy fixture sources replicated N times, each copy
in its own folder -- and measures, in the same run:

a. the rewrite (``linen-upgrade --check -j 1``, as a subprocess and in-process
   through ``linen_upgrade.pipeline.run``) against a bare LibCST
   ``parse_module`` + ``.code`` of the same candidate files (those containing
   ``b"flax"``), single process.  Goal: <= 1.5x.
b. a no-op run over a tree with no legacy code (the jax sources without the
   files that mention flax) against reading its files in Python.  Goal: <= 3x.
c. ``-j 2`` against ``-j 1`` on the corpus (subprocess).
d. ``linen-upgrade --check one_file.py`` start-up against ``python -c pass``
   (a legacy file, and a modern one with nothing to parse), and whether jax
   (or flax, optax, numpy) gets imported.  Goal: never; <= 0.25 s.  Python runs with
   a bytecode cache of the run's own (``PYTHONPYCACHEPREFIX``), filled first, as an
   installed package has one; for reference, also a legacy program, and one_file.py
   with this package compiled from source at every start (a checkout run with
   ``PYTHONDONTWRITEBYTECODE=1``).
e. the real corpus (``../shared/corpus`` beside the repository, when it
   exists): ``--check -j 1`` against a bare LibCST round trip of its files
   that mention flax (goal <= 3x, on the way to 1.5x), and ``-j 2`` against
   ``-j 1`` (goal >= 1.7x).
f. a no-op run over the installed jax, flax and optax sources against
   ``ruff check --select UP`` of the same files, when ruff is installed.  Goal: <= 3x.
g. (``--large`` only) one large legacy file of about 5k, 10k and 20k lines (the fixture
   programs repeated, each copy's top-level names renamed): ``--check -j 1`` CPU seconds and
   peak memory against a bare LibCST round trip of the same file in its own process, and the
   exponent of time in size.  Goals: time linear; peak memory <= 2x the bare parse's.

Every figure is the median of a few repetitions (start-up: of 11, quick 5).  Goals are not asserted: each
gets PASS or MISS.  The last block is markdown for the README.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import json
import math
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LEGACY_GLOBS = ("fixtures/rules/**/*.in.py", "fixtures/programs/**/*.py")
# fewer fixture files than this: the rules' inline examples are added as well
FEW_FIXTURES = 10
SITE_PACKAGES = ("jax", "flax", "optax")
HEAVY_MODULES = ("jax", "jaxlib", "flax", "optax", "numpy", "orbax")

GOAL_REWRITE = 1.5
GOAL_NOOP = 3.0
GOAL_STARTUP_S = 0.25
GOAL_REAL = 3.0
GOAL_PARALLEL = 1.7
GOAL_RUFF = 3.0
GOAL_LARGE_MEMORY = 2.0
# g.: the fixture programs a large file repeats, and its sizes in lines
LARGE_SOURCES = ("resnet_batchnorm", "cnn_classifier", "dropout_mlp", "lstm_sequence")
LARGE_LINES = (5000, 10000, 20000)
REAL_CORPUS = REPO.parent / "shared" / "corpus"
# d.: the legacy program whose start-up is measured beside one_file.py (a whole small training script)
STARTUP_PROGRAM = REPO / "fixtures" / "programs" / "cnn_classifier" / "main.py"


# -- the corpus ---------------------------------------------------------------

def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"bench: package {name!r} is not installed (pip install -e '.[dev]')")
    return Path(next(iter(spec.submodule_search_locations)))


def _copy_py_tree(src: Path, dst: Path, keep: Callable[[bytes], bool] = lambda data: True) -> int:
    n = 0
    for path in sorted(src.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        data = path.read_bytes()
        if not keep(data):
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        n += 1
    return n


def legacy_sources() -> list[tuple[str, bytes]]:
    """(file name, source) of every legacy input we have."""
    out: list[tuple[str, bytes]] = []
    for pattern in LEGACY_GLOBS:
        for path in sorted(REPO.glob(pattern)):
            rel = path.relative_to(REPO / "fixtures")
            stem = "__".join(rel.with_suffix("").parts).replace(".in", "").replace(".", "_")
            out.append((f"{stem}.py", path.read_bytes()))
    if len(out) < FEW_FIXTURES:
        from linen_upgrade.registry import all_rules
        from linen_upgrade.rule import Example

        for rule in all_rules():
            for k, example in enumerate(e for e in rule.examples if isinstance(e, Example)):
                out.append((f"example_{rule.id}_{k}.py", example.before.encode("utf-8")))
    return out


def single_files(root: Path) -> dict[str, Path]:
    """d.'s files, each checked alone: one legacy line, a modern file, a legacy program."""
    folder = root / "single"
    folder.mkdir()
    sources = {
        "one": ("one_file.py", b"from flax import nn\nimport jax\n\ny = jax.tree_multimap(lambda a, b: a + b, x, x)\n"),
        "modern": ("modern_file.py", b"import numpy as np\n\n\ndef f(x):\n    return np.tanh(x) * 2\n"),
        "program": ("legacy_program.py", STARTUP_PROGRAM.read_bytes()),
    }
    for name, data in sources.values():
        (folder / name).write_bytes(data)
    return {key: folder / name for key, (name, _) in sources.items()}


def build_corpus(root: Path, copies: int) -> dict:
    corpus = root / "corpus"
    counts = {}
    for name in SITE_PACKAGES:
        counts[name] = _copy_py_tree(_package_dir(name), corpus / "site" / name)
    sources = legacy_sources()
    for i in range(copies):
        folder = corpus / "legacy" / f"copy_{i:03d}"
        folder.mkdir(parents=True)
        for name, data in sources:
            (folder / name).write_bytes(data)
    # the no-op tree: jax without any file that mentions flax
    noop = root / "noop"
    counts["noop"] = _copy_py_tree(_package_dir("jax"), noop / "jax", keep=lambda d: b"flax" not in d)
    files = sorted(corpus.rglob("*.py"))
    datas = {p: p.read_bytes() for p in files}
    return {
        "corpus": corpus,
        "legacy": corpus / "legacy",
        "noop": noop,
        **single_files(root),
        "files": files,
        "bytes": sum(len(d) for d in datas.values()),
        "candidates": [p for p, d in datas.items() if b"flax" in d],
        "legacy_files": [p for p in files if (corpus / "legacy") in p.parents],
        "legacy_per_copy": len(sources),
        "copies": copies,
        "counts": counts,
    }


# -- measuring ----------------------------------------------------------------

def median_time(fn: Callable[[], object], reps: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "linen-upgrade"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "linen_upgrade.cli"]


def run_cli(args: list[str], cwd: Path, codes: tuple[int, ...] = (0, 1)) -> subprocess.CompletedProcess:
    proc = subprocess.run([*cli_command(), *args], cwd=cwd, capture_output=True)
    if proc.returncode not in codes:
        sys.stderr.write(proc.stderr.decode(errors="replace")[-2000:])
        raise SystemExit(f"bench: linen-upgrade {' '.join(args)} exited {proc.returncode}")
    return proc


def bare_libcst(files: list[Path]) -> int:
    import libcst as cst

    n = 0
    for path in files:
        n += len(cst.parse_module(path.read_bytes()).code)
    return n


def ruff_command() -> list[str] | None:
    script = Path(sys.executable).parent / "ruff"
    found = str(script) if script.is_file() else shutil.which("ruff")
    return [found, "check", "--select", "UP", "--no-cache", "--exit-zero", "-q"] if found else None


def large_file(lines: int, out: Path) -> int:
    """g. a legacy file of at least ``lines`` lines: the ``LARGE_SOURCES`` programs repeated, each
    copy's top-level names suffixed (``_3``) so that the copies do not rebind each other, their
    imports once at the top.  Returns its line count."""
    import ast
    import re

    sources = [(REPO / "fixtures" / "programs" / name / "main.py").read_text() for name in LARGE_SOURCES]
    header: list[str] = []
    parts: list[str] = []
    k = 0
    while sum(part.count("\n") for part in parts) < lines:
        for src in sources:
            tree = ast.parse(src)
            names = {t.id for stmt in tree.body
                     if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.For))
                     for target in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])
                     for t in ast.walk(target) if isinstance(t, ast.Name)}
            names |= {stmt.name for stmt in tree.body if isinstance(stmt, (ast.FunctionDef, ast.ClassDef))}
            body = []
            for stmt in tree.body:
                segment = ast.get_source_segment(src, stmt, padded=True) or ""
                if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    if segment not in header:
                        header.append(segment)
                elif not (isinstance(stmt, ast.If) and "__main__" in segment):
                    body.append(segment)
            text = "\n\n\n".join(body) + "\n"
            if names:
                pattern = r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b"
                text = re.sub(pattern, lambda m: f"{m[1]}_{k}", text)
            parts.append(text)
        k += 1
    out.write_text("\n".join(header) + "\n\n\n" + "\n\n".join(parts))
    return out.read_text().count("\n")


def cpu_and_peak(command: list[str], cwd: Path) -> tuple[float, float]:
    """User+sys CPU seconds and peak memory (MB) of ``command``, run under a fresh Python whose
    only child it is (a process's children's ``ru_maxrss`` is the largest of them all)."""
    probe = ("import resource, subprocess, sys\n"
             "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
             "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
             "print(r.ru_utime + r.ru_stime, r.ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", probe, *command], cwd=cwd, capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), float(out[1]) / 1024  # ru_maxrss: KiB on Linux


def large_file_figures(tmp: Path) -> None:
    """g. one large legacy file: the rewrite's CPU time and peak memory against a bare LibCST round
    trip of the same file, one after the other for each size, and the exponent of time in size."""
    bare = [sys.executable, "-c", "import sys, libcst; libcst.parse_module(open(sys.argv[1], 'rb').read()).code"]
    measured = []
    for lines in LARGE_LINES:
        folder = tmp / f"large_{lines}"
        folder.mkdir()
        n = large_file(lines, folder / "big.py")
        ours, ours_mb = cpu_and_peak([*cli_command(), "--check", "-q", "-j", "1", str(folder / "big.py")], tmp)
        base, base_mb = cpu_and_peak([*bare, str(folder / "big.py")], tmp)
        measured.append((n, ours, base))
        print(f"  large file, {n} lines: {ours:.2f} s CPU, {ours_mb:.0f} MB peak; bare LibCST {base:.2f} s, "
              f"{base_mb:.0f} MB ({ours / base:.1f}x time, {ours_mb / base_mb:.2f}x memory "
              f"<= {GOAL_LARGE_MEMORY}x {verdict(ours_mb / base_mb <= GOAL_LARGE_MEMORY)}; "
              f"load average {os.getloadavg()[0]:.2f})")
    (n0, t0, b0), (n1, t1, b1) = measured[0], measured[-1]
    exponent = math.log(t1 / t0) / math.log(n1 / n0)
    print(f"  exponent of CPU time in lines, {n0} -> {n1}: {exponent:.2f} "
          f"(bare LibCST {math.log(b1 / b0) / math.log(n1 / n0):.2f}; linear is 1)")


def real_corpus_rows(tmp: Path, reps: int) -> list[tuple]:
    """e. the real legacy corpus: -j 1 against a bare LibCST round trip of its files that mention
    flax, and -j 2 against -j 1 (alternating, so that a change of machine load hits both alike)."""
    import libcst as cst

    files = []
    for path in sorted(REAL_CORPUS.rglob("*.py")):
        try:  # a file LibCST cannot parse (Python 2) is reported by the tool and left out here
            if b"flax" in path.read_bytes() and cst.parse_module(path.read_bytes()):
                files.append(path)
        except cst.ParserSyntaxError:
            pass
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    print(f"real corpus: {REAL_CORPUS} ({len(files)} files mention flax, {lines} lines)")
    t_base, _ = median_time(lambda: bare_libcst(files), reps)
    pairs = []
    for _ in range(reps):
        load = os.getloadavg()[0]  # other processes on the machine: -j 2 needs two free cores
        # exit 2: a corpus file that does not parse is reported, the others are still rewritten
        t1, _ = median_time(lambda: run_cli(["--check", "-q", "-j", "1", str(REAL_CORPUS)], tmp, (0, 1, 2)), 1)
        t2, _ = median_time(lambda: run_cli(["--check", "-q", "-j", "2", str(REAL_CORPUS)], tmp, (0, 1, 2)), 1)
        pairs.append((t1, t2))
        print(f"  real corpus pair: -j 1 {t1:.2f} s, -j 2 {t2:.2f} s, speed-up {t1 / t2:.2f}x "
              f"(load average before: {load:.2f})")
    t_j1 = statistics.median(p[0] for p in pairs)
    t_j2 = statistics.median(p[1] for p in pairs)
    print(f"  real corpus -j 2 speed-up, median of the pairs' ratios: "
          f"{statistics.median(t1 / t2 for t1, t2 in pairs):.2f}x")
    return [("e. real corpus, CLI `--check -j 1` (subprocess)", t_j1,
             "bare LibCST parse+print of its files that mention flax", t_base, GOAL_REAL),
            ("e. real corpus, CLI `--check -j 2` (subprocess)", t_j2, "the same with `-j 1`", t_j1,
             1 / GOAL_PARALLEL)]


def read_all(root: Path) -> int:
    return sum(len(p.read_bytes()) for p in root.rglob("*.py"))


def in_process(paths: list[Path], jobs: int = 1):
    from linen_upgrade import pipeline
    from linen_upgrade.config import Config
    from linen_upgrade.files import discover
    from linen_upgrade.registry import all_rules

    rule_ids = [r.id for r in all_rules()]
    return pipeline.run(list(discover([str(p) for p in paths])), Config(), rule_ids, jobs)


def startup_env(tmp: Path, cold: bool = False) -> dict[str, str]:
    """d.'s environment: bytecode read from and written to the run's own cache
    (``PYTHONPYCACHEPREFIX``), as an installed package has it (pip compiles it); ``cold``: what the
    cache holds of this package is not written back (``PYTHONDONTWRITEBYTECODE=1``)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def drop_own_bytecode(tmp: Path) -> None:
    """Remove this package's part of ``startup_env``'s cache: a cold start compiles it from source
    (a checkout run with ``PYTHONDONTWRITEBYTECODE=1``), the other modules' bytecode is still read."""
    import linen_upgrade.rules

    for folder in (Path(linen_upgrade.__file__).parent, *map(Path, linen_upgrade.rules.__path__)):
        folder = folder.resolve()
        shutil.rmtree(tmp / "pycache" / folder.relative_to(folder.anchor), ignore_errors=True)


def startup_figures(single: dict[str, Path], tmp: Path, reps: int) -> dict[str, tuple[float, float]]:
    """d.: (wall, CPU) seconds of each command, medians, the commands alternating in every
    repetition; the bytecode cache is filled first, and emptied of this package's modules for
    ``one_cold``.  CPU is the process's user + sys time: on a shared machine the wall clock also
    holds the waits for a free core."""
    def command(key: str) -> list[str]:
        return [*cli_command(), "--check", "-q", str(single[key])]

    def timed(commands: dict[str, tuple[list[str], dict[str, str]]]) -> dict[str, tuple[float, float]]:
        times: dict[str, list[tuple[float, float]]] = {key: [] for key in commands}
        for _ in range(reps):
            for key, (argv, env) in commands.items():
                before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                proc = subprocess.run(argv, env=env, cwd=single["one"].parent, capture_output=True)
                wall, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
                times[key].append((wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime))
                if proc.returncode not in (0, 1):
                    raise SystemExit(f"bench: {' '.join(argv)} exited {proc.returncode}:\n"
                                     f"{proc.stderr.decode(errors='replace')[-2000:]}")
        return {key: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
                for key, t in times.items()}

    warm = startup_env(tmp)
    commands = {"pass": ([sys.executable, "-c", "pass"], warm),
                "floor": ([sys.executable, "-c", "import libcst, click"], warm),
                **{key: (command(key), warm) for key in ("one", "modern", "program")}}
    for argv, env in commands.values():  # fills the cache
        subprocess.run(argv, env=env, cwd=single["one"].parent, capture_output=True)
    figures = timed(commands)
    drop_own_bytecode(tmp)
    cold = timed({"pass": commands["pass"], "one_cold": (command("one"), startup_env(tmp, cold=True))})
    figures["one_cold"], figures["pass_cold"] = cold["one_cold"], cold["pass"]
    return figures


Seconds = tuple[float, float]  # (wall, CPU)


def startup_rows(f: dict[str, Seconds]) -> list[tuple[str, Seconds, Seconds, float | None]]:
    """d.'s rows: (label, its seconds, ``python -c pass``'s, goal in seconds over it or None)."""
    lines = STARTUP_PROGRAM.read_bytes().count(b"\n")
    return [
        ("start-up, `linen-upgrade --check one_file.py`", f["one"], f["pass"], GOAL_STARTUP_S),
        ("start-up, `linen-upgrade --check modern_file.py` (nothing to parse)", f["modern"], f["pass"],
         GOAL_STARTUP_S),
        (f"start-up, `--check legacy_program.py` ({STARTUP_PROGRAM.parent.name}, {lines} lines)", f["program"], f["pass"], None),
        ("start-up, `--check one_file.py`, this package without bytecode", f["one_cold"], f["pass_cold"], None),
        ("start-up floor, `python -c 'import libcst, click'`", f["floor"], f["pass"], None),
    ]


def startup_met(ours: Seconds, base: Seconds, goal: float) -> bool:
    """The goal is judged on CPU seconds (wall, on a shared machine, waits for a core)."""
    return ours[1] - base[1] <= goal


def print_startup(rows: list[tuple[str, Seconds, Seconds, float | None]], probe: dict) -> bool:
    """Prints d.'s rows; is jax imported by a rewrite run?"""
    print(f"{'d. start-up, seconds (wall / CPU)':<66} {'ours':>13} {'python -c pass':>14} {'over it':>15}")
    for label, ours, base, goal in rows:
        mark = f"<= +{goal}s CPU {verdict(startup_met(ours, base, goal))}" if goal else "(reference)"
        print(f"d. {label:<63} {ours[0]:>6.3f}/{ours[1]:.3f} {base[0]:>7.3f}/{base[1]:.3f} "
              f"+{ours[0] - base[0]:.3f}/+{ours[1] - base[1]:.3f}  {mark}")
    jax_imported = "jax" in probe["heavy"] or "jax" in probe["importtime_heavy"]
    print(f"{'d. jax imported by a rewrite run':<66} {'yes' if jax_imported else 'no':>8}"
          f" {'':>9} {'':>7}  never {verdict(not jax_imported)}"
          f"   (heavy modules loaded: {', '.join(probe['heavy']) or 'none'}; "
          f"-X importtime: {', '.join(probe['importtime_heavy']) or 'none'}; "
          f"{probe['modules']} modules in sys.modules)")
    return jax_imported


def startup_probe(one: Path) -> dict:
    code = (
        "import sys, json\n"
        "from linen_upgrade.cli import main\n"
        f"rc = main(['--check', '-q', {str(one)!r}])\n"
        f"heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
        "sys.stderr.write('@@' + json.dumps({'rc': rc, 'heavy': heavy, 'modules': len(sys.modules)}) + '\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=one.parent, capture_output=True, text=True)
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("@@")), None)
    if line is None:
        raise SystemExit(f"bench: start-up probe failed:\n{proc.stderr[-2000:]}")
    probe = json.loads(line[2:])
    # the same question answered by the interpreter itself
    imp = subprocess.run([sys.executable, "-X", "importtime", "-m", "linen_upgrade.cli", "--check", "-q",
                          str(one)], cwd=one.parent, capture_output=True, text=True)
    rows = []
    for ln in imp.stderr.splitlines():
        if not ln.startswith("import time:") or "|" not in ln or "self [us]" in ln:
            continue
        _, cumulative, name = ln[len("import time:"):].split("|")
        rows.append((int(cumulative), name.rstrip()))
    top_level = [(c, n.strip()) for c, n in rows if n.startswith(" ") and not n.startswith("  ")]
    probe["importtime_heavy"] = sorted({n.strip().split(".")[0] for _, n in rows} & set(HEAVY_MODULES))
    probe["top_imports"] = sorted(top_level, reverse=True)[:6]
    return probe


def profile(label: str, fn: Callable[[], object], limit: int = 18) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs().sort_stats("cumulative")
    stats.print_stats(limit)
    print(f"\n--- cProfile: {label} (cumulative) ---")
    print("\n".join(out.getvalue().splitlines()[4:]))
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime").print_stats(10)
    print(f"--- cProfile: {label} (own time) ---")
    print("\n".join(out.getvalue().splitlines()[4:]))


# -- report -------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def goal_mark(ours: float, base: float, goal: float | None, x: str = "x", le: str = "<=", ge: str = ">=") -> str:
    """What a row says about its goal: a ratio ceiling (goal >= 1) or a speed-up floor (1 / goal)."""
    ratio = ours / base if base else float("inf")
    if not goal:
        return f"speed-up {base / ours:.2f}{x}"
    if goal >= 1:
        return f"{le} {goal}{x} {verdict(ratio <= goal)}"
    return f"speed-up {base / ours:.2f}{x} {ge} {1 / goal:.1f}{x} {verdict(ratio <= goal)}"


def print_rows(rows: list[tuple]) -> None:
    print(f"{'measure':<66} {'ours':>8} {'baseline':>9} {'ratio':>7}  goal")
    for label, ours, base_label, base, goal in rows:
        ratio = ours / base if base else float("inf")
        mark = goal_mark(ours, base, goal)
        print(f"{label:<66} {ours:>7.3f}s {base:>8.3f}s {ratio:>6.2f}x  {mark}   (baseline: {base_label})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small corpus, few repetitions")
    parser.add_argument("--copies", type=int, default=None, help="legacy fixture copies (default 10, quick 2)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 3, quick 2)")
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process runs")
    parser.add_argument("--keep", action="store_true", help="keep the corpus folder and print its path")
    parser.add_argument("--real-only", action="store_true",
                        help="only e.: the real corpus, -j 1 vs bare LibCST and -j 2 vs -j 1")
    parser.add_argument("--startup", action="store_true", help="only d.: start-up of single files")
    parser.add_argument("--large", action="store_true",
                        help="only g.: one large legacy file of 5k, 10k and 20k lines, CPU time and peak memory")
    args = parser.parse_args()
    copies = args.copies if args.copies is not None else (2 if args.quick else 10)
    reps = args.reps or (2 if args.quick else 3)
    if args.real_only:
        if not REAL_CORPUS.is_dir():
            raise SystemExit(f"bench: no real corpus at {REAL_CORPUS}")
        print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs; {reps} pairs, median")
        with tempfile.TemporaryDirectory(prefix="lu-bench-") as tmp:
            print_rows(real_corpus_rows(Path(tmp), reps))
        return 0
    if args.large:
        print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs; one run per size")
        with tempfile.TemporaryDirectory(prefix="lu-bench-") as tmp:
            large_file_figures(Path(tmp))
        return 0
    startup_reps = 5 if args.quick else 11
    if args.startup:
        print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs; median of {startup_reps}; "
              f"load average {os.getloadavg()[0]:.2f}")
        with tempfile.TemporaryDirectory(prefix="lu-bench-") as tmp:
            single = single_files(Path(tmp))
            print_startup(startup_rows(startup_figures(single, Path(tmp), startup_reps)), startup_probe(single["one"]))
        return 0
    started = time.perf_counter()

    import importlib.metadata

    import linen_upgrade

    tmp = Path(tempfile.mkdtemp(prefix="lu-bench-"))
    try:
        c = build_corpus(tmp, copies)
        print(f"linen-upgrade {linen_upgrade.__version__} benchmark: Python {platform.python_version()}, "
              f"libcst {importlib.metadata.version('libcst')}, "
              f"{os.cpu_count()} CPUs, {platform.machine()}, {'quick' if args.quick else 'full'} run")
        print(f"corpus: {len(c['files'])} files, {c['bytes'] / 1e6:.1f} MB "
              f"({', '.join(f'{k} {v}' for k, v in c['counts'].items() if k != 'noop')} files; "
              f"{c['legacy_per_copy']} legacy sources x {copies} copies = {len(c['legacy_files'])} files); "
              f"{len(c['candidates'])} candidate files mention flax")
        print(f"no-op tree: {c['counts']['noop']} jax files without 'flax'")
        print(f"{reps} repetitions per figure, median; CLI = {' '.join(cli_command())}\n")

        # warm: imports, rule discovery, the file system cache
        in_process([c["legacy"] / "copy_000"])
        read_all(c["corpus"])

        rows = []
        # a. rewrite vs bare LibCST
        t_base, _ = median_time(lambda: bare_libcst(c["candidates"]), reps)
        # -j 1 and -j 2 alternate, so that a change of machine load hits both alike (a. and c.)
        pairs = []
        for _ in range(reps):
            t1, proc = median_time(lambda: run_cli(["--check", "-q", "-j", "1", str(c["corpus"])], tmp), 1)
            t2, _ = median_time(lambda: run_cli(["--check", "-q", "-j", "2", str(c["corpus"])], tmp), 1)
            pairs.append((t1, t2))
        t_cli1 = statistics.median(p[0] for p in pairs)
        t_cli2 = statistics.median(p[1] for p in pairs)
        t_inp, run = median_time(lambda: in_process([c["corpus"]]), reps)
        parsed = sum(r.parsed for r in run.results)
        changed = sum(r.changed for r in run.results)
        errors = [r.error for r in run.results if r.error]
        t_leg_base, _ = median_time(lambda: bare_libcst(c["legacy_files"]), reps)
        t_leg, _ = median_time(lambda: in_process([c["legacy"]]), reps)
        rows += [
            ("a. rewrite corpus, CLI `--check -j 1` (subprocess)", t_cli1,
             "bare LibCST parse+print of the candidates", t_base, GOAL_REWRITE),
            ("a. rewrite corpus, in-process `pipeline.run(jobs=1)`", t_inp,
             "bare LibCST parse+print of the candidates", t_base, GOAL_REWRITE),
            ("a. legacy files only, in-process", t_leg,
             "bare LibCST parse+print of the same files", t_leg_base, GOAL_REWRITE),
        ]
        # b. no-op
        t_read, nbytes = median_time(lambda: read_all(c["noop"]), reps)
        t_noop, noop_run = median_time(lambda: in_process([c["noop"]]), reps)
        t_noop_cli, _ = median_time(lambda: run_cli(["--check", "-q", "-j", "1", str(c["noop"])], tmp), reps)
        noop_parsed = sum(r.parsed for r in noop_run.results)
        rows += [
            ("b. no-op tree, in-process `pipeline.run(jobs=1)`", t_noop,
             "`Path.read_bytes` loop over its files", t_read, GOAL_NOOP),
            ("b. no-op tree, CLI `--check -j 1` (subprocess, incl. start-up)", t_noop_cli,
             "`Path.read_bytes` loop over its files", t_read, GOAL_NOOP),
        ]
        # f. no-op over the modern jax/flax/optax sources vs ruff
        ruff = ruff_command()
        if ruff is not None:
            site = c["corpus"] / "site"
            t_ruff, _ = median_time(lambda: subprocess.run([*ruff, str(site)], capture_output=True, check=True), reps)
            t_site, _ = median_time(lambda: run_cli(["--check", "-q", "-j", "1", str(site)], tmp), reps)
            rows.append(("f. no-op jax/flax/optax sources, CLI `--check -j 1`", t_site,
                         "`ruff check --select UP` of the same files", t_ruff, GOAL_RUFF))
        else:
            print("f. skipped: ruff is not installed")
        # e. the real corpus
        if REAL_CORPUS.is_dir():
            rows += real_corpus_rows(tmp, reps)
        else:
            print(f"e. skipped: no real corpus at {REAL_CORPUS}")
        # c. -j 2 vs -j 1
        rows.append(("c. rewrite corpus, CLI `--check -j 2` (subprocess)", t_cli2,
                     "the same with `-j 1`", t_cli1, None))
        # d. start-up
        startup = startup_rows(startup_figures(c, tmp, startup_reps))
        probe = startup_probe(c["one"])

        # -- the table ------------------------------------------------------
        print_rows(rows)
        jax_imported = print_startup(startup, probe)
        print()
        print(f"details: the corpus run parsed {parsed} of {len(c['candidates'])} candidate files with LibCST, "
              f"would change {changed}, errors {len(errors)}; the no-op run parsed {noop_parsed} files "
              f"({nbytes / 1e6:.1f} MB read by the baseline); CLI exit code on the corpus {proc.returncode}")
        for e in errors[:5]:
            print(f"  error: {e}")
        print("slowest imports at start-up (cumulative us): "
              + ", ".join(f"{n} {us}" for us, n in probe["top_imports"]))

        # -- markdown for the README ---------------------------------------
        print("\n<!-- bench/bench.py " + ("--quick " if args.quick else "") + "output -->")
        print(f"Measured with `python bench/bench.py{' --quick' if args.quick else ''}` "
              f"(Python {platform.python_version()}, {os.cpu_count()} CPUs; corpus: installed jax, flax and "
              f"optax sources + {len(c['legacy_files'])} legacy fixture files, "
              f"{len(c['files'])} files, {c['bytes'] / 1e6:.1f} MB; median of {reps}):\n")
        print("| measure | linen-upgrade | baseline | ratio | goal |")
        print("|---|---:|---:|---:|---|")
        for label, ours, base_label, base, goal in rows:
            ratio = ours / base if base else float("inf")
            g = goal_mark(ours, base, goal, x="×", le="≤", ge="≥")
            print(f"| {label[3:]} | {ours:.2f} s | {base:.2f} s ({base_label}) | {ratio:.2f}× | {g} |")
        for label, ours, base, goal in startup:  # (wall / CPU seconds)
            print(f"| {label} | {ours[0]:.3f} / {ours[1]:.3f} s | {base[0]:.3f} / {base[1]:.3f} s (`python -c pass`) "
                  f"| +{ours[0] - base[0]:.3f} / +{ours[1] - base[1]:.3f} s | "
                  + (f"≤ +{goal} s CPU {verdict(startup_met(ours, base, goal))} |" if goal else "(reference) |"))
        print(f"| jax imported by a rewrite run | {'yes' if jax_imported else 'no'} | | | "
              f"never {verdict(not jax_imported)} |")

        missed = any(g and o / b > g for _, o, _, b, g in rows) or jax_imported \
            or any(g and not startup_met(o, b, g) for _, o, b, g in startup)
        if missed and not args.profile:
            print("\nA goal was missed: `bench/bench.py --profile` shows where the time goes.")
        if args.profile:
            profile("legacy files only in-process", lambda: in_process([c["legacy"]]))
            profile("rewrite corpus in-process", lambda: in_process([c["corpus"]]))
            profile("no-op tree in-process", lambda: in_process([c["noop"]]))
        if args.keep:
            print(f"\ncorpus kept in {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
