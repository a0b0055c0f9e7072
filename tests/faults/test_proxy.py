"""The fault proxy and the generated bodies do what the fault tests rely on them to do."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.faults.proxy import Direction, Fault, FaultProxy
from tests.faults.support import MIB, pattern_chunks, pattern_sha256

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(body)  # type: ignore[attr-defined]
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[tuple[FaultProxy, list[bytes]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    received: list[bytes] = []
    server.received = received  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with FaultProxy("127.0.0.1", server.server_address[1]) as proxy:
            yield proxy, received
    finally:
        server.shutdown()
        server.server_close()


def _get(proxy: FaultProxy) -> bytes:
    with httpx.Client(timeout=5) as client:
        return client.get(proxy.url).content


def test_forwards_until_told_otherwise_and_again_after_restore(
    proxy: tuple[FaultProxy, list[bytes]],
) -> None:
    fault_proxy, _ = proxy
    assert _get(fault_proxy) == PAYLOAD
    for fault, error in [(Fault.REFUSE, httpx.ConnectError), (Fault.RESET, httpx.TransportError)]:
        fault_proxy.fail(fault)
        with pytest.raises(error):
            _get(fault_proxy)
        fault_proxy.restore()
        assert _get(fault_proxy) == PAYLOAD


def test_blackhole_never_answers(proxy: tuple[FaultProxy, list[bytes]]) -> None:
    fault_proxy, _ = proxy
    fault_proxy.fail(Fault.BLACKHOLE)
    with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=0.5) as client:
        client.get(fault_proxy.url)
    fault_proxy.restore()
    assert _get(fault_proxy) == PAYLOAD


def test_cut_after_stops_a_transfer_part_way(proxy: tuple[FaultProxy, list[bytes]]) -> None:
    fault_proxy, _ = proxy
    fault_proxy.cut_after(Direction.DOWNSTREAM, len(PAYLOAD) // 4)
    with pytest.raises(httpx.TransportError):
        _get(fault_proxy)
    assert fault_proxy.fault is Fault.RESET


def test_lost_response_reaches_upstream_but_not_the_client(proxy: tuple[FaultProxy, list[bytes]]) -> None:
    fault_proxy, received = proxy
    fault_proxy.drop_responses_to(b"X-Target: Commit")
    with pytest.raises(httpx.TransportError), httpx.Client(timeout=5) as client:
        client.post(fault_proxy.url, content=b"applied", headers={"X-Target": "Commit"})
    assert received == [b"applied"]
    assert fault_proxy.lost_responses == 1
    with httpx.Client(timeout=5) as client:
        assert client.post(fault_proxy.url, content=b"other").status_code == 204


def test_pattern_bodies_are_what_they_claim() -> None:
    size = 5 * MIB + 7
    assert pattern_sha256(3, size) == hashlib.sha256(b"".join(pattern_chunks(3, size))).hexdigest()
    assert sum(len(chunk) for chunk in pattern_chunks(3, size)) == size
    assert pattern_sha256(3, MIB) != pattern_sha256(4, MIB)
