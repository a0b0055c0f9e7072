"""Benchmark 2 (and part of 3): one large upload to docpipe, raw and multipart, and to a bare Litestar
endpoint that streams ``request.stream()`` to a file in 1 MiB writes; curl reads the payload from disk.

The bare endpoint is measured twice: as asked (no fsync), and with an fsync before it answers, the
durability docpipe's filesystem store pays for on every upload; the second is for reading the first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx

from bench import servers
from bench.common import (
    AUTHORIZATION,
    GIB,
    MIB,
    CurlResult,
    Options,
    Workspace,
    curl,
    expect,
    median,
    rotated,
    size_label,
)
from bench.report import Report, Row, Target

UPLOAD_TARGET = Target(">=", 0.8)
RSS_TARGET = Target("<=", 32, "MiB")
Upload = Callable[[], tuple[CurlResult, Callable[[], None]]]
"""Sends the payload once; returns curl's result and how to remove what was stored."""
_RAW = ("--header", "Expect:", "--header", "Content-Type: application/octet-stream")


def run(options: Options, workspace: Workspace, report: Report) -> None:
    size = options.size_mib * MIB
    label = size_label(options.size_mib)
    payload, sha256 = workspace.payload(options.size_mib)
    logs = workspace.folder("logs")
    uploads = workspace.folder("uploads/bare")
    docpipe = servers.docpipe(workspace.folder("uploads/docpipe-data"), logs)
    bare = servers.baseline("upload", logs, "--dir", str(uploads))

    def to_docpipe(*arguments: str) -> Upload:
        def upload() -> tuple[CurlResult, Callable[[], None]]:
            result = expect(curl(*arguments), 201, "upload to docpipe")
            document = json.loads(result.body)
            if document["size"] != size or document["sha256"] != sha256:
                raise RuntimeError(f"docpipe stored other bytes than the payload: {document}")

            def delete() -> None:
                httpx.delete(
                    f"{docpipe.base_url}/documents/{document['id']}", headers=AUTHORIZATION, timeout=60
                ).raise_for_status()

            return result, delete

        return upload

    def to_bare(query: str) -> Upload:
        def upload() -> tuple[CurlResult, Callable[[], None]]:
            result = expect(
                curl(
                    "--request",
                    "POST",
                    "--upload-file",
                    str(payload),
                    *_RAW,
                    f"{bare.base_url}/upload{query}",
                ),
                201,
                "upload to the bare endpoint",
            )
            stored = json.loads(result.body)
            if stored["size"] != size:
                raise RuntimeError(f"the bare endpoint stored {stored['size']} bytes, not {size}")
            return result, Path(stored["path"]).unlink

        return upload

    cases: dict[str, Upload] = {
        "docpipe raw": to_docpipe(
            "--request", "POST", "--upload-file", str(payload), *_RAW,
            f"{docpipe.base_url}/documents?filename={payload.name}",
        ),
        "docpipe multipart": to_docpipe(
            "--header", "Expect:",
            "--form", f"file=@{payload};type=application/octet-stream;filename={payload.name}",
            f"{docpipe.base_url}/documents",
        ),
        "bare": to_bare(""),
        "bare + fsync": to_bare("?fsync=true"),
    }  # fmt: skip
    speeds: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    growth: dict[str, list[float]] = {"docpipe raw": [], "docpipe multipart": []}
    peak_reset = True
    with servers.running(docpipe, bare):
        for round_number in range(1, options.repeat + 1):
            for name in rotated(list(cases), round_number):
                pid = docpipe.pid if name.startswith("docpipe") else bare.pid
                os.sync()  # nothing left over from the previous case is written back during this one
                cpu_before = servers.cpu_seconds(pid)
                with servers.PeakGrowth(pid) as peak:
                    result, clean_up = cases[name]()
                cpu[name].append((servers.cpu_seconds(pid) - cpu_before) / (size / GIB))
                # Removed at once, not measured, so that no more than one payload is ever stored.
                clean_up()
                if name in growth:
                    growth[name].append(peak.growth_mib)
                    peak_reset = peak_reset and peak.reset
                speeds[name].append(result.mib_per_s(size))
            print(
                f"  round {round_number}: "
                + ", ".join(f"{name} {values[-1]:,.0f} MiB/s" for name, values in speeds.items()),
                flush=True,
            )
    raw = median(speeds["docpipe raw"])
    multipart = median(speeds["docpipe multipart"])
    bare_speed = median(speeds["bare"])
    bare_fsync = median(speeds["bare + fsync"])
    comparisons: list[tuple[str, float, str, float, Target | None]] = [
        ("raw upload, vs bare endpoint", raw, "bare Litestar", bare_speed, UPLOAD_TARGET),
        ("multipart upload, vs bare endpoint", multipart, "bare Litestar", bare_speed, UPLOAD_TARGET),
        ("multipart upload, vs docpipe raw", multipart, "docpipe raw", raw, None),
        ("raw upload, vs bare endpoint + fsync", raw, "bare + fsync", bare_fsync, None),
    ]
    for index, (title, value, baseline_name, baseline, target) in enumerate(comparisons):
        samples = speeds if index == 0 else {}
        report.add(Row(f"{label} {title}", value, "MiB/s", baseline_name, baseline, target, samples=samples))
    report.add(
        Row(
            "server CPU per GiB received, raw, vs bare endpoint (lower is better)",
            median(cpu["docpipe raw"]),
            "CPU s/GiB",
            "bare Litestar",
            median(cpu["bare"]),
            samples=cpu,
        )
    )
    report.note(
        "Uploads: `bare + fsync` is the bare endpoint fsyncing the file before it answers, the durability "
        "docpipe's filesystem store pays on every upload; RSS growth is VmHWM minus VmRSS at the start."
    )
    note = f"max of {options.repeat}" + ("" if peak_reset else ", peak since start-up")
    for name, values in growth.items():
        report.add(
            Row(
                f"peak RSS growth, {label} {name.removeprefix('docpipe ')} upload",
                max(values),
                "MiB",
                target=RSS_TARGET,
                note=note,
                samples={"growth_mib": values},
            )
        )
