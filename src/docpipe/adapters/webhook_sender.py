"""Posts webhooks with aiohttp, signed as the Standard Webhooks specification says
(https://www.standardwebhooks.com): ``webhook-id`` (the event's id, the same on every try),
``webhook-timestamp`` (this try's, in epoch seconds) and ``webhook-signature``, ``v1,`` and the base64
HMAC-SHA256, keyed with the secret, of ``{id}.{timestamp}.{body}``.

A try is bounded: ``TIMEOUT_SECONDS`` from connecting to the answer's head, redirects not followed, the
answer's body never read. Only a 2xx answer delivers. Failures name the receiver without its query
string or credentials, which may hold a token; nothing logs the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import aiohttp

from docpipe.config import WebhookSettings
from docpipe.domain.errors import WebhookNotDelivered
from docpipe.domain.events import Event
from docpipe.domain.webhooks import CONCURRENCY

TIMEOUT_SECONDS = 10.0
"""How long the receiver has to answer one try."""


class HttpWebhookSender:
    """Signs and posts one event's webhook (see ``ports.WebhookSender``)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        key: bytes,
        render: Callable[[Event], bytes],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._url = url
        self._key = key
        self._render = render
        self._clock = clock
        self._receiver = receiver_name(url)

    async def send(self, event: Event) -> None:
        body = self._render(event)
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{signature(self._key, event.id, timestamp, body)}",
        }
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
        except TimeoutError:
            raise WebhookNotDelivered(f"{self._receiver} did not answer within the time allowed") from None
        except aiohttp.ClientError as error:
            raise WebhookNotDelivered(
                f"{self._receiver} could not be reached ({type(error).__name__})"
            ) from None
        if not 200 <= status < 300:
            raise WebhookNotDelivered(f"{self._receiver} answered {status}")


def signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}`` keyed with ``key``."""
    signed = b".".join((webhook_id.encode(), timestamp.encode(), body))
    return base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode()


def receiver_name(url: str) -> str:
    """``url`` fit for a log line: scheme, host, port and path, without credentials or query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def open_webhook_sender(
    settings: WebhookSettings,
    render: Callable[[Event], bytes],
    *,
    seconds_per_try: float = TIMEOUT_SECONDS,
) -> AsyncIterator[HttpWebhookSender]:
    """A sender with its own connections: at most one per document being posted at once."""
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=seconds_per_try),
        connector=aiohttp.TCPConnector(limit=CONCURRENCY),
        cookie_jar=aiohttp.DummyCookieJar(),
        # HTTPS_PROXY and NO_PROXY apply, as they do to the AWS SDK: receivers are often outside.
        trust_env=True,
    ) as session:
        yield HttpWebhookSender(session, settings.url, settings.key(), render)
