"""Files opened in a worker thread, so that a cancelled caller does not leave one open.

``await asyncio.to_thread(open, ...)`` cancelled while the thread runs raises at once, but the thread
goes on and opens the file, and nobody gets it: it stays open (and, for a temporary file, on disk)
until the garbage collector finds it. Cancellation is how every client disconnect reaches an upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

Opened = TypeVar("Opened")


async def open_in_thread(opener: Callable[[], Opened], undo: Callable[[Opened], object]) -> Opened:
    """``opener()`` run in a worker thread. Should the caller be cancelled meanwhile, ``undo`` is
    applied to what the opener returns (in a thread too) as soon as it returns."""
    opening = asyncio.ensure_future(asyncio.to_thread(opener))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(lambda done: _undo_when_opened(done, undo))
        raise


def _undo_when_opened(done: asyncio.Future[Opened], undo: Callable[[Opened], object]) -> None:
    if done.cancelled() or done.exception() is not None:
        return
    opened = done.result()
    undoing = asyncio.ensure_future(asyncio.to_thread(undo, opened))
    undoing.add_done_callback(_log_failure)


def _log_failure(done: asyncio.Future[object]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if (error := done.exception()) is not None:
            logger.warning("could not close a file its cancelled caller never got: %s", error)
