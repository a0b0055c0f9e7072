"""Log lines: JSON by default when nobody watches, text at a terminal, either on request; every line
written while serving a request carries its id."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import select
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docpipe.config import LogFormat, SettingsError, load_settings
from docpipe.entrypoints import logs
from tests.logger_state import logger_restored


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_format_is_text_at_a_terminal_and_json_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert logs.chosen(None) is LogFormat.JSON
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert logs.chosen(None) is LogFormat.TEXT
    assert logs.chosen(LogFormat.JSON) is LogFormat.JSON
    assert load_settings({"DOCPIPE_LOG_FORMAT": "text"}).log_format is LogFormat.TEXT
    with pytest.raises(SettingsError, match="log_format"):
        load_settings({"DOCPIPE_LOG_FORMAT": "xml"})


def _written(log_format: LogFormat, request: str | None) -> str:
    """What the configured handler writes for one warning with a traceback, made while serving ``request``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter({LogFormat.JSON: logs.JsonLines, LogFormat.TEXT: logs.Text}[log_format]())
    handler.addFilter(logs.WithRequestId())
    logger = logging.getLogger("docpipe.test_logs")
    logger.addHandler(handler)
    token = logs.current_request.set(request)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.warning("got %s", "it", exc_info=True)
    finally:
        logs.current_request.reset(token)
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_json_line_is_one_object_with_the_request_id_and_the_traceback() -> None:
    (line,) = _written(LogFormat.JSON, "req-1").splitlines()
    record = json.loads(line)
    assert (record["level"], record["message"]) == ("WARNING", "got it")
    assert record["request_id"] == "req-1"
    assert "ValueError: boom" in record["exception"]
    assert "request_id" not in json.loads(_written(LogFormat.JSON, None).splitlines()[0])


def test_a_text_line_names_the_level_the_logger_and_the_request() -> None:
    assert _written(LogFormat.TEXT, "req-2").startswith("WARNING docpipe.test_logs [req-2]: got it\n")
    assert _written(LogFormat.TEXT, None).startswith("WARNING docpipe.test_logs: got it\n")


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger at INFO, as ``docpipe serve`` configures it, put back as it was afterwards."""
    with logger_restored() as logger:
        logger.setLevel(logging.INFO)
        yield logger


def _access_line_both_ways(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch, log_format: LogFormat
) -> tuple[str, str]:
    """The access line ``write_access`` writes itself, docpipe's handler being the only one (as
    ``docpipe serve`` configures the log), and the line of the same access as a record."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root.handlers[:] = [logs.stderr_handler(log_format)]
    fields = {"method": "GET", "route": "/l/{token}", "status": 200, "duration_ms": 0.25}
    fields |= {"owner": None, "document_id": None}
    token = logs.current_request.set("req-3")
    try:
        with monkeypatch.context() as no_records:
            no_records.setattr(logging.Logger, "handle", _no_record)
            logs.write_access(logging.INFO, "GET /l/{token} 200 0.3 ms", fields)
        logs.access_log.info("GET /l/{token} 200 0.3 ms", extra=fields)
    finally:
        logs.current_request.reset(token)
    direct, recorded = stream.getvalue().splitlines()
    return direct, recorded


def _no_record(self: logging.Logger, record: logging.LogRecord) -> None:
    raise AssertionError("the access line went the record's way")


def test_an_access_line_written_directly_is_the_line_its_record_makes(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct, recorded = _access_line_both_ways(root, monkeypatch, LogFormat.TEXT)
    assert direct == recorded == "INFO docpipe.access [req-3]: GET /l/<token> 200 0.3 ms"
    direct, recorded = (
        json.loads(line) for line in _access_line_both_ways(root, monkeypatch, LogFormat.JSON)
    )
    assert direct.pop("time")[:16] == recorded.pop("time")[:16]
    assert list(direct.items()) == list(recorded.items())
    assert direct["message"] == "GET /l/<token> 200 0.3 ms"
    assert (direct["request_id"], direct["route"], direct["duration_ms"]) == ("req-3", "/l/{token}", 0.25)


def test_an_access_line_reaches_every_other_handler_as_a_record(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[logging.LogRecord] = []

    class Other(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    other = Other()
    monkeypatch.setattr("sys.stderr", io.StringIO())
    root.handlers[:] = [logs.stderr_handler(LogFormat.JSON), other]
    logs.write_access(logging.WARNING, "GET unmatched 500 1.0 ms", {"status": 500})
    (record,) = seen
    assert (record.name, record.levelname, record.getMessage()) == (
        "docpipe.access",
        "WARNING",
        "GET unmatched 500 1.0 ms",
    )
    assert record.status == 500  # type: ignore[attr-defined]


class _Writes(io.StringIO):
    """A stream that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def _batched(root: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> _Writes:
    """Standard error as a ``_Writes``, written by docpipe's handler as ``docpipe serve`` sets it up."""
    stream = _Writes()
    monkeypatch.setattr("sys.stderr", stream)
    root.handlers[:] = [logs.stderr_handler(LogFormat.TEXT, batched=True)]
    return stream


def _access(number: int) -> str:
    """Writes an access line; returns it as the log shows it."""
    logs.write_access(logging.INFO, f"GET /documents/{{document_id}} 200 {number}.0 ms", {"status": 200})
    return f"INFO docpipe.access: GET /documents/{{document_id}} 200 {number}.0 ms"


async def test_access_lines_are_written_together_in_whole_lines_of_at_most_pipe_buf_bytes(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write of at most PIPE_BUF bytes to a pipe is never split: the lines of several workers sharing
    standard error never mix."""
    stream = _batched(root, monkeypatch)
    lines = [_access(number) for number in range(3)]
    assert stream.getvalue() == ""
    lines += [_access(number) for number in range(3, 300)]
    root.handlers[0].flush()  # as ``logging.shutdown`` does when the process exits
    assert stream.getvalue().splitlines() == lines
    assert all(write.endswith("\n") and len(write.encode()) <= select.PIPE_BUF for write in stream.writes)
    assert len(stream.writes) <= 2 * len(stream.getvalue().encode()) // select.PIPE_BUF + 1


async def test_the_access_lines_of_a_turn_of_the_event_loop_are_written_together_at_its_end(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = _batched(root, monkeypatch)
    lines = [_access(1), _access(2)]
    assert not stream.writes
    await asyncio.sleep(0)  # the turn ends; the next one runs what it left to do
    assert stream.writes == ["".join(f"{line}\n" for line in lines)]


async def test_another_record_writes_the_waiting_access_lines_before_its_own(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = _batched(root, monkeypatch)
    first = _access(1)
    logging.getLogger("docpipe.test_logs").warning("after it")
    assert stream.getvalue().splitlines() == [first, "WARNING docpipe.test_logs: after it"]


def test_an_access_line_written_outside_an_event_loop_is_written_at_once(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = _batched(root, monkeypatch)
    line = _access(1)
    assert stream.getvalue().splitlines() == [line]


@settings(max_examples=300)
@given(st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False))
def test_a_json_line_has_the_time_of_its_record_to_the_millisecond(created: float) -> None:
    record = logging.LogRecord("docpipe.test_logs", logging.INFO, __file__, 1, "now", None, None)
    record.created = created
    line = json.loads(logs.JsonLines().format(record))
    assert line["time"] == datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def test_a_line_an_ended_event_loop_left_waiting_is_written_at_the_end_of_the_next_loops_turn(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop that stops before the end of its turn never writes what waits; the next loop does."""
    stream = _batched(root, monkeypatch)
    lines: list[str] = []
    ended = asyncio.new_event_loop()

    async def write_and_end() -> None:
        lines.append(_access(1))
        ended.stop()

    ended.run_until_complete(write_and_end())
    ended.close()
    assert not stream.writes

    async def write_later() -> list[str]:
        lines.append(_access(2))
        await asyncio.sleep(0)
        return stream.getvalue().splitlines()

    assert asyncio.run(write_later()) == lines
