"""Request ids: a client's own is kept when it is safe to echo and to log, anything else is replaced."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.entrypoints.http.request_id import MAX_LENGTH, accepted

_SAFE = string.ascii_letters + string.digits + "-_.:"


@given(st.text(alphabet=_SAFE, min_size=1, max_size=MAX_LENGTH))
def test_a_well_formed_id_is_kept(value: str) -> None:
    assert accepted(value) == value


def _well_formed(value: str) -> bool:
    return 1 <= len(value) <= MAX_LENGTH and set(value) <= set(_SAFE)


@given(st.text(max_size=MAX_LENGTH * 2))
def test_any_value_gives_a_well_formed_id_that_is_the_value_only_when_it_is_well_formed(value: str) -> None:
    chosen = accepted(value)
    assert _well_formed(chosen)
    assert (chosen == value) == _well_formed(value)


@pytest.mark.parametrize(
    "value",
    [None, "", "a" * (MAX_LENGTH + 1), "two words", "line\nbreak", "tab\there", "é", "semi;colon", "a/b"],
)
def test_unsafe_ids_are_replaced(value: str | None) -> None:
    chosen = accepted(value)
    assert chosen != value
    assert accepted(chosen) == chosen
