"""A webhook receiver on loopback for the tests: it checks each webhook's signature with the Standard
Webhooks reference library, records what it was sent, and answers as the test tells it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from docpipe.config import Secret, WebhookSettings

SECRET = "whsec_" + base64.b64encode(b"docpipe webhook test secret, 32 bytes").decode()
PATIENCE_SECONDS = 30


class Received(msgspec.Struct, frozen=True):
    """One try, as the receiver saw it."""

    webhook_id: str
    timestamp: str
    payload: dict[str, Any]
    """The body, verified and parsed by ``standardwebhooks``; empty when it did not verify."""
    verified: bool

    @property
    def type(self) -> str:
        return str(self.payload["type"])

    @property
    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = self.payload["data"]["document"]
        return document


Answer = Callable[[Received], Awaitable[int]]
"""Decides the status of the answer to a try (and may take its time)."""


async def accept(received: Received) -> int:
    return 204


class Receiver:
    """Records every try in ``received`` as it arrives; ``answer`` decides each answer's status."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received: list[Received] = []
        self.delivered: list[Received] = []
        """The tries answered 2xx."""
        self.answer: Answer = accept
        self._arrived = asyncio.Event()
        self._verifier = Webhook(SECRET)

    def settings(self, url: str | None = None) -> WebhookSettings:
        return WebhookSettings(url=url or self.url, secret=Secret(SECRET))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            payload = self._verifier.verify(body, dict(request.headers))
            verified = True
        except Exception:  # any refusal of the library is a test failure, reported by ``verified``
            payload, verified = json.loads(body), False
        received = Received(
            request.headers.get("webhook-id", ""),
            request.headers.get("webhook-timestamp", ""),
            payload,
            verified,
        )
        self.received.append(received)
        self._arrived.set()
        status = await self.answer(received)
        if 200 <= status < 300:
            self.delivered.append(received)
            self._arrived.set()
        return web.Response(status=status)

    async def until(self, check: Callable[[], bool]) -> None:
        """Return once ``check`` holds, checked after each try and answer; fail after ``PATIENCE_SECONDS``."""
        async with asyncio.timeout(PATIENCE_SECONDS):
            while not check():
                self._arrived.clear()
                await self._arrived.wait()

    def delivered_of(self, document_id: str) -> list[Received]:
        """The document's webhooks delivered, in order, each once: delivery is at least once, and a
        duplicate (an event the relay handed out again, after a restart or a failing consumer) comes
        right after the first, before the document's next webhook."""
        found: list[Received] = []
        for received in self.delivered:
            if received.document["id"] == document_id and (
                not found or found[-1].webhook_id != received.webhook_id
            ):
                found.append(received)
        return found


@contextlib.asynccontextmanager
async def receiving(path: str = "/hooks?token=sesame") -> AsyncIterator[Receiver]:
    """A receiver served on 127.0.0.1 at ``path`` (any other path answers 404)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    receiver = Receiver(f"http://127.0.0.1:{port}{path}")
    app = web.Application()
    app.router.add_post(path.split("?", maxsplit=1)[0], receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, listener).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()
