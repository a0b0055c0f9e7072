"""A TCP proxy on loopback that can take its upstream "down" in several ways, for fault-injection tests.

``FaultProxy`` forwards every connection to one upstream (a moto server, say) until told otherwise:

* ``Fault.REFUSE``: the listening socket is closed, so new connections get ECONNREFUSED, and live
  connections are reset: the backend's host is up but nothing listens.
* ``Fault.RESET``: connections are accepted and reset at once, live ones too: a crashing backend or
  a load balancer with no healthy target.
* ``Fault.BLACKHOLE``: connections are accepted and whatever is sent is swallowed, nothing is ever
  answered: a partitioned network or a hung backend.

``restore()`` goes back to forwarding on the same port. Two finer faults act on traffic as it flows:
``cut_after`` resets everything once a number of bytes went one way (a backend dying mid-transfer),
and ``drop_responses_to`` forwards matching requests upstream but loses their responses (the request
took effect, the caller never hears so).

Threads, blocking sockets: one thread accepts, two pump each connection. Each socket is closed only
by the thread that owns it, after ``shutdown`` woke it, so no descriptor is reused under a thread.
"""

from __future__ import annotations

import contextlib
import enum
import socket
import struct
import threading
from types import TracebackType

_BUFFER = 256 * 1024
_ACCEPT_POLL_SECONDS = 0.05
_PATTERN_WINDOW = 1024


class Fault(enum.Enum):
    NONE = "none"
    REFUSE = "refuse"
    RESET = "reset"
    BLACKHOLE = "blackhole"


class Direction(enum.Enum):
    UPSTREAM = "upstream"
    """From the client (docpipe) to the backend."""
    DOWNSTREAM = "downstream"
    """From the backend to the client."""


def _reset(sock: socket.socket) -> None:
    """Make the coming close send RST instead of FIN, and wake any thread blocked on ``sock``."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Connection:
    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket) -> None:
        self._proxy = proxy
        self.client = client
        self.upstream = upstream
        self.lose_response = False
        self._open_pumps = 2
        self._lock = threading.Lock()

    def start(self) -> None:
        for source, target, direction in (
            (self.client, self.upstream, Direction.UPSTREAM),
            (self.upstream, self.client, Direction.DOWNSTREAM),
        ):
            threading.Thread(
                target=self._pump, args=(source, target, direction), daemon=True, name="fault-proxy-pump"
            ).start()

    def abort(self) -> None:
        _reset(self.client)
        _reset(self.upstream)

    def _pump(self, source: socket.socket, target: socket.socket, direction: Direction) -> None:
        """Copy ``source`` to ``target``. An orderly end (EOF) is passed on as one (FIN after the
        last byte); anything else, a lost response included, resets both sides."""
        window = b""
        orderly = False
        try:
            while True:
                try:
                    data = source.recv(_BUFFER)
                except OSError:
                    break
                if not data:
                    orderly = True
                    break
                if self._proxy.fault is Fault.BLACKHOLE:
                    continue
                if direction is Direction.UPSTREAM:
                    pattern = self._proxy.lost_response_pattern
                    if pattern is not None and pattern in window + data:
                        self.lose_response = True
                    window = (window + data)[-_PATTERN_WINDOW:]
                elif self.lose_response:
                    self._proxy.count_lost_response()
                    break
                try:
                    target.sendall(data)
                except OSError:
                    break
                self._proxy.count(direction, len(data))
        finally:
            if orderly:
                try:
                    target.shutdown(socket.SHUT_WR)
                except OSError:
                    self.abort()
            else:
                self.abort()
            with self._lock:
                self._open_pumps -= 1
                last = self._open_pumps == 0
            if last:
                self.client.close()
                self.upstream.close()
                self._proxy.forget(self)


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``, faults permitting."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._fault = Fault.NONE
        self._listening = False
        self._closed = False
        self._connections: set[_Connection] = set()
        self._swallowers: set[socket.socket] = set()
        self._cut: tuple[Direction, int] | None = None
        self.lost_response_pattern: bytes | None = None
        self.lost_responses = 0
        self.bytes = {Direction.UPSTREAM: 0, Direction.DOWNSTREAM: 0}
        self.connections_accepted = 0
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        self._listener: socket.socket | None = probe
        probe.listen(128)
        probe.settimeout(_ACCEPT_POLL_SECONDS)
        self._listening = True
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="fault-proxy-accept")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def fault(self) -> Fault:
        return self._fault

    # -- faults --------------------------------------------------------------------------------

    def fail(self, fault: Fault) -> None:
        """Start ``fault`` now; returns once new connections see it."""
        with self._lock:
            self._fault = fault
            self._cut = None
            victims = list(self._connections) if fault in (Fault.REFUSE, Fault.RESET) else []
            self._changed.notify_all()
            if fault is Fault.REFUSE:
                while self._listening and not self._closed:
                    self._changed.wait(5)
        for connection in victims:
            connection.abort()

    def restore(self) -> None:
        """Forward again, on the same port; returns once it listens."""
        with self._lock:
            # Connections that swallowed bytes have lost their framing: they cannot carry on.
            victims = list(self._connections) if self._fault is Fault.BLACKHOLE else []
            self._fault = Fault.NONE
            self._cut = None
            self.lost_response_pattern = None
            for sock in self._swallowers:
                _reset(sock)
            self._changed.notify_all()
            while not self._listening and not self._closed:
                self._changed.wait(5)
        for connection in victims:
            connection.abort()

    def cut_after(self, direction: Direction, more_bytes: int) -> None:
        """Reset everything (``Fault.RESET``) once ``more_bytes`` more bytes have gone ``direction``."""
        with self._lock:
            self._cut = (direction, self.bytes[direction] + more_bytes)

    def drop_responses_to(self, pattern: bytes) -> None:
        """Forward requests containing ``pattern`` but close the connection instead of answering."""
        self.lost_response_pattern = pattern

    # -- bookkeeping, called by the pumps ------------------------------------------------------

    def count(self, direction: Direction, size: int) -> None:
        with self._lock:
            self.bytes[direction] += size
            cut = (
                self._cut is not None and self._cut[0] is direction and self.bytes[direction] >= self._cut[1]
            )
        if cut:
            self.fail(Fault.RESET)

    def count_lost_response(self) -> None:
        with self._lock:
            self.lost_responses += 1

    def forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    # -- life cycle ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            victims = list(self._connections)
            for sock in self._swallowers:
                _reset(sock)
            self._changed.notify_all()
        for connection in victims:
            connection.abort()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    break
                self._sync_listener()
                listener = self._listener
            if listener is None:
                with self._lock:
                    self._changed.wait(_ACCEPT_POLL_SECONDS)
                continue
            try:
                client, _ = listener.accept()
            except OSError:  # timeout included
                continue
            client.settimeout(None)
            self._serve(client)
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
                self._listening = False
            self._changed.notify_all()

    def _sync_listener(self) -> None:
        """Open or close the listening socket as the fault wants; the lock is held."""
        want = self._fault is not Fault.REFUSE
        if want and self._listener is None:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            listener.settimeout(_ACCEPT_POLL_SECONDS)
            self._listener = listener
        elif not want and self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._listening != want:
            self._listening = want
            self._changed.notify_all()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self.connections_accepted += 1
            fault = self._fault
        if fault in (Fault.RESET, Fault.REFUSE):
            _reset(client)
            client.close()
            return
        if fault is Fault.BLACKHOLE:
            with self._lock:
                self._swallowers.add(client)
            threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
            return
        try:
            upstream = socket.create_connection(self._upstream, timeout=5)
        except OSError:
            _reset(client)
            client.close()
            return
        upstream.settimeout(None)
        connection = _Connection(self, client, upstream)
        with self._lock:
            self._connections.add(connection)
        connection.start()

    def _swallow(self, client: socket.socket) -> None:
        try:
            while client.recv(_BUFFER):
                pass
        except OSError:
            pass
        finally:
            with self._lock:
                self._swallowers.discard(client)
            client.close()
