"""Log lines: JSON by default when nobody watches, text at a terminal, either on request; every line
written while serving a request carries its id."""

from __future__ import annotations

import io
import json
import logging

import pytest

from docpipe.config import LogFormat, SettingsError, load_settings
from docpipe.entrypoints import logs


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
