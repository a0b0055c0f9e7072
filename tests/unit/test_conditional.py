from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.entrypoints.http.conditional import (
    EntityTag,
    http_date,
    if_match_hits,
    if_none_match_hits,
    if_range_allows,
    not_modified_since,
    parse_etag,
    parse_etag_list,
    parse_http_date,
    strong_etag,
)

ETAG = '"abc"'
MODIFIED = datetime(1994, 11, 6, 8, 49, 37, 654321, tzinfo=UTC)
MODIFIED_HTTP = "Sun, 06 Nov 1994 08:49:37 GMT"


def test_strong_etag_quotes_its_value() -> None:
    assert strong_etag("9f86d0") == '"9f86d0"'
    assert strong_etag("") == '""'


@pytest.mark.parametrize("value", ['a"b', "a b", "a\r\nb", "\x00", "\u20ac"])
def test_strong_etag_rejects_what_an_entity_tag_cannot_hold(value: str) -> None:
    with pytest.raises(ValueError, match="entity-tag"):
        strong_etag(value)


def test_entity_tag_renders_and_compares() -> None:
    strong, weak = EntityTag("x"), EntityTag("x", weak=True)
    assert (str(strong), str(weak)) == ('"x"', 'W/"x"')
    assert strong.strong_match(EntityTag("x"))
    assert not strong.strong_match(weak)
    assert not weak.strong_match(weak)
    assert weak.weak_match(strong)
    assert not strong.weak_match(EntityTag("y"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"abc"', EntityTag("abc")),
        ('W/"abc"', EntityTag("abc", weak=True)),
        (' "a,b" ', EntityTag("a,b")),
        ('""', EntityTag("")),
        ("abc", None),
        ('w/"abc"', None),  # the weak prefix is case-sensitive
        ('W/ "abc"', None),
        ('"a"b"', None),
        ('"a b"', None),
        ("*", None),
    ],
)
def test_parses_one_entity_tag(value: str, expected: EntityTag | None) -> None:
    assert parse_etag(value) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("*", "*"),
        (" * ", "*"),
        ('"a"', [EntityTag("a")]),
        ('"a", W/"b",\t"c"', [EntityTag("a"), EntityTag("b", weak=True), EntityTag("c")]),
        ('"a,b", "c"', [EntityTag("a,b"), EntityTag("c")]),
        ('"a",,"b",', [EntityTag("a"), EntityTag("b")]),
        ('junk, "a", "b"x, W/"c", w/"d", "e', [EntityTag("a"), EntityTag("c", weak=True)]),
        ('*, "a"', [EntityTag("a")]),
        ("", []),
        (",,", []),
    ],
)
def test_parses_an_etag_list(header: str, expected: list[EntityTag] | str) -> None:
    assert parse_etag_list(header) == expected


@pytest.mark.parametrize(
    ("header", "hits"),
    [
        ('"abc"', True),
        ('W/"abc"', True),  # If-None-Match uses the weak comparison
        ('"x", "abc"', True),
        ("*", True),
        ('"abcd"', False),
        ('"ABC"', False),
        ("abc", False),
        ("", False),
    ],
)
def test_if_none_match(header: str, hits: bool) -> None:
    assert if_none_match_hits(header, ETAG) is hits


@pytest.mark.parametrize(
    ("header", "hits"),
    [
        ('"abc"', True),
        ('"x", "abc"', True),
        ("*", True),
        ('W/"abc"', False),  # If-Match uses the strong comparison: weak tags never match
        ('"abcd"', False),
        ("abc", False),
        ("", False),
    ],
)
def test_if_match(header: str, hits: bool) -> None:
    assert if_match_hits(header, ETAG) is hits


def test_a_weak_current_etag_never_satisfies_if_match() -> None:
    assert not if_match_hits('"abc"', 'W/"abc"')
    assert if_none_match_hits('"abc"', 'W/"abc"')


def test_a_malformed_current_etag_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not an entity-tag"):
        if_match_hits('"abc"', "abc")


def test_formats_an_imf_fixdate() -> None:
    assert http_date(MODIFIED) == MODIFIED_HTTP
    plus_two = timezone(timedelta(hours=2))
    assert http_date(datetime(1994, 11, 6, 10, 49, 37, tzinfo=plus_two)) == MODIFIED_HTTP


@given(
    st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones())
)
def test_an_imf_fixdate_is_what_the_standard_library_writes(moment: datetime) -> None:
    assert http_date(moment) == format_datetime(moment.astimezone(UTC), usegmt=True)


def test_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        http_date(datetime(1994, 11, 6))


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850 format
        "Sun Nov  6 08:49:37 1994",  # ANSI C's asctime() format
        "Sun Nov 06 08:49:37 1994",
        " Sun, 06 Nov 1994 08:49:37 GMT\t",
        "Mon, 06 Nov 1994 08:49:37 GMT",  # a wrong day name is not checked
    ],
)
def test_parses_the_three_http_date_formats(value: str) -> None:
    assert parse_http_date(value) == datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)


def test_rfc850_years_more_than_fifty_years_ahead_are_in_the_past() -> None:
    this_year = datetime.now(UTC).year
    near, far = (this_year + 10) % 100, (this_year + 60) % 100
    near_date = parse_http_date(f"Monday, 01-Jan-{near:02d} 00:00:00 GMT")
    far_date = parse_http_date(f"Monday, 01-Jan-{far:02d} 00:00:00 GMT")
    assert near_date is not None
    assert near_date.year == this_year + 10
    assert far_date is not None
    assert far_date.year == this_year + 60 - 100


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "sun, 06 nov 1994 08:49:37 gmt",  # HTTP-date is case-sensitive
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 23:59:60 GMT",
        "Sun, 06 Nov 0000 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",
        "1994-11-06T08:49:37Z",
        "Sun, \uff10\uff16 Nov 1994 08:49:37 GMT",  # fullwidth digits
        '"abc"',
    ],
)
def test_rejects_what_is_not_an_http_date(value: str) -> None:
    assert parse_http_date(value) is None


@given(
    st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))]
        ),
    )
)
def test_http_dates_round_trip_at_second_precision(moment: datetime) -> None:
    assert parse_http_date(http_date(moment)) == moment.astimezone(UTC).replace(microsecond=0)


@given(st.text())
def test_parse_http_date_never_raises(value: str) -> None:
    parse_http_date(value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (MODIFIED_HTTP, True),  # equal at second precision despite MODIFIED's microseconds
        ("Sun, 06 Nov 1994 08:49:38 GMT", True),
        ("Sun, 06 Nov 1994 08:49:36 GMT", False),
        ("Sunday, 06-Nov-94 08:49:37 GMT", True),
        ("not a date", False),
        ("", False),
    ],
)
def test_not_modified_since(header: str, expected: bool) -> None:
    assert not_modified_since(header, MODIFIED) is expected


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        (None, True),
        (ETAG, True),
        (' "abc" ', True),
        ('"other"', False),
        ('W/"abc"', False),  # a weak tag never allows the range
        (MODIFIED_HTTP, True),
        ("Sun, 06 Nov 1994 08:49:38 GMT", False),  # a later date is not an exact match
        ("Sun, 06 Nov 1994 08:49:36 GMT", False),
        ('"abc", "other"', False),  # If-Range holds one validator, not a list
        ("garbage", False),
        ("", False),
    ],
)
def test_if_range(header: str | None, allowed: bool) -> None:
    assert if_range_allows(header, ETAG, MODIFIED) is allowed
