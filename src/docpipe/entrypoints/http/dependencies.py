"""How handlers reach the service the container built at start-up, and the principal a request acts as."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from docpipe.domain.identity import AUTHENTICATION_OFF, Principal
from docpipe.domain.service import DocumentService

AnyRequest = Request[Any, Any, State]


def provide_service(state: State) -> DocumentService:
    service: DocumentService = state.service
    return service


CurrentPrincipal = NamedDependency[Principal]
"""How a handler takes the request's principal: ``principal: CurrentPrincipal``."""


def provide_principal() -> Principal:
    """The principal the request acts as; until authentication lands, every request is ``default``'s."""
    return AUTHENTICATION_OFF
