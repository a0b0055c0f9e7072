"""The SearchIndex contract, run over every adapter: what is found, for whom, in which order, and how."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from docpipe.domain.errors import InvalidCursor, InvalidInput
from docpipe.domain.ports import SearchIndex
from docpipe.domain.search import MAX_QUERY_CHARS, SearchQuery
from docpipe.domain.search_text import PASSAGE_CHARS, SNIPPET_CHARS
from tests.contract.search_support import (
    SEARCH_INDEXES,
    a_document,
    every_hit,
    found,
    opened_search_index,
    text,
)


@pytest.fixture(params=SEARCH_INDEXES)
async def search_index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SearchIndex]:
    if request.param == "opensearch":
        url = request.getfixturevalue("opensearch_fake").url
        async with opened_search_index(request.param, tmp_path, opensearch_url=url) as index:
            yield index
        return
    async with opened_search_index(request.param, tmp_path) as index:
        yield index


async def test_a_document_is_found_by_its_name_at_once(search_index: SearchIndex) -> None:
    document = a_document("Quarterly Invoice.pdf")
    await search_index.put(document, None)
    assert await found(search_index, "invoice") == [document.id]
    assert await found(search_index, "quarterly invoice") == [document.id]
    assert await found(search_index, "pdf") == [document.id]


async def test_a_document_is_found_by_its_text_once_put_with_it(search_index: SearchIndex) -> None:
    document = a_document("scan.pdf")
    await search_index.put(document, None)
    assert await found(search_index, "rotterdam") == []
    await search_index.put(document, text("The port of Rot", "terdam handles containers."))
    assert await found(search_index, "rotterdam containers") == [document.id]


async def test_tags_and_metadata_values_are_searched_but_not_metadata_keys(search_index: SearchIndex) -> None:
    document = a_document("a.pdf", tags=["Finance", "2024"], metadata={"customer": "Zürich Insurance"})
    await search_index.put(document, None)
    assert await found(search_index, "finance") == [document.id]
    assert await found(search_index, "zurich insurance 2024") == [document.id]
    assert await found(search_index, "customer") == []


async def test_case_and_accents_do_not_matter(search_index: SearchIndex) -> None:
    accented = a_document("Résumé.pdf")
    plain = a_document("RESUME final.txt")
    await search_index.put(accented, None)
    await search_index.put(plain, text("Crème brûlée à la française"))
    assert set(await found(search_index, "resume")) == {accented.id, plain.id}
    assert set(await found(search_index, "RÉSUMÉ")) == {accented.id, plain.id}
    assert await found(search_index, "CREME brulee francaise") == [plain.id]
    assert await found(search_index, "crème BRÛLÉE") == [plain.id]


async def test_words_match_the_start_of_words(search_index: SearchIndex) -> None:
    document = a_document("notes.txt")
    await search_index.put(document, text("Invoices for containers"))
    assert await found(search_index, "invoic contain") == [document.id]
    assert await found(search_index, "voices") == []
    assert await found(search_index, "invoicesx") == []


async def test_words_of_three_characters_or_more_match_inside_filenames(search_index: SearchIndex) -> None:
    report = a_document("Q3 report.pdf")
    portfolio = a_document("portfolio.pdf")
    await search_index.put(report, None)
    await search_index.put(portfolio, None)
    assert await found(search_index, "port") == [portfolio.id, report.id]
    assert await found(search_index, "po") == [portfolio.id]
    assert await found(search_index, "eport") == [report.id]


async def test_every_word_must_match_somewhere(search_index: SearchIndex) -> None:
    document = a_document("Q3 report.pdf", tags=["finance"])
    await search_index.put(document, text("revenue grew"))
    assert await found(search_index, "report finance revenue") == [document.id]
    assert await found(search_index, "report finance revenue missing") == []


async def test_an_owner_never_finds_another_owners_documents(search_index: SearchIndex) -> None:
    alices = a_document("Shared secret plan.pdf", owner="alice", tags=["plan"])
    bobs = a_document("Shared secret plan.pdf", owner="bob", tags=["plan"])
    als = a_document("Shared secret plan.pdf", owner="al", tags=["plan"])
    for document in (alices, bobs, als):
        await search_index.put(document, text("identical words in every text: merger"))
    for owner, document in (("alice", alices), ("bob", bobs), ("al", als)):
        for words in ("shared secret plan", "merger", "ecre", "plan"):
            assert await found(search_index, words, owner=owner) == [document.id]
    assert await found(search_index, "merger", owner="carol") == []
    assert await found(search_index, "merger", owner="alice", tag="plan") == [alices.id]


async def test_an_owner_finds_nothing_through_another_owners_document_id(search_index: SearchIndex) -> None:
    bobs = a_document("bob only.pdf", owner="bob")
    await search_index.put(bobs, None)
    await search_index.remove("alice", bobs.id)
    assert await found(search_index, "bob", owner="bob") == [bobs.id]
    await search_index.put(a_document("alice.pdf", owner="alice", document_id=bobs.id), None)
    assert await found(search_index, "bob", owner="alice") == []
    assert await found(search_index, "alice", owner="bob") == []


async def test_a_removed_document_is_not_found(search_index: SearchIndex) -> None:
    kept = a_document("keep report.pdf")
    removed = a_document("drop report.pdf")
    await search_index.put(kept, text("report body"))
    await search_index.put(removed, text("report body"))
    await search_index.remove("alice", removed.id)
    assert await found(search_index, "report") == [kept.id]
    assert await found(search_index, "drop") == []
    await search_index.remove("alice", removed.id)
    await search_index.remove("alice", "never-indexed")


async def test_a_remove_while_the_text_is_read_wins(search_index: SearchIndex) -> None:
    document = a_document("racing.pdf")
    reading = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_text() -> AsyncIterator[str]:
        yield "first half " * 2000
        reading.set()
        await go_on.wait()
        yield "second half"

    put = asyncio.create_task(search_index.put(document, slow_text()))
    await reading.wait()
    await search_index.remove("alice", document.id)
    go_on.set()
    await put
    assert await found(search_index, "racing") == []
    assert await found(search_index, "half") == []


async def test_a_failing_text_leaves_the_previous_one(search_index: SearchIndex) -> None:
    document = a_document("doc.pdf")
    await search_index.put(document, text("original words"))

    async def broken_text() -> AsyncIterator[str]:
        yield "replacement " * 10000
        raise OSError("the text blob went away")

    with pytest.raises(OSError, match="went away"):
        await search_index.put(document, broken_text())
    assert await found(search_index, "original") == [document.id]
    assert await found(search_index, "replacement") == []


async def test_a_new_text_replaces_the_old_and_a_rename_keeps_it(search_index: SearchIndex) -> None:
    document = a_document("old name.pdf")
    await search_index.put(document, text("first version"))
    await search_index.put(document, text("second version"))
    assert await found(search_index, "first") == []
    assert await found(search_index, "second") == [document.id]
    renamed = a_document("new name.pdf", document_id=document.id, version=2)
    await search_index.put(renamed, None)
    assert await found(search_index, "old") == []
    assert await found(search_index, "new second") == [document.id]


async def test_an_older_version_does_not_overwrite_a_newer_one(search_index: SearchIndex) -> None:
    newer = a_document("newer name.pdf", version=3)
    older = a_document("older name.pdf", version=2, document_id=newer.id)
    await search_index.put(newer, None)
    await search_index.put(older, text("late text"))
    assert await found(search_index, "older") == []
    assert await found(search_index, "newer late") == [newer.id]


async def test_the_tag_and_content_type_filters_are_exact(search_index: SearchIndex) -> None:
    tagged = a_document("report a.pdf", tags=["Finance"])
    text_file = a_document("report b.txt", content_type="text/plain", tags=["finance"])
    await search_index.put(tagged, None)
    await search_index.put(text_file, None)
    assert await found(search_index, "report", tag="Finance") == [tagged.id]
    assert await found(search_index, "report", tag="finance") == [text_file.id]
    assert await found(search_index, "report", tag="Fin") == []
    assert await found(search_index, "report", content_type="text/plain") == [text_file.id]
    assert await found(search_index, "report", content_type="text/plain", tag="Finance") == []


async def test_matches_rank_by_where_the_words_are_then_newest_first(search_index: SearchIndex) -> None:
    in_text = a_document("a.pdf")
    in_metadata = a_document("b.pdf", metadata={"note": "kiwi"})
    inside_name = a_document("bigkiwifruit.pdf")
    in_tag = a_document("c.pdf", tags=["kiwi"])
    in_name_older = a_document("Kiwi one.pdf")
    in_name_newer = a_document("kiwi two.pdf")
    await search_index.put(in_text, text("a kiwi"))
    for document in (in_metadata, inside_name, in_tag, in_name_older, in_name_newer):
        await search_index.put(document, text("nothing"))
    hits = await every_hit(search_index, "alice", SearchQuery.parse("kiwi"))
    assert [hit.document_id for hit in hits] == [
        in_name_newer.id,
        in_name_older.id,
        in_tag.id,
        inside_name.id,
        in_metadata.id,
        in_text.id,
    ]
    assert [hit.score for hit in hits] == [1.0, 1.0, 0.5, 0.375, 0.25, 0.125]


async def test_other_owners_documents_never_move_an_owners_scores(search_index: SearchIndex) -> None:
    document = a_document("apple pie.pdf", tags=["dessert"])
    await search_index.put(document, text("an apple a day, apple again"))
    query = SearchQuery.parse("apple day dessert")
    before = await search_index.search("alice", query)
    for number in range(30):
        bobs = a_document(f"apple {number}.pdf", owner="bob", tags=["dessert"])
        await search_index.put(bobs, text("apple " * number + "day dessert"))
    assert await search_index.search("alice", query) == before


async def test_pages_meet_every_match_once_while_others_write(search_index: SearchIndex) -> None:
    documents = [
        a_document(f"file {number}.pdf", tags=["apple"] if number % 3 == 0 else []) for number in range(23)
    ]
    for number, document in enumerate(documents):
        await search_index.put(document, text("apple" if number % 2 else "pear apple"))
    everything = [
        hit.document_id for hit in await every_hit(search_index, "alice", SearchQuery.parse("apple"))
    ]
    assert sorted(everything) == sorted(document.id for document in documents)

    seen: list[str] = []
    query = SearchQuery.parse("apple", limit=4)
    newcomers = 0
    while True:
        page = await search_index.search("alice", query)
        seen += [hit.document_id for hit in page.hits]
        newcomers += 1
        await search_index.put(a_document(f"apple {newcomers}.pdf"), None)
        await search_index.put(a_document("x.pdf", tags=["apple"]), text("apple"))
        await search_index.put(documents[newcomers], text("apple" if newcomers % 2 else "pear apple"))
        if page.next_cursor is None:
            break
        query = SearchQuery.parse("apple", limit=4, cursor=page.next_cursor)
    assert len(seen) == len(set(seen))
    assert set(everything) <= set(seen)


async def test_the_last_page_has_no_cursor_and_a_full_last_page_is_not_followed_by_an_empty_one(
    search_index: SearchIndex,
) -> None:
    for number in range(4):
        await search_index.put(a_document(f"grape {number}.pdf"), None)
    first = await search_index.search("alice", SearchQuery.parse("grape", limit=2))
    assert len(first.hits) == 2
    assert first.next_cursor is not None
    second = await search_index.search("alice", SearchQuery.parse("grape", limit=2, cursor=first.next_cursor))
    assert len(second.hits) == 2
    assert second.next_cursor is None
    assert await search_index.search("alice", SearchQuery.parse("nothing")) == await search_index.search(
        "alice", SearchQuery.parse("nothing")
    )


async def test_a_cursor_only_resumes_the_query_it_came_from(search_index: SearchIndex) -> None:
    for number in range(3):
        await search_index.put(a_document(f"melon {number}.pdf"), None)
    page = await search_index.search("alice", SearchQuery.parse("melon", limit=1))
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursor):
        SearchQuery.parse("melons", limit=1, cursor=page.next_cursor)
    with pytest.raises(InvalidCursor):
        SearchQuery.parse("melon", limit=1, cursor=page.next_cursor[:-2])


HOSTILE_QUERIES = [
    '"',
    '""',
    "'",
    "*",
    "report*",
    "*report",
    "NEAR(report pdf)",
    "NEAR(report, 2)",
    "report OR pdf",
    "report AND pdf",
    "report NOT pdf",
    "-report",
    "report -pdf",
    "filename:report",
    "{filename}: report",
    "^report",
    "(report",
    "report)",
    "+report",
    'report" OR "a',
    "report\x00pdf",
    "\x00",
    "rank MATCH 1",
    "'; DROP TABLE entries; --",
    "a" * 65,
    "a " * (MAX_QUERY_CHARS // 2 + 1),
    "?" * 100_000,
    "\ud800report",
    "🙂 report",
]


@pytest.mark.parametrize("words", HOSTILE_QUERIES)
async def test_hostile_queries_find_words_or_are_refused_as_invalid(
    search_index: SearchIndex, words: str
) -> None:
    document = a_document("NEAR OR AND NOT report.pdf", tags=["filename", "rank", "match"])
    await search_index.put(document, text("drop table entries a pdf"))
    try:
        query = SearchQuery.parse(words)
    except InvalidInput:
        return
    page = await search_index.search("alice", query)
    assert all(hit.document_id == document.id for hit in page.hits)


async def test_operators_typed_by_users_are_words(search_index: SearchIndex) -> None:
    document = a_document("NEAR OR AND NOT.pdf")
    await search_index.put(document, None)
    assert await found(search_index, 'NEAR( "or" AND* -not') == [document.id]
    assert await found(search_index, "report OR pdf") == []


async def test_snippets_mark_matches_and_escape_everything_else(search_index: SearchIndex) -> None:
    named = a_document('<script>alert("x")</script> & <b>.pdf')
    await search_index.put(named, None)
    [hit] = await every_hit(search_index, "alice", SearchQuery.parse("script"))
    assert hit.snippet == (
        "&lt;<mark>script</mark>&gt;alert(&quot;x&quot;)&lt;/<mark>script</mark>&gt; &amp; &lt;b&gt;.pdf"
    )
    texted = a_document("plain.pdf")
    await search_index.put(texted, text("before <img src=x onerror=alert(1)> Résumé & after"))
    [hit] = await every_hit(search_index, "alice", SearchQuery.parse("resume"))
    assert "<mark>Résumé</mark>" in hit.snippet
    assert "&lt;img src=x onerror=alert(1)&gt;" in hit.snippet
    assert re.sub("</?mark>", "", hit.snippet).count("<") == 0


async def test_snippets_show_the_text_around_a_match_within_bounds(search_index: SearchIndex) -> None:
    document = a_document("long.pdf", metadata={"note": "needle in metadata"})
    filler = "hay " * (PASSAGE_CHARS // 2)
    await search_index.put(document, text(filler, "the needle is here ", filler, "x" * 50_000))
    [hit] = await every_hit(search_index, "alice", SearchQuery.parse("needle"))
    assert "<mark>needle</mark> is here" in hit.snippet
    assert len(html.unescape(re.sub("</?mark>", "", hit.snippet))) <= SNIPPET_CHARS + 2
    [hit] = await every_hit(search_index, "alice", SearchQuery.parse("long"))
    assert hit.snippet == "<mark>long</mark>.pdf"
    [hit] = await every_hit(search_index, "alice", SearchQuery.parse("metadata"))
    assert hit.snippet == "needle in <mark>metadata</mark>"


async def test_a_long_giant_word_and_control_characters_are_harmless(search_index: SearchIndex) -> None:
    document = a_document("weird.pdf")
    await search_index.put(document, text("x" * 100_000, " \x00\x02mark\x03 \ud800 tail"))
    [hit] = await every_hit(search_index, "alice", SearchQuery.parse("mark tail"))
    assert hit.document_id == document.id
    assert "\x02" not in hit.snippet
    assert "\x03" not in hit.snippet
    assert await found(search_index, "x" * 64) == [document.id]


async def test_the_index_is_ready(search_index: SearchIndex) -> None:
    await search_index.check()
    assert await search_index.verify() == []
    await search_index.put(a_document("a.pdf"), text("words"))
    await search_index.rebuild()
    assert await found(search_index, "words") != []
    assert await search_index.verify() == []
