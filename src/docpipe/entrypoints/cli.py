"""The ``docpipe`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from datetime import timedelta

import msgspec
import uvicorn
import uvloop
from litestar import Litestar
from uvicorn.supervisors import Multiprocess

from docpipe import metrics
from docpipe.config import (
    DEFAULT_TRUSTED_PROXIES,
    LimitSettings,
    LogFormat,
    Settings,
    SettingsError,
    TrustedProxies,
    load_settings,
)
from docpipe.container import Container, close, open_service
from docpipe.domain.errors import StoreFailure, StoreMissing
from docpipe.domain.fsck import DEFAULT_GRACE, FindingKind, Fsck, FsckReport
from docpipe.domain.key_service import KeyService
from docpipe.domain.ports import KeyRepository
from docpipe.entrypoints import data_lock, keys_cli, logs, reprocess_cli, worker_cli
from docpipe.entrypoints.admin_key import ensure_admin_key
from docpipe.entrypoints.http.app import create_app
from docpipe.entrypoints.http.connections import ServerConfig

logger = logging.getLogger("docpipe")

INTERRUPTED = 128 + signal.SIGINT
"""The exit status of a command stopped by Ctrl+C, as shells report it."""


def server_config(
    app: Litestar | str,
    host: str,
    port: int,
    limits: LimitSettings,
    workers: int = 1,
    log_format: LogFormat | None = None,
    trusted_proxies: TrustedProxies | None = None,
) -> uvicorn.Config:
    """How docpipe runs uvicorn: httptools parses HTTP (guarded by ``limits``, see ``connections``),
    uvloop runs the event loop (both C). The bench's baseline apps are served with the same, so that
    its ratios compare apps, not servers. uvicorn logs through docpipe's handler (see ``logs``), and
    its access log is off: docpipe's own (``http.observed``) replaces it. The proxies whose
    ``X-Forwarded-For`` and ``-Proto`` uvicorn applies are those docpipe trusts (``trusted_proxies``, by
    default loopback), whatever ``FORWARDED_ALLOW_IPS`` says: one setting for every proxy header."""
    return ServerConfig(
        app,
        limits=limits,
        host=host,
        port=port,
        workers=workers,
        factory=isinstance(app, str),
        loop="uvloop",
        log_level="info",
        log_config=logs.logging_config(log_format),
        access_log=False,
        forwarded_allow_ips=(trusted_proxies or TrustedProxies(DEFAULT_TRUSTED_PROXIES)).for_uvicorn(),
        lifespan="on",
        timeout_graceful_shutdown=limits.shutdown_timeout,
        # How long the supervisor of several workers waits for one to answer its ping. A worker answers
        # only once it has imported docpipe, which takes seconds on a busy machine; uvicorn's 5 s would
        # kill and restart workers that are merely starting.
        timeout_worker_healthcheck=60,
    )


async def open_or_explain(settings: Settings, container: Container) -> bool:
    """Open the stores, make the first start's admin key (see ``admin_key``) and read (or make) the link
    signing key (see ``signing_key``); a store that cannot be reached, or a key file that cannot be
    written or read, stops start-up with one clear line, not a lifespan traceback. Workers started
    after this find the key files made."""
    try:
        await open_service(container)
        service: KeyService = await container.key_service()  # type: ignore[misc]
        keys: KeyRepository = await container.keys()
        await ensure_admin_key(settings, service, keys)
        container.link_signer()
    except (StoreFailure, SettingsError) as error:
        logger.critical("cannot start: %s", error)
        await close(container)
        return False
    except OSError as error:
        logger.critical("cannot start: cannot write the admin key file: %s", error)
        await close(container)
        return False
    return True


async def serve_one(settings: Settings, host: str, port: int) -> int:
    """One process: the stores are opened in uvicorn's event loop; the app's lifespan finds them open."""
    container = Container(settings=settings)
    if not await open_or_explain(settings, container):
        return 1
    config = server_config(
        create_app(settings, container),
        host,
        port,
        settings.limits,
        log_format=settings.log_format,
        trusted_proxies=settings.trusted_proxies,
    )
    await uvicorn.Server(config).serve()
    return 0


async def _check_stores(settings: Settings) -> bool:
    container = Container(settings=settings)
    if not await open_or_explain(settings, container):
        return False
    await close(container)
    return True


def serve(settings: Settings, host: str, port: int) -> int:
    """Serve while holding the data folder's lock (see ``data_lock``)."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(data_lock.serving(settings))
        except data_lock.FolderInUse as error:
            logger.critical("cannot start: %s", error)
            return 1
        return _serve_processes(settings, host, port)


def _serve_processes(settings: Settings, host: str, port: int) -> int:
    """``DOCPIPE_WORKERS`` processes share the listening socket, each opening its own stores through the
    app's lifespan. The stores are opened once here first, so that a bucket, table or schema missing is
    created once rather than by racing workers, the first start's admin key is made once, and an
    unreachable store stops start-up in one line."""
    if settings.workers == 1:
        return uvloop.run(serve_one(settings, host, port))
    if not uvloop.run(_check_stores(settings)):
        return 1
    with metrics.shared_between_processes():
        config = server_config(
            f"{__name__}:worker_app",
            host,
            port,
            settings.limits,
            settings.workers,
            settings.log_format,
            settings.trusted_proxies,
        )
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    return 0


def worker_app() -> Litestar:
    """The app of one worker process, which uvicorn imports by this name (its logging is configured
    by uvicorn, from ``server_config``)."""
    return create_app(load_settings())


async def fsck(settings: Settings, *, fix: bool, verify_content: bool, grace: timedelta | None) -> int:
    """Exit status 0 when nothing is wrong (any more), 1 when problems remain, 2 when the check
    could not run to its end. The stores are opened without creating anything, so a folder, bucket or
    table that holds no store is refused (before the lock file is made in the folder). Without a
    ``grace`` the default applies, or none at all when no server uses the stores."""
    settings = msgspec.structs.replace(settings, create_missing=False)
    container = Container(settings=settings)
    try:
        await open_service(container)
        with data_lock.checking(settings) as alone:
            if grace is None and alone:
                print("no server is using this data folder: leftovers are judged whatever their age")
            grace = grace if grace is not None else timedelta(0) if alone else DEFAULT_GRACE
            check: Fsck = await container.fsck(grace=grace)  # type: ignore[misc]
            report = await check.run(fix=fix, verify_content=verify_content)
    except StoreMissing as error:
        logger.critical("cannot check: no docpipe store there: %s does not exist", error.store)
        return 2
    except StoreFailure as error:
        logger.critical("cannot check: %s", error)
        return 2
    finally:
        await close(container)
    _print_report(report, fix)
    return 0 if report.clean else 1


_REPAIRED = {
    FindingKind.ORPHAN_BLOB: "reclaimed",
    FindingKind.STALE_PARTIAL: "reclaimed",
    FindingKind.MISSING_BLOB: "metadata deleted",
    FindingKind.SEARCH_INDEX: "rebuilt",
}


def _print_report(report: FsckReport, fix: bool) -> None:
    for finding in report.findings:
        repaired = f" [{_REPAIRED[finding.kind]}]" if finding.fixed else ""
        print(f"{finding.kind} {finding.key}: {finding.detail}{repaired}")
    print(
        f"checked {report.documents} documents and {report.entries} blob store entries "
        f"({report.recent} too recent to judge, {report.uploading} of resumable uploads in progress, "
        f"{report.ignored} not named like docpipe's)"
    )
    found, fixed = report.counts(), report.fixed_counts()
    for kind in FindingKind:
        if found[kind]:
            print(f"{kind}: {found[kind]} found, {fixed[kind]} repaired")
    missing, lost = found[FindingKind.MISSING_BLOB], fixed[FindingKind.MISSING_BLOB]
    if lost:
        print(f"the content of {lost} documents was lost and cannot be recovered: their metadata was deleted")
    if missing > lost:
        print("documents without content cannot be recovered: --fix deletes their metadata")
    if found[FindingKind.MISSING_TEXT]:
        print("lost extracted text is never repaired by fsck: `docpipe reprocess --all` extracts it again")
    if found[FindingKind.SIZE_MISMATCH] or found[FindingKind.DIGEST_MISMATCH]:
        print("mismatched blobs are never repaired automatically: restore them or delete their documents")
    if report.refusal is not None:
        print(f"repairs withheld: {report.refusal}")
    if not fix and any(kind in _REPAIRED for kind in found):
        print("dry run: nothing was changed; run with --fix to repair")
    if not report.clean:
        print("problems remain")
    else:
        print("clean: everything found was repaired" if report.findings else "clean")


def _minutes(value: str) -> timedelta:
    try:
        grace = timedelta(minutes=float(value))
    except (ValueError, OverflowError):
        grace = timedelta(-1)
    if grace < timedelta(0):
        raise argparse.ArgumentTypeError(f"not a number of minutes, 0 or more: {value!r}")
    return grace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="docpipe", description="Async document storage service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_command = commands.add_parser(
        "serve", help="serve the HTTP API (settings from DOCPIPE_* variables)"
    )
    serve_command.add_argument("--host", help="overrides DOCPIPE_HOST")
    serve_command.add_argument("--port", type=int, help="overrides DOCPIPE_PORT")
    fsck_command = commands.add_parser(
        "fsck", help="check that metadata and blobs agree; a dry run unless --fix is given"
    )
    fsck_command.add_argument(
        "--fix", action="store_true", help="reclaim leftovers and delete metadata whose content is lost"
    )
    fsck_command.add_argument(
        "--verify-content", action="store_true", help="also read every blob and compare its sha-256"
    )
    fsck_command.add_argument(
        "--grace-minutes",
        dest="grace",
        type=_minutes,
        help="leave entries younger than this alone: they may be uploads in flight (default: 15, "
        "or 0 when no server uses the data folder)",
    )
    keys_cli.add_commands(commands)
    reprocess_cli.add_command(commands)
    worker_cli.add_command(commands)
    arguments = parser.parse_args(argv)
    logs.configure(None)
    try:
        settings = load_settings()
    except SettingsError as error:
        logger.critical("%s", error)
        return 2
    logs.configure(settings.log_format)
    try:
        if arguments.command == "fsck":
            check = fsck(
                settings, fix=arguments.fix, verify_content=arguments.verify_content, grace=arguments.grace
            )
            return asyncio.run(check)
        if arguments.command == "keys":
            return keys_cli.run(settings, arguments)
        if arguments.command == "reprocess":
            return reprocess_cli.run(settings, arguments)
        if arguments.command == "worker":
            return worker_cli.run(settings)
        return serve(settings, arguments.host or settings.host, arguments.port or settings.port)
    except KeyboardInterrupt:
        logger.info("stopped: interrupted")
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
