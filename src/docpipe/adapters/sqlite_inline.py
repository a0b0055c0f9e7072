"""Point reads on the event loop's own thread, without the hop to an aiosqlite thread and back.

Reading one row by its key takes SQLite a few microseconds once its pages are cached (they are: the
rows a server reads again and again). Handing that read to an aiosqlite thread costs far more: a
wake-up each way, and the GIL changing hands twice, which every other call that releases the GIL
(a write to the log, a ``stat``) then waits for. So point reads run here, on a connection of their
own that never waits: its busy timeout is 0, and a read that finds the database busy (another
process recovering the WAL, or holding the file exclusively) is given back undone, for the caller
to make on a thread, where waiting holds up nothing else. Only reads belong here: a write, or a
read of many rows, would hold up every request meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_WOULD_WAIT = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class InlineReader:
    """A read-only connection used from the event loop's thread (``query_only``, never waiting)."""

    def __init__(self, path: Path) -> None:
        # Opened by whatever thread opens the repository, used from the event loop's.
        self._db = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA query_only = ON")

    def fetch(self, statement: str, parameters: Sequence[Any]) -> list[Any] | None:
        """The rows of ``statement``, or ``None`` when SQLite would have to wait for a lock."""
        try:
            return self._db.execute(statement, parameters).fetchall()
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF in _WOULD_WAIT:
                return None
            raise

    def close(self) -> None:
        self._db.close()
