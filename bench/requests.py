"""Benchmark 5: small requests per second, the load of a store of many small documents.

- ``GET`` and ``HEAD`` of a 10 KB and a 200 KB document's content, against a bare Litestar endpoint that
  stats and streams the same file and against nginx serving it;
- ``GET /documents/{id}`` (SQLite) against a bare Litestar endpoint answering the same JSON from memory;
- both of docpipe's with ``DOCPIPE_WORKERS=2`` against one worker.

``GET`` load comes from ``wrk``, ``HEAD`` load from ``hey`` (wrk waits for the body a HEAD answer
announces but never sends), both with CONNECTIONS keep-alive connections; every server of a row is
measured with the same tool. Without the tool, a Python load generator stands in.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from bench import servers
from bench.common import AUTHORIZATION, AUTHORIZATION_LINE, Options, Workspace, median, rotated
from bench.report import Report, Row, Target

CONNECTIONS = 32
WRK_THREADS = 2
WARM_UP_S = 1
SIZES = {"10 KB": 10_000, "200 KB": 200_000}
"""The small documents, by label: a letter and a photo."""
SMALL = "10 KB"
"""The document of the workers rows."""
WORKERS = 2
RATIO_TARGET = Target(">=", 0.8)
WORKERS_TARGET = Target(">=", 1.6)

Method = Literal["GET", "HEAD"]
METHODS: tuple[Method, ...] = ("GET", "HEAD")


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    p50_ms: float | None


@dataclass(frozen=True)
class Case:
    url: str
    method: Method = "GET"


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, duration_s: int) -> Load:
    completed = subprocess.run(
        [
            "wrk",
            f"-t{WRK_THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{duration_s}s",
            "--latency",
            "-H",
            AUTHORIZATION_LINE,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        check=True,
    )
    output = completed.stdout
    for problem in (r"Non-2xx or 3xx responses:\s+(\d+)", r"Socket errors:.*timeout (\d+)"):
        found = re.search(problem, output)
        if found and int(found.group(1)):
            raise RuntimeError(f"wrk against {url}: {found.group(0)}\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    return Load(float(rate.group(1)), None if p50 is None else float(p50.group(1)) * _UNITS_MS[p50.group(2)])


def _hey(url: str, duration_s: int, method: Method) -> Load:
    completed = subprocess.run(
        ["hey", "-z", f"{duration_s}s", "-c", str(CONNECTIONS), "-m", method, "-H", AUTHORIZATION_LINE, url],
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        check=True,
    )
    output = completed.stdout
    statuses = re.findall(r"\[(\d{3})\]\s+\d+ responses", output)
    if "Error distribution" in output or any(status != "200" for status in statuses):
        raise RuntimeError(f"hey against {url}: not every answer was 200:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"cannot read hey's output:\n{output}")
    p50 = re.search(r"50%+ in ([\d.]+) secs", output)
    return Load(float(rate.group(1)), None if p50 is None else float(p50.group(1)) * 1000)


async def _python_load(url: str, duration_s: int, method: Method) -> Load:
    """A stand-in for wrk and hey: CONNECTIONS workers on keep-alive connections (the client takes CPU
    too)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, headers=AUTHORIZATION, timeout=30) as client:

        async def worker() -> None:
            while (start := time.perf_counter()) < deadline:
                response = await client.request(method, url)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code} from {method} {url}")
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
    return Load(len(latencies) / elapsed, median(latencies) * 1000)


def tool_for(method: Method) -> str | None:
    tool = "wrk" if method == "GET" else "hey"
    return tool if shutil.which(tool) else None


def _load(case: Case, duration_s: int) -> Load:
    tool = tool_for(case.method)
    if tool == "wrk":
        return _wrk(case.url, duration_s)
    if tool == "hey":
        return _hey(case.url, duration_s, case.method)
    return asyncio.run(_python_load(case.url, duration_s, case.method))


def _store(base_url: str, files: dict[str, Path]) -> dict[str, str]:
    """Upload each file to docpipe (as a client would, metadata included); its document id by label."""
    ids: dict[str, str] = {}
    with httpx.Client(base_url=base_url, headers=AUTHORIZATION, timeout=30) as client:
        for label, path in files.items():
            created = client.post(
                "/documents",
                files={"file": (path.name, path.read_bytes(), "application/pdf")},
                data={"tags": "finance,q3", "metadata": '{"project": "apollo", "owner": "bench"}'},
            )
            created.raise_for_status()
            ids[label] = created.json()["id"]
    return ids


def _small_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for label, size in SIZES.items():
        path = folder / f"document-{size}.pdf"
        path.write_bytes((b"%PDF-1.7\n" + bytes(range(256)) * (size // 256 + 1))[:size])
        files[label] = path
    return files


def run(options: Options, workspace: Workspace, report: Report) -> None:
    logs = workspace.folder("logs")
    files = _small_files(workspace.folder("requests/files"))
    one = servers.docpipe(workspace.folder("requests/docpipe-1"), logs)
    two = servers.docpipe(workspace.folder("requests/docpipe-2"), logs, env={"DOCPIPE_WORKERS": str(WORKERS)})
    bare_files = servers.baseline("files", logs, "--dir", str(workspace.folder("requests/files")))
    bare_json = servers.baseline("json", logs)
    nginx = servers.nginx(workspace.folder("requests/files"), workspace.folder("requests/nginx"))
    with servers.running(one, two, bare_files, bare_json, nginx):
        ids_one, ids_two = _store(one.base_url, files), _store(two.base_url, files)
        cases: dict[str, Case] = {
            "docpipe metadata": Case(f"{one.base_url}/documents/{ids_one[SMALL]}"),
            "bare json": Case(f"{bare_json.base_url}/documents/{ids_one[SMALL]}"),
            f"docpipe {WORKERS} workers metadata": Case(f"{two.base_url}/documents/{ids_two[SMALL]}"),
            f"docpipe {WORKERS} workers GET {SMALL}": Case(
                f"{two.base_url}/documents/{ids_two[SMALL]}/content"
            ),
        }
        for label, path in files.items():
            for method in METHODS:
                cases[f"docpipe {method} {label}"] = Case(
                    f"{one.base_url}/documents/{ids_one[label]}/content", method
                )
                cases[f"bare {method} {label}"] = Case(f"{bare_files.base_url}/files/{path.name}", method)
                cases[f"nginx {method} {label}"] = Case(f"{nginx.base_url}/{path.name}", method)
        for case in cases.values():
            _load(case, WARM_UP_S)
        loads: dict[str, list[Load]] = {name: [] for name in cases}
        for round_number in range(1, options.repeat + 1):
            for name in rotated(list(cases), round_number):
                loads[name].append(_load(cases[name], options.duration_s))
            summary = ", ".join(f"{name} {values[-1].requests_per_s:,.0f}" for name, values in loads.items())
            print(f"  round {round_number} (req/s): {summary}", flush=True)
    rates = {name: [load.requests_per_s for load in values] for name, values in loads.items()}

    def row(title: str, measured: str, baseline_name: str, baseline: str, target: Target | None) -> Row:
        p50s = {
            f"{name} p50 ms": [load.p50_ms for load in loads[name] if load.p50_ms is not None]
            for name in (measured, baseline)
        }
        return Row(
            title,
            median(rates[measured]),
            "req/s",
            baseline_name,
            median(rates[baseline]),
            target,
            samples={measured: rates[measured], baseline: rates[baseline]} | p50s,
        )

    for label in SIZES:
        for method in METHODS:
            what = f"{label} document, `{method}` content"
            measured = f"docpipe {method} {label}"
            report.add(
                row(
                    f"{what}, vs bare stat + stream",
                    measured,
                    "bare Litestar",
                    f"bare {method} {label}",
                    RATIO_TARGET,
                )
            )
            report.add(row(f"{what}, vs nginx", measured, "nginx", f"nginx {method} {label}", None))
    report.add(
        row(
            "`GET /documents/{id}`, vs bare JSON endpoint",
            "docpipe metadata",
            "bare Litestar",
            "bare json",
            RATIO_TARGET,
        )
    )
    report.add(
        row(
            f"{SMALL} document, `GET` content, {WORKERS} workers vs 1",
            f"docpipe {WORKERS} workers GET {SMALL}",
            "1 worker",
            f"docpipe GET {SMALL}",
            WORKERS_TARGET,
        )
    )
    report.add(
        row(
            f"`GET /documents/{{id}}`, {WORKERS} workers vs 1",
            f"docpipe {WORKERS} workers metadata",
            "1 worker",
            "docpipe metadata",
            WORKERS_TARGET,
        )
    )
    tools = {method: tool_for(method) or "a Python httpx load generator" for method in METHODS}
    report.note(
        f"Small requests: {CONNECTIONS} keep-alive connections, `GET` load from {tools['GET']}, `HEAD` "
        f"from {tools['HEAD']}, client and servers sharing the CPUs; the bare endpoint stats the file "
        "and streams it with Litestar's `File` (`HEAD`: stats it); nginx with sendfile, one worker."
    )
