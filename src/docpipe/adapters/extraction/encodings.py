"""Which encoding a file of text is in, and its text decoded a chunk at a time.

In order: a byte order mark; else the first declared charset (from the content type, or an HTML
``<meta>``) that decodes the sample; else UTF-8 when the sample is valid UTF-8; else charset-normalizer's
guess; else UTF-8 with replacement characters. Labels map as browsers map them (WHATWG Encoding):
``iso-8859-1`` and ``ascii`` mean windows-1252.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import charset_normalizer
from charset_normalizer import CharsetMatch, CharsetMatches

from docpipe.adapters.extraction.limits import KiB

SAMPLE_BYTES = 64 * KiB
"""How much of a file the guess reads: enough for charset-normalizer, a fixed cost per document."""

READ_BYTES = 64 * KiB

_BOMS = (
    # UTF-32 first: its little-endian mark begins with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_AS_BROWSERS_READ = {"iso8859-1": "cp1252", "ascii": "cp1252"}
# When candidates read the sample about equally well, the Windows code pages win: text of unknown
# encoding is far more often windows-1252 than, say, a DOS or Mac code page producing the same letters.
_PREFERRED = ("cp1252", "cp1251", "cp1250", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258")
_TIE = 0.01
_LONGEST_CHARACTER = 4


def codec_name(label: str | None) -> str | None:
    """The Python codec a charset label names, or ``None`` for a label that names no text encoding."""
    if not label:
        return None
    try:
        b"a".decode(label, "replace")  # refuses bytes-to-bytes codecs such as "zlib" or "base64"
        name = codecs.lookup(label).name
    except (LookupError, ValueError):  # UnicodeError is a ValueError
        return None
    return _AS_BROWSERS_READ.get(name, name)


def choose_encoding(sample: bytes, declared: Iterable[str | None] = (), *, whole: bool = False) -> str:
    """The codec to read a file with, from ``sample`` (its first bytes; all of it when ``whole``) and
    the charsets it is declared in, most authoritative first."""
    for mark, marked in _BOMS:
        if sample.startswith(mark):
            return marked
    for label in declared:
        name = codec_name(label)
        if name is not None and _decodes(sample, name, whole):
            return name
    # NUL bytes are valid UTF-8 but rare in text: they suggest UTF-16 or UTF-32 without a mark.
    if b"\0" not in sample and _decodes(sample, "utf-8", whole):
        return "utf-8"
    return _guess(sample, whole) or "utf-8"


def decode(file: BinaryIO, encoding: str) -> Iterator[str]:
    """The text of ``file`` from where it stands, a chunk at a time; undecodable bytes become U+FFFD."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    while chunk := file.read(READ_BYTES):
        if text := decoder.decode(chunk):
            yield text
    if tail := decoder.decode(b"", final=True):
        yield tail


def _decodes(sample: bytes, encoding: str, whole: bool) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)("strict").decode(sample, final=whole)
    except UnicodeDecodeError:
        return False
    return True


def _guess(sample: bytes, whole: bool) -> str | None:
    # A sample that is not the whole file may end inside a character, which makes charset-normalizer
    # reject the right encoding, or prefer a wrong one (UTF-16, which any even number of bytes decodes):
    # the sample cut at each place a character may end is tried, and the least chaotic reading wins.
    chosen: tuple[CharsetMatches, CharsetMatch] | None = None
    for cut in range(1 if whole else _LONGEST_CHARACTER):
        matches = charset_normalizer.from_bytes(sample[: len(sample) - cut])
        best = matches.best()
        if best is not None and (chosen is None or best.chaos < chosen[1].chaos):
            chosen = (matches, best)
    if chosen is None:
        return None
    matches, best = chosen
    close = [match for match in matches if match.chaos <= best.chaos + _TIE]
    for preferred in _PREFERRED:
        if any(preferred in match.could_be_from_charset for match in close):
            return preferred
    return codec_name(best.encoding) or best.encoding
