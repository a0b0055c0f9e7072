"""``GET /metrics``, read with prometheus-client's own text parser: who may read it, what requests,
uploads and stores leave in it, and that what clients send never grows the number of series.

The metrics belong to the process, which runs many tests: each test compares values before and after.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import msgspec
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from docpipe.adapters import memory
from docpipe.adapters.metered import MeteredOutbox
from docpipe.config import ProcessingMode
from docpipe.container import Container
from docpipe.domain.errors import StoreRole, StoreUnavailable
from docpipe.domain.model import ByteRange
from docpipe.domain.ports import BlobStore
from tests.adapters_under_test import settings_for
from tests.contract.test_repository_contract import make_document
from tests.credentials import bearer
from tests.http.helpers import Client, serve, upload, wrap_blob_store
from tests.http.test_auth import issue

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
MAX_UPLOAD_BYTES = 1000


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    settings = settings_for(data_dir=tmp_path / "data", max_upload_bytes=MAX_UPLOAD_BYTES)
    async with serve(settings) as test_client:
        yield test_client


async def scrape(client: Client) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_metrics_need_a_key_with_the_metrics_scope(client: Client) -> None:
    reader = bearer((await issue(client, ["read", "write", "delete", "share", "admin"]))["key"])
    scraper = bearer((await issue(client, ["metrics"], owner="prometheus"))["key"])
    assert (await client.get("/metrics", headers={"Authorization": ""})).status_code == 401
    assert (await client.get("/metrics", headers=reader)).status_code == 403
    response = await client.get("/metrics", headers=scraper)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"docpipe_http_requests", "docpipe_store_operation_duration_seconds"} <= names


async def test_requests_are_counted_by_route_method_and_status_with_latency_and_bytes(client: Client) -> None:
    before = await scrape(client)
    created = await client.post("/documents", params={"filename": "a.txt"}, content=b"x" * 300)
    assert created.status_code == 201
    content = await client.get(f"/documents/{created.json()['id']}/content")
    assert content.content == b"x" * 300
    assert (await client.get(f"/documents/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/no/such/route")).status_code == 404
    assert (await client.request("BREW", "/documents")).status_code == 405
    after = await scrape(client)

    post = {"method": "POST", "route": "/documents"}
    get_content = {"method": "GET", "route": "/documents/{document_id}/content"}
    assert grew(before, after, "docpipe_http_requests_total", **post, status="201") == 1
    assert grew(before, after, "docpipe_http_request_duration_seconds_count", **post) == 1
    assert grew(before, after, "docpipe_http_request_duration_seconds_sum", **post) > 0
    assert grew(before, after, "docpipe_http_request_body_bytes_total", **post) == 300
    assert grew(before, after, "docpipe_http_response_body_bytes_total", **get_content) == 300
    assert grew(before, after, "docpipe_http_requests_total", **get_content, status="200") == 1
    one_missing = {"method": "GET", "route": "/documents/{document_id}", "status": "404"}
    assert grew(before, after, "docpipe_http_requests_total", **one_missing) == 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert grew(before, after, "docpipe_http_requests_total", **unmatched) == 1
    assert (
        grew(before, after, "docpipe_http_requests_total", method="other", route="unmatched", status="405")
        == 1
    )


async def test_uploads_are_counted_stored_or_refused_with_the_reason(client: Client) -> None:
    before = await scrape(client)
    assert (await upload(client, b"fits")).status_code == 201
    assert (await upload(client, b"x" * (MAX_UPLOAD_BYTES + 1))).status_code == 413
    assert (await client.post("/documents", params={"filename": "empty.txt"}, content=b"")).status_code == 400
    after = await scrape(client)

    uploads = {"route": "/documents"}
    assert grew(before, after, "docpipe_uploads_total", **uploads, outcome="stored", reason="") == 1
    refused = {**uploads, "outcome": "refused"}
    assert grew(before, after, "docpipe_uploads_total", **refused, reason="upload_too_large") == 1
    assert grew(before, after, "docpipe_uploads_total", **refused, reason="empty_upload") == 1


def _series(samples: Iterable[tuple[str, frozenset[tuple[str, str]]]]) -> set[str]:
    return {name for name, _ in samples}


async def test_the_number_of_series_does_not_grow_with_ids_or_paths(client: Client) -> None:
    """Every kind of request once, then 1,000 with ids and paths never seen: no new series."""

    async def requests(count: int) -> None:
        for number in range(count):
            unique = uuid.uuid4().hex
            path = (
                f"/documents/{unique}",
                f"/documents/{unique}/content",
                f"/l/{unique}",
                f"/{unique}/{number}",
            )[number % 4]
            response = await client.get(path)
            assert response.status_code in (403, 404), (path, response.status_code)

    await requests(4)
    before = await scrape(client)
    await requests(1000)
    after = await scrape(client)
    assert len(after) == len(before), sorted(set(after) - set(before))
    assert _series(after) == _series(before)


class _Unreachable:
    """A blob store whose reads fail as an unreachable store's do."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def open(self, key: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        raise StoreUnavailable(StoreRole.BLOB_STORE, "the blob store is down for this test")


async def test_store_operations_are_timed_and_their_failures_counted_by_adapter(tmp_path: Path) -> None:
    """Processing is off, so that only the requests' own operations count."""
    embedded = settings_for(blob_store="filesystem", repository="sqlite", data_dir=tmp_path / "data")
    settings = msgspec.structs.replace(embedded, processing=ProcessingMode.OFF)
    container = Container(settings=settings)
    wrap_blob_store(container, settings, _Unreachable)  # type: ignore[arg-type]
    async with serve(settings, container) as client:
        before = await scrape(client)
        document = (await upload(client)).json()
        assert (await client.get(f"/documents/{document['id']}/content")).status_code == 503
        after = await scrape(client)

    timed = "docpipe_store_operation_duration_seconds_count"
    assert grew(before, after, timed, adapter="filesystem", operation="put") == 1
    assert grew(before, after, timed, adapter="sqlite", operation="add") == 1
    assert grew(before, after, timed, adapter="filesystem", operation="open") == 1
    failed = {"adapter": "filesystem", "operation": "open", "error": "store_unavailable"}
    assert grew(before, after, "docpipe_store_errors_total", **failed) == 1
    assert grew(before, after, "docpipe_store_errors_total", adapter="sqlite", operation="add", error="") == 0


async def test_the_relays_report_the_events_they_find_waiting_and_the_oldest_ones_age() -> None:
    async for repository in memory.open_repository():
        for _ in range(3):
            await repository.add(make_document())
        await asyncio.sleep(0.05)
        outbox = MeteredOutbox(repository.outbox())
        handed = await outbox.pending(limit=10)
        assert len(handed) == 3
        assert REGISTRY.get_sample_value("docpipe_outbox_batch_events") == 3
        age = REGISTRY.get_sample_value("docpipe_outbox_oldest_event_age_seconds")
        assert age is not None
        assert 0.05 <= age < 60
        await outbox.acknowledge(handed)
        assert await outbox.pending(limit=10) == []
        assert REGISTRY.get_sample_value("docpipe_outbox_batch_events") == 0
        assert REGISTRY.get_sample_value("docpipe_outbox_oldest_event_age_seconds") == 0
