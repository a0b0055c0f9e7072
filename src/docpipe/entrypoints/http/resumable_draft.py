"""``/uploads`` in the IETF draft "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload-05,
interop version 6), as tus-js-client speaks it with ``protocol: 'ietf-draft-05'``.

A request carrying ``Upload-Draft-Interop-Version: 6`` is read and answered here, over the same
``ResumableUploads`` (sessions, bytes, completion) as tus. What differs on the wire: ``Upload-Complete``
says whether a request's content ends the upload; a creation may carry the first bytes, of any type (its
``Content-Type`` and ``Content-Disposition`` describe the file, as ``Upload-Metadata`` does); an append is
``application/partial-upload``; creation and append answer 201, offset retrieval and cancellation 204,
with ``Upload-Complete`` and ``Upload-Limit``; ``Content-Digest`` (sha-256) checks a request's content.

The storage fixes an upload's length when it begins, so the length must be known at creation
(``Upload-Length``, or ``Content-Length`` with ``Upload-Complete: ?1``); an upload of unknown length is
refused. As with tus, an upload completes when its bytes reach that length, and ``Upload-Complete`` must
agree. No ``104 (Upload Resumption Supported)`` is sent (ASGI has no interim responses): the creation's
201 gives the upload's URL.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from http import HTTPStatus

from litestar import Response

from docpipe.domain import errors
from docpipe.domain.errors import MalformedInput, UnsupportedMediaType
from docpipe.domain.model import utc_now
from docpipe.domain.uploads.metadata import parse_upload_metadata
from docpipe.domain.uploads.service import Checksum, ResumableUploads
from docpipe.domain.uploads.session import UploadSession, check_final
from docpipe.entrypoints.http.declared_type import declared_type
from docpipe.entrypoints.http.dependencies import AnyRequest
from docpipe.entrypoints.http.problems import problem_response
from docpipe.entrypoints.http.uploads import body_chunks, filename_from_disposition, parse_content_digest

INTEROP_VERSION = "6"
INTEROP_HEADER = "Upload-Draft-Interop-Version"
PARTIAL_UPLOAD = "application/partial-upload"
"""The media type of an append's content (the draft's patch document)."""
_SF_INTEGER = re.compile(r"[0-9]{1,15}")
"""A non-negative Structured Field Integer (RFC 8941: at most 15 digits)."""
_SF_BOOLEANS = {"?1": True, "?0": False}


def speaks_draft(request: AnyRequest) -> bool:
    return request.headers.get(INTEROP_HEADER, "").strip() == INTEROP_VERSION


def limits(max_bytes: int) -> str:
    """``Upload-Limit`` of ``OPTIONS /uploads``: what any upload may be."""
    return f"max-size={max_bytes}, min-size=1"


async def create(request: AnyRequest, uploads: ResumableUploads, owner: str) -> Response[None]:
    """Upload creation: a new upload, and the first bytes if the request carries any."""
    _refuse_fields(request, "upload-offset")
    final = _boolean(request, "upload-complete")
    size = _content_size(request)
    length = _creation_length(request, final, size)
    check_final(final, 0, size, length)
    session = await uploads.create(owner, length, _description(request))
    if size != 0:
        session = await uploads.write(
            owner, session.id, 0, _content(request, uploads), _digest(request), final=final, size=size
        )
    headers = _state(session)
    headers["Location"] = f"/uploads/{session.id}"
    return Response(None, status_code=HTTPStatus.CREATED, headers=headers)


async def status(
    request: AnyRequest, uploads: ResumableUploads, owner: str, upload_id: str
) -> Response[None]:
    """Offset retrieval."""
    _refuse_fields(request, "upload-offset", "upload-complete", "upload-length")
    session = await uploads.get(owner, upload_id)
    return Response(None, status_code=HTTPStatus.NO_CONTENT, headers=_state(session))


async def append(
    request: AnyRequest, uploads: ResumableUploads, owner: str, upload_id: str
) -> Response[None]:
    """Upload append: the content at ``Upload-Offset``."""
    if declared_type(request)[0] != PARTIAL_UPLOAD:
        raise UnsupportedMediaType(f"an upload append carries {PARTIAL_UPLOAD}")
    offset = _integer(request, "upload-offset")
    final = _boolean(request, "upload-complete")
    session = await uploads.write(
        owner,
        upload_id,
        offset,
        _content(request, uploads),
        _digest(request),
        final=final,
        size=_content_size(request),
    )
    return Response(None, status_code=HTTPStatus.CREATED, headers=_state(session))


async def cancel(
    request: AnyRequest, uploads: ResumableUploads, owner: str, upload_id: str
) -> Response[None]:
    """Upload cancellation."""
    _refuse_fields(request, "upload-offset", "upload-complete")
    await uploads.terminate(owner, upload_id)
    return Response(None, status_code=HTTPStatus.NO_CONTENT, headers={INTEROP_HEADER: INTEROP_VERSION})


def refusal(request: AnyRequest, error: Exception, response: Response[bytes]) -> Response[bytes]:
    """A problem response of the shared handlers, in the draft's terms: its statuses where they differ
    from tus's, and the upload's offset with an offset mismatch (the draft requires it)."""
    if isinstance(error, errors.DocpipeError) and _refused_otherwise(request, error):
        response = problem_response(request, HTTPStatus.BAD_REQUEST, error.detail, dict(response.headers))
    if isinstance(error, errors.OffsetMismatch):
        response.headers["Upload-Offset"] = str(error.current)
    response.headers[INTEROP_HEADER] = INTEROP_VERSION
    return response


def _refused_otherwise(request: AnyRequest, error: errors.DocpipeError) -> bool:
    """Whether the draft answers 400 where tus answers otherwise: a write to a complete upload (409),
    content that fails its digest (460), an append past the upload's length (413)."""
    return isinstance(error, errors.UploadComplete | errors.UploadChecksumMismatch) or (
        isinstance(error, errors.UploadTooLarge) and request.method == "PATCH"
    )


def _state(session: UploadSession) -> dict[str, str]:
    """What every answer about an upload says; once complete, where its document is."""
    remaining = max(0, int((session.expires_at - utc_now()).total_seconds()))
    headers = {
        INTEROP_HEADER: INTEROP_VERSION,
        "Upload-Offset": str(session.offset),
        "Upload-Complete": "?1" if session.complete else "?0",
        "Upload-Length": str(session.length),
        "Upload-Limit": f"max-size={session.length}, expires={remaining}",
        "Cache-Control": "no-store",
    }
    if session.document_id is not None:
        headers["Location"] = headers["Content-Location"] = f"/documents/{session.document_id}"
    return headers


def _description(request: AnyRequest) -> dict[str, str]:
    """The file as ``Upload-Metadata`` pairs: those sent (tus-js-client sends them), overridden by the
    draft's own representation metadata, ``Content-Disposition`` and ``Content-Type`` (unless that is
    the media type of an append, which tus-js-client also sends on a creation)."""
    pairs = parse_upload_metadata(request.headers.get("upload-metadata"))
    if filename := filename_from_disposition(request.headers.get("content-disposition")):
        pairs["filename"] = filename
    media_type = declared_type(request)[0]
    if media_type and media_type != PARTIAL_UPLOAD:
        pairs["filetype"] = request.headers["content-type"]
    return pairs


def _creation_length(request: AnyRequest, final: bool, size: int | None) -> int:
    declared = _optional_integer(request, "upload-length")
    implied = size if final else None
    if declared is not None and implied is not None and declared != implied:
        raise MalformedInput(f"Upload-Length is {declared}, but the whole content is {implied} bytes")
    length = declared if declared is not None else implied
    if length is None:
        raise MalformedInput(
            "an upload of unknown length is not supported: send Upload-Length "
            "(or the whole content with Upload-Complete: ?1)"
        )
    return length


def _content(request: AnyRequest, uploads: ResumableUploads) -> AsyncIterator[bytes]:
    return body_chunks(request, uploads.max_bytes, uploads.max_bytes)


def _content_size(request: AnyRequest) -> int | None:
    """The content's declared length; none when it is chunked, 0 when the request has no content."""
    if "content-length" in request.headers:
        return _integer(request, "content-length")
    return None if "transfer-encoding" in request.headers else 0


def _digest(request: AnyRequest) -> Checksum | None:
    """A ``Content-Digest`` sha-256 of the request's content (RFC 9530), checked as tus's checksum is."""
    sha256 = parse_content_digest(request.headers.get("content-digest"))
    return None if sha256 is None else Checksum("sha256", bytes.fromhex(sha256))


def _refuse_fields(request: AnyRequest, *names: str) -> None:
    if sent := [name for name in names if name in request.headers]:
        raise MalformedInput(f"this request may not carry {', '.join(sent)}")


def _boolean(request: AnyRequest, name: str) -> bool:
    value = request.headers.get(name, "").partition(";")[0].strip()
    if value not in _SF_BOOLEANS:
        raise MalformedInput(f"{name} must be ?1 or ?0")
    return _SF_BOOLEANS[value]


def _integer(request: AnyRequest, name: str) -> int:
    value = _optional_integer(request, name)
    if value is None:
        raise MalformedInput(f"{name} must be given as a non-negative integer")
    return value


def _optional_integer(request: AnyRequest, name: str) -> int | None:
    value = request.headers.get(name)
    if value is None:
        return None
    if not _SF_INTEGER.fullmatch(value.strip()):
        raise MalformedInput(f"{name} must be a non-negative integer")
    return int(value)
