"""What happened to documents, as data. A repository writes each change's event in the commit that makes
the change (the outbox, see ``ports.Outbox``); a relay delivers it afterwards (``domain.relay``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import msgspec

from docpipe.domain.model import Document, new_document_id, utc_now

EVENT_ID_PREFIX = "evt_"


class EventType(StrEnum):
    """What happened: the name a webhook receiver sees in ``type``."""

    CREATED = "document.created"
    UPDATED = "document.updated"
    DELETED = "document.deleted"
    PROCESSED = "document.processed"


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One change of one document of ``owner``.

    ``id`` is unique and sortable (it becomes the webhook-id); ``sequence`` grows strictly with each
    change of the document, in commit order, so a consumer can tell a late duplicate from news.
    ``document`` is the document after the change; for ``DELETED``, as it was before.
    """

    id: str
    type: EventType
    owner: str
    document_id: str
    sequence: int
    occurred_at: datetime
    document: Document


def new_event_id(after: str | None = None) -> str:
    """``evt_`` and a UUIDv7's hex; greater than ``after`` (the id of the document's previous event),
    even when the clock of the process that minted ``after`` ran ahead of this one's."""
    value = uuid.UUID(new_document_id()).int
    if after is not None:
        value = max(value, int(after.removeprefix(EVENT_ID_PREFIX), 16) + 1)
    return f"{EVENT_ID_PREFIX}{value:032x}"


def event_of(type_: EventType, document: Document, *, after: str | None = None) -> Event:
    """The event of a change of ``type_`` that leaves ``document`` (for ``DELETED``: that removes it).

    The sequence is the document's version after the change; a deletion counts as one more change.
    ``after`` is the id of the document's previous event, where the adapter keeps it (see ``new_event_id``).
    """
    return Event(
        id=new_event_id(after),
        type=type_,
        owner=document.owner,
        document_id=document.id,
        sequence=document.version + 1 if type_ is EventType.DELETED else document.version,
        occurred_at=utc_now(),
        document=document,
    )
