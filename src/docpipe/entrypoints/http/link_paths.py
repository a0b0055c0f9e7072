"""Where signed links are served, and how their tokens are kept out of log lines.

A link's token is its credential: anyone reading a log line holding it could use the link. Every line
that may hold a request's path (uvicorn's access log, docpipe's own) shows ``/l/<token>`` instead.
"""

from __future__ import annotations

import logging
import re

LINK_PREFIX = "/l/"
"""Paths of links start so; authentication lets them through, the token being the credential."""
_TOKEN_IN_PATH = re.compile(re.escape(LINK_PREFIX) + r"[^/?#\s\"']+")
_REDACTED = LINK_PREFIX + "<token>"


def redacted(text: str) -> str:
    """``text`` with every link path's token replaced."""
    return _TOKEN_IN_PATH.sub(_REDACTED, text)


class RedactLinkTokens(logging.Filter):
    """A logging filter for handlers that write request paths: rewrites each record's message
    arguments (uvicorn's access log passes the path as one) and message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redacted(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redacted(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True
