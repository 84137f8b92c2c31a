"""Program mode: run the legacy script on the legacy runtime and the upgraded
script on current flax, then compare every number they print, token by token.

Both start from the same weights and dropout masks: the legacy script runs
first and records what each of its inits created (``program_inits.py``); the
upgraded script's n-th Linen init gets legacy init n's variables, renamed with
the checkpoint key rules, and both draw dropout masks by call order
(``modern_program_boot.py``, ``same_draws.py``). When inits cannot be paired
and the numbers differ, the verdict is "error" (the difference may be the
weights, not the rewrite) and says which init and why.

Standard library only.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from . import runner

DEFAULT_RTOL = 2e-4
DEFAULT_ATOL = 1e-6
REASON_UNPAIRED = "inits could not be paired"

_NUM = r"[-+]?(?:nan|inf|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)"
# a number not glued to a preceding letter/underscore/digit (so `Dense_0`, `float32`
# and `0x1f` stay text), e.g. `loss 0.25`, `[1.5e-03,`, `(2, 3)`
_TOKEN_RE = re.compile(r"(?<![A-Za-z_\d.])" + _NUM + r"(?![A-Za-z_\d])", re.IGNORECASE)


def tokenize(line: str) -> List[Any]:
    """Split a line into text tokens (str, whitespace-normalised) and numbers (float)."""
    out: List[Any] = []
    pos = 0
    for m in _TOKEN_RE.finditer(line):
        text = line[pos:m.start()]
        if text.strip():
            out.append(" ".join(text.split()))
        out.append(float(m.group(0)))
        pos = m.end()
    tail = line[pos:]
    if tail.strip():
        out.append(" ".join(tail.split()))
    return out


@dataclass
class Mismatch:
    line: int                    # 1-based line of stdout
    token: int                   # 0-based token index in that line
    legacy: str
    upgraded: str
    kind: str                    # 'number' | 'text' | 'missing line' | 'extra line' | 'token count'
    abs_err: Optional[float] = None
    rel_err: Optional[float] = None
    legacy_line: str = ""
    upgraded_line: str = ""


@dataclass
class ProgramResult:
    status: str                  # 'ok' | 'differ' | 'error'
    reason: Optional[str] = None
    detail: Optional[str] = None
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    lines: int = 0
    numbers: int = 0
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    mismatches: List[Mismatch] = field(default_factory=list)
    inits: List[Dict[str, Any]] = field(default_factory=list)  # one per pair: classes, paired, problem
    draws: Dict[str, Any] = field(default_factory=dict)        # side -> {"masks", "keys"}
    notes: List[str] = field(default_factory=list)
    legacy: Optional[runner.SideResult] = None
    upgraded: Optional[runner.SideResult] = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> Dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("legacy", "upgraded")}
        d["mode"] = "program"
        for side in ("legacy", "upgraded"):
            r = getattr(self, side)
            d[side] = r.to_json() if r is not None else None
        return d


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * abs(a)


def compare_outputs(legacy_out: str, upgraded_out: str, rtol: float = DEFAULT_RTOL,
                    atol: float = DEFAULT_ATOL) -> ProgramResult:
    res = ProgramResult(status="ok", rtol=rtol, atol=atol)
    la = legacy_out.splitlines()
    lb = upgraded_out.splitlines()
    res.lines = max(len(la), len(lb))
    for i in range(res.lines):
        if i >= len(lb):
            res.mismatches.append(Mismatch(i + 1, 0, la[i], "", "missing line", legacy_line=la[i]))
            continue
        if i >= len(la):
            res.mismatches.append(Mismatch(i + 1, 0, "", lb[i], "extra line", upgraded_line=lb[i]))
            continue
        ta, tb = tokenize(la[i]), tokenize(lb[i])
        if len(ta) != len(tb):
            res.mismatches.append(Mismatch(i + 1, 0, la[i], lb[i], "token count",
                                           legacy_line=la[i], upgraded_line=lb[i]))
            continue
        for j, (a, b) in enumerate(zip(ta, tb)):
            if isinstance(a, float) and isinstance(b, float):
                res.numbers += 1
                if math.isfinite(a) and math.isfinite(b):
                    err = abs(a - b)
                    rel = err / abs(a) if a != 0 else (0.0 if err == 0 else math.inf)
                    res.max_abs_err = max(res.max_abs_err, err)
                    res.max_rel_err = max(res.max_rel_err, rel)
                else:
                    err = rel = None
                if not _close(a, b, rtol, atol):
                    res.mismatches.append(Mismatch(i + 1, j, repr(a), repr(b), "number", err, rel,
                                                   la[i], lb[i]))
            elif a != b:
                res.mismatches.append(Mismatch(i + 1, j, str(a), str(b), "text",
                                               legacy_line=la[i], upgraded_line=lb[i]))
    if res.mismatches:
        res.status = "differ"
    return res


def verify_run(legacy_py: str, upgraded_py: str, rtol: float = DEFAULT_RTOL,
               atol: float = DEFAULT_ATOL, timeout: float = runner.DEFAULT_TIMEOUT, *,
               legacy_python: Optional[str] = None, platform: Optional[str] = None,
               args: tuple = ()) -> ProgramResult:
    """Run both scripts from the same weights and masks and compare their stdout
    number by number."""
    return verify_run_variants(legacy_py, [upgraded_py], rtol, atol, timeout,
                               legacy_python=legacy_python, platform=platform, args=args)[0]


def verify_run_variants(legacy_py: str, upgraded_pys: List[str], rtol: float = DEFAULT_RTOL,
                        atol: float = DEFAULT_ATOL, timeout: float = runner.DEFAULT_TIMEOUT, *,
                        legacy_python: Optional[str] = None, platform: Optional[str] = None,
                        args: tuple = (), processes: int = 2) -> List[ProgramResult]:
    """Like :func:`verify_run` for several upgraded scripts against one legacy
    script: the legacy script runs once, first (the upgraded ones start from
    what it recorded); then up to ``processes`` upgraded scripts at a time."""
    from concurrent.futures import ThreadPoolExecutor
    work = runner.make_workdir()
    try:
        lres = runner.run_legacy(legacy_py, args=args, legacy_python=legacy_python,
                                 timeout=timeout, platform=platform, program_dir=str(work))
        legacy_rec = runner.read_json(work / "legacy.json")
        if not lres.ok or legacy_rec is None:
            return [_program_result(lres, None, rtol, atol, None, None) for _ in upgraded_pys]
        reports = [work / f"upgraded_{i}.json" for i in range(len(upgraded_pys))]
        with ThreadPoolExecutor(max(1, processes)) as pool:
            done = list(pool.map(lambda ur: runner.run_modern(
                ur[0], args=args, timeout=timeout, platform=platform, carry_from=str(work),
                report=str(ur[1])), zip(upgraded_pys, reports)))
        return [_program_result(lres, m, rtol, atol, legacy_rec, runner.read_json(r))
                for m, r in zip(done, reports)]
    finally:
        runner.remove_workdir(work)


def pair_inits(legacy_rec: Dict[str, Any], upgraded_rec: Dict[str, Any]) -> tuple:
    """``(rows, problems)``: one row per init of either side, and why any could not be paired."""
    legacy_inits, upgraded_inits = legacy_rec.get("inits", []), upgraded_rec.get("inits", [])
    rows, problems = [], []
    for i in range(max(len(legacy_inits), len(upgraded_inits))):
        leg = legacy_inits[i] if i < len(legacy_inits) else None
        upg = upgraded_inits[i] if i < len(upgraded_inits) else None
        row = {"index": i + 1, "legacy_class": leg and leg["class"], "upgraded_class": upg and upg["class"],
               "paired": bool(upg and upg.get("paired")), "problem": upg and upg.get("problem")}
        if upg is None:
            row["problem"] = (f"the upgraded program made {len(upgraded_inits)} init(s); legacy init "
                              f"{i + 1} ({leg['class']}) has no counterpart")
        rows.append(row)
        if row["problem"]:
            problems.append(f"init {i + 1}: {row['problem']}")
    return rows, problems


def _program_result(lres: runner.SideResult, mres: Optional[runner.SideResult], rtol: float,
                    atol: float, legacy_rec: Optional[Dict[str, Any]],
                    upgraded_rec: Optional[Dict[str, Any]]) -> ProgramResult:
    for side, r, label in (("legacy", lres, "legacy program"), ("upgraded", mres, "upgraded program")):
        if r is None:  # the legacy side failed: the upgraded one was not run
            continue
        if not r.ok:
            # the legacy side failing, or the upgraded one not even starting, means
            # nothing could be compared; the upgraded code raising at run time is a
            # difference of behaviour.
            status = "error"
            if side == "upgraded" and r.reason in (runner.REASON_ERROR,) and lres.ok:
                status = "differ"
            return ProgramResult(status=status, reason=f"{label}: {r.reason}", detail=r.detail,
                                 rtol=rtol, atol=atol, legacy=lres, upgraded=mres)
    if mres is None:
        return ProgramResult(status="error", reason="legacy program: nothing recorded",
                             detail="the legacy side wrote no record of its inits", rtol=rtol, atol=atol,
                             legacy=lres)
    res = compare_outputs(lres.stdout, mres.stdout, rtol, atol)
    res.legacy, res.upgraded = lres, mres
    if upgraded_rec is None:
        return ProgramResult(status="error", reason="upgraded program: nothing recorded",
                             detail="the upgraded side wrote no record of its inits", rtol=rtol,
                             atol=atol, legacy=lres, upgraded=mres)
    res.inits, problems = pair_inits(legacy_rec or {}, upgraded_rec)
    res.draws = {"legacy": (legacy_rec or {}).get("draws"), "upgraded": upgraded_rec.get("draws")}
    res.notes.extend(problems)
    masks = [(d or {}).get("masks") for d in res.draws.values()]
    if masks[0] != masks[1]:
        res.notes.append(f"dropout masks could not be paired: the legacy program drew {masks[0]}, "
                         f"the upgraded one {masks[1]} (traced calls to jax.random.bernoulli)")
    if problems and res.status == "differ":
        # the numbers may differ because the weights do: no verdict on the rewrite
        res.status, res.reason = "error", REASON_UNPAIRED
        res.detail = problems[0]
    return res
