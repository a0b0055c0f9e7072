"""With ``DOCPIPE_QUEUE=sqs`` the relay's processing consumer queues jobs: one per document that asks for
processing (a new one), none for the other changes, which processing would ignore anyway."""

from __future__ import annotations

import msgspec
import pytest

from docpipe.domain.errors import StoreRole, StoreUnavailable
from docpipe.domain.events import EventType, event_of
from docpipe.domain.jobs import Job, JobReceipt
from docpipe.domain.model import Processing, ProcessingState, with_processing
from docpipe.domain.worker import QueuedProcessing
from tests.contract.test_repository_contract import make_document


class SentJobs:
    """A work queue that only records what was sent, or refuses to take it."""

    def __init__(self, *, refusing: bool = False) -> None:
        self.refusing = refusing
        self.sent: list[Job] = []

    async def send(self, job: Job) -> None:
        if self.refusing:
            raise StoreUnavailable(StoreRole.PROCESSING_QUEUE, "refusing for the test")
        self.sent.append(job)

    async def receive(self, limit: int, wait_seconds: float) -> list[JobReceipt]:
        raise NotImplementedError

    async def hold(self, delivery: JobReceipt, seconds: float) -> None:
        raise NotImplementedError

    async def delete(self, delivery: JobReceipt) -> None:
        raise NotImplementedError


async def test_only_a_new_document_is_queued_for_processing() -> None:
    queue = SentJobs()
    document = make_document()
    created = event_of(EventType.CREATED, document)
    renamed = msgspec.structs.replace(document, filename="other.pdf", version=document.version + 1)
    processed = with_processing(renamed, renamed.sha256, Processing(state=ProcessingState.DONE))
    assert processed is not None
    for event in (
        created,
        event_of(EventType.UPDATED, renamed),
        event_of(EventType.PROCESSED, processed),
        event_of(EventType.DELETED, processed),
    ):
        await QueuedProcessing(queue).handle(event)
    assert queue.sent == [Job(event_id=created.id, owner=document.owner, document_id=document.id)]


async def test_an_event_is_not_handled_until_the_queue_took_its_job() -> None:
    """The relay keeps the event in the outbox and retries: nothing is lost while SQS is down."""
    with pytest.raises(StoreUnavailable):
        await QueuedProcessing(SentJobs(refusing=True)).handle(event_of(EventType.CREATED, make_document()))
