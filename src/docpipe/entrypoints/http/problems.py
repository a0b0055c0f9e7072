"""Every error becomes RFC 9457 problem+json: the one table mapping domain errors to HTTP statuses."""

from __future__ import annotations

import logging
from http import HTTPStatus

import msgspec
from litestar import Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from docpipe.domain import errors
from docpipe.entrypoints.http.dependencies import AnyRequest

logger = logging.getLogger("docpipe.http")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 5

STATUS_OF: dict[type[errors.DocpipeError], HTTPStatus] = {
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
    errors.RangeNotSatisfiable: HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
    errors.StoreUnavailable: HTTPStatus.SERVICE_UNAVAILABLE,
    errors.UnsupportedMediaType: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
}


class Problem(msgspec.Struct, frozen=True):
    type: str
    title: str
    status: int
    detail: str


def problem_json(status: HTTPStatus, detail: str) -> bytes:
    return msgspec.json.encode(Problem(type="about:blank", title=status.phrase, status=status, detail=detail))


def problem_response(
    status: HTTPStatus, detail: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(
        problem_json(status, detail), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def status_of(error: errors.DocpipeError) -> HTTPStatus:
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return HTTPStatus.INTERNAL_SERVER_ERROR


def _domain_error(_: AnyRequest, error: errors.DocpipeError) -> Response[bytes]:
    status = status_of(error)
    headers: dict[str, str] = {}
    if isinstance(error, errors.RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{error.size}"
    if isinstance(error, errors.IncompleteBody):
        logger.info("upload abandoned by the client: %s", error)
    if isinstance(error, errors.StoreUnavailable):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        logger.warning("backing store unavailable: %s", error)
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        logger.error("request failed: %s", error)
        return problem_response(status, "the server failed to complete the request")
    if isinstance(error, errors.UploadTooLarge):
        headers["Connection"] = "close"
    return problem_response(status, str(error), headers)


def _http_error(_: AnyRequest, error: HTTPException) -> Response[bytes]:
    status = HTTPStatus(error.status_code)
    detail = error.detail if isinstance(error.detail, str) and error.detail else status.phrase
    extra = getattr(error, "extra", None)
    if status == HTTPStatus.BAD_REQUEST and isinstance(extra, list) and extra:
        detail = f"{detail}: " + "; ".join(
            f"{item.get('key', '')} {item.get('message', '')}".strip()
            for item in extra
            if isinstance(item, dict)
        )
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        logger.error("request failed: %s", detail)
        detail = "the server failed to complete the request"
    return problem_response(status, detail, dict(error.headers or {}))


def _unexpected_error(request: AnyRequest, error: Exception) -> Response[bytes]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem_response(HTTPStatus.INTERNAL_SERVER_ERROR, "the server failed to complete the request")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    errors.DocpipeError: _domain_error,
    HTTPException: _http_error,
    Exception: _unexpected_error,
}
