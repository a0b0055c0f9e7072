"""Words, folding, passages and snippets: the text rules every search index shares."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import AsyncIterator

from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.search_text import (
    ELLIPSIS,
    MAX_INDEXED_CHARS,
    PASSAGE_CHARS,
    SNIPPET_CHARS,
    Segment,
    clean,
    finds,
    finds_inside,
    fold,
    highlight,
    passages,
    render_snippet,
    words_of,
)


async def _stream(pieces: list[str]) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece


async def _passages(pieces: list[str]) -> list[str]:
    return [passage async for passage in passages(_stream(pieces))]


def test_folding_ignores_case_and_latin_accents() -> None:
    assert fold("Résumé ÀÉÎÕÜ Çedilla Ångström") == "resume aeiou cedilla angstrom"
    assert fold("e\u0301te\u0301") == "ete"
    assert fold("İstanbul") == "istanbul"
    assert fold("ΟΔΟΣ ὁδός") == "οδοσ ὁδόσ"
    assert fold("Straße") == "straße"


def test_words_are_runs_of_letters_and_digits() -> None:
    assert words_of("Q3-report_final (v2).PDF") == ["q3", "report", "final", "v2", "pdf"]
    assert words_of("3.14 a\x00b") == ["3", "14", "a", "b"]


def test_query_words_match_the_start_of_words_and_inside_filenames() -> None:
    assert finds("resu", "My Résumé.pdf")
    assert not finds("sume", "My Résumé.pdf")
    assert finds_inside("sume", "My Résumé.pdf")
    assert finds_inside("port", "Q3 report.pdf")
    assert not finds_inside("po", "Q3 report.pdf")


def test_clean_leaves_no_control_character_or_lone_surrogate() -> None:
    assert clean("a\x00b\x02c\x1fd\x7fe\ud800f\u0085g") == "a b c d e\ufffdf g"
    assert clean("e\u0301") == "é"


_CONTROL_RUN = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


@given(
    st.text(
        st.characters(exclude_categories=()) | st.sampled_from("\x00\n\r\f\t\x7f\x85\x9f \ud800\udfff"),
        max_size=40,
    )
)
def test_clean_makes_each_run_of_control_characters_one_space(text: str) -> None:
    expected = _CONTROL_RUN.sub(" ", _LONE_SURROGATE.sub("\ufffd", text))
    assert clean(text) == unicodedata.normalize("NFC", expected)


async def test_passages_are_cut_at_white_space_and_keep_every_word() -> None:
    text = " ".join(f"word{number}" for number in range(5000))
    cut = await _passages([text[i : i + 1000] for i in range(0, len(text), 1000)])
    assert len(cut) > 1
    assert all(len(passage) <= PASSAGE_CHARS for passage in cut)
    assert all(passage.endswith(" ") for passage in cut[:-1])
    assert [word for passage in cut for word in words_of(passage)] == words_of(text)


async def test_a_word_longer_than_a_passage_is_cut_where_the_passage_ends() -> None:
    cut = await _passages(["x" * (PASSAGE_CHARS * 2 + 5)])
    assert [len(passage) for passage in cut] == [PASSAGE_CHARS, PASSAGE_CHARS, 5]


async def test_text_past_the_cap_is_not_indexed() -> None:
    chunk = "lorem ipsum " * (1024 * 1024 // 12)
    pieces = [chunk] * (MAX_INDEXED_CHARS // len(chunk)) + [chunk, " beyondthecap"]
    indexed = 0
    found_beyond = False
    async for passage in passages(_stream(pieces)):
        indexed += len(passage)
        found_beyond = found_beyond or "beyondthecap" in passage
    assert MAX_INDEXED_CHARS - PASSAGE_CHARS < indexed <= MAX_INDEXED_CHARS
    assert not found_beyond


async def test_white_space_only_passages_are_left_out() -> None:
    assert await _passages(["   ", "\n\t\x00 "]) == []


@given(st.lists(st.text(alphabet=st.sampled_from("ab é\n\x00"), max_size=3000), max_size=8))
async def test_passages_hold_the_cleaned_text(pieces: list[str]) -> None:
    cut = await _passages(pieces)
    assert all(len(passage) <= PASSAGE_CHARS for passage in cut)
    assert "".join(cut).strip() == clean("".join(pieces)).strip()


def test_highlight_marks_whole_words_and_substrings_of_names() -> None:
    assert highlight("Résumé final.pdf", ["resu"]) == [
        Segment("Résumé", marked=True),
        Segment(" final.pdf", marked=False),
    ]
    assert highlight("Q3 report.pdf", ["port"], inside=True) == [
        Segment("Q3 re", marked=False),
        Segment("port", marked=True),
        Segment(".pdf", marked=False),
    ]
    assert highlight("Q3 report.pdf", ["port"]) is None


def test_snippets_escape_everything_but_their_marks() -> None:
    segments = highlight('<script>alert("x")</script> & co', ["script"])
    assert segments is not None
    assert render_snippet(segments) == (
        "&lt;<mark>script</mark>&gt;alert(&quot;x&quot;)&lt;/<mark>script</mark>&gt; &amp; co"
    )


def test_long_snippets_are_cut_around_the_first_match() -> None:
    text = "x " * 1000 + "needle " + "y " * 1000
    snippet = render_snippet(highlight(text, ["needle"]) or [])
    assert "<mark>needle</mark>" in snippet
    assert snippet.startswith(ELLIPSIS)
    assert snippet.endswith(ELLIPSIS)
    assert len(_visible(snippet)) <= SNIPPET_CHARS + 2


@given(st.text(max_size=600), st.lists(st.text(alphabet="abc<>&é", min_size=1, max_size=4), max_size=3))
def test_rendered_snippets_hold_no_markup_but_marks(text: str, words: list[str]) -> None:
    folded = [fold(word) for word in words if words_of(word) == [fold(word)]]
    snippet = render_snippet(highlight(clean(text), folded, inside=True) or [Segment(clean(text), False)])
    assert re.sub("</?mark>", "", snippet).count("<") == 0
    assert len(_visible(snippet)) <= SNIPPET_CHARS + 2


def _visible(snippet: str) -> str:
    return html.unescape(re.sub("</?mark>", "", snippet))
