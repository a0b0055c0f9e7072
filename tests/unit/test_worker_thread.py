"""The lookup thread: answers each call, raises what the call raised, ends when idle, starts again."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from docpipe.adapters import worker_thread
from docpipe.adapters.worker_thread import WorkerThread


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A thread name of the test's own, so that the threads of other tests are never counted."""
    return f"docpipe-test-{request.node.name}"


def _threads(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


def _fail(message: str) -> None:
    raise OSError(message)


async def _until_no_thread(name: str) -> None:
    deadline = time.monotonic() + 30
    while _threads(name):
        assert time.monotonic() < deadline, "the idle thread did not end"
        await asyncio.sleep(0.01)


async def test_calls_are_answered_in_any_number_at_once(name: str) -> None:
    worker = WorkerThread(name)
    results = await asyncio.gather(*(worker.run(lambda n: n * n, n) for n in range(200)))
    assert results == [n * n for n in range(200)]
    assert len(_threads(name)) == 1


async def test_what_the_call_raises_is_raised_to_the_caller_and_the_thread_goes_on(name: str) -> None:
    worker = WorkerThread(name)
    with pytest.raises(OSError, match="no such blob"):
        await worker.run(_fail, "no such blob")
    assert await worker.run(str.upper, "still serving") == "STILL SERVING"


async def test_a_cancelled_caller_leaves_the_thread_serving(name: str) -> None:
    worker = WorkerThread(name)
    release = threading.Event()
    blocked = asyncio.ensure_future(worker.run(lambda _: release.wait(30), None))
    await asyncio.sleep(0.05)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    release.set()
    assert await worker.run(len, "abc") == 3


async def test_an_idle_thread_ends_and_the_next_call_starts_another(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_thread, "IDLE_SECONDS", 0.05)
    worker = WorkerThread(name)
    assert await worker.run(len, "first") == 5
    await _until_no_thread(name)
    assert await asyncio.wait_for(worker.run(len, "second"), 30) == 6
    await _until_no_thread(name)
