"""tus ``Upload-Metadata``: what clients encode reads back, and anything else is 400, never a crash."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from docpipe.domain.errors import MalformedInput
from docpipe.domain.uploads.metadata import describe, parse_upload_metadata

keys = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=","), min_size=1
)


@given(st.dictionaries(keys, st.text(), max_size=8))
def test_pairs_as_clients_encode_them_read_back(pairs: dict[str, str]) -> None:
    header = ",".join(
        f"{key} {base64.b64encode(value.encode('utf-8', 'surrogatepass')).decode()}" if value else key
        for key, value in pairs.items()
    )
    try:
        parsed = parse_upload_metadata(header)
    except MalformedInput:  # surrogates are not UTF-8 text
        assert any("\ud800" <= char <= "\udfff" for value in pairs.values() for char in value)
        return
    assert parsed == pairs


@given(st.text(max_size=200))
@example("filename \x80")  # a header byte past ASCII (headers arrive decoded as Latin-1): found by Hypothesis
def test_any_header_parses_or_is_malformed_input(header: str) -> None:
    with contextlib.suppress(MalformedInput):
        parse_upload_metadata(header)


@pytest.mark.parametrize(
    ("pairs", "filename", "content_type", "tags"),
    [
        (
            {"filename": "a.pdf", "filetype": "application/pdf", "tags": "x, y,,"},
            "a.pdf",
            "application/pdf",
            ["x", " y"],
        ),
        ({"name": "b.txt", "content_type": "text/plain"}, "b.txt", "text/plain", []),
        ({}, "fallback", None, []),
    ],
)
def test_described_fields(
    pairs: dict[str, str], filename: str, content_type: str | None, tags: list[str]
) -> None:
    description = describe(pairs, fallback_filename="fallback")
    assert (description.filename, description.content_type, list(description.tags)) == (
        filename,
        content_type,
        tags,
    )
