"""The keys that sign links: ``DOCPIPE_SIGNING_KEY``, or else one generated once in the data folder.

The generated key (256 random bits) is written to ``<data dir>/signing.key``, readable by its owner
only, and kept: links stay valid across restarts. It is created atomically (written to a private
temporary file, then hard-linked into place, which fails if the file exists), so processes starting
together all end up with the one key that was linked first. Replicas on other machines have their own
data folders: they must share ``DOCPIPE_SIGNING_KEY`` instead.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from docpipe.adapters.durable_files import create_private_file
from docpipe.config import Settings, SettingsError
from docpipe.domain.errors import InvalidInput
from docpipe.domain.links import LinkSigner, SigningKey

KEY_FILE = "signing.key"
_GENERATED_BYTES = 32

logger = logging.getLogger(__name__)


def link_signer(settings: Settings) -> LinkSigner:
    """Raises ``SettingsError`` when no key is set and the key file cannot be read or made."""
    if settings.signing_keys:
        return LinkSigner(settings.signing_keys)
    path = settings.data_dir / KEY_FILE
    try:
        secret = _read(path) if path.exists() else _create(path)
    except OSError as error:
        raise SettingsError(
            f"cannot keep the link signing key in {path}: {error.strerror}; set DOCPIPE_SIGNING_KEY"
        ) from None
    try:
        return LinkSigner([SigningKey(secret)])
    except InvalidInput as error:
        raise SettingsError(f"the link signing key in {path} is unusable: {error.detail}") from None


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii", errors="replace").strip()


def _create(path: Path) -> str:
    secret = secrets.token_urlsafe(_GENERATED_BYTES)
    if not create_private_file(path, secret + "\n"):
        return _read(path)
    logger.info("generated a link signing key in %s", path)
    return secret
