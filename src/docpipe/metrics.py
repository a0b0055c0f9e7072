"""Every Prometheus metric docpipe keeps, defined once, and their text exposition for ``GET /metrics``.

Label values come from small fixed sets only (route templates, methods, statuses, adapter and operation
names, error classes), never from what a client chose (paths, ids, file names): the number of series
stays bounded whatever clients send.

With several server processes (``DOCPIPE_WORKERS`` > 1) ``docpipe serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a private folder before the workers start: each process then keeps its
values in files there, and a scrape, answered by any one of them, adds up every process's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from docpipe import metric_tallies

MULTIPROCESS_FOLDER = "PROMETHEUS_MULTIPROC_DIR"
"""The variable prometheus-client reads, when it is first imported, to keep values in shared files."""
MEDIA_TYPE = "text/plain; version=0.0.4"
"""Prometheus's text exposition format (in UTF-8)."""

UNMATCHED_ROUTE = "unmatched"
"""The ``route`` of requests no route answers (404, 405): their paths are never labels."""

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
"""Seconds; uploads and downloads of large documents take minutes, hence the long tail."""

# A ``_created`` series beside every counter and histogram would double the series for nothing.
disable_created_metrics()  # type: ignore[no-untyped-call]

requests = Counter(
    "docpipe_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
request_duration = Histogram(
    "docpipe_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by method and route template.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
bytes_received = Counter(
    "docpipe_http_request_body_bytes",
    "Request body bytes received, by method and route template.",
    ["method", "route"],
)
bytes_sent = Counter(
    "docpipe_http_response_body_bytes",
    "Response body bytes sent, by method and route template.",
    ["method", "route"],
)
uploads = Counter(
    "docpipe_uploads",
    "Requests to upload routes by outcome: stored, refused (with the reason: the error's or the "
    "status's name) or aborted (the client went away).",
    ["route", "outcome", "reason"],
)
store_duration = Histogram(
    "docpipe_store_operation_duration_seconds",
    "Time a store took to answer, by adapter and operation (a put lasts as long as its stream).",
    ["adapter", "operation"],
    buckets=_LATENCY_BUCKETS,
)
store_errors = Counter(
    "docpipe_store_errors",
    "Store operations that failed, by adapter, operation and error (unavailable, missing, full).",
    ["adapter", "operation", "error"],
)
outbox_batch = Gauge(
    "docpipe_outbox_batch_events",
    "Events awaiting processing that the relays were handed at their last poll (at most a batch each).",
    multiprocess_mode="livesum",
)
outbox_oldest_age = Gauge(
    "docpipe_outbox_oldest_event_age_seconds",
    "Age of the oldest event the relays were handed at their last poll; 0 when there was none.",
    multiprocess_mode="livemax",
)
webhook_batch = Gauge(
    "docpipe_webhook_due_deliveries",
    "Webhooks due that the dispatchers were handed at their last poll (at most a batch each).",
    multiprocess_mode="livesum",
)
webhook_oldest_age = Gauge(
    "docpipe_webhook_oldest_delivery_age_seconds",
    "Age of the event of the oldest due webhook the dispatchers were handed at their last poll.",
    multiprocess_mode="livemax",
)


_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")


def error_label(error: Exception) -> str:
    """``StoreUnavailable`` -> ``store_unavailable``: a label value from a fixed set, error classes."""
    return _WORD_START.sub("_", type(error).__name__).lower()


def exposition() -> bytes:
    """Every metric in the text format: this process's, or every process's in multiprocess mode."""
    metric_tallies.flush()
    if MULTIPROCESS_FOLDER not in os.environ:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def process_exiting() -> None:
    """A server process stopping: its gauges leave the sums (its counters stay counted, to the last)."""
    metric_tallies.flush()
    if MULTIPROCESS_FOLDER in os.environ:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def shared_between_processes() -> Iterator[None]:
    """While serving with several processes: a private folder for their values, named in the
    environment the worker processes inherit, removed afterwards. Must be entered before they start."""
    folder = tempfile.mkdtemp(prefix="docpipe-metrics-")
    os.environ[MULTIPROCESS_FOLDER] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROCESS_FOLDER]
        shutil.rmtree(folder, ignore_errors=True)
