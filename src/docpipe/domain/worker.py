"""Processing through a work queue (``DOCPIPE_QUEUE=sqs``): the servers' relays queue jobs, ``docpipe
worker`` processes do them.

The relay's processing consumer becomes ``QueuedProcessing``: an event is handled once the queue holds
its job, so the outbox still loses nothing. A ``Worker`` receives jobs and runs the same
``DocumentProcessing`` a server runs in process. While a job runs its message stays hidden from other
workers (a heartbeat extends its visibility); done, it is deleted; failed, it is hidden for a pause that
grows with its attempts, after which the queue hands it out again, until the queue's dead-letter queue
takes it. A worker that dies mid-job loses nothing: the visibility lapses and another worker gets it.

Jobs are not ordered: processing needs no order (see ``pipeline.asks_for_processing``: only a new
document asks for it, and each document asks once) and skips what it finds done, deleted or changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from docpipe.domain.events import Event
from docpipe.domain.jobs import Job, JobReceipt
from docpipe.domain.model import Document
from docpipe.domain.pipeline import asks_for_processing
from docpipe.domain.ports import WorkQueue
from docpipe.domain.relay import backoff

logger = logging.getLogger(__name__)

RECEIVE_WAIT_SECONDS = 20.0
"""How long one receive waits for a job (SQS's longest long poll): an idle worker asks three times a
minute."""
RECEIVE_BATCH = 10
"""Jobs received at a time at most (SQS's most per receive), and never more than free slots."""
RETRY_SECONDS = 30.0
"""The pause before a failed job's second attempt; it doubles with each attempt..."""
RETRY_CAP_SECONDS = 900.0
"""... up to this (jittered, see ``relay.backoff``)."""
RECEIVE_FAILURE_SECONDS = 0.5
"""The first pause after a receive that failed (the queue unreachable); it doubles up to 30 s."""
RECEIVE_FAILURE_CAP_SECONDS = 30.0
STOP_GRACE_SECONDS = 8.0
"""How long a stopping worker lets its jobs in flight finish before it hands them back to the queue;
within the 10 s Docker gives between SIGTERM and SIGKILL."""


class QueuedProcessing:
    """The relay's processing consumer when workers process: it queues the job of each event that asks
    for processing (handled means the queue holds it)."""

    def __init__(self, queue: WorkQueue) -> None:
        self._queue = queue

    async def handle(self, event: Event) -> None:
        if asks_for_processing(event):
            await self._queue.send(Job.of(event))


class Processor(Protocol):
    """What a worker runs for each job (``pipeline.DocumentProcessing``)."""

    async def process(self, owner: str, document_id: str) -> Document | None: ...


class Worker:
    """Receives jobs from ``queue`` and has ``processor`` do them, ``concurrency`` at a time."""

    def __init__(
        self,
        queue: WorkQueue,
        processor: Processor,
        *,
        concurrency: int,
        visibility_seconds: float,
        wait_seconds: float = RECEIVE_WAIT_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        retry_cap_seconds: float = RETRY_CAP_SECONDS,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
    ) -> None:
        self._queue = queue
        self._processor = processor
        self._concurrency = concurrency
        self._visibility_seconds = visibility_seconds
        self._wait_seconds = wait_seconds
        self._retry_seconds = retry_seconds
        self._retry_cap_seconds = retry_cap_seconds
        self._stop_grace_seconds = stop_grace_seconds

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; then stop receiving, let the jobs in flight finish for a grace
        period and hand the others back to the queue at once, so that another worker takes them."""
        working: set[asyncio.Task[None]] = set()
        stopping = asyncio.ensure_future(stop.wait())
        failing_receives = 0
        try:
            while not stop.is_set():
                free = self._concurrency - len(working)
                if free <= 0:
                    await asyncio.wait({*working, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    deliveries = await self._receive(min(free, RECEIVE_BATCH), stopping)
                except Exception as error:
                    failing_receives += 1
                    logger.warning("no job could be received from the queue: %s", error)
                    pause = backoff(failing_receives, RECEIVE_FAILURE_SECONDS, RECEIVE_FAILURE_CAP_SECONDS)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(stopping), pause)
                    continue
                failing_receives = 0
                for delivery in deliveries:
                    task = asyncio.create_task(self._work(delivery))
                    working.add(task)
                    task.add_done_callback(working.discard)
        finally:
            stopping.cancel()
            await self._finish(working)

    async def _receive(self, limit: int, stopping: asyncio.Task[Any]) -> list[JobReceipt]:
        """What one receive brings, or nothing once ``stopping`` ends the wait; jobs that arrive as it
        does go back to the queue."""
        receiving = asyncio.ensure_future(self._queue.receive(limit, self._wait_seconds))
        await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not stopping.done():
            return receiving.result()
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            for delivery in await receiving:
                await self._hand_back(delivery, 0)
        return []

    async def _finish(self, working: set[asyncio.Task[None]]) -> None:
        if not working:
            return
        _, unfinished = await asyncio.wait(working, timeout=self._stop_grace_seconds)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)

    async def _work(self, delivery: JobReceipt) -> None:
        """Do one job: delete it once done; on failure hide it for a pause growing with its attempts;
        cancelled (the worker stopping), hand it back at once."""
        job = delivery.job
        try:
            async with self._heartbeat(delivery):
                document = await self._processor.process(job.owner, job.document_id)
        except asyncio.CancelledError:
            await asyncio.shield(self._hand_back(delivery, 0))
            raise
        except Exception as error:
            pause = backoff(delivery.attempt, self._retry_seconds, self._retry_cap_seconds)
            logger.warning(
                "document %s of owner %s (job of %s, attempt %d) not processed; retried in %.0f s: %r",
                job.document_id,
                job.owner,
                job.event_id,
                delivery.attempt,
                pause,
                error,
            )
            await self._hand_back(delivery, pause)
            return
        state = "gone" if document is None else document.processing.state
        logger.info("document %s of owner %s processed: %s", job.document_id, job.owner, state)
        try:
            await self._queue.delete(delivery)
        except Exception as error:
            logger.warning(
                "job of %s was done but stays in the queue; it will come back and be skipped: %s",
                job.event_id,
                error,
            )

    @contextlib.asynccontextmanager
    async def _heartbeat(self, delivery: JobReceipt) -> AsyncIterator[None]:
        """Keep the job hidden from other workers while the block runs, renewing its visibility every
        third of the visibility timeout, so that two failed renewals in a row still leave it hidden."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self._visibility_seconds / 3)
                try:
                    await self._queue.hold(delivery, self._visibility_seconds)
                except Exception as error:
                    logger.warning("the job of %s could not be kept hidden: %s", delivery.job.event_id, error)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _hand_back(self, delivery: JobReceipt, seconds: float) -> None:
        try:
            await self._queue.hold(delivery, seconds)
        except Exception as error:
            logger.warning(
                "the job of %s could not be handed back; it returns once its visibility lapses: %s",
                delivery.job.event_id,
                error,
            )
