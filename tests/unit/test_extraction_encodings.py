"""The encoding of a text file: marks, declarations, UTF-8, then charset-normalizer's guess."""

from __future__ import annotations

import codecs
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.adapters.extraction.encodings import SAMPLE_BYTES, choose_encoding, codec_name, decode

FRENCH = (
    "Le café était très chaud, l'élève a préféré un thé glacé à la crème brûlée. "
    "Dear customer, your invoice for 20 € is attached. Œuvre « naïve » — fin."
)
JAPANESE = (
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
    "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。"
)
RUSSIAN = "Съешь же ещё этих мягких французских булок, да выпей чаю. Широкая электрификация южных губерний."


def _read(data: bytes, declared: str | None = None) -> str:
    encoding = choose_encoding(data[:SAMPLE_BYTES], [declared], whole=len(data) <= SAMPLE_BYTES)
    return "".join(decode(io.BytesIO(data), encoding))


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (FRENCH, "utf-8"),
        (FRENCH, "utf-8-sig"),
        (FRENCH, "utf-16"),  # with a byte order mark
        (JAPANESE, "utf-16"),
        (FRENCH, "utf-32"),
        (FRENCH, "cp1252"),
        (JAPANESE, "shift_jis"),
        (JAPANESE, "euc_jp"),
        (RUSSIAN, "cp1251"),
    ],
)
def test_text_in_any_common_encoding_reads_back(text: str, encoding: str) -> None:
    assert _read(text.encode(encoding)) == text


@pytest.mark.parametrize("encoding", ["cp1252", "shift_jis", "utf-8"])
def test_a_sample_cut_inside_a_character_still_finds_the_encoding(encoding: str) -> None:
    text = (JAPANESE if encoding != "cp1252" else FRENCH) * (SAMPLE_BYTES // 100)
    data = text.encode(encoding)
    for cut in range(4):  # the sample's end falls at each offset of a multi-byte character
        shifted = b" " * cut + data
        assert _read(shifted) == " " * cut + text


def test_a_declared_charset_that_decodes_the_sample_wins() -> None:
    data = "Ærø".encode("iso8859-15")
    assert _read(data, "iso-8859-15") == "Ærø"


def test_a_declared_charset_that_does_not_decode_is_ignored() -> None:
    assert _read(JAPANESE.encode("utf-8"), "shift_jis") == JAPANESE


def test_labels_map_as_browsers_map_them() -> None:
    assert codec_name("ISO-8859-1") == "cp1252"
    assert codec_name("us-ascii") == "cp1252"
    assert codec_name("Shift_JIS") == "shift_jis"
    assert codec_name("zlib") is None  # a codec, but not a text encoding
    assert codec_name("rot13") is None
    assert codec_name("no-such-charset") is None
    assert codec_name(None) is None


def test_bytes_that_are_no_text_still_decode() -> None:
    text = _read(bytes(range(256)) * 4)
    assert text  # replacement characters where needed, never an exception


@given(st.text(), st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]))
def test_unicode_text_with_a_mark_or_in_utf8_reads_back(text: str, encoding: str) -> None:
    if encoding == "utf-8" and "\0" in text:
        return  # NUL bytes suggest UTF-16: without a mark, such text is a guess
    if encoding == "utf-16" and text.startswith("\0"):
        return  # FF FE 00 00 is also UTF-32's little-endian mark: the bytes mean either text
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        return  # lone surrogates
    assert _read(data) == text


def test_decoding_streams_in_chunks() -> None:
    data = ("é" * 100_000).encode("utf-8")
    pieces = list(decode(io.BytesIO(data), "utf-8"))
    assert len(pieces) > 1
    assert "".join(pieces) == "é" * 100_000
    assert codecs.lookup("utf-8")
