"""Blob keys: every key docpipe mints, and every bare id of older documents, is recognised as docpipe's;
nothing else is, so fsck never touches what it did not write."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.errors import InvalidInput
from docpipe.domain.identity import clean_owner
from docpipe.domain.model import is_blob_key, is_document_id, new_blob_key, new_document_id

OWNERS = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True).filter(lambda owner: owner not in {".", ".."})


@given(OWNERS)
def test_a_minted_key_is_the_owner_and_an_id(owner: str) -> None:
    key = new_blob_key(owner)
    prefix, _, name = key.partition("/")
    assert (prefix, is_document_id(name)) == (owner, True)
    assert is_blob_key(key)


def test_a_bare_id_is_a_key_of_an_older_document() -> None:
    assert is_blob_key(new_document_id())


AN_ID = "0193f4d2-7a00-7b3c-8f00-5e1d2c3b4a59"
"""A fixed id: parameters must be the same in every pytest-xdist worker that collects them."""


@pytest.mark.parametrize(
    "key",
    [
        "",
        "backup-2024.tar",
        "tenant-a/backup-2024.tar",
        f"/{AN_ID}",
        f"./{AN_ID}",
        f"../{AN_ID}",
        f"a/b/{AN_ID}",
        f"not an owner!/{AN_ID}",
        f"{'o' * 65}/{AN_ID}",
        f"tenant-a/{AN_ID.upper()}",
        "tenant-a/0193f4d2-0000-4000-8000-000000000000",
    ],
)
def test_anything_else_is_not_docpipes(key: str) -> None:
    assert not is_blob_key(key)


def _is_owner(value: str) -> bool:
    try:
        return clean_owner(value) == value
    except InvalidInput:
        return False


@given(st.text(max_size=80))
def test_an_id_behind_any_text_is_docpipes_exactly_when_the_text_names_an_owner(prefix: str) -> None:
    assert is_blob_key(f"{prefix}/{new_document_id()}") == _is_owner(prefix)
