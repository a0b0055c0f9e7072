"""Who is asking, and may they: the bearer credential of every request, the scope of every route.

``Authentication`` (ASGI middleware, outermost, so a refused request holds no upload slot) turns the
``Authorization: Bearer`` header into the request's principal, unless the route is marked ``PUBLIC``,
and refuses a principal without a scope the route declares under ``REQUIRED_SCOPES`` (routes declare
them with ``openapi.requires``). A route with neither mark (the OPTIONS answers) needs a valid
credential and no particular scope. The scopes are checked here rather than in a Litestar guard:
Litestar hands every guard a copy of the route handler, some 15 µs a request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Send
from litestar.types import Scope as AsgiScope

from docpipe.domain.errors import MissingScope
from docpipe.domain.identity import AUTHENTICATION_OFF, Principal

Authenticate = Callable[[str | None], Awaitable[Principal]]
"""The credential of a request (``None`` when it has none) -> its principal; raises ``Unauthenticated``."""

PUBLIC = "public"
"""The ``opt`` key of routes anyone may call: health probes, the OpenAPI schema, signed links."""
PUBLIC_ROUTE: dict[str, Any] = {PUBLIC: True}
"""``**PUBLIC_ROUTE`` marks a route public in a decorator whose ``opt`` is already taken."""
REQUIRED_SCOPES = "required_scopes"
"""The ``opt`` key of the scopes a route needs, every one of them (a tuple, in ``Scope`` order)."""
AUTHENTICATE = "authenticate"
"""Where the app's ``Authenticate`` lives in its state, set once the key repository is open."""
_PRINCIPAL = "docpipe.principal"
_AUTHORIZATION = b"authorization"
_BEARER = b"bearer"


def bearer_credential(scope: AsgiScope) -> str | None:
    """The credential of the request's ``Authorization: Bearer <credential>`` header (the scheme in any
    case); ``None`` when there is no such header, several, or another scheme."""
    found = [value for name, value in scope["headers"] if name == _AUTHORIZATION]
    if len(found) != 1:
        return None
    scheme, _, credential = found[0].partition(b" ")
    if scheme.lower() != _BEARER:
        return None
    return credential.strip(b" ").decode("latin-1") or None


def principal_of(scope: AsgiScope) -> Principal:
    """The principal ``Authentication`` found for the request."""
    return cast("Principal", scope["state"][_PRINCIPAL])


def principal_if_known(scope: AsgiScope) -> Principal | None:
    """The principal ``Authentication`` found, or ``None`` (a public route, or not authenticated yet)."""
    return cast("Principal | None", scope.get("state", {}).get(_PRINCIPAL))


async def authentication_off(credential: str | None) -> Principal:
    """``DOCPIPE_AUTH=none``: every request is ``default``'s, with every scope."""
    return AUTHENTICATION_OFF


class Authentication:
    """ASGI middleware: every request to a route that is not ``PUBLIC`` gets its principal (else 401)
    holding the route's scopes (else 403)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            await admit(scope, scope["route_handler"].opt)
        await self._app(scope, receive, send)


async def admit(scope: AsgiScope, opt: Mapping[str, Any]) -> None:
    """Give the request its principal, holding the scopes of the route whose ``opt`` this is, unless
    the route is ``PUBLIC``; raises ``Unauthenticated`` or ``MissingScope``."""
    if opt.get(PUBLIC):
        return
    # By key: by attribute, Litestar's ``State`` first fails the object's own lookup, an exception made
    # and dropped on every request.
    authenticate: Authenticate = scope["app"].state[AUTHENTICATE]
    principal = await authenticate(bearer_credential(scope))
    for needed in opt.get(REQUIRED_SCOPES, ()):
        if not principal.allows(needed):
            raise MissingScope(needed.value)
    scope.setdefault("state", {})[_PRINCIPAL] = principal
