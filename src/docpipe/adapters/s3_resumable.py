"""Resumable uploads' bytes on S3: one multipart upload per upload, and its tail kept aside.

S3 takes a multipart upload's parts at ``PART_SIZE`` bytes (its minimum is 5 MiB, but for the last
part), and a PATCH seldom ends on a part boundary. So part ``n`` always holds the bytes
``(n - 1) * PART_SIZE .. n * PART_SIZE``, and the bytes of a part not yet full are the *tail*: a plain
object ``<key>.part.<n>`` beside the upload (tusd's S3 store keeps such a ``.part`` object too). A
PATCH from ``offset`` reads the tail's first ``offset % PART_SIZE`` bytes back, adds its own, uploads
every part they fill and puts the rest as the new tail; ``finish`` copies the last tail in as the last
part (UploadPartCopy, on S3's side) and completes the upload into the blob's key.

Parts cannot be deleted, nor read, before completion, so going back to an offset (a checksum
mismatch, a broken body, a writer that crashed past the recorded offset) is done by names: parts from
the offset's part on are written again by the next PATCH (S3 keeps the latest upload of a part
number), and the tail of the offset's part is left in place when a PATCH moves past it, so that
``truncate`` can cut it back; it goes once a later PATCH starts beyond it, which only happens once
the repository recorded that offset. ``read``, asked only once every byte arrived, completes the upload
first, then reads the blob.

Memory: a PATCH holds at most one part (``PART_SIZE``) and the chunk it is splitting; ``truncate``
at most one tail.

The multipart upload is found again by listing the bucket's uploads under the key (one request per
PATCH), so any process sharing the bucket can take an upload over.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING

from docpipe.adapters.aws_errors import AwsFailures
from docpipe.domain.errors import BlobNotFound
from docpipe.domain.model import ByteRange
from docpipe.domain.ports import BlobStore
from docpipe.domain.streams import CHUNK_SIZE

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

PART_SIZE = 8 * 1024 * 1024
"""The size of every part but the last of a resumable upload. Fixed for the life of stored uploads
(part ``n``'s place is computed from it), and at most 10,000 parts: uploads up to 78 GiB."""
TAIL_MARK = ".part."
_TAIL = re.compile(r"(?P<key>.+)\.part\.(?P<number>[1-9][0-9]*)")


def tail_of(object_key: str) -> tuple[str, int] | None:
    """The object key and part number of the upload whose tail ``object_key`` is, if it is one."""
    match = _TAIL.fullmatch(object_key)
    return None if match is None else (match["key"], int(match["number"]))


class S3ResumableBlobs:
    """The ``ResumableBlobs`` of the S3 blob store ``blobs``: its client, bucket, key prefix and
    failure conversion; see the module docstring for the layout."""

    def __init__(
        self,
        blobs: BlobStore,
        client: S3Client,
        bucket: str,
        prefix: str,
        failures: AwsFailures,
        *,
        part_size: int = PART_SIZE,
    ) -> None:
        self._blobs = blobs
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._failures = failures
        self._part_size = part_size

    async def begin(self, key: str) -> None:
        with self._failures.converted():
            await self._client.create_multipart_upload(Bucket=self._bucket, Key=self._prefix + key)

    async def append(self, key: str, offset: int, chunks: AsyncIterable[bytes]) -> int:
        object_key = self._prefix + key
        upload_id = await self._upload_id(key)
        number, kept = divmod(offset, self._part_size)
        number += 1
        part = io.BytesIO()
        await self._drop_tails(object_key, keep=number if kept else None)
        if kept:
            await self._read_tail(object_key, number, kept, part)
        end = offset
        async for chunk in chunks:
            rest = memoryview(chunk)
            while rest:
                written = part.write(rest[: self._part_size - part.tell()])
                rest = rest[written:]
                end += written
                if part.tell() == self._part_size:
                    await self._upload_part(key, upload_id, number, part)
                    number += 1
                    part = io.BytesIO()
        if part.tell():
            part.seek(0)
            with self._failures.converted():
                await self._client.put_object(
                    Bucket=self._bucket, Key=object_key + TAIL_MARK + str(number), Body=part
                )
        return end

    async def truncate(self, key: str, offset: int) -> None:
        """Tails past the offset's part go; the offset's tail is cut to its length (read and put again)."""
        object_key = self._prefix + key
        number, kept = divmod(offset, self._part_size)
        number += 1
        tails = await self._drop_tails(object_key, keep=number if kept else None, only_later=True)
        if not kept or tails.get(number, 0) <= kept:
            return
        part = io.BytesIO()
        await self._read_tail(object_key, number, kept, part)
        part.seek(0)
        with self._failures.converted():
            await self._client.put_object(
                Bucket=self._bucket, Key=object_key + TAIL_MARK + str(number), Body=part
            )

    async def read(self, key: str, end: int) -> AsyncIterator[bytes]:
        """S3 cannot read the parts of an unfinished upload: it is finished first (see the module)."""
        await self.finish(key)
        async for chunk in await self._blobs.open(key, ByteRange(0, end - 1)):
            yield chunk

    async def finish(self, key: str) -> None:
        """Complete the upload with its parts and last tail, then remove its tails; a key already
        finished has its tails removed (a finish cut short) and is otherwise left as it is."""
        object_key = self._prefix + key
        try:
            upload_id = await self._upload_id(key)
        except BlobNotFound:
            if not await self._blobs.exists(key):
                raise
        else:
            parts = await self._parts(object_key, upload_id)
            tails = await self._tails(object_key)
            last = len(parts) + 1
            if last in tails:
                with self._failures.converted():
                    copied = await self._client.upload_part_copy(
                        Bucket=self._bucket,
                        Key=object_key,
                        UploadId=upload_id,
                        PartNumber=last,
                        CopySource={"Bucket": self._bucket, "Key": object_key + TAIL_MARK + str(last)},
                    )
                parts.append({"PartNumber": last, "ETag": copied["CopyPartResult"]["ETag"]})
            with self._failures.converted():
                await self._client.complete_multipart_upload(
                    Bucket=self._bucket, Key=object_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        await self._drop_tails(object_key, keep=None)

    async def abort(self, key: str) -> None:
        object_key = self._prefix + key
        with self._failures.converted():
            async for upload_id in self._upload_ids(object_key):
                try:
                    await self._client.abort_multipart_upload(
                        Bucket=self._bucket, Key=object_key, UploadId=upload_id
                    )
                except self._client.exceptions.NoSuchUpload:
                    continue
        await self._drop_tails(object_key, keep=None)

    async def _upload_id(self, key: str) -> str:
        with self._failures.converted():
            async for upload_id in self._upload_ids(self._prefix + key):
                return upload_id
        raise BlobNotFound(key)

    async def _upload_ids(self, object_key: str) -> AsyncIterator[str]:
        """The ids of the unfinished multipart uploads of ``object_key`` (one, unless a put crashed)."""
        pages = self._client.get_paginator("list_multipart_uploads")
        async for page in pages.paginate(Bucket=self._bucket, Prefix=object_key):
            for upload in page.get("Uploads", []):
                if upload["Key"] == object_key:
                    yield upload["UploadId"]

    async def _parts(self, object_key: str, upload_id: str) -> list[CompletedPartTypeDef]:
        """The uploaded parts, which are whole parts ``1 .. n`` once every byte arrived (a part is
        written only with the bytes before it recorded, and none lies past the upload's length)."""
        parts: list[CompletedPartTypeDef] = []
        pages = self._client.get_paginator("list_parts")
        with self._failures.converted():
            async for page in pages.paginate(Bucket=self._bucket, Key=object_key, UploadId=upload_id):
                parts.extend(
                    {"PartNumber": part["PartNumber"], "ETag": part["ETag"]} for part in page.get("Parts", [])
                )
        parts.sort(key=lambda part: part["PartNumber"])
        if [part["PartNumber"] for part in parts] != list(range(1, len(parts) + 1)):
            raise RuntimeError(f"the parts of {object_key} are not contiguous: {parts}")
        return parts

    async def _tails(self, object_key: str) -> dict[int, int]:
        """The sizes of ``object_key``'s tails, by part number."""
        tails: dict[int, int] = {}
        pages = self._client.get_paginator("list_objects_v2")
        with self._failures.converted():
            async for page in pages.paginate(Bucket=self._bucket, Prefix=object_key + TAIL_MARK):
                for item in page.get("Contents", []):
                    tail = tail_of(item["Key"])
                    if tail is not None and tail[0] == object_key:
                        tails[tail[1]] = item["Size"]
        return tails

    async def _drop_tails(
        self, object_key: str, *, keep: int | None, only_later: bool = False
    ) -> dict[int, int]:
        """Delete the tails but ``keep`` (and, with ``only_later``, but those before it); return the rest."""
        tails = await self._tails(object_key)
        with self._failures.converted():
            for number in list(tails):
                if number == keep or (only_later and keep is not None and number < keep):
                    continue
                await self._client.delete_object(
                    Bucket=self._bucket, Key=object_key + TAIL_MARK + str(number)
                )
                del tails[number]
        return tails

    async def _read_tail(self, object_key: str, number: int, size: int, into: io.BytesIO) -> None:
        """The first ``size`` bytes of tail ``number``, written to ``into``."""
        with self._failures.converted():
            try:
                response = await self._client.get_object(
                    Bucket=self._bucket, Key=object_key + TAIL_MARK + str(number), Range=f"bytes=0-{size - 1}"
                )
            except self._client.exceptions.NoSuchKey:
                response = None
            if response is not None:
                body = response["Body"]
                async with body:  # not ``as``: aiobotocore's __aenter__ returns the bare aiohttp response
                    while chunk := await body.read(CHUNK_SIZE):
                        into.write(chunk)
        if into.tell() != size:
            raise RuntimeError(
                f"{object_key} keeps fewer bytes than the recorded offset ({into.tell()} of {size})"
            )

    async def _upload_part(self, key: str, upload_id: str, number: int, part: io.BytesIO) -> None:
        part.seek(0)
        with self._failures.converted():
            try:
                await self._client.upload_part(
                    Bucket=self._bucket,
                    Key=self._prefix + key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,
                )
            except self._client.exceptions.NoSuchUpload:
                raise BlobNotFound(key) from None
