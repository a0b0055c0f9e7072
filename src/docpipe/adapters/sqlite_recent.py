"""Documents read by id, kept while the database file is unchanged.

Under load, a metadata request's storage work is mostly SQLite's: a read transaction begun and ended
(two file locks and a ``stat``), the statement, and the row turned into a ``Document``; and most
requests read documents read a moment before. Whether the file changed since is one question to
SQLite, ``PRAGMA data_version``, whose answer moves whenever another connection commits to the file:
this process's writer, or any connection of another process (another worker, ``docpipe worker``, a
command). Any change forgets every document kept.

The question is asked by the first read of each turn of the event loop, not by every read. A request
answered in a turn was received before the turn began (the loop polls its sockets between turns, and
a request's task first runs in the turn after its bytes arrived, as uvicorn starts it; an eager task
factory would break this), so any write whose answer the client saw before sending it was committed
before the turn's question: no client is ever shown a document older than a change it was told of. A
read that waited for a thread keeps its row only if no change was seen meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable

from docpipe.domain.model import Document, keepable
from docpipe.turn_end import AtTurnEnd

RECENT_DOCUMENTS = 1024
"""Documents kept: the 1,024 kept last (first kept, first dropped), each ``keepable``."""


class RecentDocuments:
    """Documents by id and owner, kept while ``data_version`` (the file's change counter as one
    connection sees it, ``None`` when it could not be read without waiting) stays the same."""

    __slots__ = ("_data_version", "_generation", "_kept", "_turn", "_version")

    def __init__(self, data_version: Callable[[], int | None]) -> None:
        self._data_version = data_version
        self._kept: dict[tuple[str, str], Document] = {}
        self._version: int | None = None
        self._generation = 0
        """Moves on whenever the kept documents are forgotten: a read begun before may not keep its row."""
        self._turn = AtTurnEnd(lambda: None)
        """Only the turn's end matters: a turn that asked the file's change counter is not to ask again
        (a loop that stopped before its turn ended counts no more; outside a loop, every read asks)."""

    def find(self, owner: str, document_id: str) -> Document | None:
        """The document of ``owner`` with this id, when it was read since the file last changed."""
        if not self._turn.asked():
            self._ask()
        return self._kept.get((document_id, owner))

    def reading(self) -> int:
        """Taken before a read whose document is then offered to ``keep``."""
        return self._generation

    def keep(self, document: Document, reading: int) -> None:
        """Keep ``document``, read since ``reading`` was taken, unless the file changed meanwhile."""
        if reading != self._generation or self._version is None or not keepable(document):
            return
        key = (document.id, document.owner)
        if key not in self._kept and len(self._kept) >= RECENT_DOCUMENTS:
            del self._kept[next(iter(self._kept))]
        self._kept[key] = document

    def _ask(self) -> None:
        version = self._data_version()
        if version is None or version != self._version:
            self._kept.clear()
            self._generation += 1
        self._version = version
        self._turn.ask()
