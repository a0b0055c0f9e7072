"""Hostile and broken clients, spoken to over raw sockets so that nothing tidies the bytes up.

None of these may get a 5xx or hold the server: every exchange has a socket timeout, and after each
one the filesystem adapter's folder must match the listing exactly (no ``.partial`` file, no blob
without its document) once the server has had a moment to clean up.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.credentials import ADMIN_HEADERS, ADMIN_KEY
from tests.faults.raw_http import RawResponse, assert_raw_problem, read_response
from tests.faults.support import MIB, blob_files, blob_keys_of, filesystem_env, list_all, wait_for
from tests.live_server import LiveServer, live_server

MAX_UPLOAD_BYTES = MIB
SOCKET_TIMEOUT = 15.0


@dataclass
class Service:
    server: LiveServer
    data_dir: Path
    client: httpx.Client


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("hostile")
    env = filesystem_env(folder / "data", DOCPIPE_MAX_UPLOAD_BYTES=str(MAX_UPLOAD_BYTES))
    with (
        live_server(env, folder / "docpipe.log") as server,
        httpx.Client(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=SOCKET_TIMEOUT) as client,
    ):
        yield Service(server, folder / "data", client)


@pytest.fixture
def document(service: Service) -> dict[str, Any]:
    body = bytes(range(256)) * 400
    response = service.client.post(
        "/documents", params={"filename": "target.bin"}, content=body, headers={"content-type": "text/plain"}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture(autouse=True)
def store_stays_consistent(service: Service) -> Iterator[None]:
    """After every test: the blob folder holds exactly the listed documents, nothing partial."""
    yield

    def consistent() -> bool:
        blobs, partials = blob_files(service.data_dir)
        listed = [document["id"] for document in list_all(service.client)]
        return not partials and blobs == blob_keys_of(filesystem_env(service.data_dir), listed)

    wait_for(consistent, 15, "the blob folder matches the listing")


def _connect(service: Service) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.server.port), timeout=SOCKET_TIMEOUT)
    sock.settimeout(SOCKET_TIMEOUT)
    return sock


def _exchange(service: Service, head: str, body: Iterable[bytes] = ()) -> RawResponse:
    """Send ``head`` (request line and headers, without the blank line) and ``body``; tolerate the
    server answering and closing before the body is all sent, as it may for a refusal."""
    with _connect(service) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n")
        try:
            for part in body:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(sock)


def _request(method: str, target: str, headers: dict[str, str]) -> str:
    lines = [
        f"{method} {target} HTTP/1.1",
        "Host: 127.0.0.1",
        "Connection: close",  # so that a response without a body length ends with the connection
        *(f"{k}: {v}" for k, v in {**ADMIN_HEADERS, **headers}.items()),
    ]
    return "\r\n".join(lines)


def _multipart(boundary: str, parts: Iterable[tuple[str, str]]) -> bytes:
    """A multipart body of ``(content-disposition parameters, content)`` parts."""
    chunks = [
        f"--{boundary}\r\nContent-Disposition: form-data; {params}\r\n\r\n{content}\r\n".encode()
        for params, content in parts
    ]
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


# -- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/octet-stream", "multipart/form-data; boundary=xyz"])
def test_declared_oversized_upload_is_refused_before_the_body(service: Service, content_type: str) -> None:
    """Headers only: the 413 must come without the server waiting for a single body byte."""
    head = _request(
        "POST",
        "/documents?filename=huge.bin",
        {"Content-Type": content_type, "Content-Length": str(100 * MAX_UPLOAD_BYTES)},
    )
    response = _exchange(service, head)
    assert_raw_problem(response, 413)
    assert response.headers.get("connection") == "close"


def test_chunked_upload_crossing_the_limit_is_refused(service: Service) -> None:
    head = _request(
        "POST",
        "/documents?filename=chunked.bin",
        {"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"},
    )
    piece = b"x" * (64 * 1024)
    frames = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (3 * MAX_UPLOAD_BYTES // len(piece)) + [b"0\r\n\r\n"]
    assert_raw_problem(_exchange(service, head, frames), 413)


@pytest.mark.parametrize("shape", ["raw", "multipart"])
def test_half_a_body_then_disconnect_leaves_nothing(service: Service, shape: str) -> None:
    """The client vanishes once the server has started writing the blob: the ``.partial`` file must
    go, and no document appear (the autouse check compares folder and listing afterwards)."""
    declared = MAX_UPLOAD_BYTES // 2
    if shape == "raw":
        content_type = "application/octet-stream"
        start = b""
    else:
        content_type = "multipart/form-data; boundary=cut"
        start = b'--cut\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n\r\n'
    head = _request(
        "POST",
        "/documents?filename=cut.bin",
        {"Content-Type": content_type, "Content-Length": str(declared)},
    )
    before = {document["id"] for document in list_all(service.client)}
    with _connect(service) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + start + b"y" * (declared // 2))
        wait_for(lambda: bool(blob_files(service.data_dir)[1]), 15, "the server writes a .partial file")
    wait_for(lambda: not blob_files(service.data_dir)[1], 15, "the .partial file is removed")
    assert {document["id"] for document in list_all(service.client)} == before


# -- oversized headers and bodies made of many small things ------------------------------------


def test_ten_kilobyte_filename_is_refused(service: Service) -> None:
    name = "n" * 10_000 + ".txt"
    raw = _exchange(
        service,
        _request(
            "POST",
            "/documents",
            {
                "Content-Type": "text/plain",
                "Content-Disposition": f'attachment; filename="{name}"',
                "Content-Length": "5",
            },
        ),
        [b"hello"],
    )
    assert_raw_problem(raw, 422)
    query = _exchange(
        service,
        _request(
            "POST", f"/documents?filename={name}", {"Content-Type": "text/plain", "Content-Length": "5"}
        ),
        [b"hello"],
    )
    assert_raw_problem(query, 422)
    body = _multipart("b0undary", [(f'name="file"; filename="{name}"', "hello")])
    form = _exchange(
        service,
        _request(
            "POST",
            "/documents",
            {"Content-Type": "multipart/form-data; boundary=b0undary", "Content-Length": str(len(body))},
        ),
        [body],
    )
    print(f"10 KB filename in a part: {form.status} {form.body[:200]!r}")
    assert form.status in (400, 422), (form.status, form.body[:300])
    assert_raw_problem(form, form.status)


def test_multipart_body_with_a_thousand_parts_is_refused(service: Service) -> None:
    parts = [(f'name="field{index}"', "v") for index in range(1000)]
    parts.insert(0, ('name="file"; filename="many.txt"', "hello"))
    body = _multipart("many", parts)
    head = _request(
        "POST",
        "/documents",
        {"Content-Type": "multipart/form-data; boundary=many", "Content-Length": str(len(body))},
    )
    assert_raw_problem(_exchange(service, head, [body]), 400)


def test_ten_thousand_ranges_are_not_served_as_ranges(service: Service, document: dict[str, Any]) -> None:
    """More ranges than the header limit holds: refused by the HTTP parser (4xx). As many as fit:
    docpipe serves one range at most, so it ignores the header and sends the whole document."""
    target = f"/documents/{document['id']}/content"
    ten_thousand = "bytes=" + ",".join(f"{index}-{index}" for index in range(10_000))
    response = _exchange(service, _request("GET", target, {"Range": ten_thousand}))
    print(f"10,000 ranges: {response.status} {response.body[:100]!r}")
    assert response.status in (200, 400, 413, 431), (response.status, response.body[:300])
    if response.status == 200:
        assert hashlib.sha256(response.body).hexdigest() == document["sha256"]

    fitting = "bytes=" + ",".join(f"{index}-{index}" for index in range(2_000))
    response = _exchange(service, _request("GET", target, {"Range": fitting}))
    assert response.status == 200, (response.status, response.body[:300])
    assert hashlib.sha256(response.body).hexdigest() == document["sha256"]


@pytest.mark.parametrize(
    "header",
    [
        ", ".join(f'"{index:06d}"' for index in range(900)),
        '"' * 8192,
        'W/"' + "a" * 8189,
        '"a,' * 2730,
        "," * 8192,
    ],
    ids=["900-tags", "quotes", "unterminated", "comma-in-tags", "commas"],
)
def test_eight_kilobyte_if_none_match(service: Service, document: dict[str, Any], header: str) -> None:
    target = f"/documents/{document['id']}/content"
    response = _exchange(service, _request("GET", target, {"If-None-Match": header}))
    assert response.status == 200, (response.status, response.body[:300])
    assert hashlib.sha256(response.body).hexdigest() == document["sha256"]
    matching = _exchange(
        service, _request("GET", target, {"If-None-Match": f'{header}, "{document["sha256"]}"'})
    )
    assert matching.status in (200, 304), (matching.status, matching.body[:300])


def test_eight_kilobyte_if_match_on_patch(service: Service, document: dict[str, Any]) -> None:
    body = b'{"tags": ["hostile"]}'
    header = ", ".join(f'"{index:06d}"' for index in range(900))
    head = _request(
        "PATCH",
        f"/documents/{document['id']}",
        {"Content-Type": "application/json", "Content-Length": str(len(body)), "If-Match": header},
    )
    assert_raw_problem(_exchange(service, head, [body]), 412)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer " + "x" * 8192,
        "Bearer dp_" + "\xe9" * 36,
        "Bearer " + "\xff\xfe" * 20,
        "Basic Zm9vOmJhcg==",
        "Bearer",
        "Bearer a b c",
        "Bearer " + ADMIN_KEY + ", Bearer " + ADMIN_KEY,
    ],
    ids=["8-kib", "latin-1", "binary", "basic", "bare-scheme", "spaces", "two-in-one"],
)
def test_hostile_authorization_headers_get_401_and_are_never_logged(
    service: Service, authorization: str
) -> None:
    response = _exchange(service, _request("GET", "/documents", {"Authorization": authorization}))
    assert_raw_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    credential = authorization.partition(" ")[2]
    if credential:
        assert credential.encode("latin-1") not in response.body
        assert credential not in service.server.log()


def test_server_logged_no_unhandled_error(service: Service) -> None:
    """Last: nothing above reached the 500 handler, not even the clients that left mid-body."""
    log = service.server.log()
    assert "unhandled error" not in log, log[-5000:]
    assert "request failed" not in log, log[-5000:]
    assert " 500 " not in log, log[-5000:]
