"""A relay under test: a consumer that records (and fails on demand), an outbox that reports what was
acknowledged, and a relay that polls and retries every few milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from docpipe.domain.events import Event, EventType
from docpipe.domain.ports import Outbox
from docpipe.domain.relay import EventConsumer, Relay

PATIENCE_SECONDS = 30


class Recorder:
    """Records every event it handled; raises instead for its first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.handled: list[Event] = []
        self.changed = asyncio.Event()

    async def handle(self, event: Event) -> None:
        self.calls += 1
        failing = self.calls <= self.failures
        await asyncio.sleep(0)  # other documents' events are handed out meanwhile
        if failing:
            raise RuntimeError("failing for the test")
        self.handled.append(event)
        self.changed.set()

    async def until_handled(self, count: int) -> None:
        async with asyncio.timeout(PATIENCE_SECONDS):
            while len(self.handled) < count:
                self.changed.clear()
                await self.changed.wait()

    def per_document(self) -> dict[str, list[tuple[EventType, int]]]:
        found: dict[str, list[tuple[EventType, int]]] = {}
        for event in self.handled:
            found.setdefault(event.document_id, []).append((event.type, event.sequence))
        return found


class Acknowledged:
    """The (document, sequence) of every event acknowledged, through one outbox or several."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, int]] = set()
        self._changed = asyncio.Event()

    def add(self, events: Sequence[Event]) -> None:
        self.seen.update((event.document_id, event.sequence) for event in events)
        self._changed.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(PATIENCE_SECONDS):
            while len(self.seen) < count:
                self._changed.clear()
                await self._changed.wait()


class Watched:
    """An outbox that remembers what was acknowledged; as a consumer too, it checks that each event
    comes only once the earlier events of its document were acknowledged."""

    def __init__(self, inner: Outbox, acknowledged: Acknowledged | None = None) -> None:
        self._inner = inner
        self.acknowledged = Acknowledged() if acknowledged is None else acknowledged
        self.early: list[Event] = []

    async def pending(self, limit: int) -> list[Event]:
        return await self._inner.pending(limit)

    async def acknowledge(self, events: Sequence[Event]) -> None:
        await self._inner.acknowledge(events)
        self.acknowledged.add(events)

    async def renew(self) -> bool:
        return await self._inner.renew()

    async def release(self) -> None:
        await self._inner.release()

    def next_commit(self) -> asyncio.Event:
        return self._inner.next_commit()

    async def handle(self, event: Event) -> None:
        if any(
            (event.document_id, earlier) not in self.acknowledged.seen for earlier in range(1, event.sequence)
        ):
            self.early.append(event)

    async def until_acknowledged(self, count: int) -> None:
        await self.acknowledged.until(count)


def quick_relay(outbox: Outbox, consumers: Sequence[EventConsumer]) -> Relay:
    """A relay that polls and retries every few milliseconds."""
    return Relay(outbox, consumers, poll_seconds=0.01, backoff_seconds=0.001, backoff_cap_seconds=0.01)


class Runs(Protocol):
    """A relay or a webhook dispatcher: runs until cancelled."""

    async def run(self) -> None: ...


@contextlib.asynccontextmanager
async def running(loop: Runs) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(loop.run())
    try:
        yield task
    finally:
        task.cancel()
        async with asyncio.timeout(PATIENCE_SECONDS):
            await asyncio.gather(task, return_exceptions=True)
