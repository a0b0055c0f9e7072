"""Limits on what one request may hold: its body must keep arriving, and uploads are bounded in number.

A request body that stops for ``body_idle_timeout`` seconds, or averages less than ``body_min_rate``
bytes a second over ``body_rate_window`` seconds of waiting for it, ends the request with 408 and
the connection: a trickle of one byte every few seconds no longer holds a connection, an upload slot
and its buffers forever. Only time spent waiting for the client counts, not time the server spends
storing what arrived. Uploads buffer up to a blob store's part size each (8 MiB on S3), so at most
``max_concurrent_uploads`` run at once; one more waits for a slot as long as a body may stay idle,
then gets 503.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from docpipe.config import LimitSettings
from docpipe.entrypoints.http.problems import retry_later

logger = logging.getLogger("docpipe.http")

UPLOAD_ROUTE = "upload"
"""The ``opt`` key that marks the route handlers receiving uploads."""


class RequestLimits:
    """ASGI middleware; give every route the same ``upload_slots``, since Litestar builds one
    instance of a middleware per route."""

    def __init__(self, app: ASGIApp, limits: LimitSettings, upload_slots: asyncio.Semaphore) -> None:
        self._app = app
        self._limits = limits
        self._upload_slots = upload_slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        paced = _PacedBody(receive, self._limits)
        if not scope["route_handler"].opt.get(UPLOAD_ROUTE):
            await self._app(scope, paced, send)
            return
        try:
            async with asyncio.timeout(self._limits.body_idle_timeout):
                await self._upload_slots.acquire()
        except TimeoutError:
            logger.warning("upload refused: %d uploads in progress", self._limits.max_concurrent_uploads)
            raise HTTPException(
                status_code=HTTPStatus.SERVICE_UNAVAILABLE,
                detail=f"the server is receiving its limit of {self._limits.max_concurrent_uploads} "
                "uploads; retry later",
                headers=retry_later(),
            ) from None
        try:
            await self._app(scope, paced, send)
        finally:
            self._upload_slots.release()


class _PacedBody:
    """``receive`` that raises 408 when the request body stops or trickles (see the module docstring)."""

    def __init__(self, receive: Receive, limits: LimitSettings) -> None:
        self._receive = receive
        self._limits = limits
        self._complete = False
        self._waited = 0.0
        self._received = 0

    async def __call__(self) -> ReceiveMessage:
        if self._complete:  # later calls wait for a disconnect, as long as a response streams
            return await self._receive()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self._limits.body_idle_timeout):
                message = await self._receive()
        except TimeoutError:
            raise _too_slow(
                f"no byte of the request body arrived for {self._limits.body_idle_timeout} s"
            ) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._complete = True
            return message
        self._waited += loop.time() - started
        self._received += len(message.get("body", b""))
        if self._waited >= self._limits.body_rate_window:
            if self._received < self._limits.body_min_rate * self._waited:
                raise _too_slow(f"the request body arrived at less than {self._limits.body_min_rate} bytes/s")
            self._waited = 0.0
            self._received = 0
        return message


def _too_slow(detail: str) -> HTTPException:
    logger.info("request body refused: %s", detail)
    return HTTPException(
        status_code=HTTPStatus.REQUEST_TIMEOUT, detail=detail, headers={"Connection": "close"}
    )
