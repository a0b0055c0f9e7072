"""How handlers reach the service the container built at start-up."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State

from docpipe.domain.service import DocumentService

AnyRequest = Request[Any, Any, State]


def provide_service(state: State) -> DocumentService:
    service: DocumentService = state.service
    return service
