"""Benchmark 6: the processing pipeline, on PDFs of about 100 KB made with reportlab (17 pages of text).

- Documents processed per second: a batch of PDFs uploaded (4 at a time) to ``docpipe serve`` as it
  comes (processing in the server process), and to a ``docpipe serve`` with ``DOCPIPE_QUEUE=sqs`` whose
  jobs 2 ``docpipe worker`` processes take from SQS on a moto server; timed from the first upload to the
  last document ``done``. Each server on the filesystem and SQLite stores of a data folder of its own.
- Uploads per second while processing runs: ``hey`` posting one PDF over and over, to a ``docpipe
  serve`` with processing on (the default) and to one with ``DOCPIPE_PROCESSING=off``. Uploads outpace
  extraction, so processing runs flat out through a window with it on. After each window the documents
  it uploaded are deleted (one ``DELETE`` by their filename), and after a window with processing on the
  bench waits until the backlog is worked off (cheaply: a deleted document's job does nothing), so that
  no processing spills into the next window.
"""

from __future__ import annotations

import random
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from bench import servers
from bench.common import AUTHORIZATION, AUTHORIZATION_LINE, Options, Workspace, median, rotated
from bench.report import Report, Row, Target

PDF_BYTES = 100_000
PAGES = 17
"""A page of the text below takes about 6 KB (compressed, as reportlab writes it)."""
LINES_PER_PAGE = 80
WORDS_PER_LINE = 14
DISTINCT_PDFS = 20
"""PDFs made, each of other words; a batch uploads them in turn."""
BATCH = 30
QUICK_BATCH = 15
MAX_ROUNDS = 3
"""Rounds at most, whatever ``--repeat`` says: a round takes about a minute on 2 busy cores."""
UPLOADERS = 4
"""Uploads at a time of a processing batch."""
CONNECTIONS = 8
"""hey's connections in the upload windows."""
WORKERS = 2
UPLOAD_TARGET = Target(">=", 0.9)
PATIENCE_S = 600.0
"""How long a batch, or a backlog, may take to be processed before the bench gives up."""
POLL_S = 0.2
_SQS = {
    "DOCPIPE_QUEUE": "sqs",
    "DOCPIPE_SQS_QUEUE": "docpipe-bench",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
}
"""The settings of the server and workers on SQS, but for the endpoint; moto takes any credentials."""


def make_pdfs(folder: Path, count: int, seed: int = 6) -> list[Path]:
    """``count`` PDFs of ``PAGES`` pages of made-up words, each of at least ``PDF_BYTES``."""
    rng = random.Random(seed)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(5_000)]
    paths: list[Path] = []
    for number in range(count):
        path = folder / f"report-{number}.pdf"
        pdf = canvas.Canvas(str(path), pagesize=A4)
        pdf.setTitle(f"Report {number}")
        for _ in range(PAGES):
            text = pdf.beginText(40, 800)
            text.setFont("Helvetica", 9)
            for _ in range(LINES_PER_PAGE):
                text.textLine(" ".join(rng.choices(words, k=WORDS_PER_LINE)))
            pdf.drawText(text)
            pdf.showPage()
        pdf.save()
        if path.stat().st_size < PDF_BYTES:
            raise RuntimeError(f"{path} has {path.stat().st_size} bytes, fewer than {PDF_BYTES}")
        paths.append(path)
    return paths


def _upload(client: httpx.Client, path: Path, filename: str, tag: str) -> str:
    created = client.post(
        "/documents",
        params={"filename": filename, "tags": tag},
        content=path.read_bytes(),
        headers={"Content-Type": "application/pdf"},
    )
    if created.status_code != 201:
        raise RuntimeError(f"upload: HTTP {created.status_code}: {created.text[:500]}")
    document_id: str = created.json()["id"]
    return document_id


def _until_processed(client: httpx.Client, document_ids: list[str]) -> None:
    """Polls each document until none is pending; raises if one is not ``done``."""
    deadline = time.monotonic() + PATIENCE_S
    waiting = list(document_ids)
    while waiting:
        answer = client.get(f"/documents/{waiting[0]}")
        answer.raise_for_status()
        processing = answer.json()["processing"]
        if processing["state"] == "done":
            waiting.pop(0)
            continue
        if processing["state"] != "pending":
            raise RuntimeError(f"document {waiting[0]} ended {processing}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} documents still pending after {PATIENCE_S:g} s")
        time.sleep(POLL_S)


def processed_per_s(base_url: str, pdfs: list[Path], count: int, tag: str) -> float:
    """Uploads ``count`` documents; documents per second from the first upload to the last one done."""
    with httpx.Client(base_url=base_url, headers=AUTHORIZATION, timeout=60) as client:
        started = time.perf_counter()
        with ThreadPoolExecutor(UPLOADERS) as pool:
            ids = list(
                pool.map(
                    lambda number: _upload(client, pdfs[number % len(pdfs)], f"{tag}-{number}.pdf", tag),
                    range(count),
                )
            )
        _until_processed(client, ids)
        return count / (time.perf_counter() - started)


def uploads_per_s(base_url: str, pdf: Path, duration_s: int, tag: str) -> float:
    """``hey`` uploading ``pdf`` over ``CONNECTIONS`` connections for ``duration_s``: answers 201 a second."""
    completed = subprocess.run(
        [
            "hey", "-z", f"{duration_s}s", "-c", str(CONNECTIONS), "-m", "POST",
            "-T", "application/pdf", "-D", str(pdf), "-H", AUTHORIZATION_LINE,
            f"{base_url}/documents?filename={tag}.pdf&tags={tag}",
        ],
        capture_output=True, text=True, timeout=duration_s + 120, check=True,
    )  # fmt: skip
    output = completed.stdout
    statuses = re.findall(r"\[(\d{3})\]\s+\d+ responses", output)
    if "Error distribution" in output or any(status != "201" for status in statuses):
        raise RuntimeError(f"hey against {base_url}: not every upload answered 201:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"cannot read hey's output:\n{output}")
    return float(rate.group(1))


def _clear(base_url: str, pdf: Path, tag: str, *, processing: bool) -> None:
    """Deletes the documents named ``tag``.pdf; with ``processing``, then waits until the events so far
    are worked off: the relay delivers them oldest batch first, so a document uploaded now is processed
    after them."""
    with httpx.Client(base_url=base_url, headers=AUTHORIZATION, timeout=PATIENCE_S) as client:
        client.delete(f"/documents/{tag}.pdf").raise_for_status()
        if processing:
            _until_processed(client, [_upload(client, pdf, f"{tag}-last.pdf", tag)])


def run(options: Options, workspace: Workspace, report: Report) -> None:
    logs = workspace.folder("logs")
    pdfs = make_pdfs(workspace.folder("pipeline/pdfs"), DISTINCT_PDFS)
    batch = QUICK_BATCH if options.quick else BATCH
    moto = servers.moto(logs)
    with servers.running(moto):
        sqs = {**_SQS, "DOCPIPE_SQS_ENDPOINT_URL": moto.base_url}
        local = servers.docpipe(workspace.folder("pipeline/local"), logs)
        queued_data = workspace.folder("pipeline/sqs")
        queued = servers.docpipe(queued_data, logs, env=sqs)
        workers = [servers.docpipe_worker(queued_data, logs, sqs) for _ in range(WORKERS)]
        processing_off = servers.docpipe(
            workspace.folder("pipeline/off"), logs, env={"DOCPIPE_PROCESSING": "off"}
        )
        with servers.running(local, queued, *workers, processing_off):
            _processing(options, report, pdfs, batch, local.base_url, queued.base_url)
            _uploads(options, report, pdfs[0], local.base_url, processing_off.base_url)
    report.note(
        f"Pipeline: PDFs of {PDF_BYTES // 1000}+ KB ({PAGES} pages of text, reportlab); processing rate "
        f"of {batch} documents uploaded {UPLOADERS} at a time, from the first upload to the last `done`; "
        f"upload rate from hey, {CONNECTIONS} connections, {options.duration_s} s per window; default "
        "settings (`DOCPIPE_EXTRACT_WORKERS=2` per process: 4 extractions at a time with 2 workers), "
        "moto server for SQS, all processes sharing the CPUs."
    )
    report.note(
        "Pipeline: the relay hands each new document to indexing and processing together, so with "
        "processing on a burst's indexing, too, waits behind extraction and is mostly done after the "
        "window (the backlog, timed in the JSON samples), while with it off it is done during the window: "
        "the windows compare uploads beside extraction with uploads beside indexing."
    )


def _processing(
    options: Options, report: Report, pdfs: list[Path], batch: int, local_url: str, queued_url: str
) -> None:
    cases: dict[str, str] = {"in-process": local_url, f"{WORKERS} workers on SQS": queued_url}
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for round_number in range(1, min(options.repeat, MAX_ROUNDS) + 1):
        for name in rotated(list(cases), round_number):
            rates[name].append(processed_per_s(cases[name], pdfs, batch, f"round{round_number}"))
        summary = ", ".join(f"{name} {values[-1]:.1f}" for name, values in rates.items())
        print(f"  processing round {round_number} (documents/s): {summary}", flush=True)
    report.add(
        Row(
            f"100 KB PDFs processed per second, {WORKERS} `docpipe worker` on SQS vs in-process",
            median(rates[f"{WORKERS} workers on SQS"]),
            "doc/s",
            "in-process",
            median(rates["in-process"]),
            samples=rates,
        )
    )


def _uploads(options: Options, report: Report, pdf: Path, on_url: str, off_url: str) -> None:
    cases: dict[str, str] = {"processing on": on_url, "processing off": off_url}
    rates: dict[str, list[float]] = {name: [] for name in cases}
    backlog: list[float] = []
    for round_number in range(1, min(options.repeat, MAX_ROUNDS) + 1):
        for name in rotated(list(cases), round_number):
            tag = f"uploads{round_number}"
            rates[name].append(uploads_per_s(cases[name], pdf, options.duration_s, tag))
            started = time.perf_counter()
            _clear(cases[name], pdf, tag, processing=name == "processing on")
            if name == "processing on":
                backlog.append(time.perf_counter() - started)
        summary = ", ".join(f"{name} {values[-1]:.0f}" for name, values in rates.items())
        backlog_s = f"backlog {backlog[-1]:.0f} s"
        print(f"  upload round {round_number} (uploads/s): {summary}; {backlog_s}", flush=True)
    report.add(
        Row(
            "100 KB PDF uploads per second, processing on vs off",
            median(rates["processing on"]),
            "req/s",
            "processing off",
            median(rates["processing off"]),
            UPLOAD_TARGET,
            samples={**rates, "backlog_s": backlog},
        )
    )
