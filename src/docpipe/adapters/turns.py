"""Turns per key within one process: callers of one key go one at a time, in order of arrival."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Turns:
    """One asyncio lock per key, kept only while someone holds or awaits it, so the map is as small
    as the number of keys in use however many keys come and go."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        """The keys held or awaited now."""
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def turn(self, key: str, deadline: float) -> AsyncIterator[None]:
        """Hold ``key``'s turn for the block; ``TimeoutError`` when it has not come by ``deadline``
        (the event loop's time)."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with asyncio.timeout_at(deadline):
                await lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
