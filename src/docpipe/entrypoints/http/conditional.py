"""Validators and preconditions: ETags (RFC 9110 §8.8.3), HTTP dates (§5.6.7) and §13's header fields.

The ``etag`` arguments are the current representation's ETag as this service sends it (e.g. from
:func:`strong_etag`); a malformed one is a programming error and raises ``ValueError``. The header
arguments come from clients and never raise: what cannot be parsed simply does not match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

# entity-tag = [ weak ] opaque-tag; opaque-tag = DQUOTE *etagc DQUOTE;
# etagc = %x21 / %x23-7E / obs-text. ``W/`` is case-sensitive.
_ETAGC = r"[\x21\x23-\x7e\x80-\xff]*"
_ENTITY_TAG = re.compile(rf'(W/)?"({_ETAGC})"')
# One list member: the tag, optional whitespace, then a comma or the end. An opaque-tag may contain
# commas, so the list cannot simply be split on them.
_LIST_MEMBER = re.compile(rf'[ \t]*(W/)?"({_ETAGC})"[ \t]*(?:,|\Z)')
_OWS = " \t"


@dataclass(frozen=True, slots=True)
class EntityTag:
    """An entity-tag: its opaque value without the quotes, and whether it is weak."""

    opaque: str
    weak: bool = False

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'

    def strong_match(self, other: EntityTag) -> bool:
        """RFC 9110 §8.8.3.2: both strong and character-for-character equal."""
        return not self.weak and not other.weak and self.opaque == other.opaque

    def weak_match(self, other: EntityTag) -> bool:
        """RFC 9110 §8.8.3.2: equal opaque-tags, whether or not either is weak."""
        return self.opaque == other.opaque


def strong_etag(value: str) -> str:
    """``value`` as a strong entity-tag, ``"value"``; raises ``ValueError`` if it holds a non-etagc."""
    if not re.fullmatch(_ETAGC, value):
        raise ValueError(f"{value!r} cannot be the opaque part of an entity-tag")
    return f'"{value}"'


def parse_etag(value: str) -> EntityTag | None:
    """The single entity-tag ``value`` (optional whitespace around it allowed), or ``None``."""
    match = _ENTITY_TAG.fullmatch(value.strip(_OWS))
    return None if match is None else EntityTag(match.group(2), weak=match.group(1) is not None)


def parse_etag_list(header: str) -> list[EntityTag] | Literal["*"]:
    """The entity-tags of an ``If-Match`` / ``If-None-Match`` value, or ``"*"`` (RFC 9110 §13.1.1-2).

    Malformed members are skipped up to the next comma; ``*`` counts only as the whole value.
    """
    if header.strip(_OWS) == "*":
        return "*"
    tags: list[EntityTag] = []
    position = 0
    while position < len(header):
        if member := _LIST_MEMBER.match(header, position):
            tags.append(EntityTag(member.group(2), weak=member.group(1) is not None))
            position = member.end()
        else:
            comma = header.find(",", position)
            if comma < 0:
                break
            position = comma + 1
    return tags


def if_none_match_hits(header: str, etag: str) -> bool:
    """Whether ``If-None-Match`` names the current representation: weak comparison, ``*`` matches.

    A hit means 304 for GET/HEAD and 412 otherwise (RFC 9110 §13.1.2).
    """
    current = _own(etag)
    tags = parse_etag_list(header)
    return tags == "*" or any(tag.weak_match(current) for tag in tags)


def if_match_hits(header: str, etag: str) -> bool:
    """Whether ``If-Match`` allows the request: strong comparison, ``*`` matches any representation.

    Weak tags never match (RFC 9110 §13.1.1), so a weak or unparseable list means 412. The caller
    answers 412 itself when no current representation exists.
    """
    current = _own(etag)
    tags = parse_etag_list(header)
    return tags == "*" or any(tag.strong_match(current) for tag in tags)


_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def http_date(moment: datetime) -> str:
    """``moment`` as an IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT`` (RFC 9110 §5.6.7).

    Sub-second digits are dropped. Raises ``ValueError`` for a naive datetime, whose zone is unknown.
    Written out here (every content response carries one) rather than by ``email.utils``, which
    takes several times as long for the same text, and by no locale.
    """
    utc = _utc(moment)
    return (
        f"{_DAY_NAMES[utc.weekday()]}, {utc.day:02d} {_MONTHS[utc.month - 1]} {utc.year:04d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} GMT"
    )


_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH = f"(?P<month>{'|'.join(_MONTHS)})"
_TIME = r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
_IMF_FIXDATE = re.compile(rf"{_DAY}, (?P<day>[0-9]{{2}}) {_MONTH} (?P<year>[0-9]{{4}}) {_TIME} GMT")
_RFC850_DATE = re.compile(rf"{_LONG_DAY}, (?P<day>[0-9]{{2}})-{_MONTH}-(?P<year>[0-9]{{2}}) {_TIME} GMT")
_ASCTIME_DATE = re.compile(rf"{_DAY} {_MONTH} (?P<day>[ 0-9][0-9]) {_TIME} (?P<year>[0-9]{{4}})")


def parse_http_date(value: str) -> datetime | None:
    """An aware UTC datetime from an HTTP-date, or ``None`` when ``value`` is not one.

    RFC 9110 §5.6.7: recipients accept IMF-fixdate and the obsolete rfc850-date and asctime-date
    forms. HTTP-date is case-sensitive, the day name is not checked against the date, and a two-digit
    year more than 50 years ahead is taken from the previous century.
    """
    text = value.strip(_OWS)
    for pattern in (_IMF_FIXDATE, _RFC850_DATE, _ASCTIME_DATE):
        if match := pattern.fullmatch(text):
            break
    else:
        return None
    year = int(match["year"])
    if len(match["year"]) == 2:
        this_year = datetime.now(UTC).year
        year += this_year - this_year % 100
        if year > this_year + 50:
            year -= 100
    try:
        return datetime(
            year,
            _MONTHS.index(match["month"]) + 1,
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            tzinfo=UTC,
        )
    except ValueError:  # 31 Feb, hour 24, a leap second, year 0000, ...
        return None


def not_modified_since(header: str, last_modified: datetime) -> bool:
    """Whether ``If-Modified-Since`` holds a valid date no earlier than ``last_modified``.

    HTTP dates have whole seconds, so ``last_modified`` is truncated before comparing (RFC 9110
    §13.1.3); an invalid date is ignored, i.e. ``False``.
    """
    since = parse_http_date(header)
    return since is not None and _whole_seconds(last_modified) <= since


def modified_after(header: str, last_modified: datetime) -> bool:
    """Whether ``If-Unmodified-Since`` holds a valid date earlier than ``last_modified``, so the
    precondition fails (RFC 9110 §13.1.4); an invalid date is ignored, i.e. ``False``."""
    since = parse_http_date(header)
    return since is not None and _whole_seconds(last_modified) > since


def if_range_allows(header: str | None, etag: str, last_modified: datetime) -> bool:
    """Whether to honour ``Range`` given ``If-Range`` (RFC 9110 §13.1.5).

    No header → ``True``. An entity-tag must match ``etag`` by strong comparison; a weak one never
    does. A date must equal ``last_modified`` truncated to seconds exactly. Anything else → ``False``,
    and the caller serves the whole representation with 200.
    """
    if header is None:
        return True
    text = header.strip(_OWS)
    if text.startswith(('"', "W/")):
        tag = parse_etag(text)
        return tag is not None and tag.strong_match(_own(etag))
    date = parse_http_date(text)
    return date is not None and date == _whole_seconds(last_modified)


def _own(etag: str) -> EntityTag:
    tag = parse_etag(etag)
    if tag is None:
        raise ValueError(f"{etag!r} is not an entity-tag")
    return tag


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime has no time zone; pass an aware one")
    return moment.astimezone(UTC)


def _whole_seconds(moment: datetime) -> datetime:
    return _utc(moment).replace(microsecond=0)
