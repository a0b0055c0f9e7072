"""Routes on API keys: issue, list and revoke them, for any owner (the ``admin`` scope)."""

from __future__ import annotations

from http import HTTPStatus

from litestar import Controller, Response, delete, get, post, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from docpipe.domain.identity import Scope
from docpipe.domain.key_service import KeyService
from docpipe.entrypoints.http.allow import allow, options_first
from docpipe.entrypoints.http.openapi import requires
from docpipe.entrypoints.http.schemas import KeyIn
from docpipe.entrypoints.key_views import CreatedKeyView, KeyListView, created_key_view, key_view

Keys = NamedDependency[KeyService]


class KeyController(Controller):
    """The key resource. A key's secret appears once, in the answer that creates it."""

    path = "/keys"

    # A path served by several handlers states Allow in full (see ``allow``).
    @route("/", http_method=[HttpMethod.OPTIONS], include_in_schema=False, name="options /keys")
    async def allow_keys(self) -> Response[None]:
        return allow("GET, OPTIONS, POST")

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        return options_first(super().get_route_handlers())

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Create an API key for an owner",
        description="The answer holds the key itself, `key`: it is shown this once and never again.",
        **requires(Scope.ADMIN, HTTPStatus.UNPROCESSABLE_ENTITY),
    )
    async def create_key(self, data: JSONBody[KeyIn], key_service: Keys) -> Response[CreatedKeyView]:
        issued = await key_service.create(data.owner, data.scopes, name=data.name, expires_in=data.expires_in)
        return Response(
            created_key_view(issued), status_code=HTTP_201_CREATED, headers={"Cache-Control": "no-store"}
        )

    @get("/", summary="Every API key that is not revoked, without secrets", **requires(Scope.ADMIN))
    async def list_keys(self, key_service: Keys) -> KeyListView:
        return KeyListView([key_view(key) for key in await key_service.list()])

    @delete(
        "/{key_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Revoke an API key: refused everywhere within a second",
        **requires(Scope.ADMIN, HTTPStatus.NOT_FOUND),
    )
    async def revoke_key(self, key_id: FromPath[str], key_service: Keys) -> None:
        await key_service.revoke(key_id)
