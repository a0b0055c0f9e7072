"""Liveness and readiness probes."""

from __future__ import annotations

import logging

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from docpipe.domain.service import DocumentService
from docpipe.entrypoints.http.authentication import PUBLIC
from docpipe.entrypoints.http.dependencies import AnyRequest
from docpipe.entrypoints.http.problems import retry_after
from docpipe.entrypoints.http.request_id import request_id

logger = logging.getLogger("docpipe.http")


class Health(msgspec.Struct, frozen=True, omit_defaults=True):
    """A probe's answer: ``ok``, or ``unavailable`` with a ``detail`` naming the stores that cannot serve."""

    status: str
    detail: str | None = None


class HealthController(Controller):
    """Probes for an orchestrator: live while the process answers, ready while both stores answer.
    Open to anyone: they tell nothing about documents or keys."""

    opt = {PUBLIC: True}  # noqa: RUF012 - Litestar's own attribute, a mutable dict by its type

    @get("/health/live", summary="The process is up")
    async def live(self) -> Health:
        return Health("ok")

    @get(
        "/health/ready",
        summary="The blob store and the repository both answer",
        responses={503: ResponseSpec(data_container=Health, description="a store cannot serve")},
    )
    async def ready(self, request: AnyRequest, service: NamedDependency[DocumentService]) -> Response[Health]:
        """503 names each store that cannot serve, by its role and in general words; the log says why."""
        failures = await service.check()
        if not failures:
            return Response(Health("ok"), status_code=HTTP_200_OK)
        for failure in failures:
            logger.warning(
                "request %s: not ready: %s: %s", request_id(request.scope), failure.detail, failure
            )
        return Response(
            Health("unavailable", "; ".join(failure.detail for failure in failures)),
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            headers=retry_after(*failures),
        )
