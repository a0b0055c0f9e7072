"""How docpipe's processes write their log: one JSON object per line, or text for a person at a terminal.

Every line is a record of the ``logging`` module, docpipe's, uvicorn's and the libraries' alike, written
to standard error by one handler. A line written while a request is served carries its request id
(``request_id``); the access log (logger ``docpipe.access``, one line per request, see
``http.observed``) adds its method, route template, status, duration, owner and document id. No line
holds a path's link token (see ``link_paths``); the access log never holds a path or a query at all.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

from docpipe.config import LogFormat
from docpipe.entrypoints.http.link_paths import RedactLinkTokens

ACCESS_LOGGER = "docpipe.access"
ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "owner", "document_id")
"""What an access line adds to a record (as ``extra``), each when known."""

current_request: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
"""The id of the request being served by the task that logs, if any (set by ``http.observed``)."""


class WithRequestId(logging.Filter):
    """Gives each record the id of the request being served when it was made (``None`` outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request.get()
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``request_id`` and the access fields when set, ``exception`` with a traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("request_id", *ACCESS_FIELDS):
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


def logging_config(log_format: LogFormat | None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` configuration: every logger through the one handler (uvicorn's
    loggers included, whose own handlers it replaces; its access log is off, see ``server_config``)."""
    formatter = JsonLines if chosen(log_format) is LogFormat.JSON else Text
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": f"{__name__}.{WithRequestId.__name__}"},
            "link_tokens": {"()": f"{RedactLinkTokens.__module__}.{RedactLinkTokens.__name__}"},
        },
        "formatters": {"docpipe": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "docpipe",
                "filters": ["request_id", "link_tokens"],
            }
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": "INFO"}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure(log_format: LogFormat | None) -> None:
    """Write this process's log as ``log_format`` says, from now on."""
    logging.config.dictConfig(logging_config(log_format))
