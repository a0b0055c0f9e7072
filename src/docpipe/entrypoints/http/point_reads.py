"""The reads clients of a document store make most, answered without Litestar's way through a route.

``GET /documents/{id}`` and ``GET`` or ``HEAD /documents/{id}/content`` are most of a store's requests,
each a point read and a few headers. Litestar's way through a route (its router, the route's
middleware, a ``Request``, the parameters converted and checked against the handler's signature, the
dependency resolved, the answer turned into a response) costs about as much CPU as docpipe's own work
for them. ``PointReads`` answers them when they come plain: that method and path, an id shaped like a
document's, no query, nothing Litestar's router would normalise or refuse. It does what the route
does: it notes the route (the metrics and the access line are labelled by it), admits the principal
(``authentication.admit``), calls the function the route handler calls (``read_metadata``,
``read_content``) and sends its answer; an error becomes the problem response the app's exception
handlers make of it. Every other request, and every other route, goes through Litestar.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from litestar import Litestar, Response
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, HTTPScope, Method, Receive, Scope, Send

from docpipe.domain.model import is_document_id
from docpipe.domain.service import DocumentService
from docpipe.entrypoints.http.authentication import admit, principal_of
from docpipe.entrypoints.http.content import ContentController, read_content, request_header
from docpipe.entrypoints.http.documents import DocumentController, read_metadata
from docpipe.entrypoints.http.prepared import Prepared

_PATH = re.compile(r"/documents/([^/]+)(/content)?")
_PLAIN_HOST = re.compile(rb"[A-Za-z0-9.:\[\]-]*")
"""Host values Litestar's router accepts as they are (it refuses some others with 400): a subset."""

Answer = Callable[[DocumentService, str, str, HTTPScope], Awaitable[Response[Any]]]
"""A route's work: the service, the owner, the document id and the request -> its answer."""


class _Route(NamedTuple):
    handler: HTTPRouteHandler
    """The handler Litestar mounted for the route, whose ``opt`` and exception handlers apply."""
    template: str
    answer: Answer


async def _metadata(
    service: DocumentService, owner: str, document_id: str, scope: HTTPScope
) -> Response[Any]:
    return await read_metadata(service, owner, document_id)


async def _content(service: DocumentService, owner: str, document_id: str, scope: HTTPScope) -> Response[Any]:
    return await read_content(service, owner, document_id, scope["method"], request_header(scope))


class PointReads:
    """ASGI middleware around Litestar's own handling (see the module docstring)."""

    def __init__(self, app: ASGIApp, litestar: Litestar) -> None:
        self._app = app
        self._request_class = litestar.request_class
        self._routes = {
            ("GET", False): _mounted(litestar, DocumentController.get_document, "GET", _metadata),
            ("GET", True): _mounted(litestar, ContentController.document_content, "GET", _content),
            ("HEAD", True): _mounted(litestar, ContentController.document_content, "HEAD", _content),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route, document_id = self._plain(scope)
        if route is None:
            await self._app(scope, receive, send)
            return
        scope["route_handler"] = route.handler
        scope["path_template"] = route.template
        scope["path_params"] = {"document_id": document_id}
        try:
            await admit(scope, route.handler.opt)
            service: DocumentService = scope["app"].state["service"]  # by key, as ``admit`` reads it
            answer = await route.answer(service, principal_of(scope).owner, document_id, scope)  # type: ignore[arg-type]
        except Exception as error:  # every error is answered, as by Litestar's exception middleware
            await self._problem(route, scope, receive, send, error)
            return
        if isinstance(answer, Prepared):
            await answer.send(send)
            return
        request = self._request_class(scope, receive, send)
        response = await route.handler.to_response(app=scope["app"], data=answer, request=request)
        await response(scope, receive, send)

    def _plain(self, scope: Scope) -> tuple[_Route | None, str]:
        """The route of a request this answers, with its document id; ``None`` for any other."""
        if scope["type"] != ScopeType.HTTP or scope["query_string"] or scope.get("root_path"):
            return None, ""
        found = _PATH.fullmatch(scope["path"])
        if found is None or not is_document_id(found.group(1)):
            return None, ""
        route = self._routes.get((scope["method"], found.group(2) is not None))
        if route is None or not all(
            _PLAIN_HOST.fullmatch(value) for name, value in scope["headers"] if name == b"host"
        ):
            return None, ""
        return route, found.group(1)

    async def _problem(
        self, route: _Route, scope: Scope, receive: Receive, send: Send, error: Exception
    ) -> None:
        """The answer Litestar's exception middleware gives an error raised in the route: its handler
        is the route's for the nearest class of the error (docpipe's are by class, ``Exception``'s
        included; see ``problems``)."""
        handlers = route.handler.resolve_exception_handlers()
        kind = next((kind for kind in type(error).__mro__ if kind in handlers), None)
        if kind is None:
            raise error
        handler = handlers[kind]
        request = self._request_class(scope, receive, send)
        response = handler(request, error)
        encoders = route.handler.resolve_type_encoders()
        await response.to_asgi_response(app=None, request=request, type_encoders=encoders)(
            scope, receive, send
        )


def _mounted(litestar: Litestar, declared: HTTPRouteHandler, method: Method, answer: Answer) -> _Route:
    """The route of ``litestar`` whose ``method`` the controller handler ``declared`` answers."""
    for route in litestar.routes:
        if isinstance(route, HTTPRoute) and method in route.route_handler_map:
            handler = route.route_handler_map[method][0]
            if getattr(handler.fn, "__func__", handler.fn) is declared.fn:
                return _Route(handler, route.path, answer)
    raise LookupError(f"no {method} route of {declared}")
