"""Benchmark 1 (and part of 3): one large download from docpipe, nginx (sendfile) and a bare Litestar
``File`` endpoint, with the same client (curl to /dev/null), in interleaved rounds."""

from __future__ import annotations

import json

from bench import servers
from bench.common import GIB, MIB, Options, Workspace, curl, expect, median, rotated, size_label
from bench.report import Report, Row, Target

DOWNLOAD_TARGET = Target(">=", 0.9)
RSS_TARGET = Target("<=", 32, "MiB")


def run(options: Options, workspace: Workspace, report: Report) -> None:
    size = options.size_mib * MIB
    label = size_label(options.size_mib)
    payload, sha256 = workspace.payload(options.size_mib)
    logs = workspace.folder("logs")
    docpipe = servers.docpipe(workspace.folder("downloads/docpipe-data"), logs)
    nginx = servers.nginx(payload.parent, workspace.folder("downloads/nginx"))
    bare = servers.baseline("download", logs, "--file", str(payload))
    with servers.running(docpipe, nginx, bare):
        stored = expect(
            curl(
                "--request", "POST", "--upload-file", str(payload),
                "--header", "Expect:", "--header", "Content-Type: application/octet-stream",
                f"{docpipe.base_url}/documents?filename={payload.name}",
            ),
            201,
            "storing the payload in docpipe",
        )  # fmt: skip
        document = json.loads(stored.body)
        if document["sha256"] != sha256:
            raise RuntimeError("docpipe stored other bytes than the payload")
        urls = {
            "docpipe": f"{docpipe.base_url}/documents/{document['id']}/content",
            "nginx": f"{nginx.base_url}/{payload.name}",
            "bare": f"{bare.base_url}/file",
        }
        pids = {"docpipe": docpipe.pid, "nginx": nginx.pid, "bare": bare.pid}
        speeds: dict[str, list[float]] = {name: [] for name in urls}
        cpu: dict[str, list[float]] = {name: [] for name in urls}
        growth: list[float] = []
        peak_reset = True
        for round_number in range(1, options.repeat + 1):
            for name in rotated(list(urls), round_number):
                url = urls[name]
                cpu_before = servers.cpu_seconds(pids[name])
                if name == "docpipe":
                    with servers.PeakGrowth(docpipe.pid) as peak:
                        result = curl("--output", "/dev/null", url)
                    growth.append(peak.growth_mib)
                    peak_reset = peak_reset and peak.reset
                else:
                    result = curl("--output", "/dev/null", url)
                expect(result, 200, f"download from {name}")
                if result.downloaded != size:
                    raise RuntimeError(f"{name} sent {result.downloaded} bytes, not {size}")
                speeds[name].append(result.mib_per_s(size))
                cpu[name].append((servers.cpu_seconds(pids[name]) - cpu_before) / (size / GIB))
            print(
                f"  round {round_number}: "
                + ", ".join(f"{name} {values[-1]:,.0f} MiB/s" for name, values in speeds.items()),
                flush=True,
            )
    docpipe_speed = median(speeds["docpipe"])
    report.add(
        Row(
            f"{label} download, vs nginx sendfile",
            docpipe_speed,
            "MiB/s",
            "nginx",
            median(speeds["nginx"]),
            DOWNLOAD_TARGET,
            samples=speeds,
        )
    )
    report.add(
        Row(
            f"{label} download, vs bare Litestar `File`",
            docpipe_speed,
            "MiB/s",
            "bare Litestar",
            median(speeds["bare"]),
        )
    )
    # Not against nginx: on loopback, the kernel charges sendfile's copy to whichever side it runs on,
    # so nginx's CPU swings tenfold between identical runs. Both Python servers copy in user space.
    report.add(
        Row(
            "server CPU per GiB sent, vs bare Litestar (lower is better)",
            median(cpu["docpipe"]),
            "CPU s/GiB",
            "bare Litestar",
            median(cpu["bare"]),
            samples=cpu,
        )
    )
    report.note(
        "Transfers: curl over 127.0.0.1, one at a time, server and client sharing the CPUs; every uvicorn "
        "(docpipe's and the baselines') runs as `docpipe serve` configures it: httptools on uvloop."
    )
    report.add(
        Row(
            f"peak RSS growth, {label} download",
            max(growth),
            "MiB",
            target=RSS_TARGET,
            note=f"max of {options.repeat}" + ("" if peak_reset else ", peak since start-up"),
            samples={"growth_mib": growth},
        )
    )
