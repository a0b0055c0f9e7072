"""Tracing is asked for through the standard OTEL_* variables, exports to an OTLP collector over HTTP as
the README shows, and docpipe starts and serves without the ``otel`` extra."""

from __future__ import annotations

import ast
import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import docpipe
from docpipe import container, tracing
from docpipe.adapters import otel
from docpipe.config import SettingsError, TraceExporter, TracingSettings, load_settings
from tests.adapters_under_test import settings_for
from tests.http.helpers import serve


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "console, OTLP,console"}, ("console", "otlp")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, None),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            ("otlp",),
        ),
        ({"OTEL_SERVICE_NAME": "docs", "OTEL_TRACES_SAMPLER": "always_off"}, None),
    ],
)
def test_tracing_is_on_when_an_exporter_or_an_otlp_endpoint_is_named(
    environ: dict[str, str], exporters: tuple[str, ...] | None
) -> None:
    tracing_settings = load_settings(environ).tracing
    assert (None if tracing_settings is None else tracing_settings.exporters) == exporters


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "jaeger"),
        ({"OTEL_TRACES_EXPORTER": "otlp,zipkin"}, "zipkin"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "http/json"),
    ],
)
def test_an_exporter_or_protocol_docpipe_lacks_stops_start_up(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that keeps what it is sent."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_spans_reach_an_otlp_collector_named_by_the_standard_variables(
    collector: tuple[str, list[tuple[str, bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    provider = otel.tracer_provider(TracingSettings(exporters=(TraceExporter.OTLP,)))
    tracing.begin(otel.OtelTracing(provider))
    try:
        with tracing.span("sqlite get", {"docpipe.store.operation": "get"}):
            assert tracing.trace_id() is not None
    finally:
        tracing.end()
        provider.shutdown()  # exports what is queued

    assert [path for path, _ in received] == ["/v1/traces"]
    request = ExportTraceServiceRequest.FromString(received[0][1])
    (resource_spans,) = request.resource_spans
    resource = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
    assert (resource["service.name"], resource["deployment.environment"]) == ("docpipe", "test")
    assert [span.name for scope in resource_spans.scope_spans for span in scope.spans] == ["sqlite get"]


def test_the_service_name_is_the_operators_when_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "docs-eu")
    provider = otel.tracer_provider(TracingSettings(exporters=()))
    assert provider.resource.attributes["service.name"] == "docs-eu"


def _run_time_imports(module: ast.Module) -> Iterator[str]:
    """The modules a module imports when it runs (``TYPE_CHECKING`` blocks left out)."""
    for node in ast.walk(module):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            yield node.module


def test_only_the_otel_adapter_imports_opentelemetry() -> None:
    """So docpipe imports, starts and serves without the extra (``make run`` does not install it)."""
    source = Path(docpipe.__file__).parent
    texts = {path: path.read_text() for path in source.rglob("*.py")}
    importing = {
        str(path.relative_to(source))
        for path, text in texts.items()
        if "opentelemetry" in text
        and any(name.split(".")[0] == "opentelemetry" for name in _run_time_imports(ast.parse(text)))
    }
    assert importing == {"adapters/otel.py"}


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_traces_asked_for_without_the_extra_are_a_warning_and_docpipe_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warning is read on the container's logger: the app's start configures the root logger."""
    settings = msgspec.structs.replace(
        settings_for(data_dir=tmp_path / "data"), tracing=TracingSettings(exporters=(TraceExporter.OTLP,))
    )
    for name in ("opentelemetry", "opentelemetry.sdk"):  # as if they were not installed
        monkeypatch.setitem(sys.modules, name, None)
    kept = _Kept()
    logging.getLogger(container.__name__).addHandler(kept)
    try:
        async with serve(settings) as client:
            assert (await client.get("/health/live")).status_code == 200
            assert tracing.propagated_headers() == frozenset()  # tracing is off
    finally:
        logging.getLogger(container.__name__).removeHandler(kept)
    warned = [record for record in kept.records if "otel extra is not installed" in record.getMessage()]
    assert [record.levelname for record in warned] == ["WARNING"]
