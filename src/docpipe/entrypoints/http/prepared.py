"""Responses whose status, headers and body the handler fixes, sent by Litestar as they are.

Litestar's ``Response`` assembles its answer anew on every request: it merges the headers of every
layer into a case-insensitive map, adds cookies and type encoders, and encodes the content with
its serializer. The routes that serve many small requests (a document's metadata, its content) set
all of that themselves, so they return a ``Prepared`` instead: two ASGI messages, built once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from litestar import Response
from litestar.exceptions import ImproperlyConfiguredException
from litestar.response.base import ASGIResponse

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.background_tasks import BackgroundTask, BackgroundTasks
    from litestar.connection import Request
    from litestar.datastructures import Cookie
    from litestar.enums import MediaType
    from litestar.types import Receive, Scope, Send, TypeEncodersMap

T = TypeVar("T")

JSON = "application/json"


class Prepared(Response[T]):
    """A ``Response`` whose body is encoded and whose ``headers`` are all it sends (values Latin-1).

    It has no cookies or background tasks, and a route returning it declares no response headers,
    cookies or tasks of its own (Litestar would pass them here to merge): they are refused rather
    than silently dropped. ``headers`` may still change until Litestar sends it.
    """

    status_code: int

    def __init__(self, content: T, *, body: bytes, headers: Mapping[str, str], status_code: int) -> None:
        # What ``Response.__init__`` sets for these arguments, without its checks of each argument's
        # type against ``typing``'s abstract classes, several microseconds a response.
        self.content = content
        self.background = None
        self.cookies = []
        self.encoding = "utf-8"
        self.headers = dict(headers)
        self.media_type = None
        self.status_code = status_code
        self.response_type_encoders = {}
        self._body = body

    def copy(self) -> Prepared[T]:
        """Another response of the same content, whose headers may change apart from these."""
        return Prepared(self.content, body=self._body, headers=self.headers, status_code=self.status_code)

    async def send(self, send: Send) -> None:
        """Send it as it is, where no Litestar route answers (see ``point_reads``)."""
        await send(self._start())  # type: ignore[arg-type]
        await send(_body(self._body))  # type: ignore[arg-type]

    def _start(self) -> dict[str, Any]:
        return {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": [
                (name.lower().encode(), str(value).encode("latin-1")) for name, value in self.headers.items()
            ],
        }

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        if background is not None or cookies or encoded_headers or headers:
            raise ImproperlyConfiguredException("a Prepared response takes no layer's headers or cookies")
        if self.cookies or self.background is not None:
            raise ImproperlyConfiguredException("a Prepared response sends no cookies and runs no tasks")
        return _Messages(self._start(), self._body)


class _Messages(ASGIResponse):
    """The two messages of a ``Prepared``; none of ``ASGIResponse``'s own state is used."""

    __slots__ = ("_body_message", "_start_message")

    def __init__(self, start: dict[str, Any], body: bytes) -> None:
        self._start_message = start
        self._body_message = _body(body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(self._start_message)  # type: ignore[arg-type]
        await send(self._body_message)  # type: ignore[arg-type]


def _body(body: bytes) -> dict[str, Any]:
    return {"type": "http.response.body", "body": body, "more_body": False}


def prepared_json(content: T, headers: Mapping[str, str]) -> Prepared[T]:
    """``content`` as JSON (msgspec, as Litestar encodes it), 200, with ``headers`` besides its own."""
    body = msgspec.json.encode(content)
    return Prepared(
        content,
        body=body,
        headers={"Content-Type": JSON, "Content-Length": str(len(body)), **headers},
        status_code=HTTPStatus.OK,
    )


def prepared_bytes(body: bytes, status_code: int, headers: Mapping[str, str]) -> Prepared[bytes]:
    """``body`` as it is, with exactly ``headers`` (Content-Type and Content-Length included)."""
    return Prepared(body, body=body, headers=headers, status_code=status_code)
