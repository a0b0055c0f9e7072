"""Tracing through the OpenTelemetry SDK, the ``otel`` extra: imported only when ``OTEL_*`` variables
ask for traces (see ``config._tracing``) and the extra is installed.

The SDK reads the standard variables itself: the OTLP endpoint, headers, timeout and compression
(``OTEL_EXPORTER_OTLP_*``), the sampler (``OTEL_TRACES_SAMPLER``), the batching and its bounds
(``OTEL_BSP_*``), the resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) and the propagators
(``OTEL_PROPAGATORS``, W3C trace context and baggage by default). Spans are batched and exported by the
SDK's thread, in a queue of bounded size: a collector that is down costs dropped spans, never a request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, format_trace_id

from docpipe.config import TraceExporter, TracingSettings
from docpipe.tracing import Attributes, Span

ERROR_TYPE = "error.type"
"""The semantic conventions' attribute for the class of error a span failed with."""


def _exporter(kind: TraceExporter) -> SpanExporter:
    if kind is TraceExporter.CONSOLE:
        return ConsoleSpanExporter()
    # Imported here: it brings protobuf and requests, which the console exporter needs neither of.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

    return OTLPSpanExporter()


def tracer_provider(settings: TracingSettings) -> TracerProvider:
    """The SDK's provider, exporting to ``settings.exporters``; the service is ``docpipe`` unless
    ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` name it."""
    named = Resource.create({SERVICE_NAME: "docpipe"})
    provider = TracerProvider(resource=named.merge(OTELResourceDetector().detect()))
    for kind in settings.exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(kind)))
    return provider


async def open_tracer_provider(settings: TracingSettings) -> AsyncIterator[TracerProvider]:
    """The provider, shut down on close: the spans still queued are exported first (in a thread, the
    exporter being blocking, within its own timeout)."""
    provider = tracer_provider(settings)
    try:
        yield provider
    finally:
        await asyncio.to_thread(provider.shutdown)


class _SdkSpan:
    """A ``tracing.Span`` over the SDK's span."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set(self, key: str, value: str | int) -> None:
        self._span.set_attribute(key, value)

    def rename(self, name: str) -> None:
        self._span.update_name(name)

    def fail(self, error: BaseException | None = None) -> None:
        self._span.set_status(Status(StatusCode.ERROR))
        if error is not None:
            self._span.set_attribute(ERROR_TYPE, type(error).__name__)


class OtelTracing:
    """``tracing.Tracing`` with the SDK's tracer. Exceptions are not recorded as events and a span's
    status never holds a message: either could carry what spans must not (see ``tracing``); callers
    mark failures with ``Span.fail``."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self._tracer = provider.get_tracer("docpipe")
        self._propagated = frozenset(field.lower() for field in propagate.get_global_textmap().fields)

    @property
    def propagated_headers(self) -> frozenset[str]:
        return self._propagated

    def span(self, name: str, attributes: Attributes) -> contextlib.AbstractContextManager[Span]:
        return self._started(name, SpanKind.INTERNAL, attributes, None)

    def server_span(
        self, name: str, attributes: Attributes, carrier: Mapping[str, str] | None
    ) -> contextlib.AbstractContextManager[Span]:
        parent = None if carrier is None else propagate.extract(carrier)
        return self._started(name, SpanKind.SERVER, attributes, parent)

    @contextlib.contextmanager
    def _started(
        self, name: str, kind: SpanKind, attributes: Attributes, parent: Context | None
    ) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield _SdkSpan(span)

    def trace_id(self) -> str | None:
        context = trace.get_current_span().get_span_context()
        return format_trace_id(context.trace_id) if context.is_valid else None
