"""``GET /metrics``: what ``docpipe.metrics`` holds, for a Prometheus server holding a ``metrics`` key."""

from __future__ import annotations

from litestar import Controller, Response, get

from docpipe import metrics
from docpipe.domain.identity import Scope
from docpipe.entrypoints.http.openapi import MetricsOperation, requires


class MetricsController(Controller):
    """Metrics need a key with the ``metrics`` scope: they tell who uses the service how much, and a
    scrape should not hold a key that reaches documents or other keys."""

    @get(
        "/metrics",
        summary="Prometheus metrics of every server process",
        operation_class=MetricsOperation,
        **requires(Scope.METRICS),
    )
    async def metrics(self) -> Response[bytes]:
        return Response(metrics.exposition(), media_type=metrics.MEDIA_TYPE)  # Litestar adds the charset
