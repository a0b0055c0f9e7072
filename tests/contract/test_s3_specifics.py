"""What the S3 adapter must do beyond the BlobStore contract, checked against a real moto server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

import aioboto3
import msgspec
import pytest

from docpipe.adapters import s3
from docpipe.adapters.s3 import PART_SIZE, S3BlobStore, open_blob_store
from docpipe.config import S3Settings
from docpipe.domain.errors import BlobNotFound, StoreMissing, StoreUnavailable
from docpipe.domain.model import ByteRange, new_document_id
from tests.contract.support import errors_naming, until_it_passes, until_logged
from tests.contract.test_blob_store_contract import chunks_of
from tests.moto_server import MotoServer, free_port, running_moto_server

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

MIB = 1024 * 1024

opened_blob_store = contextlib.asynccontextmanager(open_blob_store)


def fresh_settings(endpoint_url: str, prefix: str = "") -> S3Settings:
    return S3Settings(
        bucket=f"docpipe-test-{uuid.uuid4().hex[:12]}",
        prefix=prefix,
        endpoint_url=endpoint_url,
        path_style=True,
    )


@contextlib.asynccontextmanager
async def store_and_client(
    endpoint_url: str,
    prefix: str = "",
    *,
    release_after: float = s3.RELEASE_AFTER,
    max_connections: int | None = None,
    listing_page_size: int | None = None,
) -> AsyncIterator[tuple[S3BlobStore, S3Client, str]]:
    """A store on a new bucket, and a plain client to look at what it wrote. ``listing_page_size``
    makes S3 answer every ListObjectsV2 of both with pages that small (its own most is 1,000), so
    that paging is seen over a few objects rather than a thousand."""
    settings = fresh_settings(endpoint_url, prefix)
    if max_connections is not None:
        settings = msgspec.structs.replace(settings, max_connections=max_connections)
    session = aioboto3.Session()
    if listing_page_size is not None:
        session.events.register(
            "before-parameter-build.s3.ListObjectsV2",
            lambda params, **_: params.__setitem__("MaxKeys", listing_page_size),
        )
    async with (
        opened_blob_store(session, settings, release_after=release_after) as store,
        session.client("s3", endpoint_url=endpoint_url) as client,
    ):
        yield store, client, settings.bucket


async def generated(size: int, chunk: int = MIB) -> AsyncIterator[bytes]:
    block = os.urandom(chunk)
    for offset in range(0, size, chunk):
        yield block[: min(chunk, size - offset)]


class _Boom(Exception):
    pass


async def failing_after(size: int) -> AsyncIterator[bytes]:
    async for chunk in generated(size):
        yield chunk
    raise _Boom


async def test_the_bucket_is_created_at_start_up_in_the_configured_region(moto_server: MotoServer) -> None:
    async with store_and_client(moto_server.endpoint_url) as (store, client, bucket):
        location = await client.get_bucket_location(Bucket=bucket)
        assert location["LocationConstraint"] == os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"
        await store.check()


async def test_an_existing_bucket_is_reused(moto_server: MotoServer) -> None:
    settings = fresh_settings(moto_server.endpoint_url)
    key = new_document_id()
    async with opened_blob_store(aioboto3.Session(), settings) as store:
        await store.put(key, chunks_of(b"kept"))
    async with opened_blob_store(aioboto3.Session(), settings) as store:
        assert b"".join([chunk async for chunk in await store.open(key)]) == b"kept"


async def test_objects_are_stored_under_the_prefix(moto_server: MotoServer) -> None:
    async with store_and_client(moto_server.endpoint_url, prefix="tenant-a/") as (store, client, bucket):
        small, large = new_document_id(), new_document_id()
        await store.put(small, generated(10))
        await store.put(large, generated(9 * MIB))
        listing = await client.list_objects_v2(Bucket=bucket)
        assert sorted(item["Key"] for item in listing["Contents"]) == sorted(
            [f"tenant-a/{small}", f"tenant-a/{large}"]
        )
        await store.delete(small)
        with pytest.raises(BlobNotFound):
            await store.open(small)


async def test_a_failed_multipart_put_leaves_no_unfinished_upload(moto_server: MotoServer) -> None:
    async with store_and_client(moto_server.endpoint_url) as (store, client, bucket):
        with pytest.raises(_Boom):
            await store.put(new_document_id(), failing_after(30 * MIB))
        uploads = await client.list_multipart_uploads(Bucket=bucket)
        assert uploads.get("Uploads", []) == []


async def test_a_cancelled_multipart_put_leaves_no_unfinished_upload(moto_server: MotoServer) -> None:
    into_the_second_part = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in generated(1024 * MIB):
            yield chunk
            sent += len(chunk)
            if sent > PART_SIZE:
                into_the_second_part.set()

    async with store_and_client(moto_server.endpoint_url) as (store, client, bucket):
        put = asyncio.create_task(store.put(new_document_id(), endless()))
        await into_the_second_part.wait()
        assert (await client.list_multipart_uploads(Bucket=bucket)).get("Uploads")
        put.cancel()
        with pytest.raises(asyncio.CancelledError):
            await put
        uploads = await client.list_multipart_uploads(Bucket=bucket)
        assert uploads.get("Uploads", []) == []


async def test_start_up_against_an_unreachable_endpoint_fails_fast_with_one_line() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    settings = fresh_settings(endpoint)
    with pytest.raises(StoreUnavailable) as caught:
        async with opened_blob_store(aioboto3.Session(), settings):
            pass
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"S3 bucket {settings.bucket!r} is unreachable: ")
    assert endpoint in message
    assert caught.value.__suppress_context__


async def test_check_reports_an_endpoint_that_went_away() -> None:
    with running_moto_server() as server:
        async with opened_blob_store(aioboto3.Session(), fresh_settings(server.endpoint_url)) as store:
            await store.check()
            server.stop()
            with pytest.raises(StoreUnavailable):
                await store.check()


async def test_check_reports_a_bucket_that_went_away(moto_server: MotoServer) -> None:
    async with store_and_client(moto_server.endpoint_url) as (store, client, bucket):
        await client.delete_bucket(Bucket=bucket)
        with pytest.raises(StoreUnavailable, match=bucket):
            await store.check()


async def test_a_bucket_deleted_at_run_time_is_recreated_once(
    moto_server: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with store_and_client(moto_server.endpoint_url) as (store, client, bucket):
        await client.delete_bucket(Bucket=bucket)
        outcomes = await asyncio.gather(
            *(store.put(new_document_id(), chunks_of(b"x")) for _ in range(5)), return_exceptions=True
        )
        assert isinstance(outcomes[0], StoreUnavailable)
        assert all(outcome == 1 or isinstance(outcome, StoreUnavailable) for outcome in outcomes)
        await until_it_passes(store.check)
        key = new_document_id()
        assert await store.put(key, chunks_of(b"back")) == 4
        assert b"".join([chunk async for chunk in await store.open(key)]) == b"back"
        await until_logged(caplog, bucket)
    recreated = errors_naming(caplog, bucket)
    assert len(recreated) == 1, recreated
    assert "recreated" in recreated[0]


async def test_without_create_missing_a_missing_bucket_is_reported_and_never_created(
    moto_server: MotoServer,
) -> None:
    settings = fresh_settings(moto_server.endpoint_url)
    session = aioboto3.Session()
    with pytest.raises(StoreMissing, match=settings.bucket):
        async with opened_blob_store(session, settings, create_missing=False):
            pass
    async with (
        opened_blob_store(session, settings) as creator,
        opened_blob_store(session, settings, create_missing=False) as store,
        session.client("s3", endpoint_url=moto_server.endpoint_url) as client,
    ):
        await creator.check()
        await client.delete_bucket(Bucket=settings.bucket)
        for _ in range(2):
            with pytest.raises(StoreMissing, match=settings.bucket):
                await store.put(new_document_id(), chunks_of(b"x"))
            with pytest.raises(StoreMissing):
                await store.check()
            await asyncio.sleep(1)
        assert settings.bucket not in {bucket["Name"] for bucket in (await client.list_buckets())["Buckets"]}


async def test_reads_stopped_early_or_never_started_release_their_connection(moto_server: MotoServer) -> None:
    """More abandoned reads than the client's connection pool holds (10): a leak would hang."""
    async with store_and_client(moto_server.endpoint_url) as (store, _, _):
        key = new_document_id()
        data = os.urandom(4 * MIB)
        await store.put(key, chunks_of(data))
        async with asyncio.timeout(20):
            for attempt in range(24):
                chunks = await store.open(key)
                if attempt % 2:
                    assert isinstance(chunks, AsyncGenerator)
                    await anext(chunks)
                    await chunks.aclose()
                else:
                    del chunks
                    await asyncio.sleep(0)  # the event loop's finaliser closes the dropped generator
            assert b"".join([chunk async for chunk in await store.open(key)]) == data


@pytest.mark.parametrize("byte_range", [None, ByteRange(5, 3 * MIB + 7)], ids=["whole", "range"])
async def test_a_reader_that_pauses_past_the_release_gets_exactly_its_bytes(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, byte_range: ByteRange | None
) -> None:
    """Each pause gives the connection back, so the read resumes with ranged GetObjects."""
    async with store_and_client(moto_server.endpoint_url, release_after=0.01) as (store, _, _):
        key = new_document_id()
        data = os.urandom(4 * MIB)
        await store.put(key, chunks_of(data))
        received = []
        async for chunk in await store.open(key, byte_range):
            received.append(chunk)
            await asyncio.sleep(0.05)
        expected = data if byte_range is None else data[byte_range.start : byte_range.end + 1]
        assert b"".join(received) == expected


async def test_a_download_closed_before_its_first_chunk_gives_its_connection_back(
    moto_server: MotoServer,
) -> None:
    """With one pooled connection, a download opened and closed unread (its client left before the
    first byte) must not keep that connection: the next read would wait for it, then fail."""
    size = 16 * MIB  # more than socket buffers take in, so the response stays unread
    async with store_and_client(moto_server.endpoint_url, release_after=3600, max_connections=1) as (
        store,
        _,
        _,
    ):
        key = new_document_id()
        await store.put(key, chunks_of(b"x" * size))
        unread = await store.open(key)
        await cast("AsyncGenerator[bytes, None]", unread).aclose()
        again = await store.open(key)
        assert sum([len(chunk) async for chunk in again]) == size


async def test_a_read_resumed_after_its_object_was_replaced_stops_without_mixing_bytes(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with store_and_client(moto_server.endpoint_url, release_after=0.01) as (store, _, _):
        key = new_document_id()
        await store.put(key, chunks_of(b"a" * 4 * MIB))
        chunks = await store.open(key)
        assert set(await anext(chunks)) == {ord("a")}
        await asyncio.sleep(0.05)
        await store.put(key, chunks_of(b"b" * 4 * MIB))
        read: list[bytes] = []

        async def read_the_rest() -> None:
            async for chunk in chunks:
                read.append(chunk)

        with pytest.raises(BlobNotFound):
            await read_the_rest()
        assert set(b"".join(read)) <= {ord("a")}


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads peak RSS from /proc")
async def test_256_mib_stream_through_in_bounded_memory(moto_server: MotoServer) -> None:
    size = 256 * MIB
    async with store_and_client(moto_server.endpoint_url) as (store, _, _):
        key = new_document_id()
        _reset_peak_rss()
        baseline = _peak_rss()
        sent = hashlib.sha256()

        async def upload() -> AsyncIterator[bytes]:
            async for chunk in generated(size, 256 * 1024):
                sent.update(chunk)
                yield chunk

        assert await store.put(key, upload()) == size
        received = hashlib.sha256()
        async for chunk in await store.open(key):
            received.update(chunk)
        growth = _peak_rss() - baseline
    assert received.hexdigest() == sent.hexdigest()
    assert growth < 100 * MIB, f"peak RSS grew by {growth / MIB:.0f} MiB"
