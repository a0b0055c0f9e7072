"""OpenAPI descriptions Litestar cannot infer from handler signatures: binary bodies, problems, access."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from litestar.enums import ParamType
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIType

from docpipe.domain.idempotency import MAX_KEY_LENGTH
from docpipe.domain.identity import Scope
from docpipe.entrypoints.http.authentication import REQUIRED_SCOPES
from docpipe.entrypoints.http.problems import PROBLEM_JSON, Problem, phrase
from docpipe.metrics import MEDIA_TYPE as METRICS_MEDIA_TYPE

_BEARER = "bearer"
SECURITY_COMPONENTS = Components(
    security_schemes={
        _BEARER: SecurityScheme(
            type="http",
            scheme="bearer",
            description=(
                "An API key (`dp_…`), or an OIDC access token where configured. Each operation lists the "
                "scope it needs: read, write, delete, share, admin or metrics."
            ),
        )
    }
)

_BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
_FORM = Schema(
    type=OpenAPIType.OBJECT,
    required=["file"],
    properties={
        "file": _BINARY,
        "tags": Schema(type=OpenAPIType.STRING, description="comma-separated tags"),
        "metadata": Schema(type=OpenAPIType.STRING, description="a JSON object of string values"),
    },
)


@dataclass
class UploadOperation(Operation):
    """Upload routes read the body as a stream, so its two accepted shapes are declared here."""

    def __post_init__(self) -> None:
        self.parameters = [
            *(self.parameters or []),
            Parameter(
                name="Idempotency-Key",
                param_in=ParamType.HEADER,
                required=False,
                schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=MAX_KEY_LENGTH),
                description=(
                    "1 to 255 printable ASCII characters, bare or as a quoted string. A retry with the "
                    "same key within 24 hours gets the document the first attempt created (201); the "
                    "same key with other content 422, while the first attempt is in flight 409, once "
                    "its document was deleted 410."
                ),
            ),
        ]
        self.request_body = RequestBody(
            required=True,
            content={
                "multipart/form-data": OpenAPIMediaType(schema=_FORM),
                "application/octet-stream": OpenAPIMediaType(schema=_BINARY),
                "*/*": OpenAPIMediaType(schema=_BINARY),
            },
        )


def _header(description: str) -> OpenAPIHeader:
    return OpenAPIHeader(description=description, schema=Schema(type=OpenAPIType.STRING))


_CONTENT_HEADERS: dict[str, OpenAPIHeader | Reference] = {
    "ETag": _header('strong validator "<sha256>"'),
    "Last-Modified": _header("upload time"),
    "Accept-Ranges": _header("bytes"),
    "Content-Disposition": _header("attachment or inline, with filename and filename*"),
    "Repr-Digest": _header("sha-256 of the whole document (RFC 9530)"),
}


_RANGE = "bytes=a-b, a- or -n"


@dataclass
class ContentOperation(Operation):
    """Content routes stream bytes: 200 whole, 206 one range, 304 not modified.

    The handlers read ``Range`` from the request themselves, so it is declared here: as a handler
    parameter, it would make Litestar build a map of every header on every request.
    """

    def __post_init__(self) -> None:
        self.parameters = [
            *(self.parameters or []),
            Parameter(
                name="Range",
                param_in=ParamType.HEADER,
                required=False,
                deprecated=False,
                description=_RANGE,
                schema=Schema(
                    description=_RANGE,
                    one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)],
                ),
            ),
        ]
        binary = {"*/*": OpenAPIMediaType(schema=_BINARY)}
        self.responses = {
            **(self.responses or {}),
            "200": OpenAPIResponse(
                description="the whole document", content=binary, headers=_CONTENT_HEADERS
            ),
            "206": OpenAPIResponse(
                description="the requested byte range",
                content=binary,
                headers={**_CONTENT_HEADERS, "Content-Range": _header("bytes start-end/size")},
            ),
            "304": OpenAPIResponse(description="not modified (If-None-Match / If-Modified-Since)"),
        }


@dataclass
class TextOperation(Operation):
    """``GET /documents/{id}/text`` streams UTF-8 text."""

    def __post_init__(self) -> None:
        text = {"text/plain; charset=utf-8": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))}
        self.responses = {
            **(self.responses or {}),
            "200": OpenAPIResponse(description="the text extracted from the document", content=text),
        }


@dataclass
class MetricsOperation(Operation):
    """``GET /metrics`` answers in Prometheus's text format."""

    def __post_init__(self) -> None:
        text = {
            f"{METRICS_MEDIA_TYPE}; charset=utf-8": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
        }
        self.responses = {
            **(self.responses or {}),
            "200": OpenAPIResponse(description="every metric, in Prometheus's text format", content=text),
        }


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """problem+json responses a route may give, besides 400 (malformed request) and 503 (a store is down)."""
    return {
        int(status): ResponseSpec(data_container=Problem, media_type=PROBLEM_JSON, description=phrase(status))
        for status in (HTTPStatus.BAD_REQUEST, HTTPStatus.SERVICE_UNAVAILABLE, *sorted(statuses))
    }


def requires(scopes: Scope | tuple[Scope, ...], *statuses: HTTPStatus | int) -> dict[str, Any]:
    """The keyword arguments of a route that needs ``scopes`` (one, or all of several), for
    ``@get(..., **requires(...))``: the mark ``Authentication`` checks (Litestar puts unknown keywords in
    ``opt``), the security requirement, and the route's problems: ``statuses``, 401 and 403, besides
    those of ``problems``."""
    needed = (scopes,) if isinstance(scopes, Scope) else scopes
    ordered = tuple(scope for scope in Scope if scope in needed)
    return {
        REQUIRED_SCOPES: ordered,
        "security": [{_BEARER: [scope.value for scope in ordered]}],
        "responses": problems(HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN, *statuses),
    }
