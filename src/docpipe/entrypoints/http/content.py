"""Streaming a document's bytes, with ranges and conditional requests as S3 and nginx serve them."""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Annotated

from litestar import Controller, Response, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream
from litestar.types import HTTPScope

from docpipe.domain.errors import InvalidInput, PreconditionFailed
from docpipe.domain.identity import Scope
from docpipe.domain.media_types import MediaType, parse_media_type
from docpipe.domain.model import Document
from docpipe.domain.service import DEFAULT_CONTENT_TYPE, DocumentService
from docpipe.domain.streams import CHUNK_SIZE
from docpipe.entrypoints.http.authentication import principal_of
from docpipe.entrypoints.http.conditional import (
    http_date,
    if_match_hits,
    if_none_match_hits,
    if_range_allows,
    modified_after,
    not_modified_since,
    strong_etag,
)
from docpipe.entrypoints.http.dependencies import AnyRequest
from docpipe.entrypoints.http.disposition import content_disposition, disposition_for
from docpipe.entrypoints.http.openapi import ContentOperation, requires
from docpipe.entrypoints.http.prepared import prepared_bytes
from docpipe.entrypoints.http.ranges import content_range, parse_range

Service = NamedDependency[DocumentService]
Disposition = Annotated[
    str | None, QueryParameter(description="`inline` for types safe to show in a browser")
]


_OPAQUE = parse_media_type(DEFAULT_CONTENT_TYPE)


HEADER_CACHE_SIZE = 1024
"""Values kept by the header helpers that content responses call every time: a stored media type
parsed, a document's representation headers. Each depends only on its arguments."""


@functools.lru_cache(maxsize=HEADER_CACHE_SIZE)
def served_media_type(stored: str) -> MediaType:
    """The stored type, parsed; ``application/octet-stream`` when it does not parse.

    Documents stored before declared types were parsed strictly may hold a list of types, or
    characters no header can carry: served as opaque bytes (so always as an attachment), they
    stay downloadable and never render.
    """
    try:
        return parse_media_type(stored)
    except InvalidInput:
        return _OPAQUE


def representation_headers(document: Document, disposition: str | None) -> dict[str, str]:
    """The headers of the document's bytes, a new map that callers may add to."""
    return dict(
        _representation(
            document.sha256, document.created_at, document.content_type, document.filename, disposition
        )
    )


@functools.lru_cache(maxsize=HEADER_CACHE_SIZE)
def _representation(
    sha256: str, created_at: datetime, content_type: str, filename: str, disposition: str | None
) -> dict[str, str]:
    """Kept for the documents read again and again: never changed, only copied."""
    digest = base64.b64encode(bytes.fromhex(sha256)).decode()
    media_type = served_media_type(content_type)
    return {
        "ETag": strong_etag(sha256),
        "Last-Modified": http_date(created_at),
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(filename, disposition_for(disposition, media_type)),
        # Set here, not as media_type: Litestar would append "; charset=utf-8" to every text/* type,
        # contradicting the charset the document was stored with.
        "Content-Type": str(media_type),
        "X-Content-Type-Options": "nosniff",
        "Repr-Digest": f"sha-256=:{digest}:",
        "Cache-Control": "private, no-cache",
    }


RequestHeader = Callable[[str], str | None]
"""A request's header by its lower-case name: the first one's value, ``None`` when it has none."""


def request_header(scope: HTTPScope) -> RequestHeader:
    """The request's headers as ``RequestHeader`` reads them, as ``Request.headers.get`` does, without
    building Litestar's case-insensitive multi-map of every header."""
    first: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        first.setdefault(name.lower(), value)

    def header(name: str) -> str | None:
        value = first.get(name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    return header


async def read_content(
    service: DocumentService,
    owner: str,
    document_id: str,
    method: str,
    header: RequestHeader,
    disposition: str | None = None,
) -> Response[bytes] | Stream:
    """``GET`` or ``HEAD /documents/{document_id}/content``, for its route and for ``point_reads``."""
    document = await service.get(owner, document_id)
    return await serve_content(method, header, service, document, disposition)


async def serve_content(
    method: str, header: RequestHeader, service: DocumentService, document: Document, disposition: str | None
) -> Response[bytes] | Stream:
    """RFC 9110 §13.2.2 order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, Range."""
    headers = representation_headers(document, disposition)
    etag = headers["ETag"]
    if_match = header("if-match")
    if_unmodified_since = header("if-unmodified-since")
    if (if_match is not None and not if_match_hits(if_match, etag)) or (
        if_match is None
        and if_unmodified_since is not None
        and modified_after(if_unmodified_since, document.created_at)
    ):
        raise PreconditionFailed("the document does not match the request's preconditions")
    if_none_match = header("if-none-match")
    if_modified_since = header("if-modified-since")
    if (if_none_match is not None and if_none_match_hits(if_none_match, etag)) or (
        if_none_match is None
        and if_modified_since is not None
        and not_modified_since(if_modified_since, document.created_at)
    ):
        return prepared_bytes(b"", HTTPStatus.NOT_MODIFIED, _without_body_headers(headers))

    byte_range = None
    if if_range_allows(header("if-range"), etag, document.created_at):
        byte_range = parse_range(header("range"), document.size)
    status = HTTPStatus.OK
    length = document.size
    if byte_range is not None:
        status = HTTPStatus.PARTIAL_CONTENT
        length = byte_range.length
        headers["Content-Range"] = content_range(byte_range, document.size)
    headers["Content-Length"] = str(length)
    if method == HttpMethod.HEAD:
        await service.check_content(document)
        return prepared_bytes(b"", status, headers)
    chunks = await service.open_content(document, byte_range)
    if length <= CHUNK_SIZE:
        # Most documents are small: one chunk goes out as a plain body, without the task group and
        # disconnect listener Litestar sets up for every streamed response.
        return prepared_bytes(b"".join([chunk async for chunk in chunks]), status, headers)
    return Stream(chunks, status_code=status, headers=headers)


def _without_body_headers(headers: dict[str, str]) -> dict[str, str]:
    """A 304 carries the validators and caching headers of the 200 it stands for (RFC 9110 §15.4.5)."""
    return {name: headers[name] for name in ("ETag", "Last-Modified", "Cache-Control")}


_content_route = functools.partial(
    route,
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    operation_class=ContentOperation,
)
"""``@route`` for a route that streams a document's bytes, with ``**_READ_CONTENT``."""
_READ_CONTENT = requires(
    Scope.READ,
    HTTPStatus.NOT_FOUND,
    HTTPStatus.PRECONDITION_FAILED,
    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
)


class ContentController(Controller):
    """A document's bytes, by id or, as in the original API, by the newest document's filename.

    GET and HEAD share one handler per path (HEAD answers with the headers GET would send). Each
    takes one dependency, the service, and reads its principal with ``principal_of`` (see
    ``CurrentPrincipal``).
    """

    @_content_route(
        "/documents/{document_id:str}/content",
        summary="Stream a document's bytes (Range, If-None-Match, If-Range supported)",
        **_READ_CONTENT,
    )
    async def document_content(
        self,
        document_id: FromPath[str],
        request: AnyRequest,
        service: Service,
        disposition: Disposition = None,
    ) -> Response[bytes] | Stream:
        owner = principal_of(request.scope).owner
        header = request_header(request.scope)
        return await read_content(service, owner, document_id, request.method, header, disposition)

    @_content_route(
        "/download/{filename:str}",
        summary="Stream the newest document with this filename (original route)",
        **_READ_CONTENT,
    )
    async def download_by_filename(
        self,
        filename: FromPath[str],
        request: AnyRequest,
        service: Service,
        disposition: Disposition = None,
    ) -> Response[bytes] | Stream:
        document = await service.newest_named(principal_of(request.scope).owner, filename)
        return await serve_content(
            request.method, request_header(request.scope), service, document, disposition
        )
