"""A request id for every request, so a client's report can be matched with the server's log lines.

The client's own ``X-Request-Id`` is kept when it is safe to echo and to log (bounded, plain
characters); otherwise docpipe makes one. Every response carries it as ``X-Request-Id``, every
problem body as ``request_id``, and the log lines about a failed request start with it.
"""

from __future__ import annotations

import re
import secrets
from typing import cast

from litestar.types import Message, Scope

HEADER = "x-request-id"
MAX_LENGTH = 128
_WELL_FORMED = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_LENGTH}}}")
_STATE_KEY = "docpipe.request_id"
_HEADER_BYTES = HEADER.encode()


def accepted(value: str | None) -> str:
    """``value`` when it is a well-formed request id, else a new one: 128 random bits in hex (as cheap
    as that, since most requests come without one)."""
    if value is not None and _WELL_FORMED.fullmatch(value):
        return value
    return secrets.token_hex(16)


def request_id(scope: Scope) -> str:
    """The id of the request ``scope`` belongs to: chosen on first use, the same ever after."""
    state = scope.setdefault("state", {})
    chosen = state.get(_STATE_KEY)
    if chosen is None:
        incoming = next((value for name, value in scope["headers"] if name == _HEADER_BYTES), None)
        chosen = state[_STATE_KEY] = accepted(None if incoming is None else incoming.decode("latin-1"))
    return cast("str", chosen)


async def send_request_id(message: Message, scope: Scope) -> None:
    """Litestar ``before_send`` hook: every response, errors included, carries its request's id."""
    if message["type"] == "http.response.start":
        message["headers"] = [*message.get("headers", ()), (_HEADER_BYTES, request_id(scope).encode())]
