"""A request id for every request, so a client's report can be matched with the server's log lines.

A proxy's ``X-Request-Id`` is kept when the proxy is trusted (``DOCPIPE_TRUSTED_PROXIES``) and the id
is safe to echo and to log (bounded, plain characters); otherwise docpipe makes one: any client can
send the header, and a chosen id would let it pose as another request in the log. Every response
carries the id as ``X-Request-Id`` (added by ``http.observed``), every problem body as
``request_id``, and the log lines about a failed request start with it.
"""

from __future__ import annotations

import re
import secrets
from typing import cast

from litestar.types import Scope

from docpipe.config import TrustedProxies

HEADER = "x-request-id"
MAX_LENGTH = 128
_WELL_FORMED = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_LENGTH}}}")
_STATE_KEY = "docpipe.request_id"
_PEER_KEY = "docpipe.peer"
HEADER_BYTES = HEADER.encode()


def accepted(value: str | None) -> str:
    """``value`` when it is a well-formed request id, else a new one: 128 random bits in hex (as cheap
    as that, since most requests come without one)."""
    if value is not None and _WELL_FORMED.fullmatch(value):
        return value
    return secrets.token_hex(16)


def remember_peer(scope: Scope) -> None:
    """Note the connection's peer before uvicorn's proxy headers middleware replaces ``client`` with the
    address a trusted proxy forwarded: trust is decided on who connected (see ``connections``)."""
    scope.setdefault("state", {})[_PEER_KEY] = scope.get("client")


def from_trusted_proxy(scope: Scope, trusted: TrustedProxies) -> bool:
    """Whether the request came from a peer in ``trusted``: the one noted by ``remember_peer`` when a
    server noted one, else the scope's ``client``."""
    state = scope.get("state", {})
    peer = state[_PEER_KEY] if _PEER_KEY in state else scope.get("client")
    return peer is not None and trusted.trusts(peer[0])


def choose(scope: Scope, trusted: TrustedProxies) -> str:
    """The request's id, chosen now: the incoming one when well-formed and sent by a trusted proxy."""
    incoming = next((value for name, value in scope["headers"] if name == HEADER_BYTES), None)
    if incoming is not None and not from_trusted_proxy(scope, trusted):
        incoming = None
    chosen = accepted(None if incoming is None else incoming.decode("latin-1"))
    scope.setdefault("state", {})[_STATE_KEY] = chosen
    return chosen


def request_id(scope: Scope) -> str:
    """The id of the request ``scope`` belongs to: the one ``choose`` chose (``http.observed`` chooses
    first), or a new one for a request refused before (at the connection limit), the same ever after."""
    state = scope.setdefault("state", {})
    chosen = state.get(_STATE_KEY)
    if chosen is None:
        chosen = state[_STATE_KEY] = accepted(None)
    return cast("str", chosen)
