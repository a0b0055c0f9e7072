"""Full-text search over the caller's documents (see README, "Search")."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from docpipe.domain.document_search import DocumentSearch
from docpipe.domain.identity import Scope
from docpipe.domain.search import DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT
from docpipe.entrypoints.http.dependencies import CurrentPrincipal
from docpipe.entrypoints.http.openapi import requires
from docpipe.entrypoints.http.schemas import SearchResultsOut

Search = NamedDependency[DocumentSearch]


class SearchController(Controller):
    """``GET /search``."""

    @get(
        "/search",
        summary="Search documents by words",
        description=(
            "Documents whose filename, tags, metadata values or extracted text hold every word, best"
            " match first, case- and accent-insensitive; each word may be the start of a longer one."
            " Follow `next_cursor` until it is null. 501 when the configured stores offer no search."
        ),
        **requires(Scope.READ, HTTPStatus.UNPROCESSABLE_ENTITY, HTTPStatus.NOT_IMPLEMENTED),
    )
    async def search_documents(
        self,
        search: Search,
        principal: CurrentPrincipal,
        q: Annotated[str, QueryParameter(description="the words to look for")],
        limit: Annotated[
            int,
            QueryParameter(ge=1, le=MAX_SEARCH_LIMIT, description=f"page size, 1 to {MAX_SEARCH_LIMIT}"),
        ] = DEFAULT_SEARCH_LIMIT,
        cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
        tag: FromQuery[str | None] = None,
        content_type: FromQuery[str | None] = None,
    ) -> SearchResultsOut:
        found = await search.search(
            principal.owner, q, limit=limit, cursor=cursor, tag=tag, content_type=content_type
        )
        return SearchResultsOut.of(found)
