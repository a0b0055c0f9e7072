"""``docpipe keys create|list|revoke``: API keys managed straight on the repository the settings select.

It runs whether or not servers use the same stores, and takes no data-folder lock: each command is one
short write or read that servers see at their next lookup of a key. Only ``create`` may create a
missing store (per ``DOCPIPE_CREATE_MISSING``), so that keys can be made before the first start;
``list`` and ``revoke`` refuse a folder, file or table that holds no docpipe store.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime

import msgspec

from docpipe.config import RepositoryKind, Settings
from docpipe.container import Container, close
from docpipe.domain.errors import InvalidInput, KeyNotFound, StoreFailure, StoreMissing
from docpipe.domain.identity import Scope
from docpipe.domain.key_service import KeyService
from docpipe.domain.model import utc_now
from docpipe.entrypoints.key_views import KeyListView, created_key_view, key_view, ordered_scopes

logger = logging.getLogger("docpipe")

REFUSED = 1
"""Exit status when the command was refused: no key with that id, or a key that cannot be made."""
CANNOT_RUN = 2
"""Exit status when the repository could not be used at all."""

_SCOPES = ", ".join(scope.value for scope in Scope)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys, straight on the repository")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser(
        "create", help="create a key; prints its secret, which is shown this once and never again"
    )
    create.add_argument("--owner", required=True, help="whose documents the key reaches")
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        required=True,
        metavar="SCOPE",
        help=f"repeat for each: {_SCOPES}",
    )
    create.add_argument("--name", default="", help="a note for people, up to 100 characters")
    create.add_argument("--expires-in", type=int, metavar="SECONDS", help="default: never expires")
    create.add_argument("--json", action="store_true", help="print the key as JSON, secret included")
    listing = actions.add_parser("list", help="list the keys that are not revoked, oldest first")
    listing.add_argument("--json", action="store_true", help="print the keys as JSON")
    revoke = actions.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("id", help="the key's id (key_...), as listed")


def run(settings: Settings, arguments: argparse.Namespace) -> int:
    """Exit status 0 when done, ``REFUSED`` or ``CANNOT_RUN`` as their docstrings say."""
    if settings.repository is RepositoryKind.MEMORY:
        logger.critical(
            "cannot manage keys: DOCPIPE_REPOSITORY=memory keeps them in each process's own memory"
        )
        return CANNOT_RUN
    command: Callable[[KeyService], Awaitable[None]]
    if arguments.keys_command == "create":
        command = _creating(arguments)
    else:
        settings = msgspec.structs.replace(settings, create_missing=False)
        command = (
            _listing(json=arguments.json) if arguments.keys_command == "list" else _revoking(arguments.id)
        )
    return asyncio.run(_on_repository(settings, command))


async def _on_repository(settings: Settings, command: Callable[[KeyService], Awaitable[None]]) -> int:
    container = Container(settings=settings)
    try:
        service: KeyService = await container.key_service()  # type: ignore[misc]
        await command(service)
    except (InvalidInput, KeyNotFound) as error:
        print(f"docpipe keys: {error.detail}", file=sys.stderr)
        return REFUSED
    except StoreMissing as error:
        logger.critical("cannot manage keys: no docpipe store there: %s does not exist", error.store)
        return CANNOT_RUN
    except StoreFailure as error:
        logger.critical("cannot manage keys: %s", error)
        return CANNOT_RUN
    finally:
        await close(container)
    return 0


def _creating(arguments: argparse.Namespace) -> Callable[[KeyService], Awaitable[None]]:
    async def create(service: KeyService) -> None:
        issued = await service.create(
            arguments.owner, arguments.scopes, name=arguments.name, expires_in=arguments.expires_in
        )
        if arguments.json:
            print(msgspec.json.encode(created_key_view(issued)).decode())
            return
        key = issued.key
        print(issued.secret)
        print(
            f"created {key.id} for owner {key.owner} ({', '.join(ordered_scopes(key))}), "
            f"expires {_moment(key.expires_at, never='never')}: the key above is shown only this once",
            file=sys.stderr,
        )

    return create


def _listing(*, json: bool) -> Callable[[KeyService], Awaitable[None]]:
    async def list_keys(service: KeyService) -> None:
        keys = await service.list()
        if json:
            print(msgspec.json.encode(KeyListView([key_view(key) for key in keys])).decode())
            return
        if not keys:
            print("no keys")
            return
        now = utc_now()
        rows = [("ID", "OWNER", "SCOPES", "CREATED", "EXPIRES", "LAST USED", "NAME")]
        rows += [
            (
                key.id,
                key.owner,
                ",".join(ordered_scopes(key)),
                _moment(key.created_at),
                _moment(key.expires_at, never="never") + (" (expired)" if key.expired(now) else ""),
                _moment(key.last_used_at, never="never"),
                key.name,
            )
            for key in keys
        ]
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
        for row in rows:
            print(
                "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
            )

    return list_keys


def _revoking(key_id: str) -> Callable[[KeyService], Awaitable[None]]:
    async def revoke(service: KeyService) -> None:
        await service.revoke(key_id)
        print(f"revoked {key_id}")

    return revoke


def _moment(moment: datetime | None, never: str = "") -> str:
    return never if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}Z"
