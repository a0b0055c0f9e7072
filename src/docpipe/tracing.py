"""Optional OpenTelemetry tracing, as the rest of docpipe sees it: spans, and the trace a log line is in.

Off, every call here costs next to nothing and nothing imports OpenTelemetry, which is the ``otel``
extra. On (``begin``, given the ``adapters.otel`` implementation when ``OTEL_*`` variables ask for it),
each request is a server span named by its route template (``http.observed``), each store operation a
child span at the port boundary and each processing job a span (``adapters.metered``), and log lines
carry the ``trace_id`` of the span they were written in (``entrypoints.logs``).

Attributes are chosen here and in those callers, never copied from a request: no path (a link's token
is one), no query, no header, no owner, no exception message (a store's may name its endpoint or key).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Protocol

Attributes = Mapping[str, str | int]


class Span(Protocol):
    """The span being made, as docpipe's code adds to it."""

    def set(self, key: str, value: str | int) -> None: ...

    def rename(self, name: str) -> None: ...

    def fail(self, error: BaseException | None = None) -> None:
        """Mark the span as failed, with the error's class (never its message) when there is one."""


class Tracing(Protocol):
    """What makes spans: the OpenTelemetry SDK (``adapters.otel``), or nothing."""

    def span(self, name: str, attributes: Attributes) -> AbstractContextManager[Span]:
        """A span inside the current one (or a new trace), current while the context is entered."""

    def server_span(
        self, name: str, attributes: Attributes, carrier: Mapping[str, str] | None
    ) -> AbstractContextManager[Span]:
        """A request's span, in the trace ``carrier``'s headers (``traceparent``) continue, if any."""

    def trace_id(self) -> str | None:
        """The current span's trace id in 32 hex digits, ``None`` outside one."""

    @property
    def propagated_headers(self) -> frozenset[str]:
        """The (lower-case) request headers trace context arrives in."""


class _NoSpan:
    """The span of tracing that is off: it keeps nothing."""

    def set(self, key: str, value: str | int) -> None:
        """Nothing to keep."""

    def rename(self, name: str) -> None:
        """Nothing to keep."""

    def fail(self, error: BaseException | None = None) -> None:
        """Nothing to keep."""


SPANLESS: Span = _NoSpan()
"""The span of every call made while tracing is off."""
NO_SPAN: AbstractContextManager[Span] = contextlib.nullcontext(SPANLESS)
"""Entered by every span of tracing that is off: reusable, as ``nullcontext`` is."""

_current: Tracing | None = None


def begin(tracing: Tracing) -> None:
    """Make spans with ``tracing`` from now on, in this process."""
    global _current  # noqa: PLW0603 - one tracer per process, as one metrics registry (``metrics``)
    _current = tracing


def end() -> None:
    """Make no more spans (before the SDK that made them shuts down)."""
    global _current  # noqa: PLW0603
    _current = None


def active() -> bool:
    """Whether spans are made: callers skip preparing what a span would be given when they are not."""
    return _current is not None


def propagated_headers() -> frozenset[str]:
    """The request headers trace context arrives in; none while tracing is off."""
    return frozenset() if _current is None else _current.propagated_headers


def span(name: str, attributes: Attributes) -> AbstractContextManager[Span]:
    """A span named ``name`` (never holding an id or a path) inside the current one."""
    return NO_SPAN if _current is None else _current.span(name, attributes)


def server_span(
    name: str, attributes: Attributes, carrier: Mapping[str, str] | None
) -> AbstractContextManager[Span]:
    """A request's span, continuing the trace of ``carrier`` (the headers of ``propagated_headers`` a
    trusted proxy sent) when given."""
    return NO_SPAN if _current is None else _current.server_span(name, attributes, carrier)


def trace_id() -> str | None:
    """The trace the code running is in, for its log lines; ``None`` when tracing is off or outside one."""
    return None if _current is None else _current.trace_id()
