"""What every HTTP request leaves behind: its metrics (``docpipe.metrics``), its access log line and,
when tracing is on, its server span (``docpipe.tracing``).

``Observed`` wraps the whole application, routing included, so that requests no route answers are
counted, logged and traced too. Requests are labelled, logged and their spans named by route template
(``/documents/{document_id}``), never by path: ids and link tokens become neither label values, log
text nor span names.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from contextlib import AbstractContextManager
from http import HTTPStatus
from typing import Any, NamedTuple

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send

from docpipe import metrics, tracing
from docpipe.config import TrustedProxies
from docpipe.domain.model import is_document_id
from docpipe.entrypoints.http.authentication import principal_if_known
from docpipe.entrypoints.http.refusals import refusal_of
from docpipe.entrypoints.http.request_id import HEADER_BYTES as REQUEST_ID_HEADER
from docpipe.entrypoints.http.request_id import choose, from_trusted_proxy
from docpipe.entrypoints.http.request_limits import UPLOAD_ROUTE
from docpipe.entrypoints.logs import current_request, write_access
from docpipe.metric_tallies import CountTally, ObservationTally

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
    its metrics and its access line once its response is sent (or its handling failed), inside its
    span. It chooses the request's id first, and continues a trace, only from ``trusted`` proxies."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self._app = app
        self._trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        request = choose(scope, self._trusted)
        exchange = _Exchange(receive, send, request.encode())
        token = current_request.set(request)
        try:
            with self._server_span(scope, request) as span:
                started = time.perf_counter()
                try:
                    await self._app(scope, exchange.receive, exchange.send)
                finally:
                    _finish(span, _record(scope, exchange, time.perf_counter() - started))
        finally:
            current_request.reset(token)

    def _server_span(self, scope: HTTPScope, request: str) -> AbstractContextManager[tracing.Span]:
        """The request's span, named by its method until its route is known; nothing is prepared
        for it while tracing is off."""
        if not tracing.active():
            return tracing.NO_SPAN
        return tracing.server_span(
            _span_name(scope["method"], None), _span_attributes(scope, request), self._carrier(scope)
        )

    def _carrier(self, scope: HTTPScope) -> dict[str, str] | None:
        """The trace context headers of a trusted proxy's request (a client's would let it choose the
        trace docpipe's spans join, and whether they are sampled)."""
        wanted = tracing.propagated_headers()
        if not wanted or not from_trusted_proxy(scope, self._trusted):
            return None
        return {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name.decode("latin-1") in wanted
        }


class _Exchange:
    """The request's ``receive`` and ``send``, counting body bytes and noting the response's status;
    every response, errors included, carries the request's id (``request_id``)."""

    def __init__(self, receive: Receive, send: Send, request_id: bytes) -> None:
        self._receive = receive
        self._send = send
        self._request_id = request_id
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
            message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, self._request_id)]
            self.status = message["status"]
            if self.status == HTTPStatus.CREATED:  # the access line's document id (``_access_fields``)
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
    return _untyped(template)


@functools.cache  # one entry per route: templates are the app's, never a client's
def _untyped(template: str) -> str:
    return _PARAMETER_TYPE.sub(r"{\1}", template)


def _span_name(method: str, route: str | None) -> str:
    """``GET /documents/{document_id}``, as the semantic conventions name server spans; the method
    alone for requests no route answers, ``HTTP`` for methods docpipe does not know."""
    known = method if method in _METHODS else "HTTP"
    return known if route is None or route == metrics.UNMATCHED_ROUTE else f"{known} {route}"


def _span_attributes(scope: HTTPScope, request: str) -> dict[str, str | int]:
    """What a server span starts with: no path, query or header (see ``tracing``)."""
    return {
        "http.request.method": scope["method"] if scope["method"] in _METHODS else "_OTHER",
        "url.scheme": scope["scheme"],
        "network.protocol.version": scope["http_version"],
        "docpipe.request_id": request,
    }


def _finish(span: tracing.Span, access: dict[str, Any]) -> None:
    """The span's name and attributes once the route and status are known; a 5xx is a failed span."""
    if not tracing.active():
        return
    route: str = access["route"]
    span.rename(_span_name(access["method"], route))
    if route != metrics.UNMATCHED_ROUTE:
        span.set("http.route", route)
    span.set("http.response.status_code", access["status"])
    if access["document_id"] is not None:
        span.set("docpipe.document_id", access["document_id"])
    if access["status"] >= HTTPStatus.INTERNAL_SERVER_ERROR:
        span.fail()


class _Series(NamedTuple):
    """The series a request of one method, route and status counts in, each through a tally."""

    requests: CountTally
    duration: ObservationTally
    received: CountTally
    sent: CountTally


_SERIES: dict[tuple[str, str, int], _Series] = {}
"""``labels`` looks a series up under a lock and builds its key anew on each call; the series of a
method, route and status are found once and kept here (as many as the label values allow)."""


def _series(method: str, route: str, status: int) -> _Series:
    key = (method, route, status)
    found = _SERIES.get(key)
    if found is None:
        found = _SERIES[key] = _Series(
            CountTally(metrics.requests.labels(method, route, str(status))),
            ObservationTally(metrics.request_duration.labels(method, route)),
            CountTally(metrics.bytes_received.labels(method, route)),
            CountTally(metrics.bytes_sent.labels(method, route)),
        )
    return found


def _record(scope: HTTPScope, exchange: _Exchange, seconds: float) -> dict[str, Any]:
    """Counts the request and writes its access line; returns the line's fields."""
    status = exchange.status or HTTPStatus.INTERNAL_SERVER_ERROR
    method = scope["method"] if scope["method"] in _METHODS else "other"
    route = route_of(scope)
    series = _series(method, route, status)
    series.requests.inc()
    series.duration.observe(seconds)
    if exchange.received:
        series.received.inc(exchange.received)
    if exchange.sent:
        series.sent.inc(exchange.sent)
    if route != metrics.UNMATCHED_ROUTE and scope["route_handler"].opt.get(UPLOAD_ROUTE):
        metrics.uploads.labels(route, *_upload_outcome(scope, exchange, status)).inc()
    fields = _access_fields(scope, exchange, method, route, status, seconds)
    write_access(
        logging.WARNING if status >= HTTPStatus.INTERNAL_SERVER_ERROR else logging.INFO,
        f"{method} {route} {status} {seconds * 1000:.1f} ms",
        fields,
    )
    return fields


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
