"""How handlers reach the services the container built at start-up, and the principal a request acts as."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from docpipe.domain.document_search import DocumentSearch
from docpipe.domain.identity import Principal
from docpipe.domain.key_service import KeyService
from docpipe.domain.uploads.service import ResumableUploads
from docpipe.entrypoints.http.authentication import principal_of

AnyRequest = Request[Any, Any, State]


def provide_key_service(state: State) -> KeyService:
    key_service: KeyService = state.key_service
    return key_service


def provide_uploads(state: State) -> ResumableUploads:
    uploads: ResumableUploads = state.resumable
    return uploads


def provide_search(state: State) -> DocumentSearch:
    search: DocumentSearch = state.search
    return search


CurrentPrincipal = NamedDependency[Principal]
"""How a handler takes the request's principal: ``principal: CurrentPrincipal``.

The routes that serve most requests (a document's metadata and content) call ``principal_of`` on
their request instead: given two dependencies, Litestar resolves them in an anyio task group, two
tasks per request, which cost a third of such a request's time."""


def provide_principal(request: AnyRequest) -> Principal:
    """The principal the request acts as, found by the ``Authentication`` middleware."""
    return principal_of(request.scope)
