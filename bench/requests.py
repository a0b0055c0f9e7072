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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from bench import servers
from bench.baselines import SAMPLE
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


PROCESSED_TIMEOUT_S = 120.0
"""Generous: each document's text extraction starts a process, slowly on a busy machine."""


def _store(base_url: str, files: dict[str, Path]) -> dict[str, str]:
    """Upload each file to docpipe (as a client would, metadata included) and wait for its processing
    to end, which would otherwise take CPU from the first load runs; its document id by label."""
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
        deadline = time.monotonic() + PROCESSED_TIMEOUT_S
        for document_id in ids.values():
            while client.get(f"/documents/{document_id}").json()["processing"]["state"] == "pending":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"document {document_id} unprocessed after {PROCESSED_TIMEOUT_S:g} s")
                time.sleep(0.2)
    return ids


def _small_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for label, size in SIZES.items():
        path = folder / f"document-{size}.pdf"
        path.write_bytes((b"%PDF-1.7\n" + bytes(range(256)) * (size // 256 + 1))[:size])
        files[label] = path
    return files


@dataclass(frozen=True)
class RowSpec:
    """A row of the report: the case measured against its baseline case, by case name."""

    title: str
    measured: str
    baseline_name: str
    baseline: str
    target: Target | None


def row_specs() -> list[RowSpec]:
    specs: list[RowSpec] = []
    for label in SIZES:
        for method in METHODS:
            what = f"{label} document, `{method}` content"
            measured = f"docpipe {method} {label}"
            specs.append(
                RowSpec(
                    f"{what}, vs bare stat + stream",
                    measured,
                    "bare Litestar",
                    f"bare {method} {label}",
                    RATIO_TARGET,
                )
            )
            specs.append(RowSpec(f"{what}, vs nginx", measured, "nginx", f"nginx {method} {label}", None))
    specs += [
        RowSpec(
            "`GET /documents/{id}`, vs bare JSON endpoint",
            "docpipe metadata",
            "bare Litestar",
            "bare json",
            RATIO_TARGET,
        ),
        RowSpec(
            f"{SMALL} document, `GET` content, {WORKERS} workers vs 1",
            f"docpipe {WORKERS} workers GET {SMALL}",
            "1 worker",
            f"docpipe GET {SMALL}",
            WORKERS_TARGET,
        ),
        RowSpec(
            f"`GET /documents/{{id}}`, {WORKERS} workers vs 1",
            f"docpipe {WORKERS} workers metadata",
            "1 worker",
            "docpipe metadata",
            WORKERS_TARGET,
        ),
    ]
    return specs


def _server_of(case: str) -> str:
    """Which server a case loads, by its name: ``one``, ``two``, ``bare_files``, ``bare_json``, ``nginx``."""
    if case.startswith(f"docpipe {WORKERS} workers"):
        return "two"
    if case.startswith("docpipe"):
        return "one"
    if case == "bare json":
        return "bare_json"
    return "bare_files" if case.startswith("bare") else "nginx"


def _case(
    name: str, started: dict[str, servers.ChildServer], ids: dict[str, dict[str, str]], files: dict[str, Path]
) -> Case:
    """The load of case ``name`` on the servers ``started``; ``ids`` are docpipe's documents by label."""
    server = started[_server_of(name)]
    if name == "bare json":
        return Case(f"{server.base_url}/documents/{SAMPLE.id}")
    if name.endswith("metadata"):
        return Case(f"{server.base_url}/documents/{ids[_server_of(name)][SMALL]}")
    *_, method_text, label_number, label_unit = name.split()
    method: Method = "HEAD" if method_text == "HEAD" else "GET"
    label = f"{label_number} {label_unit}"
    if name.startswith("docpipe"):
        return Case(f"{server.base_url}/documents/{ids[_server_of(name)][label]}/content", method)
    if name.startswith("bare"):
        return Case(f"{server.base_url}/files/{files[label].name}", method)
    return Case(f"{server.base_url}/{files[label].name}", method)


def run(options: Options, workspace: Workspace, report: Report) -> None:
    """Every row, or those whose title contains one of ``options.only``: only their cases are loaded,
    and only their servers started."""
    specs = [
        spec for spec in row_specs() if not options.only or any(text in spec.title for text in options.only)
    ]
    if not specs:
        raise ValueError(f"no requests row matches {options.only}")
    needed = {name for spec in specs for name in (spec.measured, spec.baseline)}
    logs = workspace.folder("logs")
    files = _small_files(workspace.folder("requests/files"))
    makers: dict[str, Callable[[], servers.ChildServer]] = {
        "one": lambda: servers.docpipe(workspace.folder("requests/docpipe-1"), logs),
        "two": lambda: servers.docpipe(
            workspace.folder("requests/docpipe-2"), logs, env={"DOCPIPE_WORKERS": str(WORKERS)}
        ),
        "bare_files": lambda: servers.baseline(
            "files", logs, "--dir", str(workspace.folder("requests/files"))
        ),
        "bare_json": lambda: servers.baseline("json", logs),
        "nginx": lambda: servers.nginx(
            workspace.folder("requests/files"), workspace.folder("requests/nginx")
        ),
    }
    started = {key: makers[key]() for key in sorted({_server_of(case) for case in needed})}
    with servers.running(*started.values()):
        ids: dict[str, dict[str, str]] = {
            key: _store(started[key].base_url, files) for key in ("one", "two") if key in started
        }
        cases = {name: _case(name, started, ids, files) for name in sorted(needed)}
        for case in cases.values():
            _load(case, WARM_UP_S)
        loads: dict[str, list[Load]] = {name: [] for name in cases}
        for round_number in range(1, options.repeat + 1):
            for name in rotated(list(cases), round_number):
                loads[name].append(_load(cases[name], options.duration_s))
            summary = ", ".join(f"{name} {values[-1].requests_per_s:,.0f}" for name, values in loads.items())
            print(f"  round {round_number} (req/s): {summary}", flush=True)
    rates = {name: [load.requests_per_s for load in values] for name, values in loads.items()}

    for spec in specs:
        p50s = {
            f"{name} p50 ms": [load.p50_ms for load in loads[name] if load.p50_ms is not None]
            for name in (spec.measured, spec.baseline)
        }
        report.add(
            Row(
                spec.title,
                median(rates[spec.measured]),
                "req/s",
                spec.baseline_name,
                median(rates[spec.baseline]),
                spec.target,
                samples={spec.measured: rates[spec.measured], spec.baseline: rates[spec.baseline]} | p50s,
            )
        )
    tools = {method: tool_for(method) or "a Python httpx load generator" for method in METHODS}
    report.note(
        f"Small requests: {CONNECTIONS} keep-alive connections, `GET` load from {tools['GET']}, `HEAD` "
        f"from {tools['HEAD']}, client and servers sharing the CPUs; the bare endpoint stats the file "
        "and streams it with Litestar's `File` (`HEAD`: stats it); nginx with sendfile, one worker."
    )
