"""Counting operations and latencies, progress while running, the summary table and JSON line."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TextIO

MAX_ERROR_SAMPLES = 20


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil
    return sorted_values[int(min(rank, len(sorted_values))) - 1]


@dataclass
class Recorder:
    """Per-operation counts and latencies (seconds), plus errors with a few samples."""

    started: float = field(default_factory=time.monotonic)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    finished: float | None = None

    def record(self, op: str, seconds: float) -> None:
        self.latencies[op].append(seconds)

    def error(self, op: str, message: str) -> None:
        self.errors[op] += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(f"{op}: {message}")

    def total_ops(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def total_errors(self) -> int:
        return sum(self.errors.values())

    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return max(end - self.started, 1e-9)

    def finish(self) -> None:
        self.finished = time.monotonic()

    def summary(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        elapsed = self.elapsed()
        ops = {}
        for op in sorted(set(self.latencies) | set(self.errors)):
            values = sorted(self.latencies.get(op, []))
            ops[op] = {
                "count": len(values),
                "errors": self.errors.get(op, 0),
                "per_s": round(len(values) / elapsed, 2),
                "p50_ms": _ms(percentile(values, 50)),
                "p95_ms": _ms(percentile(values, 95)),
                "p99_ms": _ms(percentile(values, 99)),
                "max_ms": _ms(values[-1] if values else None),
            }
        return {
            "kind": kind,
            "params": params,
            "elapsed_s": round(elapsed, 3),
            "total_ops": self.total_ops(),
            "ops_per_s": round(self.total_ops() / elapsed, 2),
            "errors": self.total_errors(),
            "error_samples": self.error_samples,
            "ops": ops,
            **self.extra,
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


async def progress(recorder: Recorder, interval: float, out: TextIO | None = None) -> None:
    """Print one line every ``interval`` seconds until cancelled."""
    out = out or sys.stderr
    last_ops, last_t = 0, time.monotonic()
    while True:
        await asyncio.sleep(interval)
        now, ops = time.monotonic(), recorder.total_ops()
        rate = (ops - last_ops) / max(now - last_t, 1e-9)
        extra = recorder.extra.get("progress", "")
        print(f"[{now - recorder.started:7.1f}s] ops={ops} rate={rate:.1f}/s "
              f"errors={recorder.total_errors()} {extra}".rstrip(), file=out, flush=True)
        last_ops, last_t = ops, now


def format_table(summary: dict[str, Any]) -> str:
    """A human summary: one row per operation, then totals and any extra figures."""
    head = f"{'operation':<22}{'count':>9}{'errors':>8}{'per s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}"
    rows = [f"pymail-loadtest {summary['kind']}  {summary['elapsed_s']:.1f}s", head, "-" * len(head)]
    for op, s in summary["ops"].items():
        rows.append(f"{op:<22}{s['count']:>9}{s['errors']:>8}{s['per_s']:>10.1f}"
                    f"{_cell(s['p50_ms'])}{_cell(s['p95_ms'])}{_cell(s['p99_ms'])}{_cell(s['max_ms'])}")
    rows.append("-" * len(head))
    rows.append(f"{'total':<22}{summary['total_ops']:>9}{summary['errors']:>8}{summary['ops_per_s']:>10.1f}")
    for key in ("rss", "connections", "delivery"):
        if key in summary:
            rows.append(f"{key}: {json.dumps(summary[key])}")
    for sample in summary["error_samples"][:10]:
        rows.append(f"error: {sample}")
    return "\n".join(rows)


def _cell(value: float | None) -> str:
    return f"{'-':>10}" if value is None else f"{value:>10.2f}"


def emit(summary: dict[str, Any], out: TextIO | None = None, table: bool = True) -> None:
    """The table (unless --json-only), then one JSON line: always the last line of output."""
    out = out or sys.stdout
    summary = {k: v for k, v in summary.items() if k != "progress"}
    if table:
        print(format_table(summary), file=out)
    print(json.dumps(summary, sort_keys=True), file=out, flush=True)
