"""Search queries: what users type becomes words, never syntax; limits and cursors are checked."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.errors import InvalidCursor, InvalidInput
from docpipe.domain.model import new_document_id
from docpipe.domain.search import (
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    MAX_SEARCH_LIMIT,
    MAX_WORD_CHARS,
    SearchPosition,
    SearchQuery,
    parse_words,
)

OPERATORS = '"*():^-+{}[]<>~!?&|\\/,.;=@#$%\x00'


def test_fts_operators_are_separators_and_keywords_are_words() -> None:
    assert parse_words('NEAR("résumé" OR cv*) AND -draft NOT ^title:x') == (
        "near",
        "resume",
        "or",
        "cv",
        "and",
        "draft",
        "not",
        "title",
        "x",
    )


def test_repeated_words_count_once_in_their_first_place() -> None:
    assert parse_words("Report report REPORT q3") == ("report", "q3")


@pytest.mark.parametrize(
    "text", ["", "   ", OPERATORS, "\x00\x00", "\u2026\u2014\u2013\u00b7", "\u0301\u0308"]
)
def test_a_query_without_letters_or_digits_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="no word"):
        parse_words(text)


def test_bounds_on_length_words_and_word_length() -> None:
    parse_words("a" * MAX_WORD_CHARS)
    with pytest.raises(InvalidInput, match="characters long"):
        parse_words("a" * (MAX_WORD_CHARS + 1))
    parse_words(" ".join(f"w{number}" for number in range(MAX_QUERY_WORDS)))
    with pytest.raises(InvalidInput, match="at most 16 words"):
        parse_words(" ".join(f"w{number}" for number in range(MAX_QUERY_WORDS + 1)))
    with pytest.raises(InvalidInput, match="at most 1000 characters"):
        parse_words("a " * (MAX_QUERY_CHARS // 2) + "b")


@pytest.mark.parametrize("limit", [0, -1, MAX_SEARCH_LIMIT + 1])
def test_limit_out_of_bounds_is_refused(limit: int) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        SearchQuery.parse("report", limit=limit)


@pytest.mark.parametrize("words", [(), ("Report",), ('a"b',), ("two words",), ("a", "a"), ("é",)])
def test_a_query_built_directly_must_hold_folded_words(words: tuple[str, ...]) -> None:
    with pytest.raises(InvalidInput):
        SearchQuery(words=words)


@given(st.text(max_size=300))
def test_any_text_is_refused_or_becomes_a_valid_query(text: str) -> None:
    try:
        query = SearchQuery.parse(text)
    except InvalidInput:
        return
    assert query.words
    assert all(word.isalnum() or not word.isascii() for word in query.words)
    assert not any(char in word for word in query.words for char in OPERATORS)


def test_cursors_round_trip_for_their_own_query_only() -> None:
    query = SearchQuery.parse("q3 report", tag="finance")
    position = SearchPosition(9, new_document_id())
    cursor = query.cursor_after(position)
    assert SearchQuery.parse("Q3 REPORT", tag="finance", cursor=cursor).after == position
    for other in (
        SearchQuery.parse("q3 reports", tag="finance"),
        SearchQuery.parse("report q3", tag="finance"),
        SearchQuery.parse("q3 report"),
        SearchQuery.parse("q3 report", tag="finance", content_type="text/plain"),
    ):
        with pytest.raises(InvalidCursor):
            SearchQuery(words=other.words, tag=other.tag, content_type=other.content_type, cursor=cursor)


def test_cursors_with_impossible_positions_are_refused() -> None:
    query = SearchQuery.parse("report")
    for position in (SearchPosition(0, new_document_id()), SearchPosition(9, new_document_id())):
        with pytest.raises(InvalidCursor):
            SearchQuery.parse("report", cursor=query.cursor_after(position))
    with pytest.raises(InvalidCursor):
        SearchQuery.parse("report", cursor=query.cursor_after(SearchPosition(8, "../../etc/passwd")))


@given(st.text(max_size=200))
def test_arbitrary_cursors_are_refused(token: str) -> None:
    with pytest.raises(InvalidCursor):
        SearchQuery.parse("report", cursor=token)


@given(st.binary(max_size=200))
def test_arbitrary_base64_cursors_are_refused(raw: bytes) -> None:
    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    with pytest.raises(InvalidCursor):
        SearchQuery.parse("report", cursor=token)


def test_score_is_the_share_of_the_most_a_query_can_earn() -> None:
    query = SearchQuery.parse("q3 report")
    assert query.score(query.most_points) == 1.0
    assert query.score(1) == 1 / 16
