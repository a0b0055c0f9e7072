"""Parsing of the Idempotency-Key header: a Structured Field String, or the bare value clients send."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.errors import MalformedInput
from docpipe.entrypoints.http.uploads import parse_idempotency_key

printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=255)


def as_sf_string(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(printable)
def test_every_valid_key_round_trips_as_a_structured_field_string(key: str) -> None:
    assert parse_idempotency_key(as_sf_string(key)) == key


@given(printable.filter(lambda key: key == key.strip(" ") and not key.startswith('"')))
def test_a_bare_key_is_taken_as_it_is(key: str) -> None:
    assert parse_idempotency_key(key) == key


@given(st.text(max_size=300))
def test_any_header_value_is_a_valid_key_or_malformed_input(header: str) -> None:
    try:
        key = parse_idempotency_key(header)
    except MalformedInput:
        return
    assert key is not None
    assert 1 <= len(key) <= 255
    assert all(" " <= char <= "~" for char in key)


def test_no_header_is_no_key() -> None:
    assert parse_idempotency_key(None) is None


@pytest.mark.parametrize("header", ["", '""', "x" * 256, as_sf_string("x" * 256), "a\x7fb", '"a\\b"'])
def test_malformed_keys(header: str) -> None:
    with pytest.raises(MalformedInput):
        parse_idempotency_key(header)
