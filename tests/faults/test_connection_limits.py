"""Clients that hold connections without using them: every per-connection resource has a limit and a
timeout. Raw sockets against a real server with short timeouts set through DOCPIPE_* settings; the
bounds asserted are generous, the timeouts themselves are never measured."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.credentials import ADMIN_HEADERS, RAW_ADMIN_HEADERS
from tests.faults.raw_http import RawResponse, assert_raw_problem, read_response
from tests.faults.support import MIB, aws_env, blob_files, filesystem_env, wait_for
from tests.live_server import LiveServer, live_server, rss_and_peak_kib
from tests.moto_server import MotoServer

HEADER_TIMEOUT = 1
BODY_IDLE_TIMEOUT = 2
BODY_MIN_RATE = 1000
BODY_RATE_WINDOW = 2
GIVE_UP = 30.0
"""Far beyond every timeout above: a connection still open by then was not cut."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("limits")


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[LiveServer]:
    env = filesystem_env(
        folder / "data",
        DOCPIPE_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        DOCPIPE_BODY_IDLE_TIMEOUT=str(BODY_IDLE_TIMEOUT),
        DOCPIPE_BODY_MIN_RATE=str(BODY_MIN_RATE),
        DOCPIPE_BODY_RATE_WINDOW=str(BODY_RATE_WINDOW),
    )
    with live_server(env, folder / "docpipe.log") as running:
        yield running


def _connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=GIVE_UP)


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _drain(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_slowloris_headers_and_silent_connections_are_cut(server: LiveServer) -> None:
    """Fifty connections send a header line every 0.2 s and never finish; ten send nothing at all.
    Each is closed by the server, with a 408 for those that started a request."""
    with ExitStack() as stack:
        slow = [stack.enter_context(_connect(server)) for _ in range(50)]
        silent = [stack.enter_context(_connect(server)) for _ in range(10)]
        for sock in slow:
            sock.sendall(b"POST /documents?filename=x.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answers: dict[socket.socket, bytes] = {}
        deadline = time.monotonic() + GIVE_UP
        while len(answers) < len(slow) + len(silent) and time.monotonic() < deadline:
            for sock in slow + silent:
                if sock in answers:
                    continue
                if _readable(sock):
                    answers[sock] = _drain(sock)
                elif sock in slow:
                    try:
                        sock.sendall(b"X-Trickle: 1\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        answers[sock] = _drain(sock)
            time.sleep(0.2)
        still_open = len(slow) + len(silent) - len(answers)
        assert still_open == 0, f"{still_open} connections still open after {GIVE_UP:g} s"
    timed_out = [answers[sock] for sock in slow if answers[sock]]
    assert timed_out, "no slow request was answered before its connection closed"
    for raw in timed_out:
        assert raw.startswith(b"HTTP/1.1 408 "), raw[:200]
        assert b"application/problem+json" in raw
        assert b"connection: close" in raw.lower()
    response = httpx.get(f"{server.base_url}/health/live", timeout=GIVE_UP)
    assert response.status_code == 200


def _send_slowly(sock: socket.socket, first: bytes, pause: float | None) -> RawResponse:
    """Send ``first``, then one byte every ``pause`` seconds (none if ``None``) until the server answers."""
    sock.sendall(first)
    deadline = time.monotonic() + GIVE_UP
    while pause is not None and not _readable(sock) and time.monotonic() < deadline:
        time.sleep(pause)
        try:
            sock.sendall(b"x")
        except (BrokenPipeError, ConnectionResetError):
            break
    return read_response(sock)


_BOUNDARY = "trickle"
_FORM_START = (
    f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\n\r\n'
).encode()


@pytest.mark.parametrize(
    ("head", "first"),
    [
        ("POST /documents?filename=slow.bin HTTP/1.1\r\nContent-Type: application/octet-stream", b""),
        (f"POST /documents HTTP/1.1\r\nContent-Type: multipart/form-data; boundary={_BOUNDARY}", _FORM_START),
        ("PATCH /documents/slow.bin HTTP/1.1\r\nContent-Type: application/json", b'{"tags": ['),
    ],
    ids=["raw", "multipart", "patch"],
)
@pytest.mark.parametrize("pause", [0.5, None], ids=["trickle", "stall"])
def test_a_body_that_trickles_or_stalls_is_refused(
    server: LiveServer, folder: Path, head: str, first: bytes, pause: float | None
) -> None:
    """One byte every 0.5 s passes the idle timeout but not the minimum rate; a body that stops
    passes neither. Either way: 408 problem+json, the connection closed, nothing left behind."""
    with _connect(server) as sock:
        sock.sendall(
            f"{head}\r\n{RAW_ADMIN_HEADERS}Host: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n".encode()
        )
        response = _send_slowly(sock, first, pause)
        assert_raw_problem(response, 408)
        assert response.headers.get("connection") == "close"
        assert _drain(sock) == b""
    wait_for(lambda: not blob_files(folder / "data")[1], 15, "no .partial file is left")
    assert "request failed" not in server.log()


HTTPX_KEEPALIVE_EXPIRY = 5.0
"""How long httpx keeps an idle connection for reuse by default (aiohttp: 15 s, Node: 4 to 5 s)."""


def test_an_idle_connection_outlives_a_client_pools_keepalive(server: LiveServer) -> None:
    """A server that closes idle connections exactly when a client pool expires them races with it: the
    client reuses the connection as it closes and sees "server disconnected" with no response. So a
    connection idle a little longer than httpx keeps one still serves the next request."""
    request = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with _connect(server) as sock:
        sock.sendall(request)
        assert read_response(sock).status == 200
        time.sleep(HTTPX_KEEPALIVE_EXPIRY + 1)
        assert not _readable(sock), "the server closed an idle connection a client pool would still reuse"
        sock.sendall(request)
        assert read_response(sock).status == 200


def test_connections_over_the_limit_get_503(tmp_path: Path) -> None:
    env = filesystem_env(tmp_path / "data", DOCPIPE_MAX_CONNECTIONS="4", DOCPIPE_HEADER_TIMEOUT="60")

    with live_server(env, tmp_path / "docpipe.log") as limited, ExitStack() as idle:

        def health() -> RawResponse:
            with _connect(limited) as sock:
                sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return read_response(sock)

        for _ in range(3):
            idle.enter_context(_connect(limited))
        assert health().status == 200
        idle.enter_context(_connect(limited))
        refused = health()
        assert_raw_problem(refused, 503)
        assert refused.headers.get("retry-after", "").isdigit()
        assert refused.headers.get("connection") == "close"
        idle.close()
        wait_for(lambda: health().status == 200, GIVE_UP, "a connection is served once others closed")


STALLED_UPLOADS = 16
SENT_BEFORE_STALLING = 6 * MIB
GROWTH_LIMIT_MIB = 40


@pytest.mark.slow
def test_memory_of_stalled_s3_uploads_is_bounded(tmp_path: Path, moto_server: MotoServer) -> None:
    """Sixteen uploads send 6 MiB each and stop. An S3 upload buffers up to a part (8 MiB) before it
    writes anything, so unbounded they would hold some 96 MiB; two at a time hold some 12 MiB."""
    endpoint = moto_server.endpoint_url
    env = aws_env(endpoint, endpoint, tmp_path / "data") | {
        "DOCPIPE_MAX_CONCURRENT_UPLOADS": "2",
        "DOCPIPE_BODY_IDLE_TIMEOUT": "600",
        "DOCPIPE_BODY_RATE_WINDOW": "600",
    }
    head = (
        f"POST /documents?filename=stalled.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n{RAW_ADMIN_HEADERS}"
        f"Content-Type: application/octet-stream\r\nContent-Length: {4 * SENT_BEFORE_STALLING}\r\n\r\n"
    ).encode()
    with live_server(env, tmp_path / "docpipe.log") as server, ExitStack() as stack:
        client = stack.enter_context(
            httpx.Client(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=GIVE_UP)
        )
        warm = client.post("/documents", params={"filename": "warm.bin"}, content=b"w" * MIB)
        assert warm.status_code == 201, warm.text
        baseline_kib, _ = rss_and_peak_kib(server.pid)

        def stall(sock: socket.socket) -> None:
            sock.settimeout(10)
            with contextlib.suppress(TimeoutError):  # the server reads no more: kernel buffers are full
                sock.sendall(head + b"s" * SENT_BEFORE_STALLING)

        sockets = [stack.enter_context(_connect(server)) for _ in range(STALLED_UPLOADS)]
        senders = [threading.Thread(target=stall, args=(sock,)) for sock in sockets]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        time.sleep(3)  # let the server take in what reached it
        _, peak_kib = rss_and_peak_kib(server.pid)
        growth_mib = (peak_kib - baseline_kib) / 1024
        print(f"{STALLED_UPLOADS} stalled S3 uploads: server peak RSS grew by {growth_mib:.1f} MiB")
        assert growth_mib < GROWTH_LIMIT_MIB, f"server peak RSS grew by {growth_mib:.1f} MiB"
        for sock in sockets:
            sock.close()
        wait_for(
            lambda: (
                client.post("/documents", params={"filename": "after.bin"}, content=b"a").status_code == 201
            ),
            GIVE_UP,
            "uploads are taken again once the stalled ones left",
        )


def test_an_upload_refused_for_want_of_a_slot_says_why_and_is_no_server_error(tmp_path: Path) -> None:
    """An upload waiting in vain for a slot is told the server is busy and to retry, not that the
    server failed; and a busy server logs no ERROR."""
    env = filesystem_env(
        tmp_path / "data",
        DOCPIPE_MAX_CONCURRENT_UPLOADS="1",
        DOCPIPE_BODY_IDLE_TIMEOUT="2",
        DOCPIPE_BODY_MIN_RATE="1",
        DOCPIPE_BODY_RATE_WINDOW="600",
    )
    with live_server(env, tmp_path / "docpipe.log") as server:
        stop = threading.Event()
        holder = socket.create_connection(("127.0.0.1", server.port), timeout=30)

        def trickle() -> None:  # one upload that keeps its slot: a byte every 0.5 s
            holder.sendall(
                f"POST /documents?filename=a.txt HTTP/1.1\r\nHost: x\r\n{RAW_ADMIN_HEADERS}"
                "Content-Length: 1000\r\n\r\n".encode()
            )
            while not stop.wait(0.5):
                holder.sendall(b"a")

        sender = threading.Thread(target=trickle)
        sender.start()
        try:
            time.sleep(1)
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
                sock.sendall(
                    f"POST /documents?filename=b.txt HTTP/1.1\r\nHost: x\r\n{RAW_ADMIN_HEADERS}"
                    "Content-Length: 1\r\n\r\nb".encode()
                )
                refused = read_response(sock)
        finally:
            stop.set()
            sender.join()
            holder.close()
        log = server.log()
    assert_raw_problem(refused, 503)
    assert refused.headers.get("retry-after", "").isdigit()
    assert "uploads" in refused.json()["detail"], refused.json()
    assert "ERROR" not in log, log
