"""The self-test's framework: each check timed, reported as one JSON document, a line per check on stderr.

A check is a function returning its detail (a dict), or ``(status, detail)`` with status ``ok`` or
``skipped``; raising :class:`CheckFailed` fails it with a message (no traceback), any other exception
fails it with the exception and the end of its traceback.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Check:
    name: str
    ok: bool
    seconds: float
    status: str = "ok"  # ok | failed | skipped
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ok": self.ok, "status": self.status,
                               "seconds": round(self.seconds, 3)}
        if self.detail:
            out["detail"] = self.detail
        if self.error:
            out["error"] = self.error
        return out


class CheckFailed(Exception):
    """A check's expected failure (message for the report, no traceback)."""

    def __init__(self, message: str, detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.detail = detail or {}


class Report:
    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.started = time.perf_counter()

    def run(self, name: str, fn: Callable[[], tuple[str, dict[str, Any]] | dict[str, Any] | None]) -> Check:
        """Run ``fn``; it returns detail (or ``(status, detail)``); an exception fails the check."""
        t0 = time.perf_counter()
        try:
            out = fn()
            status, detail = out if isinstance(out, tuple) else ("ok", out or {})
            check = Check(name, True, time.perf_counter() - t0, status, detail)
        except CheckFailed as exc:
            check = Check(name, False, time.perf_counter() - t0, "failed", exc.detail, str(exc))
        except Exception as exc:  # noqa: BLE001 - the report must name any failure, whatever it is
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            check = Check(name, False, time.perf_counter() - t0, "failed", {"traceback": "".join(tb[-6:])},
                          f"{type(exc).__name__}: {exc}")
        self.checks.append(check)
        mark = {"ok": "PASS", "skipped": "SKIP", "failed": "FAIL"}[check.status]
        tail = f": {check.error}" if check.error else ""
        print(f"[{mark}] {name} ({check.seconds:.2f} s){tail}", file=sys.stderr, flush=True)
        return check

    def fail(self, name: str, message: str) -> None:
        self.checks.append(Check(name, False, 0.0, "failed", {}, message))
        print(f"[FAIL] {name}: {message}", file=sys.stderr, flush=True)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {"ok": self.ok, "failed": [c.name for c in self.checks if not c.ok],
                "total_seconds": round(time.perf_counter() - self.started, 3), **extra,
                "checks": [c.to_dict() for c in self.checks]}


def seconds_since_process_start() -> float | None:
    """Wall time since this process was created (Linux /proc), i.e. including a frozen bundle's
    unpacking and imports before ``main`` ran; None where it cannot be known."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None

