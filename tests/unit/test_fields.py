"""Client-supplied names, tags and metadata: property tests that no input escapes its rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.errors import InvalidInput
from docpipe.domain.fields import (
    MAX_FILENAME_BYTES,
    clean_filename,
    clean_metadata,
    clean_tags,
)
from docpipe.entrypoints.http.uploads import split_tags_field


@given(st.text(max_size=400))
def test_a_cleaned_filename_is_one_safe_segment(raw: str) -> None:
    try:
        name = clean_filename(raw)
    except InvalidInput:
        return
    assert "/" not in name
    assert "\\" not in name
    assert name not in ("", ".", "..")
    assert not any(ord(char) < 32 or ord(char) == 127 for char in name)
    assert len(name.encode()) <= MAX_FILENAME_BYTES
    assert clean_filename(name) == name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\report.pdf", "report.pdf"),
        ("a\r\nb.txt", "ab.txt"),
        ("nul\x00.txt", "nul.txt"),
        ("  spaced.txt  ", "spaced.txt"),
        ("caf\u0065\u0301.txt", "caf\u00e9.txt"),
    ],
)
def test_examples(raw: str, expected: str) -> None:
    assert clean_filename(raw) == expected


@pytest.mark.parametrize("raw", ["", ".", "..", "a/", "a/..", "\x00", "é" * 200])
def test_names_that_name_nothing_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        clean_filename(raw)


def test_tags_are_trimmed_and_deduplicated() -> None:
    assert clean_tags(split_tags_field(" a, b ,,a ")) == ("a", "b")
    with pytest.raises(InvalidInput):
        clean_tags(["x" * 65])
    with pytest.raises(InvalidInput):
        clean_tags([f"t{n}" for n in range(33)])


def test_metadata_bounds() -> None:
    assert clean_metadata({"k": "v"}) == {"k": "v"}
    with pytest.raises(InvalidInput):
        clean_metadata({"": "v"})
    with pytest.raises(InvalidInput):
        clean_metadata({"k": "v" * 1025})
    with pytest.raises(InvalidInput):
        clean_metadata({f"k{n}": "v" for n in range(33)})


class _NotToBeIterated(list[str]):
    """A list that fails the test if anything walks its items."""

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the items were processed before their count was checked")


class _NotToBeWalked(dict[str, str]):
    def items(self) -> Any:
        raise AssertionError("the entries were processed before their count was checked")


def test_too_many_tags_are_refused_before_any_is_processed() -> None:
    with pytest.raises(InvalidInput, match="at most 32 tags"):
        clean_tags(_NotToBeIterated(["t"] * 10**6))


def test_too_many_metadata_entries_are_refused_before_any_is_processed() -> None:
    with pytest.raises(InvalidInput, match="at most 32 entries"):
        clean_metadata(_NotToBeWalked({f"k{n}": "v" for n in range(10**5)}))


def test_duplicate_tags_are_dropped_keeping_the_clients_order() -> None:
    assert clean_tags(["b", "a", " b", "c", "a"]) == ("b", "a", "c")
    assert clean_tags(split_tags_field("z, y, z, x")) == ("z", "y", "x")
