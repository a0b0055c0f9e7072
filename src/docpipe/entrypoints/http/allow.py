"""OPTIONS on a path served by several handlers.

Litestar answers OPTIONS on a path from the handlers registered there before its first one, so the
``Allow`` header of a path served by several handlers would miss the later ones. Controllers with such
paths state ``Allow`` in full in OPTIONS handlers of their own, and register them first.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar import Response
from litestar.enums import HttpMethod
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.status_codes import HTTP_204_NO_CONTENT


def allow(methods: str) -> Response[None]:
    """The answer to OPTIONS on a path where ``methods`` are allowed."""
    return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": methods})


def options_first(handlers: Iterable[BaseRouteHandler]) -> list[BaseRouteHandler]:
    """``handlers`` in their order, but those answering OPTIONS first."""
    return sorted(handlers, key=lambda handler: not _answers_options(handler))


def _answers_options(handler: BaseRouteHandler) -> bool:
    return isinstance(handler, HTTPRouteHandler) and HttpMethod.OPTIONS in handler.http_methods
