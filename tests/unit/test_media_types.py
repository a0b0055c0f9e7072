"""The strict media-type parser: one RFC 9110 media type or ``InvalidInput``, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.errors import InvalidInput
from docpipe.domain.fields import MAX_CONTENT_TYPE_LENGTH
from docpipe.domain.media_types import MediaType, clean_content_type, parse_media_type

_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_tokens = st.text(alphabet=_TCHARS, min_size=1, max_size=12).filter(lambda token: token != "*")
# Any visible ASCII, space and tab: a parameter value that needs quoting, escapes included.
_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=12)
_ows = st.sampled_from(["", " ", "\t", "  "])


@st.composite
def _written_media_types(draw: st.DrawFn) -> str:
    """A valid media type as a client might write it: any case, optional whitespace, quoting."""
    text = f"{draw(_tokens)}/{draw(_tokens)}"
    names = draw(st.lists(_tokens, max_size=4, unique_by=str.lower))
    for name in names:
        value = draw(_values)
        quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        written = draw(st.sampled_from([quoted, value])) if value and _is_token(value) else quoted
        text += f"{draw(_ows)};{draw(_ows)}{name}={written}"
    if draw(st.booleans()):
        text += f"{draw(_ows)};"
    return draw(_ows) + text + draw(_ows)


def _is_token(value: str) -> bool:
    return all(char in _TCHARS for char in value)


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_invalid_input(raw: str) -> None:
    try:
        media_type = parse_media_type(raw)
    except InvalidInput:
        return
    assert str(media_type).isascii()
    assert len(str(media_type)) <= MAX_CONTENT_TYPE_LENGTH


@given(_written_media_types())
def test_the_normalised_form_round_trips(raw: str) -> None:
    media_type = parse_media_type(raw)
    canonical = str(media_type)
    assert parse_media_type(canonical) == media_type
    assert str(parse_media_type(canonical)) == canonical
    assert media_type.type == media_type.type.lower()
    assert media_type.subtype == media_type.subtype.lower()
    assert all(name == name.lower() for name, _ in media_type.parameters)


@given(_written_media_types(), _written_media_types(), _ows)
def test_a_list_of_media_types_is_refused(first: str, second: str, space: str) -> None:
    with pytest.raises(InvalidInput):
        parse_media_type(f"{first},{space}{second}")


# web-platform-tests fetch/content-type/resources/content-types.json: each case's Content-Type values
# as one combined field value. A browser picks one of the listed types (often the last); docpipe must
# store none of them.
_WPT_COMBINED = [
    ", text/plain",
    "text/plain, ",
    "text/html, text/plain",
    "text/plain;charset=gbk, text/html",
    "text/plain;charset=gbk, text/html;charset=windows-1254",
    "text/plain;charset=gbk, text/plain",
    "text/plain;charset=gbk, text/plain;charset=windows-1252",
    'text/html;charset=gbk, text/html;x=",text/plain',
    "text/html;charset=gbk, text/plain, text/html",
    "text/plain, */*",
    "text/html, */*",
    "*/*, text/html",
    "text/plain, */*;charset=gbk",
    "text/html, */*;charset=gbk",
    'text/html;x=", text/plain',
    'text/html;", text/plain',
]


@pytest.mark.parametrize(
    "raw",
    [
        *_WPT_COMBINED,
        "text/plain; a=b, text/html",
        "text/pl\u0430in",  # Cyrillic a (U+0430)
        "text/plain; charset=caf\u00e9",
        'text/plain; x="caf\u00e9"',
        "text/plain; charset=utf-8; charset=latin1",
        "text/plain; Charset=a; charset=b",
        "*/*",
        "text/*",
        "text",
        "text/",
        "/plain",
        "text/plain/html",
        "text /plain",
        "text/plain; charset",
        "text/plain; charset =utf-8",
        "text/plain; charset= utf-8",
        'text/plain; x="unterminated',
        'text/plain; x="a"b',
        "text/plain\r\nSet-Cookie: a=b",
        "text/plain\x00",
        "text/" + "x" * MAX_CONTENT_TYPE_LENGTH,
        "text/plain" + "; \t" * 80 + "!",  # exponential backtracking in an ambiguous pattern
        "text/plain" + "; a=b " * 40 + ",",
    ],
)
def test_anything_but_one_media_type_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        parse_media_type(raw)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("text/plain", "text/plain"),
        ("Text/HTML", "text/html"),
        ("  image/png\t", "image/png"),
        ("text/plain;charset=utf-8", "text/plain; charset=utf-8"),
        ('TEXT/Plain ; Charset="UTF-8"', "text/plain; charset=UTF-8"),
        ('text/plain; x="a, b"', 'text/plain; x="a, b"'),
        ('text/plain; x="a\\"b\\\\c"', 'text/plain; x="a\\"b\\\\c"'),
        ('text/plain; x="\\a"', "text/plain; x=a"),
        ('text/plain; x=""', 'text/plain; x=""'),
        ("text/plain;", "text/plain"),
        ("text/plain;;a=b;", "text/plain; a=b"),
        ("application/vnd.ms-excel", "application/vnd.ms-excel"),
    ],
)
def test_examples_normalise(raw: str, normalised: str) -> None:
    assert str(parse_media_type(raw)) == normalised


def test_the_essence_is_type_and_subtype() -> None:
    assert parse_media_type("Text/Plain; charset=utf-8").essence == "text/plain"
    assert parse_media_type("text/plain") == MediaType("text", "plain")


@pytest.mark.parametrize(
    ("declared", "stored"),
    [
        (None, None),
        ("", None),
        ("application/octet-stream", None),
        ("Application/Octet-Stream; x=y", None),
        ("application/x-www-form-urlencoded", None),
        ("Text/CSV;header=present", "text/csv; header=present"),
    ],
)
def test_the_declared_type_is_stored_normalised_or_means_detect(
    declared: str | None, stored: str | None
) -> None:
    assert clean_content_type(declared) == stored


def test_an_unparseable_declared_type_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="content type"):
        clean_content_type("text/plain; a=b, text/html")
