"""Full-text search: what a user's query means, how matches rank, and the shape of the answers.

A query is **words**, never syntax: whatever a user types is cut into words as ``search_text`` defines
them (quotes, ``*``, ``:``, ``^``, ``-``, parentheses are separators; ``OR``, ``AND``, ``NOT``, ``NEAR``
are words like any other). A document **matches** when every query word is the start of (or equal to) a
word of its filename, its tags, its metadata values or its extracted text, or, for words of three or
more characters, appears anywhere in its filename.

**Ranking** counts where the words were found: each query word earns the points of the best place it
matched (filename 8, tag 4, inside the filename 3, metadata value 2, text 1), and the score is their sum
over the most a query could earn (every word a word of the filename), between 0 and 1. Ties go to the
newest document. A score depends on nothing but the document and the query, so pages stay stable
while others write, and no owner's documents can move another owner's scores, as corpus statistics
(bm25's) over an index shared by all owners would.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

import msgspec

from docpipe.domain.errors import InvalidCursor, InvalidInput
from docpipe.domain.model import is_document_id
from docpipe.domain.search_text import Segment, finds, finds_inside, highlight, render_snippet, words_of

DEFAULT_SEARCH_LIMIT = 20
MAX_SEARCH_LIMIT = 100
"""Most hits one page holds: each hit costs a snippet, read from the index."""
MAX_QUERY_CHARS = 1000
MAX_QUERY_WORDS = 16
MAX_WORD_CHARS = 64

FILENAME_POINTS = 8
TAG_POINTS = 4
FILENAME_SUBSTRING_POINTS = 3
METADATA_POINTS = 2
TEXT_POINTS = 1


def parse_words(text: str) -> tuple[str, ...]:
    """The distinct folded words of a user's query, in order; ``InvalidInput`` for a query over
    ``MAX_QUERY_CHARS`` characters, with no word at all, more than ``MAX_QUERY_WORDS`` words, or a word
    longer than ``MAX_WORD_CHARS`` characters."""
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput(f"a search query is at most {MAX_QUERY_CHARS} characters long")
    words = tuple(dict.fromkeys(words_of(text)))
    _check_words(words)
    return words


def _check_words(words: Sequence[str]) -> None:
    if not words:
        raise InvalidInput("the search query holds no word to look for (letters or digits)")
    if len(words) > MAX_QUERY_WORDS:
        raise InvalidInput(f"a search query holds at most {MAX_QUERY_WORDS} words; this one {len(words)}")
    for word in words:
        if len(word) > MAX_WORD_CHARS:
            raise InvalidInput(f"a search word is at most {MAX_WORD_CHARS} characters long")
        if words_of(word) != [word]:
            raise InvalidInput(f"{word!r} is not one folded word")
    if len(set(words)) != len(words):
        raise InvalidInput("a search query names each word once")


class SearchPosition(msgspec.Struct, frozen=True):
    """Where a page of hits ended: the points and the id of its last hit."""

    points: int
    document_id: str


class _CursorBody(msgspec.Struct, frozen=True):
    p: int
    d: str
    q: str


class SearchQuery(msgspec.Struct, frozen=True, kw_only=True):
    """One page of one owner's search (the owner is the index's other argument). Built valid or not at
    all: ``words`` are folded words as ``parse_words`` makes them, ``limit`` is 1 to
    ``MAX_SEARCH_LIMIT``, and ``cursor`` is one issued for this same query (``InvalidCursor`` otherwise)."""

    words: tuple[str, ...]
    limit: int = DEFAULT_SEARCH_LIMIT
    cursor: str | None = None
    tag: str | None = None
    content_type: str | None = None

    def __post_init__(self) -> None:
        _check_words(self.words)
        if not 1 <= self.limit <= MAX_SEARCH_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
        _ = self.after

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        limit: int = DEFAULT_SEARCH_LIMIT,
        cursor: str | None = None,
        tag: str | None = None,
        content_type: str | None = None,
    ) -> SearchQuery:
        """The query a user typed as ``text``, with the other parameters as they gave them."""
        return cls(words=parse_words(text), limit=limit, cursor=cursor, tag=tag, content_type=content_type)

    @property
    def most_points(self) -> int:
        """What a document earns when every query word is a word of its filename."""
        return FILENAME_POINTS * len(self.words)

    def score(self, points: int) -> float:
        return points / self.most_points

    @property
    def after(self) -> SearchPosition | None:
        """Where this page starts: after the hit ``cursor`` names, ``None`` on the first page."""
        if self.cursor is None:
            return None
        token = self.cursor
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
            body = msgspec.json.decode(raw, type=_CursorBody)
        except (UnicodeEncodeError, binascii.Error, ValueError, msgspec.DecodeError):
            raise InvalidCursor from None
        position = SearchPosition(body.p, body.d)
        if not (
            is_document_id(body.d) and 0 < body.p <= self.most_points and self.cursor_after(position) == token
        ):
            raise InvalidCursor
        return position

    def cursor_after(self, position: SearchPosition) -> str:
        """An opaque token resuming this query after ``position``. It names the query (a hash of its
        words and filters), so it is refused with any other."""
        body = _CursorBody(p=position.points, d=position.document_id, q=self._fingerprint())
        return base64.urlsafe_b64encode(msgspec.json.encode(body)).rstrip(b"=").decode("ascii")

    def _fingerprint(self) -> str:
        described = msgspec.json.encode([self.words, self.tag, self.content_type])
        return hashlib.sha256(described).hexdigest()[:16]


class SearchHit(msgspec.Struct, frozen=True):
    """One matching document: its score (0 to 1, see the module) and an HTML snippet, escaped, with
    matches in ``<mark>``."""

    document_id: str
    score: float
    snippet: str


class SearchPage(msgspec.Struct, frozen=True):
    """Hits best first, ties newest first; ``next_cursor`` resumes after the last one, ``None`` when no
    hit follows."""

    hits: list[SearchHit]
    next_cursor: str | None


def word_points(
    word: str, *, filename: str, tags: Sequence[str], values: Sequence[str], passages: Sequence[str]
) -> int:
    """The points ``word`` earns in a document: those of the best place it matches, 0 when none does.
    The reference every index ranks by."""
    if finds(word, filename):
        return FILENAME_POINTS
    if any(finds(word, tag) for tag in tags):
        return TAG_POINTS
    if finds_inside(word, filename):
        return FILENAME_SUBSTRING_POINTS
    if any(finds(word, value) for value in values):
        return METADATA_POINTS
    if any(finds(word, passage) for passage in passages):
        return TEXT_POINTS
    return 0


def fields_snippet(words: Sequence[str], *, filename: str, tags: Sequence[str], values: Sequence[str]) -> str:
    """The snippet of a document whose text holds no query word: the first of its filename, tags and
    metadata values that holds one, marked (the filename when none does)."""
    fields = [(filename, True), *((tag, False) for tag in tags), *((value, False) for value in values)]
    for text, inside in fields:
        if segments := highlight(text, words, inside=inside):
            return render_snippet(segments)
    return render_snippet([Segment(filename, marked=False)])
