"""The body of a webhook: the event, with its document as the HTTP API shows documents (``DocumentOut``)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from docpipe.domain.events import Event, EventType
from docpipe.entrypoints.http.schemas import DocumentOut


class WebhookData(msgspec.Struct, frozen=True, kw_only=True):
    """What the event is about."""

    document: DocumentOut
    """After the change; for ``document.deleted``, as it was before."""


class WebhookPayload(msgspec.Struct, frozen=True, kw_only=True):
    """``{"type", "timestamp", "data": {"document"}}``, as Standard Webhooks suggests."""

    type: EventType
    timestamp: datetime
    """When the change was committed."""
    data: WebhookData


_encoder = msgspec.json.Encoder()


def webhook_body(event: Event) -> bytes:
    """The JSON a receiver is posted for ``event``."""
    payload = WebhookPayload(
        type=event.type,
        timestamp=event.occurred_at,
        data=WebhookData(document=DocumentOut.of(event.document)),
    )
    return _encoder.encode(payload)
