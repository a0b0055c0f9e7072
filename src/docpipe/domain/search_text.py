"""What search means by a word, and how indexed text is cut and marked. Every search index uses these
functions, so every adapter finds the same documents for the same words.

A **word** is a run of letters and digits (Unicode categories L, N and Co); everything else separates
words. Words compare **folded**: case is folded in every script, and accents are removed from Latin
letters (``Résumé`` folds to ``resume``). The folding follows what SQLite's ``unicode61`` tokenizer
(``remove_diacritics 2``) does to Latin, Greek and Cyrillic text, so that the embedded index and the
in-memory one agree; in rarer scripts SQLite's own tables may fold further than this module.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from typing import NamedTuple

MAX_INDEXED_CHARS = 16 * 1024 * 1024
"""How much of a document's extracted text is indexed: its first 16 Mi characters. Words past the cap
are not found."""
PASSAGE_CHARS = 8192
"""Text is indexed in passages of at most this many characters, cut at white space where it can be: a
passage is what a snippet is taken from, and what an index holds in memory at once."""
MIN_SUBSTRING_CHARS = 3
"""A query word this long or longer also matches anywhere inside a filename (``port`` finds
``Q3 report.pdf``); shorter words only match the start of a word."""
SNIPPET_CHARS = 240
"""Most characters of text a snippet shows, before HTML escaping and the ``<mark>`` tags."""
ELLIPSIS = "…"

_CONTROLS_AS_NUL = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)], 0)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _is_latin(char: str) -> bool:
    """Latin letters whose accents ``unicode61`` removes: ASCII, Latin-1, Latin Extended-A and -B, and
    Latin Extended Additional (Vietnamese and others)."""
    code = ord(char)
    return code < 0x0250 or 0x1E00 <= code <= 0x1EFF


def _fold_char(char: str) -> str:
    """One character folded: a Latin letter loses its accents, a lone combining mark vanishes, then
    case is folded (simple folding: ``ß`` stays ``ß``, as SQLite keeps it)."""
    decomposed = unicodedata.normalize("NFD", char)
    base = decomposed[0]
    if unicodedata.category(base) == "Mn":
        return ""
    if _is_latin(base) and len(decomposed) > 1:
        char = "".join(mark for mark in decomposed if unicodedata.category(mark) != "Mn")
    return "".join(_simple_case_fold(piece) for piece in char)


def _simple_case_fold(char: str) -> str:
    for folded in (char.casefold(), char.lower()):
        if len(folded) == 1:
            return folded
    return char


class _FoldTable(dict[int, str]):
    """``str.translate``'s table for folding, filled as characters are met; it remembers the characters
    that do not fold to exactly one character, after which positions in folded text differ."""

    def __init__(self) -> None:
        super().__init__()
        self.uneven: set[str] = set()

    def __missing__(self, code: int) -> str:
        folded = self[code] = _fold_char(chr(code))
        if len(folded) != 1:
            self.uneven.add(chr(code))
        return folded


_FOLDS = _FoldTable()
_WORD = re.compile(r"(?:[^\W_]|[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd])+")
"""A word: letters and digits (``str.isalnum``) and private-use characters, as ``unicode61`` takes them."""


def clean(text: str) -> str:
    """Text as indexes store it: control characters become spaces (they separate words, and the
    snippet markers of an index are control characters), unpaired surrogates become U+FFFD, and
    composed characters are composed (NFC) so ``é`` is one character however it arrived."""
    if _has_surrogates(text):
        text = _SURROGATE.sub("\ufffd", text)
    return unicodedata.normalize("NFC", _spaced(text))


def _has_surrogates(text: str) -> bool:
    """Whether ``text`` holds a surrogate: UTF-8 encodes every other character (a regular expression
    would look at each character, which cost more than the rest of indexing a text on the event loop)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _spaced(text: str) -> str:
    """``text`` with each run of control characters made one space, by ``str`` methods (a regular
    expression scanning a whole text costs 5 to 10 times as much)."""
    pieces = text.translate(_CONTROLS_AS_NUL).split("\0")
    if len(pieces) == 1:
        return text
    between = " ".join(piece for piece in pieces if piece)
    if not between:
        return " "
    return f"{' ' if not pieces[0] else ''}{between}{' ' if not pieces[-1] else ''}"


def fold(text: str) -> str:
    """``text`` with case folded and Latin accents removed, character by character (see the module)."""
    return unicodedata.normalize("NFC", text).translate(_FOLDS)


def word_spans(folded: str) -> Iterator[tuple[int, int]]:
    """Where the words of an already folded text start and end."""
    return (match.span() for match in _WORD.finditer(folded))


def words_of(text: str) -> list[str]:
    """The folded words of ``text``, in order, repeats included."""
    return _WORD.findall(fold(text))


def finds(word: str, text: str) -> bool:
    """Whether the folded query ``word`` is the start of (or equal to) a word of ``text``."""
    return any(candidate.startswith(word) for candidate in words_of(text))


def finds_inside(word: str, filename: str) -> bool:
    """Whether the folded query ``word`` is long enough to look inside names and appears in ``filename``."""
    return len(word) >= MIN_SUBSTRING_CHARS and word in fold(filename)


async def passages(chunks: AsyncIterable[str]) -> AsyncIterator[str]:
    """The cleaned text of ``chunks`` cut into passages of at most ``PASSAGE_CHARS`` characters, at the
    last white space of a passage's second half where there is one, up to ``MAX_INDEXED_CHARS``
    characters of text in all. Holds about one chunk and one passage at a time; passages of nothing but
    white space are left out."""
    pending = ""
    room = MAX_INDEXED_CHARS
    async for chunk in chunks:
        taken = chunk[:room]
        room -= len(taken)
        text = pending + taken
        start = 0
        while len(text) - start > PASSAGE_CHARS:
            end = _passage_end(text, start)
            if passage := _passage(text[start:end]):
                yield passage
            start = end
        pending = text[start:]
        if not room:
            break
    if passage := _passage(pending):
        yield passage


def _passage_end(text: str, start: int) -> int:
    limit = start + PASSAGE_CHARS
    for index in range(limit - 1, start + PASSAGE_CHARS // 2, -1):
        if text[index].isspace():
            return index + 1
    return limit


def _passage(text: str) -> str | None:
    return cleaned if (cleaned := clean(text)).strip() else None


class Segment(NamedTuple):
    """A piece of a snippet: text, and whether it is a match to mark."""

    text: str
    marked: bool


def highlight(text: str, words: Sequence[str], *, inside: bool = False) -> list[Segment] | None:
    """``text`` (as ``clean`` left it) cut into segments, each of its words that starts with a folded
    query word marked whole, and with ``inside`` (filenames) every place where a query word of
    ``MIN_SUBSTRING_CHARS`` or more appears; ``None`` when nothing matches."""
    if not words:
        return None
    folded = text.translate(_FOLDS)
    origin: Sequence[int] = range(len(text))
    if not _FOLDS.uneven.isdisjoint(text):
        origin = [index for index, char in enumerate(text) for _ in _FOLDS[ord(char)]]
    spans = []
    for match in _any_of(tuple(words)).finditer(folded):
        start = match.start()
        if start and _WORD.match(folded, start - 1, start):
            continue  # inside a word, not at its start
        whole = _WORD.match(folded, start)
        end = whole.end() if whole else match.end()
        spans.append((origin[start], origin[end - 1] + 1))
    if inside:
        for word in words:
            if len(word) >= MIN_SUBSTRING_CHARS:
                at = folded.find(word)
                while at >= 0:
                    spans.append((origin[at], origin[at + len(word) - 1] + 1))
                    at = folded.find(word, at + 1)
    if not spans:
        return None
    segments = []
    position = 0
    for start, end in _merged(spans):
        if start > position:
            segments.append(Segment(text[position:start], marked=False))
        segments.append(Segment(text[start:end], marked=True))
        position = end
    if position < len(text):
        segments.append(Segment(text[position:], marked=False))
    return segments


@functools.lru_cache(maxsize=256)
def _any_of(words: tuple[str, ...]) -> re.Pattern[str]:
    """Where any of ``words`` appears, the longest first (a word holds no separator, so no word starts
    inside a match)."""
    return re.compile("|".join(re.escape(word) for word in sorted(words, key=len, reverse=True)))


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def render_snippet(segments: Sequence[Segment]) -> str:
    """The snippet as HTML: at most ``SNIPPET_CHARS`` characters of text around the first match, every
    character escaped, matches in ``<mark>``…``</mark>``, and ``…`` where text was left out."""
    first = next((index for index, segment in enumerate(segments) if segment.marked), 0)
    before = "".join(segment.text for segment in segments[:first])
    lead = SNIPPET_CHARS // 3
    pieces: list[str] = []
    if len(before) > lead:
        pieces.append(ELLIPSIS)
        before = before[len(before) - lead :]
    if before:
        pieces.append(html.escape(before))
    room = SNIPPET_CHARS - len(before)
    for segment in segments[first:]:
        shown = segment.text[:room]
        room -= len(shown)
        escaped = html.escape(shown)
        pieces.append(f"<mark>{escaped}</mark>" if segment.marked and shown else escaped)
        if len(shown) < len(segment.text):
            pieces.append(ELLIPSIS)
            break
    return "".join(pieces)
