"""What a run did and what it left, as text, JSON or GitHub annotations."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine imports LibCST: a run that parses nothing never loads it
    from linen_upgrade.engine import FileResult, Located



@dataclass
class Summary:
    scanned: int
    changed: int
    failed: int
    findings: int
    mode: str  # "write", "check", "diff"

    def line(self) -> str:
        verb = "rewritten" if self.mode == "write" else "would be rewritten"
        return (f"{self.scanned} file{'s' * (self.scanned != 1)} scanned, {self.changed} {verb}, "
                f"{self.failed} failed, {self.findings} finding{'s' * (self.findings != 1)} left "
                f"for manual work")


def unified_diff(result: FileResult) -> str:
    def lines(data: bytes) -> list[str]:
        return data.decode("utf-8", "replace").splitlines(keepends=True)

    assert result.new is not None
    return "".join(difflib.unified_diff(lines(result.original), lines(result.new),
                                        fromfile=f"a/{result.path}", tofile=f"b/{result.path}"))


def summarize(results: list[FileResult], scanned: int, mode: str) -> Summary:
    return Summary(scanned=scanned, changed=sum(r.changed for r in results),
                   failed=sum(r.error is not None for r in results),
                   findings=sum(len(r.findings) for r in results), mode=mode)


def emit_text(results: list[FileResult], summary: Summary, out: Callable[[str], None],
              err: Callable[[str], None], verbose: int, quiet: bool) -> None:
    for r in results:
        if r.error:
            err(f"error: {r.error}")
        if r.changed:
            if summary.mode == "diff":
                out(unified_diff(r).rstrip("\n"))
            elif summary.mode == "check":
                if not quiet:
                    out(f"would rewrite {r.path}")
            elif not quiet:
                err(f"rewrote {r.path}")
            if verbose:
                for fix in r.fixed:
                    err(str(fix))
        if not quiet:
            for f in r.findings:
                out(str(f))
    if not quiet:
        err(summary.line())


def emit_json(results: list[FileResult], summary: Summary, out: Callable[[str], None]) -> None:
    import json  # (only this format needs it: not at start-up)

    doc = {
        "files": [
            {
                "path": r.path,
                "changed": r.changed,
                "error": r.error,
                "fixed": [_located(f) for f in r.fixed],
                "findings": [_located(f) for f in r.findings],
                **({"diff": unified_diff(r)} if r.changed and summary.mode == "diff" else {}),
            }
            for r in results if r.changed or r.error or r.findings
        ],
        "summary": {"scanned": summary.scanned, "changed": summary.changed,
                    "failed": summary.failed, "findings": summary.findings,
                    "mode": summary.mode},
    }
    out(json.dumps(doc, indent=2))


def _located(item: Located) -> dict:
    return {**({"cell": item.cell + 1} if item.cell is not None else {}),
            "line": item.line, "col": item.col, "rule": item.rule, "message": item.message}


def _gh(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def emit_github(results: list[FileResult], summary: Summary, out: Callable[[str], None]) -> None:
    for r in results:
        if r.error:
            out(f"::error file={r.path},title=linen-upgrade::{_gh(r.error)}")
        if r.changed:
            verb = "rewrote" if summary.mode == "write" else "would rewrite"
            out(f"::notice file={r.path},title=linen-upgrade::{verb} {r.path}")
        for f in r.findings:
            out(f"::warning file={f.path},line={f.line},col={f.col},title={f.rule}::{_gh(f.message)}")
    out(summary.line())
