"""List cursors: every issued cursor round-trips; anything else is refused, never crashes."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.cursor import decode_cursor, encode_cursor
from docpipe.domain.errors import InvalidCursor
from docpipe.domain.model import is_document_id, new_document_id


def test_issued_cursors_round_trip() -> None:
    for _ in range(100):
        document_id = new_document_id()
        assert decode_cursor(encode_cursor(document_id)) == document_id


@given(st.text(max_size=200))
def test_arbitrary_text_is_refused_or_decodes_to_an_id(token: str) -> None:
    try:
        decoded = decode_cursor(token)
    except InvalidCursor:
        return
    assert is_document_id(decoded)
    assert encode_cursor(decoded) == token


@given(st.binary(max_size=100))
def test_arbitrary_base64_is_refused(raw: bytes) -> None:
    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    with pytest.raises(InvalidCursor):
        decode_cursor(token)


def test_a_cursor_naming_something_other_than_an_id_is_refused() -> None:
    token = base64.urlsafe_b64encode(b'{"after":"../../etc"}').rstrip(b"=").decode()
    with pytest.raises(InvalidCursor):
        decode_cursor(token)


def test_ids_sort_by_creation_time() -> None:
    ids = [new_document_id() for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
