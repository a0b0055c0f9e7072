"""Prepared responses: sent exactly as built, and never silently without what a layer adds."""

from __future__ import annotations

from litestar import Litestar, Response, get
from litestar.datastructures import Cookie, ResponseHeader
from litestar.testing import TestClient

from docpipe.entrypoints.http.prepared import prepared_bytes, prepared_json


def test_headers_and_body_are_sent_as_built_and_headers_set_later_too() -> None:
    @get("/document", sync_to_thread=False)
    def document() -> Response[dict[str, str]]:
        response = prepared_json({"id": "a"}, {"ETag": '"v1"'})
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    with TestClient(Litestar(route_handlers=[document])) as client:
        answer = client.get("/document")
    assert answer.status_code == 200
    assert answer.content == b'{"id":"a"}'
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-length"] == "10"
    assert answer.headers["etag"] == '"v1"'
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_a_route_whose_layer_adds_headers_or_cookies_fails_rather_than_drops_them() -> None:
    @get("/with-header", response_headers=[ResponseHeader(name="X-Layer", value="1")], sync_to_thread=False)
    def with_header() -> Response[bytes]:
        return prepared_bytes(b"ok", 200, {"Content-Length": "2"})

    @get("/with-cookie", response_cookies=[Cookie(key="layer", value="1")], sync_to_thread=False)
    def with_cookie() -> Response[bytes]:
        return prepared_bytes(b"ok", 200, {"Content-Length": "2"})

    @get("/own-cookie", sync_to_thread=False)
    def own_cookie() -> Response[bytes]:
        response = prepared_bytes(b"ok", 200, {"Content-Length": "2"})
        response.set_cookie("mine", "1")
        return response

    with TestClient(Litestar(route_handlers=[with_header, with_cookie, own_cookie])) as client:
        for path in ("/with-header", "/with-cookie", "/own-cookie"):
            assert client.get(path).status_code == 500, path
