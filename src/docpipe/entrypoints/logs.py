"""How docpipe's processes write their log: one JSON object per line, or text for a person at a terminal.

Every line is a record of the ``logging`` module, docpipe's, uvicorn's and the libraries' alike, written
to standard error by one handler. A line written while a request is served carries its request id
(``request_id``) and, when tracing is on, a line written in a span its trace's id (``trace_id``). The
access log (logger ``docpipe.access``, one line per request, see ``http.observed``) adds its method,
route template, status, duration, owner and document id. No line holds a path's link token (see
``link_paths``); the access log never holds a path or a query at all.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import select
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO

import msgspec

from docpipe import tracing
from docpipe.config import LogFormat
from docpipe.entrypoints.http.link_paths import RedactLinkTokens, redacted
from docpipe.turn_end import AtTurnEnd

ACCESS_LOGGER = "docpipe.access"
ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "owner", "document_id")
"""What an access line adds to a record (as ``extra``), each when known."""
_OPTIONAL_FIELDS = ("request_id", "trace_id", *ACCESS_FIELDS)
"""What a JSON line holds after its message, each when known."""

_ACCESS_WRITE_BYTES = select.PIPE_BUF
"""The most one write of waiting access lines holds: a pipe never splits a write this long, so the lines
of several workers sharing standard error never mix."""

access_log = logging.getLogger(ACCESS_LOGGER)

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
        line = _json_object(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            [(field, getattr(record, field, None)) for field in _OPTIONAL_FIELDS],
        )
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


def _json_object(
    created: float, level: str, logger: str, message: str, optional: Iterable[tuple[str, Any]]
) -> dict[str, Any]:
    """A JSON line's object, but its exception: the ``optional`` fields whose value is not ``None``."""
    line: dict[str, Any] = {
        "time": _iso_time(created),
        "level": level,
        "logger": logger,
        "message": message,
    }
    for field, value in optional:
        if value is not None:
            line[field] = value
    return line


class Text(logging.Formatter):
    """``LEVEL logger: message``, with the request id after the logger when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        request = getattr(record, "request_id", None)
        text = _text_line(record.levelname, record.name, request, record.getMessage())
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text


class _Second(NamedTuple):
    second: int
    text: str
    """``YYYY-MM-DDTHH:MM:SS`` of ``second``, in UTC."""


_last_second = _Second(0, "1970-01-01T00:00:00")


def _iso_time(created: float) -> str:
    """``created`` as ``datetime.isoformat(timespec="milliseconds")`` writes it in UTC; the part up to
    the second is formatted once a second, since every request's access line asks (see ``write_access``)."""
    global _last_second  # noqa: PLW0603 - one process's cache, read and written on any thread alike
    second, fraction = divmod(created, 1)
    microseconds = round(fraction * 1e6)  # rounded as ``datetime.fromtimestamp`` rounds
    whole = int(second) + microseconds // 1_000_000
    if whole != _last_second.second:
        moment = datetime.fromtimestamp(whole, UTC)
        _last_second = _Second(whole, moment.isoformat(timespec="seconds").removesuffix("+00:00"))
    return f"{_last_second.text}.{microseconds % 1_000_000 // 1000:03d}+00:00"


def _text_line(level: str, logger: str, request: str | None, message: str) -> str:
    return f"{level} {logger}" + (f" [{request}]" if request else "") + f": {message}"


def chosen(log_format: LogFormat | None) -> LogFormat:
    """The format a setting stands for: unset, text on a terminal and JSON otherwise."""
    if log_format is not None:
        return log_format
    return LogFormat.TEXT if sys.stderr.isatty() else LogFormat.JSON


class _DocpipeHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler docpipe writes its log with, a class of its own so that ``configure`` finds it again.
    It writes to ``sys.stderr`` as it is at each line, as ``print`` does: one who replaced it (a test
    capturing a command's output) gets the lines, and none goes to a stream closed since.

    ``batched``, access lines written on an event loop (``write_access``) wait for the end of the
    loop's turn to be written together: one write for the lines of every request the turn finished
    instead of one each, a system call that costs as much as the rest of a line. A busy server finishes
    many requests a turn; an idle one writes each line as soon as its request ends (a timed buffer, as
    nginx's ``access_log ... flush=``, would leave a line unseen that long). Every other record, and the
    handler's ``flush`` (which ``logging`` calls when the process exits), writes the waiting lines
    first: nothing is lost at a clean exit, and lines keep their order."""

    def __init__(self, *, batched: bool = False) -> None:
        super().__init__()
        self._at_turn_end = AtTurnEnd(self.flush) if batched else None
        self._waiting: list[str] = []
        self._waiting_bytes = 0

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        """``StreamHandler.__init__`` sets a stream: the one of the moment is used instead."""

    def write_access(self, line: str) -> bool:
        """Writes an access line, or keeps it to be written with others; ``False`` when the stream
        refused it, for the record's way to report the failure as ``logging`` does."""
        with self.lock or contextlib.nullcontext():
            if self._at_turn_end is None or not self._at_turn_end.ask():
                self._write_waiting()
                return self._write(line + self.terminator)
            size = len(line) + 1  # characters: the bytes of a JSON line, which is ASCII; text is rarely not
            if self._waiting_bytes + size > _ACCESS_WRITE_BYTES:
                self._write_waiting()
            self._waiting.append(line + self.terminator)
            self._waiting_bytes += size
            return True

    def emit(self, record: logging.LogRecord) -> None:
        with self.lock or contextlib.nullcontext():
            self._write_waiting()
        super().emit(record)

    def flush(self) -> None:
        with self.lock or contextlib.nullcontext():
            self._write_waiting()
            super().flush()

    def _write_waiting(self) -> None:
        """Writes the waiting access lines; a failure is reported as ``logging`` reports a record's."""
        if not self._waiting:
            return
        text = "".join(self._waiting)
        self._waiting.clear()
        self._waiting_bytes = 0
        if not self._write(text):
            lost = logging.makeLogRecord({"name": ACCESS_LOGGER, "msg": "access lines not written"})
            self.handleError(lost)

    def _write(self, text: str) -> bool:
        try:
            stream = self.stream
            stream.write(text)
            stream.flush()
        except Exception:  # reported by the caller
            return False
        return True


def _lean_records() -> None:
    """Records without what no docpipe line shows: the thread, the process and the caller's file and
    line, which cost a record (one per request, the access line) a frame walk and several lookups.
    The switches are the logging module's own, documented in its HOWTO under "Optimization"."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None


_OWN_FILTERS = (WithRequestId, RedactLinkTokens)
"""The filters of docpipe's handler, in order."""


def stderr_handler(log_format: LogFormat | None, *, batched: bool = False) -> logging.Handler:
    """The one handler: to standard error, in ``log_format``, with request ids and without link tokens;
    ``batched``, the access lines of an event loop's turn are written together (see ``_DocpipeHandler``)."""
    _lean_records()
    handler = _DocpipeHandler(batched=batched)
    handler.setFormatter(JsonLines() if chosen(log_format) is LogFormat.JSON else Text())
    for own in _OWN_FILTERS:
        handler.addFilter(own())
    return handler


def logging_config(log_format: LogFormat | None) -> dict[str, Any]:
    """uvicorn's ``log_config``: every logger through docpipe's handler, uvicorn's included (whose own
    handlers it replaces; its access log is off, see ``server_config``), the access lines of each turn
    of the event loop written together."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "stderr": {
                "()": f"{__name__}.{stderr_handler.__name__}",
                "log_format": log_format,
                "batched": True,
            }
        },
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


def write_access(level: int, message: str, fields: Mapping[str, Any]) -> None:
    """Write the access line of the request being served: ``message`` and ``fields`` (``ACCESS_FIELDS``,
    in that order) at ``level``.

    When docpipe's handler is the only one the line would reach, as ``docpipe serve`` configures the
    log, the line is made and written here, the same line that handler writes for a record: the
    record's way (the record, the logger's and the handler's filters, the formatter, the handler)
    costs several times as much, once per request. Anywhere else (a test's handler, a configuration of
    the user's) the line is a record like any other."""
    handler = _sole_handler(level)
    line = None if handler is None else _access_line(handler, level, redacted(message), fields)
    if handler is None or line is None or not handler.write_access(line):
        access_log.log(level, message, extra=fields)


def _access_line(handler: _DocpipeHandler, level: int, message: str, fields: Mapping[str, Any]) -> str | None:
    """The line ``handler``'s formatter would make of the access record; ``None`` for a formatter not
    docpipe's."""
    formatter = type(handler.formatter)
    request = current_request.get()
    if formatter is JsonLines:
        optional = [("request_id", request), ("trace_id", tracing.trace_id()), *fields.items()]
        line = _json_object(time.time(), logging.getLevelName(level), ACCESS_LOGGER, message, optional)
        return msgspec.json.encode(line).decode()
    if formatter is Text:
        return _text_line(logging.getLevelName(level), ACCESS_LOGGER, request, message)
    return None


def _sole_handler(level: int) -> _DocpipeHandler | None:
    """docpipe's handler when a line of the access logger at ``level`` reaches it and no other handler,
    and passes through no filter but the handler's own; else ``None``."""
    logger: logging.Logger | None = access_log
    if access_log.disabled or not access_log.isEnabledFor(level):
        return None
    while logger is not None and logger.parent is not None:
        if logger.handlers or logger.filters or not logger.propagate:
            return None
        logger = logger.parent
    root = logging.getLogger()
    if root.filters or len(root.handlers) != 1:
        return None
    (handler,) = root.handlers
    if not isinstance(handler, _DocpipeHandler) or level < handler.level:
        return None
    if tuple(type(own) for own in handler.filters) != _OWN_FILTERS:
        return None
    return handler
