"""Ports wrapped to feed ``docpipe.metrics`` and ``docpipe.tracing``: how long each store operation
takes and which ones fail, by adapter, each one a span when tracing is on; what the relay and the
webhook dispatcher find waiting; and each processing job a span.

One wrapper per port, at the boundary the container wires, rather than a line in every adapter: every
adapter already converts its technology's failures into ``StoreFailure`` subclasses, which are what
is counted here (a missing document is an answer, not a store error).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from docpipe import metrics, tracing
from docpipe.domain.errors import StoreFailure
from docpipe.domain.events import Event
from docpipe.domain.idempotency import CompletedUpload, IdempotencyClaim
from docpipe.domain.model import BlobEntry, ByteRange, Document, ListQuery, Page, Processing, utc_now
from docpipe.domain.pipeline import asks_for_processing
from docpipe.domain.ports import BlobStore, DocumentRepository, Outbox, WebhookQueue
from docpipe.domain.worker import Processor
from docpipe.metric_tallies import ObservationTally

if TYPE_CHECKING:
    import asyncio

    from docpipe.domain.webhooks import Delivery

T = TypeVar("T")


class _Meter:
    """Times the operations of one adapter and counts those that fail with a ``StoreFailure``; each
    is a span named ``<adapter> <operation>`` (``s3 put``), failed by such a failure."""

    def __init__(self, adapter: str) -> None:
        self._adapter = adapter
        self._durations: dict[str, ObservationTally] = {}
        """The duration series of each operation, looked up once (``labels`` takes a lock each call)."""

    async def __call__(self, operation: str, call: Awaitable[T]) -> T:
        if not tracing.active():  # nothing to prepare for a span: most requests make one or two calls
            return await self._measured(operation, call, tracing.SPANLESS)
        attributes = {"docpipe.store.adapter": self._adapter, "docpipe.store.operation": operation}
        with tracing.span(f"{self._adapter} {operation}", attributes) as span:
            return await self._measured(operation, call, span)

    async def _measured(self, operation: str, call: Awaitable[T], span: tracing.Span) -> T:
        started = time.perf_counter()
        try:
            return await call
        except StoreFailure as error:
            metrics.store_errors.labels(self._adapter, operation, metrics.error_label(error)).inc()
            span.fail(error)
            raise
        finally:
            self._duration(operation).observe(time.perf_counter() - started)

    def _duration(self, operation: str) -> ObservationTally:
        series = self._durations.get(operation)
        if series is None:
            labelled = metrics.store_duration.labels(self._adapter, operation)
            series = self._durations[operation] = ObservationTally(labelled)
        return series


class MeteredBlobStore:
    """A ``BlobStore`` (named ``adapter`` in the metrics) whose operations are measured."""

    def __init__(self, store: BlobStore, adapter: str) -> None:
        self._store = store
        self._meter = _Meter(adapter)

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        return await self._meter("put", self._store.put(key, chunks))

    async def open(self, key: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        """Timed until the store answers; the bytes then stream as the adapter produces them."""
        return await self._meter("open", self._store.open(key, byte_range))

    async def exists(self, key: str) -> bool:
        return await self._meter("exists", self._store.exists(key))

    async def delete(self, key: str) -> None:
        await self._meter("delete", self._store.delete(key))

    async def check(self) -> None:
        await self._meter("check", self._store.check())

    def inventory(self) -> AsyncIterator[BlobEntry]:
        return self._store.inventory()

    async def reclaim(self, entry: BlobEntry) -> None:
        await self._meter("reclaim", self._store.reclaim(entry))


class MeteredRepository:
    """A ``DocumentRepository`` (named ``adapter`` in the metrics) whose operations are measured."""

    def __init__(self, repository: DocumentRepository, adapter: str) -> None:
        self._repository = repository
        self._meter = _Meter(adapter)

    async def add(self, document: Document, claim: IdempotencyClaim | None = None) -> None:
        await self._meter("add", self._repository.add(document, claim))

    async def get(self, owner: str, document_id: str) -> Document:
        return await self._meter("get", self._repository.get(owner, document_id))

    async def list(self, owner: str, query: ListQuery) -> Page:
        return await self._meter("list", self._repository.list(owner, query))

    async def update(self, owner: str, document_id: str, change: Callable[[Document], Document]) -> Document:
        return await self._meter("update", self._repository.update(owner, document_id, change))

    async def delete(self, owner: str, document_id: str) -> None:
        await self._meter("delete", self._repository.delete(owner, document_id))

    async def record_processing(
        self, owner: str, document_id: str, sha256: str, processing: Processing
    ) -> Document:
        return await self._meter(
            "record_processing", self._repository.record_processing(owner, document_id, sha256, processing)
        )

    async def claim(self, claim: IdempotencyClaim, now: datetime) -> CompletedUpload | None:
        return await self._meter("claim", self._repository.claim(claim, now))

    async def release(self, claim: IdempotencyClaim) -> None:
        await self._meter("release", self._repository.release(claim))

    def owners(self) -> AsyncIterator[str]:
        return self._repository.owners()

    async def check(self) -> None:
        await self._meter("check", self._repository.check())


PROCESSING_SPAN = "process document"


class TracedProcessing:
    """Document processing (``pipeline.DocumentProcessing``) with each job a span, its store operations
    inside: for the relay an event consumer, for ``docpipe worker`` a ``Processor``. The span says the
    document and the state processing left it in (``gone`` when it no longer exists)."""

    def __init__(self, processing: Processor) -> None:
        self._processing = processing

    async def handle(self, event: Event) -> None:
        if asks_for_processing(event):
            await self.process(event.owner, event.document_id)

    async def process(self, owner: str, document_id: str) -> Document | None:
        with tracing.span(PROCESSING_SPAN, {"docpipe.document_id": document_id}) as span:
            try:
                document = await self._processing.process(owner, document_id)
            except Exception as error:
                span.fail(error)
                raise
            span.set("docpipe.processing.state", "gone" if document is None else document.processing.state)
            return document


def _age_seconds(events: Sequence[Event]) -> float:
    if not events:
        return 0.0
    oldest = min(event.occurred_at for event in events)
    return max(0.0, (utc_now() - oldest).total_seconds())


class MeteredOutbox:
    """An ``Outbox`` whose ``pending`` answers set the processing backlog gauges."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def pending(self, limit: int) -> list[Event]:
        events = await self._outbox.pending(limit)
        metrics.outbox_batch.set(len(events))
        metrics.outbox_oldest_age.set(_age_seconds(events))
        return events

    async def acknowledge(self, events: Sequence[Event]) -> None:
        await self._outbox.acknowledge(events)

    async def release(self) -> None:
        await self._outbox.release()

    async def renew(self) -> bool:
        return await self._outbox.renew()

    def next_commit(self) -> asyncio.Event:
        return self._outbox.next_commit()


class MeteredWebhookQueue:
    """A ``WebhookQueue`` whose ``pending`` answers set the webhook backlog gauges."""

    def __init__(self, queue: WebhookQueue) -> None:
        self._queue = queue

    async def add(self, event: Event) -> None:
        await self._queue.add(event)

    async def pending(self, limit: int, now: float) -> list[Delivery]:
        deliveries = await self._queue.pending(limit, now)
        metrics.webhook_batch.set(len(deliveries))
        metrics.webhook_oldest_age.set(_age_seconds([delivery.event for delivery in deliveries]))
        return deliveries

    async def remove(self, event: Event) -> None:
        await self._queue.remove(event)

    async def postpone(self, event: Event, attempts: int, until: float) -> None:
        await self._queue.postpone(event, attempts, until)

    async def renew(self) -> bool:
        return await self._queue.renew()

    async def release(self) -> None:
        await self._queue.release()

    def next_addition(self) -> asyncio.Event:
        return self._queue.next_addition()
