"""In-memory fakes of the ports for fast unit tests; they pass the same contract suites as the real ones."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from datetime import datetime

import msgspec

from docpipe.domain.errors import (
    BlobNotFound,
    DocumentNotFound,
    DuplicateDocument,
    DuplicateKey,
    IdempotencyKeyInUse,
    KeyNotFound,
    UploadBusy,
    UploadNotFound,
)
from docpipe.domain.events import Event, EventType, event_of
from docpipe.domain.idempotency import CompletedUpload, IdempotencyClaim
from docpipe.domain.keys import ApiKey
from docpipe.domain.listing import examine_budget, matches, resume_point
from docpipe.domain.model import (
    BlobEntry,
    ByteRange,
    Document,
    ListQuery,
    Page,
    Processing,
    utc_now,
    with_processing,
)
from docpipe.domain.outbox import LEASE_SECONDS, Commits, needs_renewal
from docpipe.domain.streams import CHUNK_SIZE
from docpipe.domain.uploads.session import Lease, UploadSession, refuse_lease
from docpipe.domain.webhooks import Delivery


class _Blob:
    def __init__(self, key: str, modified: datetime) -> None:
        self.key = key
        self.data = bytearray()
        self.modified = modified


class MemoryBlobStore:
    """Holds every blob whole in memory: for tests and throwaway runs only.

    A put in progress is an incomplete inventory entry, as a ``.partial`` file is on disk; ``clock``
    lets tests age entries past fsck's grace period.
    """

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._blobs: dict[str, _Blob] = {}
        self._partials: dict[str, _Blob] = {}
        self._handles = itertools.count()

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        handle = f"partial-{next(self._handles)}"
        partial = self._partials[handle] = _Blob(key, self._clock())
        try:
            async for chunk in chunks:
                partial.data += chunk
                partial.modified = self._clock()
        finally:
            self._partials.pop(handle, None)
        self._blobs[key] = partial
        return len(partial.data)

    async def open(self, key: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        try:
            blob = bytes(self._blobs[key].data)
        except KeyError:
            raise BlobNotFound(key) from None
        start, stop = (0, len(blob)) if byte_range is None else (byte_range.start, byte_range.end + 1)
        return _slices(blob, start, stop)

    async def exists(self, key: str) -> bool:
        return key in self._blobs

    async def delete(self, key: str) -> None:
        self._blobs.pop(key, None)

    async def check(self) -> None:
        return None

    async def inventory(self) -> AsyncIterator[BlobEntry]:
        listed = [(key, blob, True) for key, blob in self._blobs.items()]
        listed += [(handle, blob, False) for handle, blob in self._partials.items()]
        for handle, blob, complete in listed:
            yield BlobEntry(
                key=blob.key, size=len(blob.data), modified=blob.modified, complete=complete, handle=handle
            )

    async def reclaim(self, entry: BlobEntry) -> None:
        (self._blobs if entry.complete else self._partials).pop(entry.handle, None)

    def keys(self) -> set[str]:
        return set(self._blobs)

    async def begin(self, key: str) -> None:
        self._partials[_unfinished(key)] = _Blob(key, self._clock())

    async def append(self, key: str, offset: int, chunks: AsyncIterable[bytes]) -> int:
        partial = self._unfinished(key)
        del partial.data[offset:]
        async for chunk in chunks:
            partial.data += chunk
            partial.modified = self._clock()
        return len(partial.data)

    async def truncate(self, key: str, offset: int) -> None:
        del self._unfinished(key).data[offset:]

    async def read(self, key: str, end: int) -> AsyncIterator[bytes]:
        """From the unfinished bytes, or from the blob once finished (a completion taken up again)."""
        partial = self._partials.get(_unfinished(key)) or self._blobs.get(key)
        if partial is None:
            raise BlobNotFound(key)
        data = bytes(partial.data)
        async for chunk in _slices(data, 0, min(end, len(data))):
            yield chunk

    async def finish(self, key: str) -> None:
        partial = self._partials.pop(_unfinished(key), None)
        if partial is not None:
            self._blobs[key] = partial
        elif key not in self._blobs:
            raise BlobNotFound(key)

    async def abort(self, key: str) -> None:
        self._partials.pop(_unfinished(key), None)

    def _unfinished(self, key: str) -> _Blob:
        try:
            return self._partials[_unfinished(key)]
        except KeyError:
            raise BlobNotFound(key) from None


def _unfinished(key: str) -> str:
    """The inventory handle of a resumable upload's bytes."""
    return f"upload-{key}"


async def _slices(blob: bytes, start: int, stop: int) -> AsyncIterator[bytes]:
    view = memoryview(blob)
    for offset in range(start, stop, CHUNK_SIZE):
        yield bytes(view[offset : min(offset + CHUNK_SIZE, stop)])


class _KeyRecord(msgspec.Struct, frozen=True):
    claim: IdempotencyClaim
    completed: CompletedUpload | None = None


class MemoryRepository:
    """Holds every document and idempotency record in dicts: for tests and throwaway runs only.

    It filters and pages with the rules of ``domain.listing``, so it lists as the real repositories do.
    No method gives another task a turn between its checks and its writes, events included: each is
    one commit."""

    def __init__(self) -> None:
        self._documents: dict[str, Document] = {}
        self._keys: dict[tuple[str, str], _KeyRecord] = {}
        """Idempotency records by (owner, key)."""
        self._outbox = _Events()
        self._webhooks = _Webhooks()

    async def add(self, document: Document, claim: IdempotencyClaim | None = None) -> None:
        if document.id in self._documents:
            raise DuplicateDocument(document.id)
        if claim is not None:
            record = self._keys.get((claim.owner, claim.key))
            if record is None or record.claim.token != claim.token or record.completed is not None:
                raise IdempotencyKeyInUse
            self._keys[claim.owner, claim.key] = _KeyRecord(
                claim, CompletedUpload(document.id, document.sha256)
            )
        self._documents[document.id] = document
        self._outbox.write(event_of(EventType.CREATED, document))

    async def get(self, owner: str, document_id: str) -> Document:
        document = self._documents.get(document_id)
        if document is None or document.owner != owner:
            raise DocumentNotFound(document_id)
        return document

    async def list(self, owner: str, query: ListQuery) -> Page:
        """Examines the owner's documents newest first within the budget, as if every filter lay beyond
        an index, so that callers meet short pages here too."""
        below = [
            document
            for document in self._documents.values()
            if document.owner == owner and (query.after_id is None or document.id < query.after_id)
        ]
        below.sort(key=lambda document: document.id, reverse=True)
        examined = below[: examine_budget(query.limit)]
        found = [document for document in examined if matches(document, query)]
        last_examined = examined[-1].id if len(below) > len(examined) else None
        resume_after = resume_point([document.id for document in found], query.limit, last_examined)
        return Page(found[: query.limit], resume_after)

    async def update(self, owner: str, document_id: str, change: Callable[[Document], Document]) -> Document:
        current = await self.get(owner, document_id)
        updated = self._documents[document_id] = change(current)
        self._outbox.write(event_of(EventType.UPDATED, updated))
        return updated

    async def delete(self, owner: str, document_id: str) -> None:
        current = await self.get(owner, document_id)
        del self._documents[document_id]
        self._outbox.write(event_of(EventType.DELETED, current))

    async def record_processing(
        self, owner: str, document_id: str, sha256: str, processing: Processing
    ) -> Document:
        current = await self.get(owner, document_id)
        updated = with_processing(current, sha256, processing)
        if updated is None:
            return current
        self._documents[document_id] = updated
        self._outbox.write(event_of(EventType.PROCESSED, updated))
        return updated

    async def claim(self, claim: IdempotencyClaim, now: datetime) -> CompletedUpload | None:
        for key in [key for key, record in self._keys.items() if record.claim.expires_at <= now]:
            del self._keys[key]
        record = self._keys.get((claim.owner, claim.key))
        if record is not None:
            if record.completed is not None:
                return record.completed
            if record.claim.token != claim.token and record.claim.lease_until > now:
                raise IdempotencyKeyInUse
        self._keys[claim.owner, claim.key] = _KeyRecord(claim)
        return None

    async def release(self, claim: IdempotencyClaim) -> None:
        record = self._keys.get((claim.owner, claim.key))
        if record is not None and record.claim.token == claim.token and record.completed is None:
            del self._keys[claim.owner, claim.key]

    async def owners(self) -> AsyncIterator[str]:
        for owner in {document.owner for document in self._documents.values()}:
            yield owner

    async def check(self) -> None:
        return None

    def outbox(self, lease_seconds: float = LEASE_SECONDS) -> MemoryOutbox:
        """The events of these documents, for one relay (see ``ports.Outbox``)."""
        return MemoryOutbox(self._outbox, lease_seconds)

    def webhook_queue(self, lease_seconds: float = LEASE_SECONDS) -> MemoryWebhookQueue:
        """The webhooks not yet delivered, for one dispatcher (see ``ports.WebhookQueue``)."""
        return MemoryWebhookQueue(self._webhooks, lease_seconds)


class _OneLease:
    """The one lease on a ``MemoryRepository``'s outbox, or on its webhook queue: who holds it, until when."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self.until = 0.0

    def take(self, holder: str, lease_seconds: float) -> bool:
        """Whether ``holder`` has the lease now: renewed, or taken when no other holder's runs."""
        now = time.time()
        if self.holder != holder and self.until > now:
            return False
        self.holder, self.until = holder, now + lease_seconds
        return True

    def renew(self, holder: str, lease_seconds: float) -> bool:
        """Whether ``holder`` still has the lease, renewed once half of it has run (see ``ports.Outbox``)."""
        if self.holder != holder:
            return False
        now = time.time()
        if needs_renewal(self.until, now, lease_seconds):
            self.until = now + lease_seconds
        return True

    def release(self, holder: str) -> None:
        if self.holder == holder:
            self.holder, self.until = None, 0.0


class _Events:
    """The outbox of a ``MemoryRepository``: its events in commit order, and the one lease on them all."""

    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self.lease = _OneLease()
        self.commits = Commits()

    def write(self, event: Event) -> None:
        self.events[event.id] = event
        self.commits.ring()


class MemoryOutbox:
    """One relay's view of a ``MemoryRepository``'s events: one lease covers them all."""

    def __init__(self, events: _Events, lease_seconds: float) -> None:
        self._events = events
        self._lease_seconds = lease_seconds
        self._holder = uuid.uuid4().hex

    async def pending(self, limit: int) -> list[Event]:
        if not self._events.lease.take(self._holder, self._lease_seconds):
            return []
        return list(itertools.islice(self._events.events.values(), limit))

    async def acknowledge(self, events: Sequence[Event]) -> None:
        for event in events:
            self._events.events.pop(event.id, None)

    async def renew(self) -> bool:
        return self._events.lease.renew(self._holder, self._lease_seconds)

    async def release(self) -> None:
        self._events.lease.release(self._holder)

    def next_commit(self) -> asyncio.Event:
        return self._events.commits.next()


class _Queued(msgspec.Struct):
    delivery: Delivery
    not_before: float = 0.0


class _Webhooks:
    """The webhook queue of a ``MemoryRepository``: in the order added, and the one lease on it all."""

    def __init__(self) -> None:
        self.queued: dict[str, _Queued] = {}
        self.lease = _OneLease()


class MemoryWebhookQueue:
    """One dispatcher's view of a ``MemoryRepository``'s webhook queue: one lease covers it all."""

    def __init__(self, webhooks: _Webhooks, lease_seconds: float) -> None:
        self._webhooks = webhooks
        self._lease_seconds = lease_seconds
        self._holder = uuid.uuid4().hex
        self._additions = Commits()

    async def add(self, event: Event) -> None:
        self._webhooks.queued.setdefault(event.id, _Queued(Delivery(event=event)))
        self._additions.ring()

    async def pending(self, limit: int, now: float) -> list[Delivery]:
        webhooks = self._webhooks
        if not webhooks.lease.take(self._holder, self._lease_seconds):
            return []
        postponed = {
            (queued.delivery.event.owner, queued.delivery.event.document_id)
            for queued in webhooks.queued.values()
            if queued.not_before > now
        }
        due = (
            queued.delivery
            for queued in webhooks.queued.values()
            if (queued.delivery.event.owner, queued.delivery.event.document_id) not in postponed
        )
        return list(itertools.islice(due, limit))

    async def remove(self, event: Event) -> None:
        self._webhooks.queued.pop(event.id, None)

    async def postpone(self, event: Event, attempts: int, until: float) -> None:
        queued = self._webhooks.queued.get(event.id)
        if queued is not None:
            queued.delivery = Delivery(event=event, attempts=attempts)
            queued.not_before = until

    async def renew(self) -> bool:
        return self._webhooks.lease.renew(self._holder, self._lease_seconds)

    async def release(self) -> None:
        self._webhooks.lease.release(self._holder)

    def next_addition(self) -> asyncio.Event:
        return self._additions.next()


class MemoryUploadRepository:
    """Holds every resumable upload session in a dict: for tests and throwaway runs only. Each method
    runs without giving another task a turn, so its compare-and-set is atomic as it is."""

    def __init__(self) -> None:
        self._sessions: dict[str, UploadSession] = {}

    async def create(self, session: UploadSession) -> None:
        if session.id in self._sessions:
            raise ValueError(f"upload {session.id!r} exists")
        self._sessions[session.id] = session

    async def get(self, owner: str, upload_id: str) -> UploadSession:
        session = self._sessions.get(upload_id)
        if session is None or session.owner != owner:
            raise UploadNotFound(upload_id)
        return session

    async def take_lease(
        self, owner: str, upload_id: str, offset: int, lease: Lease, now: datetime
    ) -> UploadSession:
        session = await self.get(owner, upload_id)
        refuse_lease(session, offset, lease.token, now)
        taken = self._sessions[upload_id] = msgspec.structs.replace(
            session, lease_token=lease.token, lease_until=lease.until
        )
        return taken

    async def advance(
        self,
        owner: str,
        upload_id: str,
        token: str,
        offset: int,
        lease_until: datetime | None,
        expires_at: datetime,
    ) -> None:
        session = self._held(owner, upload_id, token)
        self._sessions[upload_id] = msgspec.structs.replace(
            session,
            offset=offset,
            expires_at=expires_at,
            lease_token=None if lease_until is None else token,
            lease_until=lease_until,
        )

    async def complete(
        self, owner: str, upload_id: str, token: str, document_id: str, expires_at: datetime
    ) -> None:
        session = self._held(owner, upload_id, token)
        self._sessions[upload_id] = msgspec.structs.replace(
            session, document_id=document_id, expires_at=expires_at, lease_token=None, lease_until=None
        )

    async def delete(self, owner: str, upload_id: str, now: datetime) -> UploadSession:
        session = await self.get(owner, upload_id)
        if session.leased(now):
            raise UploadBusy(upload_id)
        del self._sessions[upload_id]
        return session

    async def expired(self, now: datetime, limit: int) -> list[UploadSession]:
        found = [s for s in self._sessions.values() if s.expired(now) and not s.leased(now)]
        return sorted(found, key=lambda session: session.expires_at)[:limit]

    async def holding(self, blob_key: str) -> UploadSession | None:
        return next((s for s in self._sessions.values() if s.blob_key == blob_key), None)

    def _held(self, owner: str, upload_id: str, token: str) -> UploadSession:
        session = self._sessions.get(upload_id)
        if session is None or session.owner != owner:
            raise UploadNotFound(upload_id)
        if session.lease_token != token:
            raise UploadBusy(upload_id)
        return session


class MemoryKeyRepository:
    """Holds every API key in dicts, by id and by secret hash: for tests and throwaway runs only."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._ids_by_hash: dict[str, str] = {}

    async def add(self, key: ApiKey) -> None:
        if key.id in self._keys or key.secret_hash in self._ids_by_hash:
            raise DuplicateKey(key.id)
        self._keys[key.id] = key
        self._ids_by_hash[key.secret_hash] = key.id

    async def find(self, secret_hash: str) -> ApiKey | None:
        key_id = self._ids_by_hash.get(secret_hash)
        return None if key_id is None else self._keys[key_id]

    async def list(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda key: key.id)

    async def revoke(self, key_id: str) -> None:
        key = self._keys.pop(key_id, None)
        if key is None:
            raise KeyNotFound(key_id)
        del self._ids_by_hash[key.secret_hash]

    async def touch(self, key_id: str, when: datetime) -> None:
        key = self._keys.get(key_id)
        if key is not None:
            self._keys[key_id] = msgspec.structs.replace(key, last_used_at=when)

    async def check(self) -> None:
        return None


async def open_blob_store() -> AsyncIterator[MemoryBlobStore]:
    yield MemoryBlobStore()


async def open_repository() -> AsyncIterator[MemoryRepository]:
    yield MemoryRepository()


async def open_upload_repository() -> AsyncIterator[MemoryUploadRepository]:
    yield MemoryUploadRepository()


async def open_key_repository() -> AsyncIterator[MemoryKeyRepository]:
    yield MemoryKeyRepository()
