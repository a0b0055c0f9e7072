"""OpenTelemetry tracing, in process with the SDK's in-memory exporter: a server span per request named by
its route template, the store operations inside it, a span per processing job, the trace continued from
a trusted proxy's ``traceparent`` only, the trace id in the JSON log, and nothing secret in any span."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
from dependency_injector import providers
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from docpipe.adapters.extraction.in_process import InProcessExtractor
from docpipe.adapters.metered import PROCESSING_SPAN
from docpipe.config import ProcessingMode, TrustedProxies
from docpipe.container import Container
from docpipe.domain.errors import StoreRole, StoreUnavailable
from docpipe.domain.model import ByteRange
from docpipe.domain.ports import BlobStore
from docpipe.entrypoints.logs import ACCESS_LOGGER, JsonLines, WithRequestId
from tests.adapters_under_test import settings_for
from tests.credentials import ADMIN_KEY
from tests.http.helpers import Client, serve, upload_ok, wrap_blob_store
from tests.logger_state import logger_restored

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
PATIENCE_SECONDS = 30.0


@contextlib.asynccontextmanager
async def traced(
    tmp_path: Path, *, trusted: str = "*", processing: bool = False, container: Container | None = None
) -> AsyncIterator[tuple[Client, InMemorySpanExporter]]:
    """A client of an app on the in-memory stores whose spans go to the exporter it yields with it. The
    test client's peer is no address: ``*`` trusts it, ``none`` does not."""
    settings = msgspec.structs.replace(
        settings_for(data_dir=tmp_path / "data"),
        trusted_proxies=TrustedProxies(trusted),
        processing=ProcessingMode.ON if processing else ProcessingMode.OFF,
    )
    container = container or Container(settings=settings)
    container.extractor.override(providers.Object(InProcessExtractor()))
    exporter = InMemorySpanExporter()

    async def in_memory() -> AsyncIterator[TracerProvider]:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        yield provider

    container.tracer_provider.override(providers.Resource(in_memory))
    async with serve(settings, container) as client:
        yield client, exporter


def _named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def _children(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[str]:
    return [
        span.name
        for span in exporter.get_finished_spans()
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    ]


def _everything_said(exporter: InMemorySpanExporter) -> str:
    """Every name and attribute value of every span, as one text to search."""
    return json.dumps(
        [[span.name, dict(span.attributes or {})] for span in exporter.get_finished_spans()], default=str
    )


async def test_each_request_is_a_server_span_named_by_its_route_with_its_store_operations_inside(
    tmp_path: Path,
) -> None:
    async with traced(tmp_path) as (client, exporter):
        document = await upload_ok(client)
        assert (await client.get(f"/documents/{document['id']}")).status_code == 200
        assert (await client.get("/no/such/route")).status_code == 404

    (stored,) = _named(exporter, "POST /documents")
    assert stored.kind is SpanKind.SERVER
    assert stored.parent is None
    assert dict(stored.attributes or {}) == {
        "http.request.method": "POST",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "docpipe.request_id": stored.attributes["docpipe.request_id"],  # type: ignore[index]
        "http.route": "/documents",
        "http.response.status_code": 201,
        "docpipe.document_id": document["id"],
    }
    assert stored.status.status_code is StatusCode.UNSET
    assert {"memory put", "memory add"} <= set(_children(exporter, stored))
    (put,) = [span for span in _named(exporter, "memory put") if span.parent == stored.context]
    assert put.context.trace_id == stored.context.trace_id
    assert dict(put.attributes or {}) == {"docpipe.store.adapter": "memory", "docpipe.store.operation": "put"}

    (read,) = _named(exporter, "GET /documents/{document_id}")
    assert read.attributes["http.route"] == "/documents/{document_id}"  # type: ignore[index]
    assert _children(exporter, read) == ["memory get"]
    (unmatched,) = _named(exporter, "GET")
    assert unmatched.attributes["http.response.status_code"] == 404  # type: ignore[index]
    assert "http.route" not in (unmatched.attributes or {})
    assert document["id"] not in "".join(span.name for span in exporter.get_finished_spans())


async def test_no_span_holds_a_key_a_link_token_a_path_or_an_owner(tmp_path: Path) -> None:
    async with traced(tmp_path) as (client, exporter):
        document = await upload_ok(client)
        link = (await client.post(f"/documents/{document['id']}/links", json={"expires_in": 60})).json()[
            "url"
        ]
        token = link.rsplit("/", 1)[1]
        assert (await client.get(f"/l/{token}", headers={"authorization": ""})).status_code == 200
        assert (await client.get(f"/l/{token}x?token={token}")).status_code == 403
        refused = await client.get(
            "/documents?filename=secret-name.txt", headers={"authorization": "Bearer nope"}
        )
        assert refused.status_code == 401

    said = _everything_said(exporter)
    for secret in (ADMIN_KEY, token, "nope", "secret-name", "default", "/l/A", "?"):
        assert secret not in said
    assert [span.attributes["http.response.status_code"] for span in _named(exporter, "GET /l/{token}")] == [  # type: ignore[index]
        200,
        403,
    ]


class _Unreachable:
    """A blob store whose reads fail as an unreachable store's do."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def open(self, key: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        raise StoreUnavailable(StoreRole.BLOB_STORE, "s3://secret-bucket/owner-key is down for this test")


async def test_a_store_failure_fails_its_span_and_a_5xx_its_request_span_without_the_message(
    tmp_path: Path,
) -> None:
    settings = settings_for(data_dir=tmp_path / "data")
    container = Container(settings=settings)
    wrap_blob_store(container, settings, _Unreachable)  # type: ignore[arg-type]
    async with traced(tmp_path, container=container) as (client, exporter):
        document = await upload_ok(client)
        assert (await client.get(f"/documents/{document['id']}/content")).status_code == 503

    (request,) = _named(exporter, "GET /documents/{document_id}/content")
    assert request.status.status_code is StatusCode.ERROR
    (opened,) = [span for span in _named(exporter, "memory open") if span.parent == request.context]
    assert opened.status.status_code is StatusCode.ERROR
    assert opened.attributes["error.type"] == "StoreUnavailable"  # type: ignore[index]
    assert not opened.events
    assert "secret-bucket" not in _everything_said(exporter) + str(opened.status.description)


async def test_a_trusted_proxys_traceparent_is_continued_and_an_untrusted_peers_is_not(
    tmp_path: Path,
) -> None:
    async with traced(tmp_path, trusted="*") as (client, exporter):
        assert (await client.get("/health/live", headers={"traceparent": TRACEPARENT})).status_code == 200
    (continued,) = _named(exporter, "GET /health/live")
    assert format_trace_id(continued.context.trace_id) == TRACE_ID
    assert continued.parent is not None
    assert format_span_id(continued.parent.span_id) == PARENT_ID

    async with traced(tmp_path, trusted="none") as (client, exporter):
        assert (await client.get("/health/live", headers={"traceparent": TRACEPARENT})).status_code == 200
    (fresh,) = _named(exporter, "GET /health/live")
    assert format_trace_id(fresh.context.trace_id) != TRACE_ID
    assert fresh.parent is None


@contextlib.contextmanager
def json_log() -> Iterator[io.StringIO]:
    """The access log as docpipe's handler writes it in JSON (its formatter and filter), into a buffer."""
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonLines())
    handler.addFilter(WithRequestId())
    with logger_restored(ACCESS_LOGGER) as logger:
        logger.setLevel(logging.INFO)  # as ``docpipe serve`` configures it; an app built in a test does not
        logger.addHandler(handler)
        yield written


async def test_the_access_line_carries_the_trace_id_beside_the_request_id(tmp_path: Path) -> None:
    with json_log() as written:
        async with traced(tmp_path) as (client, exporter):
            response = await client.get("/health/live", headers={"traceparent": TRACEPARENT})
    (line,) = [json.loads(text) for text in written.getvalue().splitlines()]
    (span,) = _named(exporter, "GET /health/live")
    assert line["request_id"] == response.headers["x-request-id"] == span.attributes["docpipe.request_id"]  # type: ignore[index]
    assert line["trace_id"] == TRACE_ID == format_trace_id(span.context.trace_id)


async def _processing_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    deadline = asyncio.get_running_loop().time() + PATIENCE_SECONDS
    while not (spans := _named(exporter, PROCESSING_SPAN)):
        assert asyncio.get_running_loop().time() < deadline, "no processing span"
        await asyncio.sleep(0.02)
    (span,) = spans
    return span


async def test_each_processing_job_is_a_span_with_its_store_operations_inside(tmp_path: Path) -> None:
    async with traced(tmp_path, processing=True) as (client, exporter):
        document = await upload_ok(client)
        job = await _processing_span(exporter)

    attributes: dict[str, Any] = dict(job.attributes or {})
    assert attributes == {"docpipe.document_id": document["id"], "docpipe.processing.state": "done"}
    assert job.parent is None  # the relay's own work, not the upload's
    assert {"memory get", "memory open", "memory put", "memory record_processing"} <= set(
        _children(exporter, job)
    )
