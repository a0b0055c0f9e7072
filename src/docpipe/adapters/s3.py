"""Blob store on Amazon S3 or an S3-compatible service (MinIO, Ceph, moto), through one aioboto3 client."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterator
from datetime import UTC
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import ClientError

from docpipe.adapters import s3_resumable
from docpipe.adapters.aws_errors import AwsFailures, code, is_missing_store, retries, status
from docpipe.config import S3Settings
from docpipe.domain.errors import BlobNotFound, StoreRole, StoreUnavailable
from docpipe.domain.model import BlobEntry, ByteRange
from docpipe.domain.streams import CHUNK_SIZE

if TYPE_CHECKING:
    from aiobotocore.response import StreamingBody
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.literals import BucketLocationConstraintType
    from types_aiobotocore_s3.type_defs import (
        CompletedPartTypeDef,
        CreateBucketRequestTypeDef,
        GetObjectOutputTypeDef,
        GetObjectRequestTypeDef,
        MultipartUploadTypeDef,
    )

PART_SIZE = 8 * 1024 * 1024
"""Streams shorter than one part go up in a single PutObject; S3 wants parts of at least 5 MiB."""
PARTS_IN_FLIGHT = 3
"""Parts uploaded concurrently: a put holds at most about ``(PARTS_IN_FLIGHT + 1) * PART_SIZE`` bytes."""
RELEASE_AFTER = 1.0
"""Seconds a download may keep its S3 connection waiting for its reader before giving it back."""
CONNECTION_WAIT = 5.0
"""Seconds an attempt may wait for a free pooled connection (and to connect) before it fails."""
CHECK_CONNECTIONS = 2
"""The readiness check has a client of its own, so busy transfers cannot make it queue."""
CHECK_TIMEOUT = 5.0

_log = logging.getLogger(__name__)
_Page = TypeVar("_Page")


class S3BlobStore:
    """Each blob is one object, ``prefix + key``, in one bucket.

    Objects only appear once complete (PutObject and CompleteMultipartUpload are atomic), so a failed
    put leaves nothing readable; a multipart upload that fails is aborted, and one a crash leaves
    unfinished is an incomplete inventory entry.
    """

    def __init__(
        self,
        client: S3Client,
        checker: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        create_missing: bool = True,
        release_after: float = RELEASE_AFTER,
        presigner: S3Client | None = None,
    ) -> None:
        self._client = client
        self._presigner = presigner or client
        self._release_after = release_after
        self._checker = checker
        self._bucket = bucket
        self._prefix = prefix
        self._aborts: set[asyncio.Task[None]] = set()
        recreate = self.create_bucket_if_missing if create_missing else None
        self._failures = AwsFailures(StoreRole.BLOB_STORE, f"S3 bucket {bucket!r}", recreate)

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        object_key = self._prefix + key
        async with contextlib.aclosing(_parts(chunks)) as parts:
            first = await anext(parts, io.BytesIO())
            size = _size(first)
            if size < PART_SIZE:
                with self._unavailable_on_failure():
                    await self._client.put_object(Bucket=self._bucket, Key=object_key, Body=first)
                return size
            return await self._put_multipart(object_key, first, parts)

    async def open(self, key: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        chunks = self._read(key, byte_range)
        await anext(chunks)  # sends GetObject: BlobNotFound surfaces here, before any byte
        return chunks

    async def exists(self, key: str) -> bool:
        """One HeadObject: no body, the cheapest request S3 answers about one object."""
        with self._unavailable_on_failure():
            try:
                await self._client.head_object(Bucket=self._bucket, Key=self._prefix + key)
            except ClientError as error:
                if status(error) == 404:
                    return False
                raise
        return True

    async def presigned_get(
        self, key: str, *, content_type: str, content_disposition: str, expires_in: int
    ) -> str:
        """Signed locally, no request sent: with the endpoint clients reach S3 at, when it differs from
        docpipe's (the host is part of the signature)."""
        return await self._presigner.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": self._prefix + key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": content_disposition,
            },
            ExpiresIn=expires_in,
        )

    async def delete(self, key: str) -> None:
        with self._unavailable_on_failure():
            await self._client.delete_object(Bucket=self._bucket, Key=self._prefix + key)

    async def check(self) -> None:
        with self._unavailable_on_failure():
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    await self._checker.head_bucket(Bucket=self._bucket)
            except ClientError as error:
                if is_missing_store(error):
                    raise
                # HeadBucket has no body to name a code in: any refusal means we cannot use the bucket.
                raise StoreUnavailable(
                    StoreRole.BLOB_STORE, f"S3 bucket {self._bucket!r} cannot be used: {error}"
                ) from None

    async def inventory(self) -> AsyncIterator[BlobEntry]:
        """Objects under the prefix, then unfinished multipart uploads under it (handle: the upload id).

        The tails of resumable uploads (``s3_resumable``) count with their upload's entry; a tail
        whose upload is gone (a finish or an abort cut short) is an incomplete entry of its own
        (handle: its object key). Tails are held until the uploads are listed: a few per upload in
        progress."""
        tails: dict[str, list[BlobEntry]] = {}
        objects = self._client.get_paginator("list_objects_v2")
        async for page in self._pages(objects.paginate(Bucket=self._bucket, Prefix=self._prefix)):
            for item in page.get("Contents", []):
                tail = s3_resumable.tail_of(item["Key"])
                entry = BlobEntry(
                    key=(item["Key"] if tail is None else tail[0]).removeprefix(self._prefix),
                    size=item["Size"],
                    modified=item["LastModified"].astimezone(UTC),
                    complete=tail is None,
                    handle=item["Key"],
                )
                if tail is None:
                    yield entry
                else:
                    tails.setdefault(entry.key, []).append(entry)
        uploads = self._client.get_paginator("list_multipart_uploads")
        async for listing in self._pages(uploads.paginate(Bucket=self._bucket, Prefix=self._prefix)):
            for upload in listing.get("Uploads", []):
                unfinished = await self._unfinished(
                    upload, tails.pop(upload["Key"].removeprefix(self._prefix), [])
                )
                if unfinished is not None:
                    yield unfinished
        for leftovers in tails.values():
            for leftover in leftovers:
                yield leftover

    def resumable(self, part_size: int = s3_resumable.PART_SIZE) -> s3_resumable.S3ResumableBlobs:
        """Resumable uploads' bytes in this bucket, through this client (see ``s3_resumable``)."""
        return s3_resumable.S3ResumableBlobs(
            self, self._client, self._bucket, self._prefix, self._failures, part_size=part_size
        )

    async def reclaim(self, entry: BlobEntry) -> None:
        object_key = self._prefix + entry.key
        with self._unavailable_on_failure():
            if entry.complete:
                await self._client.delete_object(Bucket=self._bucket, Key=object_key)
                return
            if s3_resumable.tail_of(entry.handle) is not None:
                await self._client.delete_object(Bucket=self._bucket, Key=entry.handle)
                return
        # The key's multipart upload and, if it was a resumable upload's, its tails (keys are unique).
        await self.resumable().abort(entry.key)

    async def create_bucket_if_missing(self) -> None:
        with self._unavailable_on_failure():
            try:
                await self._client.head_bucket(Bucket=self._bucket)
            except ClientError as error:
                if status(error) != 404:
                    raise
            else:
                return
            request: CreateBucketRequestTypeDef = {"Bucket": self._bucket}
            region = self._client.meta.region_name
            if region != "us-east-1":
                location = cast("BucketLocationConstraintType", region)
                request["CreateBucketConfiguration"] = {"LocationConstraint": location}
            with contextlib.suppress(self._client.exceptions.BucketAlreadyOwnedByYou):
                await self._client.create_bucket(**request)

    async def close(self) -> None:
        """Let aborts of failed multipart uploads finish, and stop a recreation of the bucket, before
        the client closes."""
        await asyncio.gather(*self._aborts, return_exceptions=True)
        await self._failures.close()

    def _unavailable_on_failure(self) -> contextlib.AbstractContextManager[None]:
        """S3's failures as domain errors (see ``AwsFailures``); a missing key passes through."""
        return self._failures.converted()

    async def _pages(self, pages: AsyncIterable[_Page]) -> AsyncIterator[_Page]:
        """The pages of a paginated listing, each request's failure turned into ``StoreUnavailable``."""
        requests = aiter(pages)
        while True:
            with self._unavailable_on_failure():
                page = await anext(requests, None)
            if page is None:
                return
            yield page

    async def _unfinished(self, upload: MultipartUploadTypeDef, tails: list[BlobEntry]) -> BlobEntry | None:
        """The entry of an unfinished multipart upload with its ``tails``, or ``None`` if it finished
        since it was listed.

        It was modified when its latest part or tail arrived: an upload still sending parts stays
        recent however long ago it started.
        """
        size = sum(tail.size for tail in tails)
        modified = max([upload["Initiated"], *(tail.modified for tail in tails)])
        parts = self._client.get_paginator("list_parts")
        request = parts.paginate(Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        try:
            async for page in self._pages(request):
                for part in page.get("Parts", []):
                    size += part["Size"]
                    modified = max(modified, part["LastModified"])
        except self._client.exceptions.NoSuchUpload:
            return None
        return BlobEntry(
            key=upload["Key"].removeprefix(self._prefix),
            size=size,
            modified=modified.astimezone(UTC),
            complete=False,
            handle=upload["UploadId"],
        )

    async def _read(self, key: str, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
        """Yield ``b""`` once the object is found, then its bytes.

        One GetObject serves a reader that keeps up. A reader that leaves a chunk unclaimed for
        ``release_after`` seconds (a slow client) has the S3 response closed under it, giving the
        pooled connection back; when it asks for more, a ranged GetObject (``If-Match`` the first
        one's ETag) resumes where it stopped. A connection is so held at S3's pace, not the
        client's, and memory stays one chunk per download.

        The generator is suspended inside ``async with body`` between chunks, and closes the body when
        it ends at its first ``yield``: whether the consumer finishes, stops early (``aclose``) or drops
        it (the event loop's finaliser), the response is released.
        """
        request: GetObjectRequestTypeDef = {"Bucket": self._bucket, "Key": self._prefix + key}
        if byte_range is not None:
            request["Range"] = f"bytes={byte_range.start}-{byte_range.end}"
        response = await self._get_object(key, request)
        position = 0 if byte_range is None else byte_range.start
        end = position + response["ContentLength"]
        request["IfMatch"] = response["ETag"]
        try:
            yield b""
        except BaseException:
            # Closed (or dropped) before reading: give the connection back, as ``async with body`` does.
            response["Body"].close()
            raise
        while True:
            body = response["Body"]
            lease = _Lease(body, self._release_after)
            async with body:  # not ``as``: aiobotocore's __aenter__ returns the bare aiohttp response
                while not lease.released:
                    with self._unavailable_on_failure():
                        chunk = await body.read(CHUNK_SIZE)
                    if not chunk:
                        break
                    position += len(chunk)
                    with lease.waiting():
                        yield chunk
            if position >= end:
                return
            request["Range"] = f"bytes={position}-{end - 1}"
            response = await self._get_object(key, request)

    async def _get_object(self, key: str, request: GetObjectRequestTypeDef) -> GetObjectOutputTypeDef:
        """GetObject; ``BlobNotFound`` when the key holds nothing, or no longer the object being read."""
        with self._unavailable_on_failure():
            try:
                return await self._client.get_object(**request)
            except ClientError as error:
                if code(error) in {"NoSuchKey", "PreconditionFailed"}:
                    raise BlobNotFound(key) from None
                raise

    async def _put_multipart(
        self, object_key: str, first: io.BytesIO, parts: AsyncIterator[io.BytesIO]
    ) -> int:
        with self._unavailable_on_failure():
            upload = await self._client.create_multipart_upload(Bucket=self._bucket, Key=object_key)
        upload_id = upload["UploadId"]
        uploading: set[asyncio.Task[CompletedPartTypeDef]] = set()
        try:
            completed, size = await self._upload_parts(object_key, upload_id, first, parts, uploading)
            with self._unavailable_on_failure():
                await self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=object_key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": sorted(completed, key=lambda part: part["PartNumber"])},
                )
        except BaseException:
            # A task of its own, shielded, so that cancelling this put cannot stop the clean-up.
            abort = asyncio.create_task(self._abort(object_key, upload_id, uploading))
            self._aborts.add(abort)
            abort.add_done_callback(self._aborts.discard)
            await asyncio.shield(abort)
            raise
        return size

    async def _upload_parts(
        self,
        object_key: str,
        upload_id: str,
        first: io.BytesIO,
        parts: AsyncIterator[io.BytesIO],
        uploading: set[asyncio.Task[CompletedPartTypeDef]],
    ) -> tuple[list[CompletedPartTypeDef], int]:
        """Upload ``first`` and the rest of ``parts``, at most ``PARTS_IN_FLIGHT`` at a time.

        The next part is read from the stream only once a slot is free, which bounds memory and
        slows the sender down to S3's pace. ``uploading`` holds the parts still in flight.
        """
        completed: list[CompletedPartTypeDef] = []
        size = number = 0
        body: io.BytesIO | None = first
        while body is not None:
            size += _size(body)
            number += 1
            uploading.add(asyncio.create_task(self._upload_part(object_key, upload_id, number, body)))
            if len(uploading) >= PARTS_IN_FLIGHT:
                done, _ = await asyncio.wait(uploading, return_when=asyncio.FIRST_COMPLETED)
                uploading -= done
                completed.extend(task.result() for task in done)
            body = await anext(parts, None)
        completed.extend(await asyncio.gather(*uploading))
        return completed, size

    async def _upload_part(
        self, object_key: str, upload_id: str, number: int, body: io.BytesIO
    ) -> CompletedPartTypeDef:
        with self._unavailable_on_failure():
            response = await self._client.upload_part(
                Bucket=self._bucket, Key=object_key, UploadId=upload_id, PartNumber=number, Body=body
            )
        return {"PartNumber": number, "ETag": response["ETag"]}

    async def _abort(
        self, object_key: str, upload_id: str, uploading: set[asyncio.Task[CompletedPartTypeDef]]
    ) -> None:
        """Stop the parts in flight, then abort the upload so S3 frees its parts.

        Parts still uploading during an abort could outlive it, hence the wait. A failed abort is
        only logged: the put's own error matters more, and the parts are reclaimable later.
        """
        for task in uploading:
            task.cancel()
        await asyncio.gather(*uploading, return_exceptions=True)
        try:
            await self._client.abort_multipart_upload(Bucket=self._bucket, Key=object_key, UploadId=upload_id)
        except Exception as error:
            _log.warning("could not abort multipart upload %s of %s: %s", upload_id, object_key, error)


class _Lease:
    """An S3 response that is closed, freeing its connection, if its reader leaves it waiting."""

    def __init__(self, body: StreamingBody, release_after: float) -> None:
        self._body = body
        self._release_after = release_after
        self.released = False

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """While the reader is away: after ``release_after`` seconds the response is closed."""
        timer = asyncio.get_running_loop().call_later(self._release_after, self._release)
        try:
            yield
        finally:
            timer.cancel()

    def _release(self) -> None:
        self.released = True
        self._body.close()


async def _parts(chunks: AsyncIterable[bytes]) -> AsyncGenerator[io.BytesIO, None]:
    """Regroup a stream into parts of ``PART_SIZE`` bytes; the last is shorter, and absent if empty.

    Parts are rewound ``BytesIO`` objects that own their buffer. Given ``bytes``, botocore wraps them
    in a ``BytesIO`` that shares them, and aiohttp's ``getbuffer()`` on that copies the whole part.
    """
    part = io.BytesIO()
    async for chunk in chunks:
        rest = memoryview(chunk)
        while rest:
            rest = rest[part.write(rest[: PART_SIZE - part.tell()]) :]
            if part.tell() == PART_SIZE:
                part.seek(0)
                yield part
                part = io.BytesIO()
    if part.tell():
        part.seek(0)
        yield part


def _size(part: io.BytesIO) -> int:
    return len(part.getbuffer())


class _PoolWaitBoundedSession(AIOHTTPSession):
    """aiobotocore's HTTP session with a bound on the wait for a pooled connection.

    aiobotocore hands aiohttp socket timeouts only, so once every pooled connection is busy a
    request waits for one for ever. aiohttp's ``connect`` timeout covers that wait and the
    connecting; past it the request fails as a connect timeout, which botocore retries and the
    store reports as unavailable.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        timeout: aiohttp.ClientTimeout = self._timeout  # type: ignore[has-type]
        self._timeout = aiohttp.ClientTimeout(
            connect=CONNECTION_WAIT, sock_connect=timeout.sock_connect, sock_read=timeout.sock_read
        )


def _config(settings: S3Settings, max_connections: int) -> AioConfig:
    return AioConfig(
        s3={"addressing_style": "path"} if settings.path_style else None,
        # What botocore signs requests with anyway; presigned URLs would otherwise get the deprecated SigV2.
        signature_version="s3v4",
        connect_timeout=5,
        read_timeout=60,
        retries=retries(),
        max_pool_connections=max_connections,
        http_session_cls=_PoolWaitBoundedSession,
        # Only checksums S3 requires: newer defaults send headers some S3-compatible stores reject.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


async def open_blob_store(
    session: aioboto3.Session,
    settings: S3Settings,
    *,
    create_missing: bool = True,
    release_after: float | None = None,
) -> AsyncIterator[S3BlobStore]:
    """Open the process's S3 clients (one for transfers, a small one for the readiness check), make
    sure the bucket exists, and close the clients on exit.

    A missing bucket is created, now or whenever it goes missing, unless ``create_missing`` is false:
    it is then ``StoreMissing``. Endpoint and credentials not given in ``settings`` come from the
    standard AWS chain (``AWS_ENDPOINT_URL``, profiles, instance roles, ...), and so does the region
    when settings name none (see ``docpipe.config``). ``release_after`` left ``None`` is
    ``RELEASE_AFTER``.
    """

    def client(
        max_connections: int, endpoint_url: str | None = settings.endpoint_url
    ) -> contextlib.AbstractAsyncContextManager[S3Client]:
        return session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=settings.region,
            config=_config(settings, max_connections),
        )

    def presigning_client() -> contextlib.AbstractAsyncContextManager[S3Client | None]:
        """A client of the endpoint clients reach, when it is another: it only presigns, sending nothing."""
        if settings.public_endpoint_url is None:
            return contextlib.nullcontext()
        return client(1, settings.public_endpoint_url)

    async with (
        client(settings.max_connections) as transfers,
        client(CHECK_CONNECTIONS) as checker,
        presigning_client() as presigner,
    ):
        store = S3BlobStore(
            transfers,
            checker,
            settings.bucket,
            settings.prefix,
            create_missing=create_missing,
            release_after=RELEASE_AFTER if release_after is None else release_after,
            presigner=presigner,
        )
        try:
            if create_missing:
                await store.create_bucket_if_missing()
            else:
                await store.check()
            yield store
        finally:
            await store.close()
