"""The use cases of resumable uploads: create, write from an offset, complete, terminate, expire.

Completion is ``DocumentService``'s own commit (``Upload.adopt`` then ``Upload.commit``): the same cleaning,
content-type detection and sha-256, under an Idempotency-Key of the upload's, so that a completion retried
after a crash (the document recorded, the session not yet marked complete) finds the first document instead
of making a second.

The sha-256 of the whole content continues in memory while one process receives an upload's PATCHes, one
running hash per upload (at most ``MAX_RUNNING_HASHES``); a process that did not see every byte (another
replica, a restart, an evicted hash, a chunk whose fate is unclear) re-reads the stored bytes once, at
completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import datetime, timedelta

import msgspec

from docpipe.domain.errors import (
    EmptyUpload,
    OffsetMismatch,
    UploadBusy,
    UploadChecksumMismatch,
    UploadComplete,
    UploadExpired,
    UploadLengthMismatch,
    UploadNotFound,
    UploadTooLarge,
)
from docpipe.domain.model import NewDocument, new_blob_key, utc_now
from docpipe.domain.ports import ResumableBlobs, UploadRepository
from docpipe.domain.service import DocumentService, StagedBytes, cleaned_description
from docpipe.domain.streams import HEAD_SIZE, read_ahead, rechunk
from docpipe.domain.uploads.metadata import describe
from docpipe.domain.uploads.session import (
    LEASE,
    RENEWAL_INTERVAL,
    Lease,
    UploadSession,
    check_final,
    is_upload_id,
    new_lease,
    new_upload_id,
)

logger = logging.getLogger(__name__)

DEFAULT_EXPIRY = timedelta(hours=24)
MAX_RUNNING_HASHES = 1024
"""Running hashes kept per process (a few hundred bytes each); past this the oldest are re-derived."""
SWEEP_BATCH = 100
"""Expired sessions removed per sweep: the sweeper's work per round is bounded."""
CHECKSUM_ALGORITHMS = ("sha1", "sha256")
"""What ``Upload-Checksum`` may use (tus checksum extension)."""


class Checksum(msgspec.Struct, frozen=True):
    """A PATCH body's expected digest (``Upload-Checksum``)."""

    algorithm: str
    digest: bytes


class _Running(msgspec.Struct):
    """The sha-256 of an upload's first ``offset`` bytes, as this process received them."""

    offset: int
    sha256: hashlib._Hash


class ResumableUploads:
    """Resumable uploads of every owner, each method acting for the owner it is given first: another
    owner's upload is as if missing (``UploadNotFound``)."""

    def __init__(
        self,
        documents: DocumentService,
        sessions: UploadRepository,
        blobs: ResumableBlobs,
        *,
        expiry: timedelta = DEFAULT_EXPIRY,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._documents = documents
        self._sessions = sessions
        self._blobs = blobs
        self._expiry = expiry
        self._clock = clock
        self._running: OrderedDict[str, _Running] = OrderedDict()

    @property
    def max_bytes(self) -> int:
        return self._documents.max_upload_bytes

    async def create(self, owner: str, length: int, metadata: dict[str, str]) -> UploadSession:
        """A new upload of ``length`` bytes described by ``metadata`` (``Upload-Metadata`` pairs), cleaned
        now so that a bad name is refused before any byte is sent."""
        if length > self.max_bytes:
            raise UploadTooLarge(self.max_bytes)
        if length <= 0:
            raise EmptyUpload
        upload_id = new_upload_id()
        description = cleaned_description(describe(metadata, fallback_filename=upload_id))
        now = self._clock()
        session = UploadSession(
            id=upload_id,
            owner=owner,
            blob_key=new_blob_key(owner),
            length=length,
            filename=description.filename,
            content_type=description.content_type,
            tags=tuple(description.tags),
            created_at=now,
            expires_at=now + self._expiry,
        )
        await self._blobs.begin(session.blob_key)
        try:
            await self._sessions.create(session)
        except BaseException:
            await asyncio.shield(self._abort_bytes(session.blob_key))
            raise
        self._running[session.id] = _Running(0, hashlib.sha256())
        self._forget_oldest()
        return session

    async def get(self, owner: str, upload_id: str) -> UploadSession:
        """The upload as it stands; one whose bytes all arrived but whose commit did not happen (its
        server died in between) is committed first, unless a PATCH holds it."""
        session = await self._session(owner, upload_id)
        if session.offset == session.length and not session.complete and not session.leased(self._clock()):
            with contextlib.suppress(UploadBusy):
                return await self.write(owner, upload_id, session.offset, _nothing())
        return session

    async def write(
        self,
        owner: str,
        upload_id: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        checksum: Checksum | None = None,
        *,
        final: bool | None = None,
        size: int | None = None,
    ) -> UploadSession:
        """Append ``chunks`` at ``offset`` and return the upload after them; the write that completes it
        commits the document (``document_id``).

        A body that matches no ``checksum`` is discarded (``UploadChecksumMismatch``). One that breaks off
        (``chunks`` raises anything but ``UploadTooLarge``: the client left, or stopped sending) keeps every
        byte that arrived, to the last one, as tus requires, unless it had a checksum to meet; its error is
        raised once they are recorded. ``OffsetMismatch`` when the upload is elsewhere, ``UploadComplete``
        when it is done, ``UploadBusy`` when another write holds it.

        ``final`` is what the client says of the body (the IETF draft's ``Upload-Complete``): whether it
        ends the upload. A declared ``size`` is checked against it before any byte is read; a final body
        that ends short of the length keeps its bytes and is refused after (``UploadLengthMismatch``).
        """
        if not is_upload_id(upload_id):
            raise UploadNotFound(upload_id)
        lease = new_lease(self._clock())
        try:
            session = await self._sessions.take_lease(owner, upload_id, offset, lease, self._clock())
        except OffsetMismatch:
            session = await self._session(owner, upload_id)
            if session.complete:
                if offset == session.length:
                    return session  # a retried final PATCH: the upload is done
                raise UploadComplete(upload_id, session.length) from None
            if final is not None:
                check_final(final, offset, size, session.length)
            raise
        async with _Holder(self._sessions, session, lease, self._clock) as holder:
            if final is not None:
                check_final(final, offset, size, session.length)
            # All bytes there already: a completion interrupted by a crash, taken up again.
            end = (
                session.length
                if offset == session.length
                else await self._append(session, chunks, checksum, holder)
            )
            expires_at = self._clock() + self._expiry
            if end < session.length:
                await holder.release(end, expires_at)
                if final:
                    raise UploadLengthMismatch(end, session.length, final)
                return msgspec.structs.replace(
                    session, offset=end, expires_at=expires_at, lease_token=None, lease_until=None
                )
            await holder.advance(end, expires_at)
            return await self._complete(session, holder)

    async def terminate(self, owner: str, upload_id: str) -> None:
        """Remove the upload and its bytes (tus termination); a completed upload's document stays."""
        if not is_upload_id(upload_id):
            raise UploadNotFound(upload_id)
        session = await self._sessions.delete(owner, upload_id, self._clock())
        await self._forget(session)

    async def sweep(self) -> int:
        """Remove at most ``SWEEP_BATCH`` expired sessions with their bytes; return how many."""
        swept = 0
        for session in await self._sessions.expired(self._clock(), SWEEP_BATCH):
            try:
                await self._sessions.delete(session.owner, session.id, self._clock())
            except (UploadNotFound, UploadBusy):
                continue  # removed or taken meanwhile
            await self._forget(session)
            swept += 1
        return swept

    async def _session(self, owner: str, upload_id: str) -> UploadSession:
        if not is_upload_id(upload_id):
            raise UploadNotFound(upload_id)
        session = await self._sessions.get(owner, upload_id)
        if session.expired(self._clock()):
            raise UploadExpired(upload_id)
        return session

    async def _append(
        self, session: UploadSession, chunks: AsyncIterable[bytes], checksum: Checksum | None, holder: _Holder
    ) -> int:
        """Write the body from the session's offset; return the new, durable end."""
        room = session.length - session.offset
        known = self._running.pop(session.id, None)
        running = known.sha256.copy() if known is not None and known.offset == session.offset else None
        body = None if checksum is None else hashlib.new(checksum.algorithm)
        received = 0
        broken: Exception | None = None

        async def until_broken() -> AsyncIterator[bytes]:
            """The body until it breaks off: ``broken`` keeps why, for once what arrived is stored."""
            nonlocal broken
            try:
                async for piece in chunks:
                    yield piece
            except UploadTooLarge:
                raise
            except Exception as error:
                broken = error

        async def accepted() -> AsyncIterator[bytes]:
            nonlocal received
            async for chunk in rechunk(until_broken()):
                received += len(chunk)
                if received > room:
                    raise UploadTooLarge(session.length)
                holder.check()
                yield chunk

        try:
            end = await self._blobs.append(
                session.blob_key, session.offset, read_ahead(_hashed(accepted(), running, body))
            )
        except UploadBusy:
            raise  # the lease may have lapsed: the bytes past the offset may be another writer's now
        except BaseException:
            await asyncio.shield(self._truncate(session))
            raise
        if end != session.offset + received:
            raise RuntimeError(f"the blob store holds {end} bytes, {session.offset + received} were sent")
        if checksum is not None and (broken or body is None or body.digest() != checksum.digest):
            await self._truncate(session)
            if broken:
                raise broken
            raise UploadChecksumMismatch(checksum.algorithm)
        if running is not None:
            self._running[session.id] = _Running(end, running)
            self._forget_oldest()
        if broken:
            await holder.release(end, self._clock() + self._expiry)
            raise broken
        return end

    async def _complete(self, session: UploadSession, holder: _Holder) -> UploadSession:
        """Commit the document of an upload whose bytes all arrived, and mark the session complete."""
        known = self._running.pop(session.id, None)
        sha256 = known.sha256 if known is not None and known.offset == session.length else None
        staged = await self._staged(session, sha256)
        await self._blobs.finish(session.blob_key)
        description = NewDocument(
            filename=session.filename, content_type=session.content_type, tags=session.tags
        )
        async with self._documents.new_upload(session.owner, idempotency_key=f"tus:{session.id}") as upload:
            await upload.adopt(session.blob_key, staged)
            document = await upload.commit(description)
        expires_at = self._clock() + self._expiry
        await holder.complete(document.id, expires_at)
        return msgspec.structs.replace(
            session,
            offset=session.length,
            document_id=document.id,
            expires_at=expires_at,
            lease_token=None,
            lease_until=None,
        )

    async def _staged(self, session: UploadSession, sha256: hashlib._Hash | None) -> StagedBytes:
        """The size, sha-256 and head of the stored bytes; the sha-256 re-derived by reading them all
        back when this process did not see every byte arrive."""
        head = b""
        rehash = hashlib.sha256() if sha256 is None else None
        end = session.length if rehash is not None else min(HEAD_SIZE, session.length)
        async for chunk in self._blobs.read(session.blob_key, end):
            if len(head) < HEAD_SIZE:
                head += chunk[: HEAD_SIZE - len(head)]
            if rehash is not None:
                await asyncio.to_thread(rehash.update, chunk)
        digest = sha256 if sha256 is not None else rehash
        assert digest is not None
        return StagedBytes(session.length, digest.hexdigest(), head)

    async def _truncate(self, session: UploadSession) -> None:
        """Back to the recorded offset; should that fail, the next write drops the extra bytes anyway."""
        try:
            await self._blobs.truncate(session.blob_key, session.offset)
        except Exception:
            logger.warning("bytes past the offset of upload %s were left for its next write", session.id)

    async def _forget(self, session: UploadSession) -> None:
        """Drop a removed session's running hash and, unless it became a document, its unfinished bytes.

        Bytes already finished into a blob (a completion cut short by a crash) are left for fsck, which
        tells an orphan from a document's blob: the commit may have been recorded after all."""
        self._running.pop(session.id, None)
        if not session.complete:
            await self._abort_bytes(session.blob_key)

    async def _abort_bytes(self, blob_key: str) -> None:
        try:
            await self._blobs.abort(blob_key)
        except Exception:
            logger.warning("the bytes of an upload under %s were left for fsck", blob_key, exc_info=True)

    def _forget_oldest(self) -> None:
        while len(self._running) > MAX_RUNNING_HASHES:
            self._running.popitem(last=False)


async def _hashed(chunks: AsyncIterable[bytes], *hashes: hashlib._Hash | None) -> AsyncIterator[bytes]:
    """``chunks``, each added to ``hashes`` in a worker thread while it is handed on and the next one
    arrives, as ``MeteredStream`` does: receiving never waits for hashing."""
    hashing: asyncio.Future[None] | None = None
    async for chunk in chunks:
        if hashing is not None:
            await hashing
        hashing = asyncio.ensure_future(asyncio.to_thread(_update, chunk, *hashes))
        yield chunk
    if hashing is not None:
        await hashing


def _update(chunk: bytes, *hashes: hashlib._Hash | None) -> None:
    for digest in hashes:
        if digest is not None:
            digest.update(chunk)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield


class _Holder:
    """A PATCH's lease on its upload: renewed in the background while the bytes arrive, released with
    the new offset, or at the old one when the PATCH fails. ``check`` refuses to go on writing once the
    lease may have lapsed (the event loop stalled past renewals), so another writer cannot overlap."""

    def __init__(
        self, sessions: UploadRepository, session: UploadSession, lease: Lease, clock: Callable[[], datetime]
    ) -> None:
        self._sessions = sessions
        self._session = session
        self._token = lease.token
        self._until = lease.until
        self._clock = clock
        self._offset = session.offset
        self._expires_at = session.expires_at
        self._held = True
        self._renewal: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Holder:
        self._renewal = asyncio.create_task(self._renew())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._renewal is not None
        self._renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewal
        if self._held:
            await asyncio.shield(self._release_quietly())

    def check(self) -> None:
        if self._until - self._clock() <= RENEWAL_INTERVAL:
            raise UploadBusy(self._session.id)

    async def advance(self, offset: int, expires_at: datetime) -> None:
        """Record ``offset``, keeping the lease."""
        until = self._clock() + LEASE
        await self._sessions.advance(
            self._session.owner, self._session.id, self._token, offset, until, expires_at
        )
        self._offset, self._expires_at, self._until = offset, expires_at, until

    async def release(self, offset: int, expires_at: datetime) -> None:
        await self._sessions.advance(
            self._session.owner, self._session.id, self._token, offset, None, expires_at
        )
        self._held = False

    async def complete(self, document_id: str, expires_at: datetime) -> None:
        await self._sessions.complete(
            self._session.owner, self._session.id, self._token, document_id, expires_at
        )
        self._held = False

    async def _release_quietly(self) -> None:
        try:
            await self.release(self._offset, self._expires_at)
        except Exception:
            logger.warning("upload %s left to its lease's expiry", self._session.id, exc_info=True)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEWAL_INTERVAL.total_seconds())
            until = self._clock() + LEASE
            try:
                await self._sessions.advance(
                    self._session.owner, self._session.id, self._token, self._offset, until, self._expires_at
                )
            except UploadBusy:
                self._until = self._clock()
                return
            except Exception:
                logger.warning("the lease of upload %s was not renewed", self._session.id, exc_info=True)
                continue
            self._until = until
