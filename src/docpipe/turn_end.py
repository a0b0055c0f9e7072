"""Work left for the end of the event loop's turn, done once for all that the turn asked of it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class AtTurnEnd:
    """Calls ``callback`` at the end of the running event loop's turn (as ``call_soon`` does), once
    however often ``ask`` was called in it. A call asked of a loop that ended before it came is asked
    again of the next loop that asks."""

    __slots__ = ("_asked_on", "_callback")

    def __init__(self, callback: Callable[[], object]) -> None:
        self._callback = callback
        self._asked_on: asyncio.AbstractEventLoop | None = None

    def ask(self) -> bool:
        """Have ``callback`` called at the end of this turn; ``False``, asking nothing, outside an event
        loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._asked_on is not loop:
            self._asked_on = loop
            loop.call_soon(self._call)
        return True

    def asked(self) -> bool:
        """Whether this turn of the running event loop has asked already; ``False`` outside a loop."""
        try:
            return self._asked_on is asyncio.get_running_loop()
        except RuntimeError:
            return False

    def _call(self) -> None:
        self._asked_on = None
        self._callback()
