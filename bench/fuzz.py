"""Differential testing at scale (issue 16): generate legacy programs, upgrade
each with linen-upgrade, run the legacy one on flax 0.3.6 and the upgraded
one on current flax, and count the verdicts.

    .venv/bin/python bench/fuzz.py --n 200 --seed 0 -j 2

Program i is ``generate(seed + i)`` (bench/fuzz/generate.py), so any one is
reproduced with ``--n 1 --seed SEED+i``. Prints one line per program that is
not *equivalent*, then the counts, the share equivalent, the time per
program and how often each construct was drawn. A *silent-wrong* program is
shrunk (bench/fuzz/shrink.py) and printed; ``--keep DIR`` also writes every
non-equivalent program there. Exit 1 when any program is silent-wrong or
crashed the tool.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz.generate import generate  # noqa: E402
from fuzz.oracle import VERDICTS, Outcome, check_program  # noqa: E402
from fuzz.shrink import shrink  # noqa: E402


def run_one(seed: int) -> tuple[int, Outcome, Counter]:
    program = generate(seed)
    outcome = check_program(program)
    return seed, outcome, program.constructs


def _write_json(args, counts, constructs, in_programs, honest_rules, seconds, rows) -> None:
    args.json.write_text(json.dumps({
        "n": args.n, "done": len(rows), "seed": args.seed, "jobs": args.jobs, "counts": counts,
        "constructs": constructs, "constructs_in_programs": in_programs, "honest_rules": honest_rules,
        "seconds": seconds, "programs": rows}, indent=1))


def _rules(findings: str) -> set[str]:
    """The rule ids of report lines ``path:line:col: RULE needs manual change: ...``."""
    return {m.group(1) for m in re.finditer(r": (LU\d+) needs manual change", findings)}


def minimal(seed: int, verdict: str, budget: int) -> str:
    """The program of ``seed`` shrunk while its verdict stays ``verdict``."""
    p = generate(seed)

    def still(source: str) -> bool:
        return check_program(dataclasses.replace(p, source=source)).verdict == verdict
    return shrink(p.source, still, budget=budget, log=lambda m: print(m, flush=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20, help="how many programs")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first program")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="programs checked side by side")
    ap.add_argument("--shrink-budget", type=int, default=40, help="checks spent shrinking each silent-wrong one")
    ap.add_argument("--keep", type=Path, help="write every non-equivalent program (and its upgrade) here")
    ap.add_argument("--json", type=Path, help="write the verdicts and construct counts here")
    args = ap.parse_args(argv)

    start = time.monotonic()
    counts: Counter = Counter()
    constructs: Counter = Counter()   # occurrences
    in_programs: Counter = Counter()  # programs with at least one
    honest_rules: Counter = Counter()  # rules leaving TODOs in the honest programs
    bad: list[tuple[int, str]] = []
    rows = []
    seeds = range(args.seed, args.seed + args.n)
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        for seed, outcome, drawn in pool.map(run_one, seeds):
            counts[outcome.verdict] += 1
            constructs.update(drawn)
            in_programs.update(set(drawn))
            rows.append({"seed": seed, "verdict": outcome.verdict, "seconds": round(outcome.seconds, 1),
                         "detail": outcome.detail[:2000]})
            if outcome.verdict == "honest":
                honest_rules.update(_rules(outcome.detail))
            if args.json:  # after every program: a run stopped early still has its counts
                _write_json(args, counts, constructs, in_programs, honest_rules, time.monotonic() - start, rows)
            if outcome.verdict != "equivalent":
                lines = outcome.detail.strip().splitlines()
                # the finding that says why (the LU901 notes follow from it)
                first = next((ln for ln in lines if " LU901 " not in ln), lines[0] if lines else "")
                print(f"seed {seed}: {outcome.verdict}: {first}", flush=True)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    (args.keep / f"{seed}_{outcome.verdict}.py").write_text(generate(seed).source)
                    if outcome.upgraded:
                        (args.keep / f"{seed}_{outcome.verdict}.upgraded.py").write_text(outcome.upgraded)
                if outcome.verdict in ("silent-wrong", "tool-crash"):
                    bad.append((seed, outcome.verdict))
                    print(outcome.detail, flush=True)
    wall = time.monotonic() - start

    for seed, verdict in bad:
        print(f"\n=== seed {seed} ({verdict}), shrunk:")
        print(minimal(seed, verdict, args.shrink_budget))
    n = max(1, args.n)
    print(f"\n{args.n} programs, seed {args.seed}, -j {args.jobs}: " +
          ", ".join(f"{v} {counts[v]}" for v in VERDICTS))
    print(f"equivalent: {counts['equivalent'] / n:.1%}; {wall / n:.1f} s per program "
          f"({wall:.0f} s in all, {args.jobs} at a time)")
    print("rules with TODOs in the honest programs (programs): "
          + ", ".join(f"{rule} {k}" for rule, k in sorted(honest_rules.items())))
    print("constructs drawn (programs with at least one / occurrences):")
    for name, k in sorted(constructs.items()):
        print(f"  {name}: {in_programs[name]} / {k}")
    if args.json:
        _write_json(args, counts, constructs, in_programs, honest_rules, wall, rows)
    return 1 if counts["silent-wrong"] or counts["tool-crash"] else 0


if __name__ == "__main__":
    sys.exit(main())
