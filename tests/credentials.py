"""The credentials tests present: the servers under test take ``ADMIN_KEY`` as ``DOCPIPE_ADMIN_KEY``
(``settings_for``, ``ADMIN_ENV``)."""

from __future__ import annotations

from docpipe.domain.keys import new_secret

ADMIN_KEY = new_secret()
"""Owner ``default``, every scope."""


def bearer(key: str) -> dict[str, str]:
    """The header that presents ``key``."""
    return {"Authorization": f"Bearer {key}"}


ADMIN_HEADERS = bearer(ADMIN_KEY)
ADMIN_ENV = {"DOCPIPE_ADMIN_KEY": ADMIN_KEY}
"""The settings of a real server whose clients send ``ADMIN_HEADERS``."""
RAW_ADMIN_HEADERS = "".join(f"{name}: {value}\r\n" for name, value in ADMIN_HEADERS.items())
"""``ADMIN_HEADERS`` as lines of a request head, for tests that write requests byte by byte."""
