"""The first start's admin key, so that a fresh install can be used at once and no key is ever logged.

Unless ``DOCPIPE_ADMIN_KEY`` is set or ``DOCPIPE_AUTH=none``: when the repository holds no key and
``<data dir>/admin.key`` does not exist, a key of owner ``default`` with every scope is created and
written there, readable by this user only; the log names the file. While the file exists no other
is made: if its key was revoked, the log says how to go on rather than quietly minting a new one.
A ``memory`` repository starts empty every time, so its file is written anew at every start.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from docpipe.adapters.durable_files import write_private_file
from docpipe.config import AuthMode, RepositoryKind, Settings
from docpipe.domain.identity import ALL_SCOPES, DEFAULT_OWNER, Scope
from docpipe.domain.key_service import KeyService
from docpipe.domain.keys import hash_secret, well_formed
from docpipe.domain.model import utc_now
from docpipe.domain.ports import KeyRepository

logger = logging.getLogger("docpipe")

ADMIN_KEY_FILE = "admin.key"
ADMIN_KEY_NAME = "admin key of the first start"
_READ_AT_MOST = 1024
_CREATE_COMMAND = "docpipe keys create --owner default " + " ".join(
    f"--scope {scope.value}" for scope in Scope
)


def admin_key_file(settings: Settings) -> Path:
    return settings.data_dir / ADMIN_KEY_FILE


async def ensure_admin_key(settings: Settings, service: KeyService, keys: KeyRepository) -> None:
    """Run once per start, by the process that starts the server, before any worker: workers started
    together would each find no key. Raises ``OSError`` when the file cannot be written (the key made
    for it is revoked again) and the repository's ``StoreFailure``."""
    if settings.admin_key is not None or settings.auth is AuthMode.NONE:
        return
    path = admin_key_file(settings)
    written = await asyncio.to_thread(_read, path)
    if written is not None and settings.repository is not RepositoryKind.MEMORY:
        key = await keys.find(hash_secret(written)) if well_formed(written) else None
        if key is None or key.expired(utc_now()):
            logger.warning(
                "the key in %s is revoked or expired, or not one of this repository: create a key with "
                "`%s`, or delete %s so that a start finding no key writes a new one there",
                path,
                _CREATE_COMMAND,
                path,
            )
        return
    if await service.list():
        return
    issued = await service.create(DEFAULT_OWNER, ALL_SCOPES, name=ADMIN_KEY_NAME)
    try:
        await asyncio.to_thread(write_private_file, path, issued.secret + "\n")
    except OSError:
        await service.revoke(issued.key.id)
        raise
    logger.info(
        "no API key existed: created one for owner %s with every scope, in %s (readable by this user only)",
        DEFAULT_OWNER,
        path,
    )


def _read(path: Path) -> str | None:
    """The file's first line or so: a key is far shorter than what is read."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return file.read(_READ_AT_MOST).strip()
    except FileNotFoundError:
        return None
