"""What counts as a document id: the canonical form of a UUIDv7, and nothing else."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.model import is_document_id, new_document_id


def _canonical_uuid7(value: str) -> bool:
    """The definition with the standard library: parsed as a UUID, printed back unchanged, version 7."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return str(parsed) == value and parsed.version == 7


def _spellings(value: uuid.UUID) -> list[str]:
    text = str(value)
    return [text, text.upper(), value.hex, f"{{{text}}}", f"urn:uuid:{text}", f" {text}", f"{text}\n"]


@given(st.uuids())
def test_a_uuid_is_an_id_only_in_canonical_form_and_as_version_7(value: uuid.UUID) -> None:
    for spelling in _spellings(value):
        assert is_document_id(spelling) == _canonical_uuid7(spelling), spelling


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_any_128_bits_laid_out_as_a_uuid_is_judged_as_the_standard_library_does(bits: int) -> None:
    text = str(uuid.UUID(int=bits))
    assert is_document_id(text) == _canonical_uuid7(text)


@given(st.text(alphabet="0123456789abcdefABCDEF-7{}:urn ", max_size=40) | st.text(max_size=40))
def test_other_text_is_judged_as_the_standard_library_does(value: str) -> None:
    assert is_document_id(value) == _canonical_uuid7(value)


def test_every_minted_id_is_an_id() -> None:
    assert all(is_document_id(new_document_id()) for _ in range(1000))
