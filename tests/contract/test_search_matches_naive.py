"""The SQLite FTS5 index finds exactly what the naive matcher (the in-memory index) finds, ranked and
shown alike (same scores, same snippets).

Random small corpora and random queries, over an alphabet of ASCII (FTS5's operators included), Latin
letters with accents in both cases, Greek, Cyrillic, combining accents and separators: the characters on
which docpipe's folding and SQLite's ``unicode61`` tokenizer are checked to agree (see
``test_sqlite_search_specifics``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from docpipe.domain.errors import InvalidInput
from docpipe.domain.search import SearchQuery
from tests.contract.search_support import a_document, every_hit, opened_search_index, text

ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " \t\n.,;-_'\"*()^:+{}"
    "éÉèÈêÊëàÀâäÄöÖüÜñÑçÇßøØåÅœŒæÆÿµſ"
    "ăĂąĄćĆčČďĐđęĘěĚğĞıİłŁńŃňŇőŐřŘśŚšŠşŞťŤůŮűŰźŹžŽŉ"
    "αβγδεΣσςάέήίόύώΆΈΐΰΩω"
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВЁЙЖ"
    "\u0301\u0300\u0308\u0302\u0303\u0327"
)
"""The characters drawn from: frequent ones repeat, so words repeat across documents."""

VOCABULARY = [
    "résumé",
    "RESUME",
    "Résumés",
    "report",
    "Q3",
    "straße",
    "STRASSE",
    "ΟΔΟΣ",
    "οδός",
    "Ёлка",
    "ёлка",
    "NEAR",
    "or",
    "Łódź",
    "lodz",
    "Ærø",
    "e\u0301te\u0301",
    "été",
]
"""Words in several spellings, so that documents share words and queries find several of them."""
fragments = st.lists(
    st.sampled_from(VOCABULARY) | st.text(alphabet=ALPHABET, min_size=1, max_size=8), min_size=1, max_size=4
).map(" ".join)


class Fields(NamedTuple):
    owner: str
    filename: str
    tags: list[str]
    values: list[str]
    text: list[str] | None
    content_type: str


documents = st.lists(
    st.builds(
        Fields,
        owner=st.sampled_from(["alice", "alice", "bob"]),
        filename=fragments,
        tags=st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=8), max_size=2),
        values=st.lists(fragments, max_size=2),
        text=st.none() | st.lists(fragments, max_size=4),
        content_type=st.sampled_from(["application/pdf", "text/plain"]),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=100)
@given(documents, st.data())
async def test_sqlite_finds_what_the_naive_matcher_finds(corpus: list[Fields], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with (
            opened_search_index("sqlite", Path(folder)) as sqlite,
            opened_search_index("memory", Path(folder)) as naive,
        ):
            sources: list[str] = []
            tags: list[str] = []
            for fields in corpus:
                document = a_document(
                    fields.filename,
                    owner=fields.owner,
                    tags=fields.tags,
                    metadata={f"key{number}": value for number, value in enumerate(fields.values)},
                    content_type=fields.content_type,
                )
                for index in (sqlite, naive):
                    await index.put(document, None if fields.text is None else text(*fields.text))
                tags += document.tags
                sources += [document.filename, *document.tags, *fields.values, *(fields.text or [])]
            for _ in range(3):
                parts = []
                for _ in range(data.draw(st.sampled_from([1, 1, 2]))):
                    source = data.draw(st.sampled_from(sources) | st.sampled_from(VOCABULARY))
                    start = data.draw(st.integers(0, len(source)))
                    parts.append(source[start : start + data.draw(st.integers(1, 12))])
                words = " ".join(parts)
                filters = data.draw(
                    st.sampled_from([{}, {}, {"content_type": "text/plain"}, *({"tag": tag} for tag in tags)])
                )
                try:
                    query = SearchQuery.parse(words, limit=100, **filters)
                except InvalidInput:
                    continue
                expected = await every_hit(naive, "alice", query)
                actual = await every_hit(sqlite, "alice", query)
                assert actual == expected, words
