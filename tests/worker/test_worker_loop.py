"""``Worker``: jobs from the SQS queue on moto, done by a processor that records, fails or blocks on demand.
Visibility is 1 s, so a job the worker failed to keep hidden would show within a couple of seconds."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aioboto3
import pytest
from types_aiobotocore_sqs.literals import QueueAttributeNameType

from docpipe.adapters.sqs import SqsWorkQueue, open_work_queue
from docpipe.config import SqsSettings
from docpipe.domain.errors import StoreRole, StoreUnavailable
from docpipe.domain.jobs import Job
from docpipe.domain.model import Document
from docpipe.domain.worker import Worker
from tests.moto_server import MotoServer

VISIBILITY = 1
LAPSE_WAIT = VISIBILITY + 1
PATIENCE_SECONDS = 30


def job(number: int = 1) -> Job:
    return Job(event_id=f"evt_{number:032x}", owner="alice", document_id=f"doc-{number}")


class Processor:
    """Records each call; fails the first ``failures`` calls of each document; then waits for ``go``."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[str] = []
        self.done: list[str] = []
        self.go = asyncio.Event()
        self.go.set()
        self.running = 0
        self.most_running = 0
        self.changed = asyncio.Event()

    async def process(self, owner: str, document_id: str) -> Document | None:
        self.calls.append(document_id)
        self.changed.set()
        if self.calls.count(document_id) <= self.failures:
            raise StoreUnavailable(StoreRole.BLOB_STORE, "failing for the test")
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.go.wait()
            await asyncio.sleep(0.05)  # long enough for other jobs to start beside this one
        finally:
            self.running -= 1
        self.done.append(document_id)
        self.changed.set()
        return None

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(PATIENCE_SECONDS):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
def settings(moto_server: MotoServer) -> SqsSettings:
    return SqsSettings(
        queue=f"docpipe-worker-{uuid.uuid4().hex[:12]}",
        endpoint_url=moto_server.endpoint_url,
        visibility_timeout=VISIBILITY,
    )


@pytest.fixture
async def queue(settings: SqsSettings) -> AsyncIterator[SqsWorkQueue]:
    async with contextlib.asynccontextmanager(open_work_queue)(aioboto3.Session(), settings) as opened:
        yield opened


async def left_in(settings: SqsSettings) -> int:
    """The messages the queue holds, hidden ones included: 0 once every job was deleted."""
    names: list[QueueAttributeNameType] = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
    ]
    async with aioboto3.Session().client("sqs", endpoint_url=settings.endpoint_url) as client:
        url = (await client.get_queue_url(QueueName=settings.queue))["QueueUrl"]
        answer = await client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
    return sum(int(answer["Attributes"][name]) for name in names)


def worker(queue: SqsWorkQueue, processor: Processor, **overrides: Any) -> Worker:
    options: dict[str, Any] = {
        "concurrency": 2,
        "visibility_seconds": VISIBILITY,
        "wait_seconds": 1,
        "retry_seconds": 0.2,
        "retry_cap_seconds": 0.2,
        **overrides,
    }
    return Worker(queue, processor, **options)


@contextlib.asynccontextmanager
async def running(work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> AsyncIterator[asyncio.Event]:
    """Run ``work`` until the block ends; the block may set the yielded stop event itself first."""
    stop = asyncio.Event()
    task = asyncio.create_task(work(stop))
    try:
        yield stop
    finally:
        stop.set()
        async with asyncio.timeout(PATIENCE_SECONDS):
            await task


async def test_jobs_are_processed_concurrency_at_a_time_and_deleted(
    queue: SqsWorkQueue, settings: SqsSettings
) -> None:
    processor = Processor()
    for number in range(5):
        await queue.send(job(number))
    async with running(worker(queue, processor, concurrency=2).run):
        await processor.until(lambda: len(processor.done) == 5)
    assert sorted(processor.calls) == sorted(job(number).document_id for number in range(5))
    assert processor.most_running == 2
    assert await left_in(settings) == 0


async def test_a_failed_job_comes_back_after_a_pause_and_is_then_done(
    queue: SqsWorkQueue, settings: SqsSettings
) -> None:
    processor = Processor(failures=1)
    await queue.send(job())
    async with running(worker(queue, processor).run):
        await processor.until(lambda: processor.done == [job().document_id])
    assert processor.calls == [job().document_id] * 2
    assert await left_in(settings) == 0


async def test_a_job_outlasting_its_visibility_stays_hidden_while_it_runs(
    queue: SqsWorkQueue, settings: SqsSettings
) -> None:
    processor = Processor()
    processor.go.clear()
    await queue.send(job())
    async with running(worker(queue, processor).run):
        await processor.until(lambda: processor.calls == [job().document_id])
        assert await queue.receive(10, LAPSE_WAIT) == []  # twice the visibility: renewed meanwhile
        processor.go.set()
        await processor.until(lambda: processor.done == [job().document_id])
    assert processor.calls == [job().document_id]
    assert await left_in(settings) == 0


async def test_stopping_hands_back_at_once_the_jobs_that_outlast_the_grace(
    queue: SqsWorkQueue, settings: SqsSettings
) -> None:
    processor = Processor()
    processor.go.clear()
    await queue.send(job())
    async with running(worker(queue, processor, stop_grace_seconds=0.1).run) as stop:
        await processor.until(lambda: processor.calls == [job().document_id])
        stop.set()
    handed_back = await queue.receive(10, 0)
    assert [(delivery.job, delivery.attempt) for delivery in handed_back] == [(job(), 2)]
    assert processor.done == []


async def test_stopping_lets_jobs_finish_within_the_grace(queue: SqsWorkQueue, settings: SqsSettings) -> None:
    processor = Processor()
    processor.go.clear()
    await queue.send(job())
    async with running(worker(queue, processor, stop_grace_seconds=PATIENCE_SECONDS).run) as stop:
        await processor.until(lambda: processor.calls == [job().document_id])
        stop.set()
        await asyncio.sleep(0.1)
        processor.go.set()
    assert processor.done == [job().document_id]
    assert await left_in(settings) == 0
