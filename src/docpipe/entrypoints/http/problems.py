"""Every error becomes RFC 9457 problem+json: the one table mapping domain errors to HTTP statuses."""

from __future__ import annotations

import logging
from http import HTTPStatus

import msgspec
from litestar import Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from docpipe import metrics
from docpipe.domain import errors
from docpipe.entrypoints.http.authentication import bearer_credential
from docpipe.entrypoints.http.dependencies import AnyRequest
from docpipe.entrypoints.http.link_paths import redacted
from docpipe.entrypoints.http.refusals import note_refusal
from docpipe.entrypoints.http.request_id import request_id

logger = logging.getLogger("docpipe.http")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 5
"""How long a client is asked to wait before retrying a 503 (or a 404 for text not extracted yet)."""
_SERVER_FAILED = "the server failed to complete the request"
TUS_CHECKSUM_MISMATCH = 460
"""tus's status for a PATCH body that fails its ``Upload-Checksum`` (checksum extension)."""
_PHRASES = {TUS_CHECKSUM_MISMATCH: "Checksum Mismatch"}
"""Reason phrases of the statuses ``HTTPStatus`` does not know."""

STATUS_OF: dict[type[errors.DocpipeError], int] = {
    errors.Unauthenticated: HTTPStatus.UNAUTHORIZED,
    errors.MissingScope: HTTPStatus.FORBIDDEN,
    errors.KeyNotFound: HTTPStatus.NOT_FOUND,
    errors.DocumentNotFound: HTTPStatus.NOT_FOUND,
    errors.BlobNotFound: HTTPStatus.NOT_FOUND,
    errors.InvalidInput: HTTPStatus.UNPROCESSABLE_ENTITY,
    errors.MalformedInput: HTTPStatus.BAD_REQUEST,
    errors.UploadTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    errors.PreconditionFailed: HTTPStatus.PRECONDITION_FAILED,
    errors.ConcurrentUpdate: HTTPStatus.CONFLICT,
    errors.DuplicateDocument: HTTPStatus.CONFLICT,
    errors.IdempotencyKeyInUse: HTTPStatus.CONFLICT,
    errors.IdempotencyKeyReused: HTTPStatus.UNPROCESSABLE_ENTITY,
    errors.UploadGone: HTTPStatus.GONE,
    errors.BadLinkToken: HTTPStatus.FORBIDDEN,
    errors.LinkGone: HTTPStatus.GONE,
    errors.RangeNotSatisfiable: HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
    errors.StoreUnavailable: HTTPStatus.SERVICE_UNAVAILABLE,
    errors.StoreMissing: HTTPStatus.SERVICE_UNAVAILABLE,
    errors.StorageFull: HTTPStatus.INSUFFICIENT_STORAGE,
    errors.UnsupportedMediaType: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    errors.UploadNotFound: HTTPStatus.NOT_FOUND,
    errors.UploadExpired: HTTPStatus.GONE,
    errors.UploadBusy: HTTPStatus.CONFLICT,
    errors.OffsetMismatch: HTTPStatus.CONFLICT,
    errors.UploadComplete: HTTPStatus.CONFLICT,
    errors.UploadChecksumMismatch: TUS_CHECKSUM_MISMATCH,
    errors.NotConfigured: HTTPStatus.NOT_IMPLEMENTED,
    errors.TextNotExtracted: HTTPStatus.NOT_FOUND,
}


class Problem(msgspec.Struct, frozen=True):
    """RFC 9457 problem details, with the request id as an extension member."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str


def phrase(status: int) -> str:
    return _PHRASES.get(status) or HTTPStatus(status).phrase


def problem_json(status: int, detail: str, request: str) -> bytes:
    """The body of a problem response; ``request`` is the request id."""
    return msgspec.json.encode(
        Problem(type="about:blank", title=phrase(status), status=status, detail=detail, request_id=request)
    )


def problem_response(
    request: AnyRequest, status: int, detail: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(
        problem_json(status, detail, request_id(request.scope)),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def status_of(error: errors.DocpipeError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return HTTPStatus.INTERNAL_SERVER_ERROR


def retry_later() -> dict[str, str]:
    """The header of every answer that asks the client to retry: a new map, so callers may add to it."""
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


def retry_after(*failures: errors.DocpipeError) -> dict[str, str]:
    """``Retry-After`` when a retry may succeed: a store unavailable for now (not one full or missing),
    text not extracted yet."""
    if any(isinstance(failure, errors.StoreUnavailable | errors.TextPending) for failure in failures):
        return retry_later()
    return {}


def _bearer_challenge(request: AnyRequest) -> str:
    """``WWW-Authenticate`` of a 401 (RFC 6750 §3): ``invalid_token`` when a bearer credential was sent,
    no error code when none was (no header, or another scheme)."""
    if bearer_credential(request.scope) is None:
        return "Bearer"
    return 'Bearer error="invalid_token"'


def _domain_error(request: AnyRequest, error: errors.DocpipeError) -> Response[bytes]:
    """The client learns what kind of failure it was (a store's role, never its endpoint, bucket or
    keys); the log line, under the same request id, holds the store's own account."""
    status = status_of(error)
    headers = retry_after(error)
    rid = request_id(request.scope)
    note_refusal(request.scope, metrics.error_label(error))
    if isinstance(error, errors.RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{error.size}"
    if isinstance(error, errors.Unauthenticated):
        headers["WWW-Authenticate"] = _bearer_challenge(request)
    if isinstance(error, errors.IncompleteBody):
        logger.info("request %s: upload abandoned by the client: %s", rid, error)
    if isinstance(error, errors.StoreFailure):
        level = logging.WARNING if isinstance(error, errors.StoreUnavailable) else logging.ERROR
        logger.log(level, "request %s: %s: %s", rid, error.detail, error)
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        logger.error("request %s failed: %s", rid, error)
        return problem_response(request, status, _SERVER_FAILED)
    if isinstance(error, errors.UploadTooLarge):
        headers["Connection"] = "close"
    return problem_response(request, status, error.detail, headers)


def _http_error(request: AnyRequest, error: HTTPException) -> Response[bytes]:
    status = HTTPStatus(error.status_code)
    detail = error.detail if isinstance(error.detail, str) and error.detail else status.phrase
    extra = getattr(error, "extra", None)
    if status == HTTPStatus.BAD_REQUEST and isinstance(extra, list) and extra:
        detail = f"{detail}: " + "; ".join(
            f"{item.get('key', '')} {item.get('message', '')}".strip()
            for item in extra
            if isinstance(item, dict)
        )
    # A 503 here is the server at one of its limits (uploads in progress): busy, not broken, and
    # logged where the request was refused; the client needs its detail to know to retry.
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR and status != HTTPStatus.SERVICE_UNAVAILABLE:
        logger.error("request %s failed: %s", request_id(request.scope), detail)
        detail = _SERVER_FAILED
    return problem_response(request, status, detail, dict(error.headers or {}))


def _unexpected_error(request: AnyRequest, error: Exception) -> Response[bytes]:
    logger.exception(
        "request %s: unhandled error on %s %s",
        request_id(request.scope),
        request.method,
        redacted(request.url.path),
        exc_info=error,
    )
    return problem_response(request, HTTPStatus.INTERNAL_SERVER_ERROR, _SERVER_FAILED)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    errors.DocpipeError: _domain_error,
    HTTPException: _http_error,
    Exception: _unexpected_error,
}
