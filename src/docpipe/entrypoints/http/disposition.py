"""The ``Content-Disposition`` response header (RFC 6266) and when a download may be shown inline."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from docpipe.domain.media_types import MediaType, is_token

# Characters the quoted fallback must not carry: quoted-string delimiters and escapes, controls (never
# valid in a field value), and ``;`` and ``%``, which naive parsers read as a parameter separator or
# as percent-encoding (RFC 6266 appendix D advises against both).
_UNSAFE_IN_FALLBACK = re.compile(r'[\x00-\x1f\x7f"\\;%]')
# RFC 8187 §3.2.1 attr-char minus ALPHA / DIGIT and ``_.-~``, which ``quote`` never encodes.
_ATTR_CHAR_PUNCTUATION = "!#$&+-.^_`|~"
_DEFAULT_NAME = "download"

INLINE_SAFE_TYPES: frozenset[str] = frozenset(
    {
        "application/json",
        "application/pdf",
        "audio/aac",
        "audio/flac",
        "audio/mp4",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/webm",
        "image/avif",
        "image/gif",
        "image/jpeg",
        "image/png",
        "image/webp",
        "text/plain",
        "video/mp4",
        "video/ogg",
        "video/webm",
    }
)
"""Media types a browser renders without running anything the document carries.

Everything else, and above all ``text/html``, ``image/svg+xml``, ``application/xhtml+xml``,
``text/xml`` and ``application/javascript``, is served as an attachment: shown inline from our
origin, such a document could run script with the API's cookies and storage (stored XSS). The
responses also carry ``X-Content-Type-Options: nosniff``, so a browser cannot promote ``text/plain``
to HTML.
"""


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """``disposition; filename="<ascii fallback>"; filename*=UTF-8''<percent-encoded>``.

    RFC 6266 §4.3 and appendix D: ``filename`` is a plain ASCII quoted-string every client
    understands, ``filename*`` (RFC 8187) carries the exact name for clients that read it. The
    fallback is the NFKD transliteration without non-ASCII characters (``Résumé`` → ``Resume``), with
    the characters listed at ``_UNSAFE_IN_FALLBACK`` replaced by ``_``. ``filename*`` is left out when
    the name is already its own fallback, or empty. Lone surrogates, which UTF-8 cannot carry,
    become U+FFFD.

    Raises ``ValueError`` when ``disposition`` is not an RFC 9110 token.
    """
    # The disposition type must be a token, or it could smuggle parameters.
    if not is_token(disposition):
        raise ValueError(f"disposition type {disposition!r} is not a token")
    name = filename.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    fallback = ascii_fallback(name)
    header = f'{disposition}; filename="{fallback}"'
    if name and fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHAR_PUNCTUATION)}"
    return header


def ascii_fallback(filename: str) -> str:
    """An ASCII name safe inside a quoted-string that resembles ``filename`` as closely as it can.

    A name that loses everything before its extension (``報告.pdf``) becomes ``download.pdf`` rather
    than a hidden-looking ``.pdf``; one with no letter or digit left becomes ``download``.
    """
    ascii_only = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    fallback = _UNSAFE_IN_FALLBACK.sub("_", ascii_only).strip(" ")
    if not any(char.isalnum() for char in fallback):
        return _DEFAULT_NAME
    if fallback.startswith(".") and not filename.startswith("."):
        return _DEFAULT_NAME + fallback
    return fallback


def disposition_for(requested: str | None, media_type: MediaType) -> str:
    """``inline`` when the client asked for it and ``media_type`` is in :data:`INLINE_SAFE_TYPES`.

    ``requested`` is compared case-insensitively. The allowlist judges the type without parameters;
    it is the type served, strictly parsed, so a stored value that is not exactly one media type,
    such as ``text/plain; a=b, text/html`` (which a browser renders as HTML), never gets here.
    """
    if requested is None or requested.strip().lower() != "inline":
        return "attachment"
    return "inline" if media_type.essence in INLINE_SAFE_TYPES else "attachment"
