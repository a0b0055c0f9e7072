"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from docpipe.domain.errors import StoreUnavailable
from docpipe.domain.service import DocumentService

READINESS_TIMEOUT_SECONDS = 2.0


class Health(msgspec.Struct, frozen=True, omit_defaults=True):
    status: str
    detail: str | None = None


@get("/health/live", summary="The process is up")
async def live() -> Health:
    return Health("ok")


@get(
    "/health/ready",
    summary="The blob store and the repository both answer",
    responses={503: ResponseSpec(data_container=Health, description="a store is unreachable")},
)
async def ready(service: NamedDependency[DocumentService]) -> Response[Health]:
    try:
        await asyncio.wait_for(service.check(), READINESS_TIMEOUT_SECONDS)
    except (StoreUnavailable, TimeoutError) as error:
        detail = str(error) or f"a store did not answer within {READINESS_TIMEOUT_SECONDS} s"
        return Response(
            Health("unavailable", detail),
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    return Response(Health("ok"), status_code=HTTP_200_OK)
