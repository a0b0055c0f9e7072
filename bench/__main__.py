"""``python -m bench [names...] [--quick]``: run docpipe's benchmarks and write bench/results/latest.md.

Each benchmark starts its servers as child processes on free 127.0.0.1 ports, measures docpipe and a
baseline in interleaved rounds, and reports medians and ratios next to their targets. Targets are
reported, never asserted. Sizes come from flags, else ``BENCH_*`` environment variables, else the
``--quick`` or full defaults.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import downloads, listing, pipeline, requests, s3, tus, uploads
from bench.common import Options, Workspace
from bench.report import Report

Benchmark = Callable[[Options, Workspace, Report], None]
BENCHMARKS: dict[str, Benchmark] = {
    "downloads": downloads.run,
    "uploads": uploads.run,
    "s3": s3.run,
    "requests": requests.run,
    "listing": listing.run,
    "pipeline": pipeline.run,
    "tus": tus.run,
}
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.md"

# name: (environment variable, full default, --quick default)
_SIZES = {
    "size_mib": ("BENCH_SIZE_MIB", 1024, 256),
    "s3_size_mib": ("BENCH_S3_SIZE_MIB", 256, 64),
    "documents": ("BENCH_DOCUMENTS", 1_000_000, 100_000),
    "duration_s": ("BENCH_DURATION_S", 5, 2),
    "repeat": ("BENCH_REPEAT", 5, 3),
}


def _parse(argv: list[str] | None) -> tuple[Options, list[str], Path]:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes: 256 MiB transfers, 64 MiB S3, 100k documents, 2 s per load run",
    )
    parser.add_argument("--size-mib", type=int, help="HTTP download/upload size [BENCH_SIZE_MIB; 1024]")
    parser.add_argument("--s3-size-mib", type=int, help="S3 put/get size [BENCH_S3_SIZE_MIB; 256]")
    parser.add_argument(
        "--documents", type=int, help="documents in the large listing [BENCH_DOCUMENTS; 1000000]"
    )
    parser.add_argument("--duration-s", type=int, help="seconds per load run [BENCH_DURATION_S; 5]")
    parser.add_argument(
        "--repeat", type=int, help="rounds per measurement, median reported [BENCH_REPEAT; 5, --quick 3]"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="requests: measure only the rows whose title contains TEXT (repeatable), and their servers",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="markdown table (and .json beside it)"
    )
    arguments = parser.parse_args(argv)
    unknown = [name for name in arguments.benchmarks if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    values: dict[str, int] = {}
    for name, (variable, full, quick) in _SIZES.items():
        given: int | None = getattr(arguments, name)
        if given is None and os.environ.get(variable):
            given = int(os.environ[variable])
        values[name] = given if given is not None else (quick if arguments.quick else full)
        if values[name] < 1:
            parser.error(f"{name.replace('_', '-')} must be at least 1")
    if values["documents"] < listing.SMALL:
        parser.error(f"--documents must be at least {listing.SMALL}")
    options = Options(quick=arguments.quick, only=tuple(arguments.only), **values)
    return options, arguments.benchmarks or list(BENCHMARKS), arguments.output


def main(argv: list[str] | None = None) -> int:
    options, names, output = _parse(argv)
    needed = {"curl"} if {"downloads", "uploads"} & set(names) else set()
    needed |= {"nginx"} if {"downloads", "requests"} & set(names) else set()
    needed |= {"hey"} if "pipeline" in names else set()
    missing = sorted(tool for tool in needed if shutil.which(tool) is None)
    if missing:
        print(f"missing tools: {', '.join(missing)} (apt-get install {' '.join(missing)})", file=sys.stderr)
        return 2
    report = Report(options)
    workspace = Workspace()
    print(f"docpipe benchmarks: {', '.join(names)}; {options}; workspace {workspace.root}", flush=True)
    started = time.monotonic()
    timings: list[str] = []
    try:
        for name in names:
            print(f"== {name}", flush=True)
            benchmark_started = time.monotonic()
            try:
                BENCHMARKS[name](options, workspace, report)
            except Exception as error:
                traceback.print_exc()
                report.fail(name, f"{type(error).__name__}: {error}")
            timings.append(f"{name} {time.monotonic() - benchmark_started:.0f} s")
    finally:
        workspace.close()
    report.seconds = time.monotonic() - started
    report.note(f"Time per benchmark: {', '.join(timings)}.")
    report.write(output)
    print(f"\n{report.markdown()}\nwritten to {output}", flush=True)
    return 1 if any(row.error is not None for row in report.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
