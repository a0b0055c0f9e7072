"""uvicorn's HTTP protocol with the two connection guards uvicorn lacks.

uvicorn closes keep-alive connections left idle after a response, but waits forever for a request
head that never ends (slowloris) or never starts, and its own ``limit_concurrency`` answers
text/plain. Here a request head must arrive within ``header_timeout`` seconds of the connection
opening or of its first byte, else 408 and the connection closes; and a request arriving while more
than ``max_connections`` are open gets 503 problem+json. The guard watches the ASGI app being called
(the head is complete) rather than either parser, so it works the same over h11 and httptools.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

import uvicorn
from litestar import Litestar
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from docpipe.config import LimitSettings
from docpipe.entrypoints.http.problems import PROBLEM_JSON, problem_json, retry_later
from docpipe.entrypoints.http.request_id import accepted, remember_peer, request_id

if TYPE_CHECKING:
    from litestar.types import HTTPScope

logger = logging.getLogger("docpipe.http")


class _ConnectionGuard(asyncio.Protocol):
    """Mixed in before one of uvicorn's protocols, whose attributes below it relies on."""

    config: uvicorn.Config
    app: ASGI3Application
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    server_state: ServerState

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        assert isinstance(self.config, ServerConfig), "a guarded protocol is configured by ServerConfig"
        self.limits = self.config.limits
        self._downstream = self.app
        self.app = self._serve
        self._serving = 0
        """Requests of this connection in the app; pipelined ones may overlap by a moment."""
        self._head_deadline: asyncio.TimerHandle | None = None
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._serving and self._head_deadline is None:
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting_for_head()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        if not self.transport.is_closing():
            self._head_deadline = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _stop_waiting_for_head(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._serving or self.transport.is_closing():
            return
        detail = f"the request head did not arrive within {self.limits.header_timeout} s"
        logger.info("connection closed: %s", detail)
        request = accepted(None)
        body = problem_json(HTTPStatus.REQUEST_TIMEOUT, detail, request)
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\n"
            + f"content-type: {PROBLEM_JSON}\r\ncontent-length: {len(body)}\r\n".encode()
            + f"x-request-id: {request}\r\n".encode()
            + b"connection: close\r\n\r\n"
            + body
        )
        self.transport.close()

    async def _serve(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        self._stop_waiting_for_head()
        remember_peer(cast("HTTPScope", scope))
        self._serving += 1
        try:
            if len(self.server_state.connections) > self.limits.max_connections:
                await _refuse(send, request_id(cast("HTTPScope", scope)), self.limits.max_connections)
            else:
                await self._downstream(scope, receive, send)
        finally:
            self._serving -= 1


async def _refuse(send: ASGISendCallable, request: str, limit: int) -> None:
    logger.warning("request %s refused: more than %d connections are open", request, limit)
    body = problem_json(
        HTTPStatus.SERVICE_UNAVAILABLE,
        f"the server holds its limit of {limit} connections; retry later",
        request,
    )
    await send(
        {
            "type": "http.response.start",
            "status": HTTPStatus.SERVICE_UNAVAILABLE,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *((name.lower().encode(), value.encode()) for name, value in retry_later().items()),
                (b"x-request-id", request.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class GuardedHttpToolsProtocol(_ConnectionGuard, HttpToolsProtocol):
    """uvicorn's httptools protocol under the guards of this module: the one ``ServerConfig`` serves with."""


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration with docpipe's limits, which the guarded protocols read from it. It
    travels to worker processes with the configuration (pickled, so the protocols are module-level)."""

    def __init__(self, app: Litestar | str, *, limits: LimitSettings, **options: Any) -> None:
        super().__init__(
            app, http=GuardedHttpToolsProtocol, timeout_keep_alive=limits.keep_alive_timeout, **options
        )
        self.limits = limits
