"""Benchmark 5: ``GET /documents/{id}`` requests per second on docpipe (SQLite) against a bare Litestar
JSON endpoint answering the same shape from memory; ``wrk -t2 -c64``, or a Python load generator when
wrk is not installed."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

import httpx

from bench import servers
from bench.common import Options, Workspace, median, rotated
from bench.report import Report, Row

CONNECTIONS = 64
THREADS = 2
WARM_UP_S = 2


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    p50_ms: float | None


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, duration_s: int) -> Load:
    completed = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration_s}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        check=True,
    )
    output = completed.stdout
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if bad:
        raise RuntimeError(f"{bad.group(1)} responses were not 2xx from {url}:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    return Load(float(rate.group(1)), None if p50 is None else float(p50.group(1)) * _UNITS_MS[p50.group(2)])


async def _python_load(url: str, duration_s: int) -> Load:
    """A stand-in for wrk: CONNECTIONS workers on keep-alive connections (the client takes CPU too)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            while (start := time.perf_counter()) < deadline:
                response = await client.get(url)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code} from {url}")
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
    return Load(len(latencies) / elapsed, median(latencies) * 1000)


def _load(url: str, duration_s: int) -> Load:
    if shutil.which("wrk"):
        return _wrk(url, duration_s)
    return asyncio.run(_python_load(url, duration_s))


def run(options: Options, workspace: Workspace, report: Report) -> None:
    logs = workspace.folder("logs")
    docpipe = servers.docpipe(workspace.folder("requests/docpipe-data"), logs)
    bare = servers.baseline("json", logs)
    tool = "wrk" if shutil.which("wrk") else "Python httpx load generator (wrk not installed)"
    with servers.running(docpipe, bare):
        created = httpx.post(
            f"{docpipe.base_url}/documents",
            files={"file": ("quarterly-report.pdf", b"%PDF-1.7\n" + b"x" * 4096, "application/pdf")},
            data={"tags": "finance,q3", "metadata": '{"project": "apollo", "owner": "bench"}'},
            timeout=30,
        )
        created.raise_for_status()
        document_id = created.json()["id"]
        urls = {
            "docpipe": f"{docpipe.base_url}/documents/{document_id}",
            "bare": f"{bare.base_url}/documents/{document_id}",
        }
        for url in urls.values():
            _load(url, WARM_UP_S)
        loads: dict[str, list[Load]] = {name: [] for name in urls}
        for round_number in range(1, options.repeat + 1):
            for name in rotated(list(urls), round_number):
                loads[name].append(_load(urls[name], options.duration_s))
            print(
                f"  round {round_number}: "
                + ", ".join(
                    f"{name} {values[-1].requests_per_s:,.0f} req/s" for name, values in loads.items()
                ),
                flush=True,
            )
    rates = {name: [load.requests_per_s for load in values] for name, values in loads.items()}
    p50s = {
        f"{name} p50 ms": [load.p50_ms for load in values if load.p50_ms is not None]
        for name, values in loads.items()
    }
    report.add(
        Row(
            "`GET /documents/{id}`, vs bare JSON endpoint",
            median(rates["docpipe"]),
            "req/s",
            "bare Litestar",
            median(rates["bare"]),
            samples=rates | p50s,
        )
    )
    if tool != "wrk":
        report.note(f"Requests per second measured with the {tool}.")
