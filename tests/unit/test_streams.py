"""Upload stream plumbing: regrouping keeps every byte in order and bounds what is held."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.errors import UploadTooLarge
from docpipe.domain.streams import MeteredStream, read_ahead, rechunk


async def _stream(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


@given(st.lists(st.binary(max_size=50), max_size=40), st.integers(min_value=1, max_value=64))
async def test_rechunk_keeps_the_bytes_and_bounds_chunk_sizes(pieces: list[bytes], size: int) -> None:
    chunks = await _collect(rechunk(_stream(pieces), size))
    assert b"".join(chunks) == b"".join(pieces)
    assert all(chunk for chunk in chunks)
    longest_piece = max((len(piece) for piece in pieces), default=0)
    assert all(len(chunk) < size + longest_piece for chunk in chunks)
    assert all(len(chunk) >= size for chunk in chunks[:-1])


async def test_metered_stream_counts_hashes_and_keeps_the_head() -> None:
    metered = MeteredStream(_stream([b"ab", b"cd"]), limit=10)
    assert await _collect(aiter(metered)) == [b"ab", b"cd"]
    assert (metered.size, metered.head) == (4, b"abcd")
    assert metered.sha256 == "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589"


async def test_metered_stream_stops_as_soon_as_the_limit_is_crossed() -> None:
    handed_on: list[bytes] = []

    async def consume() -> None:
        async for chunk in MeteredStream(_stream([b"abc", b"def", b"ghi"]), limit=5):
            handed_on.append(chunk)

    with pytest.raises(UploadTooLarge):
        await consume()
    assert handed_on == [b"abc"]


async def test_read_ahead_keeps_order_and_passes_errors_on() -> None:
    assert await _collect(read_ahead(_stream([b"a", b"b", b"c"]))) == [b"a", b"b", b"c"]

    async def failing() -> AsyncIterator[bytes]:
        yield b"a"
        raise UploadTooLarge(1)

    with pytest.raises(UploadTooLarge):
        await _collect(read_ahead(failing()))


async def test_closing_read_ahead_early_stops_the_source() -> None:
    stopped = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x"
        finally:
            stopped.set()

    ahead = read_ahead(endless(), depth=2)
    assert await anext(ahead) == b"x"
    await ahead.aclose()
    await asyncio.wait_for(stopped.wait(), timeout=5)
