from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.errors import RangeNotSatisfiable
from docpipe.domain.model import ByteRange
from docpipe.entrypoints.http.ranges import content_range, parse_range, unsatisfied_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=0-499", ByteRange(0, 499)),
        ("bytes=500-999", ByteRange(500, 999)),
        ("bytes=500-", ByteRange(500, 999)),
        ("bytes=999-", ByteRange(999, 999)),
        ("bytes=-1", ByteRange(999, 999)),
        ("bytes=-500", ByteRange(500, 999)),
        # RFC 9110 §14.1.2: a last-pos past the end means "to the end"; a longer suffix means "all".
        ("bytes=900-5000", ByteRange(900, 999)),
        ("bytes=0-9999999999999999999", ByteRange(0, 999)),
        ("bytes=-1000", ByteRange(0, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        # The unit is case-insensitive; OWS around "=" and list elements and empty elements are fine.
        ("Bytes=1-2", ByteRange(1, 2)),
        ("BYTES=1-2", ByteRange(1, 2)),
        ("bytes = 1-2", ByteRange(1, 2)),
        ("bytes=\t1-2\t", ByteRange(1, 2)),
        ("bytes=1-2,", ByteRange(1, 2)),
        ("bytes=, ,1-2", ByteRange(1, 2)),
        ("bytes=007-010", ByteRange(7, 10)),
    ],
)
def test_parses_one_satisfiable_range(header: str, expected: ByteRange) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes",
        "bytes=",
        "bytes=,",
        "bytes=-",
        "bytes=abc",
        "bytes=1",
        "bytes=1-2-3",
        "bytes=5-4",  # last < first: an invalid int-range
        "bytes=+1-2",
        "bytes=1-+2",
        "bytes=--1",
        "bytes=1 -2",
        "bytes=1- 2",
        "bytes=- 1",
        "bytes=1.5-2",
        "bytes=0x1-2",
        "bytes=\u0661-2",  # ARABIC-INDIC DIGIT ONE: a Unicode digit, not an ASCII one
        "bytes=\uff11-2",  # FULLWIDTH DIGIT ONE
        "bytes=1-2\n",
        "bytes=1-2;x",
        "items=0-1",
        "octets=0-1",
        "bytes0-1",
        "bytes=0-1=2",
        # More than one range: served whole rather than as multipart/byteranges.
        "bytes=0-1,2-3",
        "bytes=0-1, -1",
        "bytes=0-1,5000-6000",
        "bytes=5000-6000,6000-7000",
        # Numbers longer than 19 digits are malformed.
        "bytes=0-12345678901234567890",
        "bytes=12345678901234567890-",
        "bytes=-12345678901234567890",
        "bytes=00000000000000000000-1",
        "bytes=0-" + "9" * 100_000,
    ],
)
def test_ignores_absent_malformed_and_multiple_ranges(header: str | None) -> None:
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=1000-", 1000),
        ("bytes=1000-1000", 1000),
        ("bytes=5000-6000", 1000),
        ("bytes=9999999999999999999-", 1000),
        ("bytes=-0", 1000),
        ("bytes=-0", 0),
        ("bytes=0-", 0),
        ("bytes=0-0", 0),
        ("bytes=-1", 0),
    ],
)
def test_rejects_a_well_formed_range_that_selects_no_byte(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as raised:
        parse_range(header, size)
    assert raised.value.size == size


def test_formats_content_range_headers() -> None:
    assert content_range(ByteRange(0, 499), 1000) == "bytes 0-499/1000"
    assert content_range(ByteRange(999, 999), 1000) == "bytes 999-999/1000"
    assert unsatisfied_range(1000) == "bytes */1000"
    assert unsatisfied_range(0) == "bytes */0"


sizes = st.integers(min_value=1, max_value=4096)
positions = st.integers(min_value=0, max_value=10**19 - 1)


@st.composite
def size_and_int_range(draw: st.DrawFn) -> tuple[int, int, int | None]:
    size = draw(sizes)
    first = draw(st.integers(min_value=0, max_value=size - 1))
    last = draw(st.none() | st.integers(min_value=first, max_value=10**19 - 1))
    return size, first, last


def _assert_within(byte_range: ByteRange | None, size: int) -> ByteRange:
    assert byte_range is not None
    assert 0 <= byte_range.start <= byte_range.end <= size - 1
    return byte_range


@given(size_and_int_range())
def test_int_range_selects_the_bytes_the_rfc_names(case: tuple[int, int, int | None]) -> None:
    size, first, last = case
    data = bytes(index % 251 for index in range(size))
    header = f"bytes={first}-" if last is None else f"bytes={first}-{last}"
    byte_range = _assert_within(parse_range(header, size), size)
    # first..last inclusive, or first..end of data when last is absent or past the end.
    expected = data[first:] if last is None else data[first : last + 1]
    assert data[byte_range.start : byte_range.end + 1] == expected
    assert byte_range.length == len(expected)
    assert content_range(byte_range, size) == f"bytes {byte_range.start}-{byte_range.end}/{size}"


@given(sizes, st.integers(min_value=1, max_value=10**19 - 1))
def test_suffix_range_selects_the_last_bytes(size: int, suffix: int) -> None:
    data = bytes(index % 251 for index in range(size))
    byte_range = _assert_within(parse_range(f"bytes=-{suffix}", size), size)
    assert data[byte_range.start : byte_range.end + 1] == data[-suffix:]
    assert byte_range.length == min(suffix, size)


@given(sizes, positions)
def test_a_first_position_at_or_past_the_end_is_unsatisfiable(size: int, first: int) -> None:
    header = f"bytes={first + size}-"
    if first + size > 10**19 - 1:
        assert parse_range(header, size) is None
    else:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)


def _parses_or_is_unsatisfiable(header: str, size: int) -> None:
    try:
        result = parse_range(header, size)
    except RangeNotSatisfiable:
        return
    if result is not None:
        _assert_within(result, size)


@given(st.text(), st.integers(min_value=0, max_value=10**20))
def test_arbitrary_text_never_raises_anything_else(header: str, size: int) -> None:
    _parses_or_is_unsatisfiable(header, size)


@given(
    st.text(alphabet=st.sampled_from("0123456789-, \t=+bytesBYTES\u0661"), max_size=40),
    st.integers(min_value=0, max_value=10**6),
)
def test_range_like_text_never_raises_anything_else(spec: str, size: int) -> None:
    _parses_or_is_unsatisfiable(f"bytes={spec}", size)
