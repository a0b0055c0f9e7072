"""Extracted text is written as UTF-8 up to its limit, cut at a whole character, with a note."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from docpipe.adapters.extraction.limits import MIN_TEXT_BYTES, describe_size
from docpipe.adapters.extraction.output import Output


def _written(pieces: list[str], limit: int) -> tuple[Output, bytes]:
    file = io.BytesIO()
    output = Output(file, limit)
    for piece in pieces:
        output.write(piece)
    return output, file.getvalue()


def test_text_within_the_limit_is_written_whole() -> None:
    output, data = _written(["Grüße, ", "世界\n"], MIN_TEXT_BYTES)
    assert data.decode() == "Grüße, 世界\n"
    assert output.characters == len("Grüße, 世界\n")
    assert not output.full
    assert output.result().truncated is False


def test_text_past_the_limit_is_cut_with_a_note() -> None:
    output, data = _written(["é" * MIN_TEXT_BYTES, "never written"], MIN_TEXT_BYTES)
    assert output.full
    assert len(data) <= MIN_TEXT_BYTES
    text = data.decode()  # cut between characters, never inside one
    kept, note = text.split("\n\n[", 1)
    assert set(kept) == {"é"}
    assert output.characters == len(kept)
    assert describe_size(MIN_TEXT_BYTES) in note
    assert "never written" not in text
    assert output.result().truncated is True


def test_lone_surrogates_are_replaced() -> None:
    output, data = _written(["a\ud800b"], MIN_TEXT_BYTES)
    assert data == b"a?b"
    assert output.characters == 3


@given(st.lists(st.text(), max_size=20), st.integers(MIN_TEXT_BYTES, 3 * MIN_TEXT_BYTES))
def test_the_file_never_exceeds_the_limit_and_keeps_a_prefix(pieces: list[str], limit: int) -> None:
    output, data = _written(pieces, limit)
    text = data.decode()
    whole = "".join(pieces).encode("utf-8", "replace").decode()
    assert len(data) <= limit
    if output.full:
        kept = text.rsplit("\n\n[docpipe kept", 1)[0]
        assert whole.startswith(kept)
    else:
        assert text == whole
    assert output.characters == len(text if not output.full else kept)


def test_sizes_read_as_a_user_reads_them() -> None:
    assert describe_size(512 << 20) == "512 MiB"
    assert describe_size(64 << 10) == "64 KiB"
    assert describe_size(1000) == "1000 bytes"
    assert describe_size(3 << 30) == "3 GiB"
