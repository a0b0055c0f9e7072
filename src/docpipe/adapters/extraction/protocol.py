"""Messages between the sandbox and its child processes: length-prefixed msgpack frames over the
child's stdin and stdout. msgpack rather than pickle: decoding what a child sends must never run code,
even were a parser's bug to let a hostile file take the child over."""

from __future__ import annotations

from typing import BinaryIO

import msgspec

from docpipe.adapters.extraction.limits import KiB
from docpipe.domain.processing import Extraction

MAX_FRAME_BYTES = 64 * KiB
HEADER_BYTES = 4


class Setup(msgspec.Struct, frozen=True, tag=True):
    """The first message to a child: its limits, and the reader of each processor."""

    cpu_seconds: int
    memory_bytes: int
    text_bytes: int
    readers: dict[str, str]
    niceness: int = 0


class Job(msgspec.Struct, frozen=True, tag=True):
    """Extract ``source`` with ``processor``'s reader into ``text_out``."""

    processor: str
    source: str
    text_out: str
    charset: str | None


class Ready(msgspec.Struct, frozen=True, tag=True):
    """The child has set its limits and imported its readers."""


class Done(msgspec.Struct, frozen=True, tag=True):
    """The job succeeded."""

    extraction: Extraction


class Failed(msgspec.Struct, frozen=True, tag=True):
    """The file cannot be read, or broke a limit; ``retire`` says the child exits after this reply."""

    reason: str
    cause: str | None
    retire: bool = False


class Unavailable(msgspec.Struct, frozen=True, tag=True):
    """The job could not be run, for reasons not the file's (its source is missing, the disk is full)."""

    reason: str


ToChild = Setup | Job
FromChild = Ready | Done | Failed | Unavailable

_encoder = msgspec.msgpack.Encoder()
_to_child: msgspec.msgpack.Decoder[ToChild] = msgspec.msgpack.Decoder(ToChild)
_from_child: msgspec.msgpack.Decoder[FromChild] = msgspec.msgpack.Decoder(FromChild)


class ProtocolError(Exception):
    """A frame too large, or one that does not decode as the message expected."""


def frame(message: ToChild | FromChild) -> bytes:
    payload = _encoder.encode(message)
    return len(payload).to_bytes(HEADER_BYTES, "big") + payload


def payload_size(header: bytes) -> int:
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(f"a frame of {size} bytes")
    return size


def decode_reply(payload: bytes) -> FromChild:
    try:
        return _from_child.decode(payload)
    except msgspec.DecodeError as error:
        raise ProtocolError(str(error)) from error


def read_message(stream: BinaryIO) -> ToChild | None:
    """The next message to a child, blocking; ``None`` once the parent has closed the pipe."""
    header = _read_exactly(stream, HEADER_BYTES)
    if header is None:
        return None
    payload = _read_exactly(stream, payload_size(header))
    if payload is None:
        return None
    return _to_child.decode(payload)


def write_message(stream: BinaryIO, message: FromChild) -> None:
    stream.write(frame(message))
    stream.flush()


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)
