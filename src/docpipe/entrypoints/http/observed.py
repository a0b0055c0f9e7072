"""What every HTTP request leaves behind: its metrics (``docpipe.metrics``) and its access log line.

``Observed`` wraps the whole application, routing included, so that requests no route answers are
counted and logged too. Requests are labelled and logged by route template (``/documents/{document_id}``),
never by path: ids and link tokens become neither label values nor log text.
"""

from __future__ import annotations

import logging
import re
import time
from http import HTTPStatus
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send

from docpipe import metrics
from docpipe.config import TrustedProxies
from docpipe.domain.model import is_document_id
from docpipe.entrypoints.http.authentication import principal_if_known
from docpipe.entrypoints.http.refusals import refusal_of
from docpipe.entrypoints.http.request_id import choose
from docpipe.entrypoints.http.request_limits import UPLOAD_ROUTE
from docpipe.entrypoints.logs import ACCESS_LOGGER, current_request

access_log = logging.getLogger(ACCESS_LOGGER)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods labelled as themselves; any other is ``other`` (a client may send any token)."""
_PARAMETER_TYPE = re.compile(r"\{(\w+):\w+\}")
_DOCUMENT_PATH = re.compile(r"/documents/([^/?#]+)$")
_STATUS_NAMES = {status.value: status.phrase.lower().replace(" ", "_") for status in HTTPStatus}
"""The reason of a refusal no exception handler named: its status's, ``request_timeout``."""
_ABORTED = "incomplete_body"
"""The refusal of an upload whose client went away before sending all of it."""


class Observed:
    """ASGI middleware around the application: times each HTTP request, counts its bytes and records
    its metrics and its access line once its response is sent (or its handling failed). It chooses
    the request's id first, taking a proxy's only from ``trusted`` ones."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self._app = app
        self._trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        exchange = _Exchange(receive, send)
        token = current_request.set(choose(scope, self._trusted))
        started = time.perf_counter()
        try:
            await self._app(scope, exchange.receive, exchange.send)
        finally:
            _record(scope, exchange, time.perf_counter() - started)
            current_request.reset(token)


class _Exchange:
    """The request's ``receive`` and ``send``, counting body bytes and noting the response's status."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.status: int | None = None
        self.location: str | None = None
        self.received = 0
        self.sent = 0
        self.disconnected = False

    async def receive(self) -> ReceiveMessage:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
        elif message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.location = next(
                (
                    value.decode("latin-1")
                    for name, value in message.get("headers", ())
                    if name == b"location"
                ),
                None,
            )
        elif message["type"] == "http.response.body":
            self.sent += len(message.get("body", b""))
        await self._send(message)


def route_of(scope: Scope) -> str:
    """The template of the route that answered, parameters without their types; ``unmatched`` if none."""
    template = scope.get("path_template")
    if not isinstance(template, str) or "route_handler" not in scope:
        return metrics.UNMATCHED_ROUTE
    return _PARAMETER_TYPE.sub(r"{\1}", template)


def _record(scope: HTTPScope, exchange: _Exchange, seconds: float) -> None:
    status = exchange.status or HTTPStatus.INTERNAL_SERVER_ERROR
    method = scope["method"] if scope["method"] in _METHODS else "other"
    route = route_of(scope)
    metrics.requests.labels(method, route, str(status)).inc()
    metrics.request_duration.labels(method, route).observe(seconds)
    metrics.bytes_received.labels(method, route).inc(exchange.received)
    metrics.bytes_sent.labels(method, route).inc(exchange.sent)
    if route != metrics.UNMATCHED_ROUTE and scope["route_handler"].opt.get(UPLOAD_ROUTE):
        metrics.uploads.labels(route, *_upload_outcome(scope, exchange, status)).inc()
    access_log.log(
        logging.WARNING if status >= HTTPStatus.INTERNAL_SERVER_ERROR else logging.INFO,
        "%s %s %d %.1f ms",
        method,
        route,
        status,
        seconds * 1000,
        extra=_access_fields(scope, exchange, method, route, status, seconds),
    )


def _upload_outcome(scope: Scope, exchange: _Exchange, status: int) -> tuple[str, str]:
    """``(outcome, reason)``: stored, aborted (the client went away) or refused, and why."""
    if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
        return "stored", ""
    reason = refusal_of(scope)
    if reason == _ABORTED or exchange.disconnected:
        return "aborted", ""
    if reason is None:
        reason = _STATUS_NAMES.get(status, str(status))
    return "refused", reason


def _access_fields(
    scope: Scope, exchange: _Exchange, method: str, route: str, status: int, seconds: float
) -> dict[str, Any]:
    principal = principal_if_known(scope)
    document_id = scope.get("path_params", {}).get("document_id")
    if document_id is None and exchange.location is not None and status == HTTPStatus.CREATED:
        created = _DOCUMENT_PATH.search(exchange.location)
        document_id = created.group(1) if created else None
    if document_id is not None and not is_document_id(document_id):
        document_id = None  # whatever a client put there, a key or a link token included, is not logged
    return {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "owner": None if principal is None else principal.owner,
        "document_id": document_id,
    }
