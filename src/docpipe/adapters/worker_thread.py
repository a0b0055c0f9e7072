"""A thread of its own for a short blocking call that the event loop makes many times a second."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

A = TypeVar("A")
T = TypeVar("T")

IDLE_SECONDS = 10.0
"""How long the thread waits for a call before it ends; the next call starts another."""

_Call = tuple["asyncio.Future[Any]", Callable[[Any], Any], Any]


class WorkerThread:
    """Runs blocking calls one at a time on one thread, started by a call and ended once idle for
    ``IDLE_SECONDS``, so that nothing needs closing.

    ``asyncio.to_thread`` costs several times more per call: it chains a ``concurrent.futures.Future``
    to an asyncio one and wakes a pool thread for each call, while this thread, under load, finds the
    next call already queued and runs it without sleeping. For a call that takes microseconds (a
    ``stat``), that difference is most of what the call costs. Calls wait their turn: only short
    ones belong here.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    async def run(self, function: Callable[[A], T], argument: A) -> T:
        """``function(argument)``, on the thread; what it raises is raised here."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls.put((future, function, argument))
        with self._lock:
            if not self._running:
                threading.Thread(target=self._serve, name=self._name, daemon=True).start()
                self._running = True
        return await future

    def _serve(self) -> None:
        while True:
            try:
                future, function, argument = self._calls.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:  # a call queued before this check is served; one after starts a thread
                    if self._calls.empty():
                        self._running = False
                        return
                continue
            try:
                result = function(argument)
            except BaseException as error:  # handed to the caller, whatever it is
                _reply(future, _fail, error)
            else:
                _reply(future, _succeed, result)


def _reply(
    future: asyncio.Future[Any], settle: Callable[[asyncio.Future[Any], Any], None], value: Any
) -> None:
    with contextlib.suppress(RuntimeError):  # the caller's loop has closed: nobody waits
        future.get_loop().call_soon_threadsafe(settle, future, value)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # the caller may have been cancelled
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
