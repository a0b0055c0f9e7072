"""Results: printed as they come, then written as a small markdown table (and the raw samples as JSON)."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from bench.common import Options, size_label


@dataclass(frozen=True)
class Target:
    """A goal to report against, never to assert: on the ratio (``unit="x"``) or on the value itself."""

    bound: Literal[">=", "<="]
    limit: float
    unit: str = "x"

    def met_by(self, value: float) -> bool:
        return value >= self.limit if self.bound == ">=" else value <= self.limit

    def __str__(self) -> str:
        sign = "≥" if self.bound == ">=" else "≤"
        return f"{sign} {self.limit:g}{self.unit if self.unit == 'x' else ' ' + self.unit}"


@dataclass(frozen=True)
class Row:
    """One result: ``value`` (docpipe's, or the case under study) against ``baseline`` of the same run."""

    benchmark: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline: float | None = None
    target: Target | None = None
    note: str = ""
    samples: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "error"
        if self.target is None:
            return ""
        measured = self.ratio if self.target.unit == "x" else self.value
        if measured is None:
            return ""
        return "meets" if self.target.met_by(measured) else "misses"


def format_value(value: float, unit: str) -> str:
    if unit in {"MiB/s", "req/s"}:
        return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"
    if unit.startswith("CPU"):
        return f"{value:.2f} {unit}"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 100 else f"{value:,.0f} ms"
    return f"{value:,.1f} {unit}"


class Report:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.started = datetime.now(UTC)
        self.seconds = 0.0

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  => {self._line(row)}", flush=True)

    def fail(self, benchmark: str, error: str) -> None:
        self.add(Row(benchmark, 0.0, "", error=error))

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    @staticmethod
    def _line(row: Row) -> str:
        if row.error is not None:
            return f"{row.benchmark}: ERROR {row.error}"
        name = f"{row.benchmark} ({row.note})" if row.note else row.benchmark
        text = f"{name}: {format_value(row.value, row.unit)}"
        if row.baseline is not None and row.ratio is not None:
            text += f" vs {format_value(row.baseline, row.unit)} ({row.baseline_name}) = {row.ratio:.2f}x"
        if row.target is not None:
            text += f"  [target {row.target}: {row.verdict}]"
        return text

    def markdown(self) -> str:
        options = self.options
        lines = [
            f"Benchmarks of {self.started:%Y-%m-%d %H:%M} UTC on {_machine()}; "
            f"{options.repeat} rounds each, medians; whole run {self.seconds / 60:.1f} min"
            + (" (`--quick`)." if options.quick else "."),
            "",
            "| benchmark | docpipe | baseline | ratio | target | |",
            "|---|---:|---:|---:|---|---|",
        ]
        for row in self.rows:
            if row.error is not None:
                lines.append(f"| {row.benchmark} | error: {row.error.splitlines()[0][:80]} | | | | error |")
                continue
            baseline = ""
            if row.baseline is not None:
                baseline = f"{format_value(row.baseline, row.unit)} ({row.baseline_name})"
            ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
            target = "" if row.target is None else str(row.target)
            name = f"{row.benchmark} ({row.note})" if row.note else row.benchmark
            lines.append(
                f"| {name} | {format_value(row.value, row.unit)} | {baseline} | {ratio} "
                f"| {target} | {row.verdict} |"
            )
        lines.append("")
        lines.append(
            f"- Sizes: HTTP transfers {size_label(options.size_mib)}, S3 {size_label(options.s3_size_mib)}, "
            f"listing {options.documents:,} vs 1,000 documents, {options.duration_s} s per load run."
        )
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown())
        raw = {
            "started": self.started.isoformat(),
            "seconds": self.seconds,
            "machine": _machine(),
            "options": asdict(self.options),
            "notes": self.notes,
            "rows": [{**asdict(row), "ratio": row.ratio, "verdict": row.verdict} for row in self.rows],
        }
        path.with_suffix(".json").write_text(json.dumps(raw, indent=2, default=str) + "\n")


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {sys.version.split()[0]}"
