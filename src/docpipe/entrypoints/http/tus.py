"""``/uploads``: resumable uploads over tus 1.0.0 (https://tus.io/protocols/resumable-upload).

Core protocol with the ``creation``, ``creation-with-upload``, ``expiration``, ``checksum`` (sha1, sha256)
and ``termination`` extensions. The tus headers are read and written here; the uploads themselves are
``ResumableUploads``'s. Every response carries ``Tus-Resumable``, errors (problem+json) included.

A request carrying ``Upload-Draft-Interop-Version: 6`` speaks the IETF draft instead, on the same routes
and uploads: ``resumable_draft`` reads and answers it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

from litestar import Controller, Response, delete, head, patch, post, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from litestar.types import ExceptionHandlersMap

from docpipe.domain.errors import MalformedInput, UnsupportedMediaType
from docpipe.domain.identity import Scope
from docpipe.domain.uploads.metadata import parse_upload_metadata
from docpipe.domain.uploads.service import CHECKSUM_ALGORITHMS, Checksum, ResumableUploads
from docpipe.domain.uploads.session import UploadSession
from docpipe.entrypoints.http import resumable_draft
from docpipe.entrypoints.http.allow import options_first
from docpipe.entrypoints.http.declared_type import declared_type
from docpipe.entrypoints.http.dependencies import AnyRequest, CurrentPrincipal
from docpipe.entrypoints.http.openapi import requires
from docpipe.entrypoints.http.problems import EXCEPTION_HANDLERS, TUS_CHECKSUM_MISMATCH
from docpipe.entrypoints.http.request_limits import UPLOAD_ROUTE
from docpipe.entrypoints.http.resumable_draft import speaks_draft
from docpipe.entrypoints.http.uploads import body_chunks

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,expiration,checksum,termination"
OFFSET_STREAM = "application/offset+octet-stream"
"""The media type of a body that carries an upload's bytes at an offset."""
_DIGITS = re.compile(r"[0-9]{1,19}")

Uploads = NamedDependency[ResumableUploads]


def _tus(headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **(headers or {})}


def _with_tus_header(handler: Callable[[AnyRequest, Any], Response[Any]]) -> Callable[..., Response[Any]]:
    def handle(request: AnyRequest, error: Any) -> Response[Any]:
        response = handler(request, error)
        if speaks_draft(request):
            return resumable_draft.refusal(request, error, response)
        response.headers.setdefault("Tus-Resumable", TUS_VERSION)
        return response

    return handle


_TUS_ERRORS: ExceptionHandlersMap = {
    kind: _with_tus_header(handler) for kind, handler in EXCEPTION_HANDLERS.items()
}


def _require_tus_resumable(request: AnyRequest) -> None:
    """412 with the versions served when a request speaks another tus version, or none (OPTIONS may), and
    is no request of the IETF draft either."""
    if request.method == HttpMethod.OPTIONS or speaks_draft(request):
        return
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise HTTPException(
            status_code=HTTPStatus.PRECONDITION_FAILED,
            detail=(
                f"this server speaks tus {TUS_VERSION} (send Tus-Resumable: {TUS_VERSION}) and the IETF "
                f"resumable uploads draft (send {resumable_draft.INTEROP_HEADER}: "
                f"{resumable_draft.INTEROP_VERSION})"
            ),
            headers={"Tus-Version": TUS_VERSION},
        )


def _number(request: AnyRequest, name: str) -> int:
    value = request.headers.get(name)
    if value is None or not _DIGITS.fullmatch(value.strip()):
        raise MalformedInput(f"{name} must be given as a non-negative integer")
    return int(value)


def _checksum(header: str | None) -> Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``; an algorithm not offered is 400."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise MalformedInput(f"Upload-Checksum algorithm must be one of {', '.join(CHECKSUM_ALGORITHMS)}")
    try:
        return Checksum(algorithm, base64.b64decode(encoded.strip(), validate=True))
    except binascii.Error:
        raise MalformedInput("Upload-Checksum digest is not base64") from None


def _carries_bytes(request: AnyRequest) -> bool:
    return declared_type(request)[0] == OFFSET_STREAM


def _state(session: UploadSession) -> dict[str, str]:
    """What every answer about an upload says: its offset, its expiry and, once complete, its document."""
    headers = {
        "Upload-Offset": str(session.offset),
        "Upload-Expires": format_datetime(session.expires_at, usegmt=True),
        "Cache-Control": "no-store",
    }
    if session.document_id is not None:
        headers["Location"] = f"/documents/{session.document_id}"
    return _tus(headers)


_upload_post = functools.partial(post, request_max_body_size=None, opt={UPLOAD_ROUTE: True})
_upload_patch = functools.partial(patch, request_max_body_size=None, opt={UPLOAD_ROUTE: True})
"""Routes receiving bytes: ``RequestLimits`` counts them and bounds their bodies' pace."""
_BYTES_PROBLEMS = (
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.NOT_FOUND,
    HTTPStatus.REQUEST_TIMEOUT,
    HTTPStatus.CONFLICT,
    HTTPStatus.GONE,
    HTTPStatus.PRECONDITION_FAILED,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    HTTPStatus.UNPROCESSABLE_ENTITY,
    HTTPStatus.NOT_IMPLEMENTED,
    HTTPStatus.INSUFFICIENT_STORAGE,
)


class UploadController(Controller):
    """Resumable uploads: create one, send its bytes in as many PATCHes as it takes, ask where it is."""

    path = "/uploads"
    before_request = staticmethod(_require_tus_resumable)
    exception_handlers = _TUS_ERRORS

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        return options_first(super().get_route_handlers())

    @route("/", http_method=[HttpMethod.OPTIONS], include_in_schema=False, name="options /uploads")
    async def discover(self, uploads: Uploads) -> Response[None]:
        """What this server offers of tus (tus's OPTIONS), besides ``Allow``."""
        return Response(
            None,
            status_code=HTTP_204_NO_CONTENT,
            headers=_tus(
                {
                    "Allow": "OPTIONS, POST",
                    "Tus-Version": TUS_VERSION,
                    "Tus-Extension": TUS_EXTENSIONS,
                    "Tus-Max-Size": str(uploads.max_bytes),
                    "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
                    "Upload-Limit": resumable_draft.limits(uploads.max_bytes),
                }
            ),
        )

    @route(
        "/{upload_id:str}",
        http_method=[HttpMethod.OPTIONS],
        include_in_schema=False,
        name="options /uploads/{upload_id:str}",
    )
    async def allow_upload(self) -> Response[None]:
        return Response(
            None,
            status_code=HTTP_204_NO_CONTENT,
            headers=_tus({"Allow": "DELETE, HEAD, OPTIONS, PATCH", "Tus-Version": TUS_VERSION}),
        )

    @_upload_post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Create a resumable upload (tus creation, creation-with-upload)",
        description=(
            "Headers: `Tus-Resumable: 1.0.0`, `Upload-Length`, optional `Upload-Metadata` (`filename` or "
            "`name`, `filetype` or `content_type`, `tags`). A body of type "
            "`application/offset+octet-stream` is the first bytes. Answers 201 with "
            "`Location: /uploads/{id}`, `Upload-Offset`, `Upload-Expires`. With "
            "`Upload-Draft-Interop-Version: 6` instead, the IETF resumable uploads draft: `Upload-Complete`, "
            "`Upload-Length`, any body is the first bytes (see README)."
        ),
        **requires(Scope.WRITE, *_BYTES_PROBLEMS, TUS_CHECKSUM_MISMATCH),
    )
    async def create(
        self, request: AnyRequest, uploads: Uploads, principal: CurrentPrincipal
    ) -> Response[None]:
        if speaks_draft(request):
            return await resumable_draft.create(request, uploads, principal.owner)
        if "upload-defer-length" in request.headers:
            raise MalformedInput("Upload-Defer-Length is not supported: send Upload-Length")
        length = _number(request, "upload-length")
        metadata = parse_upload_metadata(request.headers.get("upload-metadata"))
        checksum = _checksum(request.headers.get("upload-checksum"))
        session = await uploads.create(principal.owner, length, metadata)
        if _carries_bytes(request):
            session = await uploads.write(
                principal.owner,
                session.id,
                0,
                body_chunks(request, uploads.max_bytes, uploads.max_bytes),
                checksum,
            )
        headers = _state(session)
        headers["Location"] = f"/uploads/{session.id}"
        return Response(None, status_code=HTTP_201_CREATED, headers=headers)

    @head(
        "/{upload_id:str}",
        summary="Where a resumable upload stands",
        description=(
            "`Upload-Offset`, `Upload-Length`, `Upload-Expires`; once complete, `Location` of its document. "
            "In the IETF draft: 204 with `Upload-Offset`, `Upload-Complete`, `Upload-Length`."
        ),
        **requires(Scope.WRITE, HTTPStatus.NOT_FOUND, HTTPStatus.GONE, HTTPStatus.PRECONDITION_FAILED),
    )
    async def status(
        self, upload_id: FromPath[str], request: AnyRequest, uploads: Uploads, principal: CurrentPrincipal
    ) -> Response[None]:
        if speaks_draft(request):
            return await resumable_draft.status(request, uploads, principal.owner, upload_id)
        session = await uploads.get(principal.owner, upload_id)
        headers = _state(session)
        headers["Upload-Length"] = str(session.length)
        return Response(None, status_code=HTTPStatus.OK, headers=headers)

    @_upload_patch(
        "/{upload_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Send bytes of a resumable upload from Upload-Offset",
        description=(
            "Body of type `application/offset+octet-stream`; `Upload-Offset` must be the upload's offset "
            "(else 409), and an optional `Upload-Checksum: sha1|sha256 <base64>` is verified (460 on a "
            "mismatch, the chunk discarded). The PATCH that completes the upload commits its document and "
            "answers with `Location: /documents/{id}`. In the IETF draft: `application/partial-upload`, "
            "`Upload-Complete`, answered 201."
        ),
        **requires(Scope.WRITE, *_BYTES_PROBLEMS, TUS_CHECKSUM_MISMATCH),
    )
    async def append(
        self, upload_id: FromPath[str], request: AnyRequest, uploads: Uploads, principal: CurrentPrincipal
    ) -> Response[None]:
        if speaks_draft(request):
            return await resumable_draft.append(request, uploads, principal.owner, upload_id)
        if not _carries_bytes(request):
            raise UnsupportedMediaType(f"a PATCH carries {OFFSET_STREAM}")
        offset = _number(request, "upload-offset")
        checksum = _checksum(request.headers.get("upload-checksum"))
        chunks = body_chunks(request, uploads.max_bytes, uploads.max_bytes)
        session = await uploads.write(principal.owner, upload_id, offset, chunks, checksum)
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=_state(session))

    @delete(
        "/{upload_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Terminate a resumable upload (tus termination)",
        description="Its bytes are removed; a completed upload's document stays.",
        **requires(Scope.WRITE, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.PRECONDITION_FAILED),
    )
    async def terminate(
        self, upload_id: FromPath[str], request: AnyRequest, uploads: Uploads, principal: CurrentPrincipal
    ) -> Response[None]:
        if speaks_draft(request):
            return await resumable_draft.cancel(request, uploads, principal.owner, upload_id)
        await uploads.terminate(principal.owner, upload_id)
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=_tus())
