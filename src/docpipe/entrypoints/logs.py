"""How docpipe's processes write their log: one JSON object per line, or text for a person at a terminal.

Every line is a record of the ``logging`` module, docpipe's, uvicorn's and the libraries' alike, written
to standard error by one handler. A line written while a request is served carries its request id
(``request_id``) and, when tracing is on, a line written in a span its trace's id (``trace_id``). The
access log (logger ``docpipe.access``, one line per request, see ``http.observed``) adds its method,
route template, status, duration, owner and document id. No line holds a path's link token (see
``link_paths``); the access log never holds a path or a query at all.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

from docpipe import tracing
from docpipe.config import LogFormat
from docpipe.entrypoints.http.link_paths import RedactLinkTokens

ACCESS_LOGGER = "docpipe.access"
ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "owner", "document_id")
"""What an access line adds to a record (as ``extra``), each when known."""

current_request: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
"""The id of the request being served by the task that logs, if any (set by ``http.observed``)."""


class WithRequestId(logging.Filter):
    """Gives each record the id of the request being served when it was made (``None`` outside one),
    and the id of the trace it was made in (``None`` when tracing is off or outside a span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request.get()
        if getattr(record, "trace_id", None) is None:
            record.trace_id = tracing.trace_id()
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``request_id``, ``trace_id`` and the access fields when set, ``exception`` with a traceback when
    there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("request_id", "trace_id", *ACCESS_FIELDS):
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


class Text(logging.Formatter):
    """``LEVEL logger: message``, with the request id after the logger when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        request = getattr(record, "request_id", None)
        prefix = f"{record.levelname} {record.name}" + (f" [{request}]" if request else "")
        text = f"{prefix}: {record.getMessage()}"
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text


def chosen(log_format: LogFormat | None) -> LogFormat:
    """The format a setting stands for: unset, text on a terminal and JSON otherwise."""
    if log_format is not None:
        return log_format
    return LogFormat.TEXT if sys.stderr.isatty() else LogFormat.JSON


class _DocpipeHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler docpipe writes its log with, a class of its own so that ``configure`` finds it again.
    It writes to ``sys.stderr`` as it is at each line, as ``print`` does: one who replaced it (a test
    capturing a command's output) gets the lines, and none goes to a stream closed since."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        """``StreamHandler.__init__`` sets a stream: the one of the moment is used instead."""


def _lean_records() -> None:
    """Records without what no docpipe line shows: the thread, the process and the caller's file and
    line, which cost a record (one per request, the access line) a frame walk and several lookups.
    The switches are the logging module's own, documented in its HOWTO under "Optimization"."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None


def stderr_handler(log_format: LogFormat | None) -> logging.Handler:
    """The one handler: to standard error, in ``log_format``, with request ids and without link tokens."""
    _lean_records()
    handler = _DocpipeHandler()
    handler.setFormatter(JsonLines() if chosen(log_format) is LogFormat.JSON else Text())
    handler.addFilter(WithRequestId())
    handler.addFilter(RedactLinkTokens())
    return handler


def logging_config(log_format: LogFormat | None) -> dict[str, Any]:
    """uvicorn's ``log_config``: every logger through docpipe's handler, uvicorn's included (whose own
    handlers it replaces; its access log is off, see ``server_config``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"()": f"{__name__}.{stderr_handler.__name__}", "log_format": log_format}},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": "INFO"}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure(log_format: LogFormat | None) -> None:
    """Write this process's log as ``log_format`` says, from now on: docpipe's handler on the root logger
    (replacing one put there before); handlers others put there (a test runner's) stay."""
    root = logging.getLogger()
    for handler in [handler for handler in root.handlers if isinstance(handler, _DocpipeHandler)]:
        root.removeHandler(handler)
    root.addHandler(stderr_handler(log_format))
    root.setLevel(logging.INFO)
