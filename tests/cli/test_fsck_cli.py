"""``docpipe fsck`` as an operator runs it, over stores damaged the way crashes damage them: a real process
where the process matters, in this process otherwise (see ``support``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aioboto3
import msgspec
import pytest

from docpipe.adapters.filesystem import PARTIAL_SUFFIX, FilesystemBlobStore
from docpipe.config import Settings
from docpipe.container import Container, close, open_service
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import Document, NewDocument, new_blob_key, new_document_id
from docpipe.domain.ports import BlobStore
from docpipe.domain.service import DocumentService
from docpipe.entrypoints import data_lock
from tests.adapters_under_test import settings_for
from tests.cli.support import Run, docpipe, docpipe_here, environment, sqlite_environment
from tests.live_server import LiveServer, live_server
from tests.moto_server import MotoServer, free_port

AN_HOUR_AGO = time.time() - 3600
FINDING = re.compile(r"^(\w+) ((?:[\w.-]+/)?[0-9a-f-]{36}): ", re.MULTILINE)
"""A finding's kind and key: a document's id, or a blob's key (``<owner>/<uuid7>``, or a bare id)."""


def findings(run: Run) -> set[tuple[str, str]]:
    return {(kind, key) for kind, key in FINDING.findall(run.stdout)}


async def docpipe_fsck(env: dict[str, str], *arguments: str) -> Run:
    """``docpipe fsck`` in this process, beside the test's event loop (which ``cli.main`` cannot run in)."""
    return await asyncio.to_thread(docpipe_here, env, "fsck", *arguments)


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[tuple[DocumentService, BlobStore]]:
    container = Container(settings=settings)
    try:
        service = await open_service(container)
        blobs: BlobStore = await container.blob_store()
        yield service, blobs
    finally:
        await close(container)


async def stream(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def upload(service: DocumentService, data: bytes = b"content", owner: str = DEFAULT_OWNER) -> Document:
    return await service.upload(owner, stream(data), NewDocument(filename="report.pdf"))


class Damage(msgspec.Struct, frozen=True):
    healthy: str
    orphan: str
    partial: str
    missing: str


async def damage(service: DocumentService, blobs: BlobStore) -> Damage:
    """One healthy document, a blob without metadata and metadata without blob (crashes between
    the two writes of an upload or of a delete), both another owner's, and a partial upload under a
    bare id (as uploads left them before keys carried their owner)."""
    healthy = await upload(service)
    missing = await upload(service, owner="tenant-b")
    await blobs.delete(missing.blob_key)
    orphan = new_blob_key("tenant-b")
    await blobs.put(orphan, stream(b"uploaded, never committed"))
    return Damage(healthy=healthy.id, orphan=orphan, partial=new_document_id(), missing=missing.id)


async def damaged_data_dir(data_dir: Path, *, backdated: bool = True) -> Damage:
    settings = settings_for(blob_store="filesystem", repository="sqlite", data_dir=data_dir)
    async with opened(settings) as (service, blobs):
        damaged = await damage(service, blobs)
    files = FilesystemBlobStore(data_dir / "blobs")
    partial = files.path_of(damaged.partial).with_name(f".{damaged.partial}.0123abcd{PARTIAL_SUFFIX}")
    partial.parent.mkdir(exist_ok=True)
    partial.write_bytes(b"half an upload")
    if backdated:
        for leftover in (files.path_of(damaged.orphan), partial):
            os.utime(leftover, (AN_HOUR_AGO, AN_HOUR_AGO))
    return damaged


def expected_findings(damaged: Damage) -> set[tuple[str, str]]:
    return {
        ("orphan_blob", damaged.orphan),
        ("stale_partial", damaged.partial),
        ("missing_blob", damaged.missing),
    }


async def test_a_dry_run_reports_fix_repairs_and_the_next_run_is_clean(tmp_path: Path) -> None:
    damaged = await damaged_data_dir(tmp_path)
    env = sqlite_environment(tmp_path)

    dry = await asyncio.to_thread(docpipe, env, "fsck")  # the one run as a process of its own
    assert dry.code == 1, dry
    assert findings(dry) == expected_findings(damaged)
    assert "dry run: nothing was changed" in dry.stdout
    assert "documents without content cannot be recovered: --fix deletes their metadata" in dry.stdout
    assert "checked 2 documents and 3 blob store entries" in dry.stdout
    assert findings(await docpipe_fsck(env)) == findings(dry)

    fixed = await docpipe_fsck(env, "--fix")
    assert fixed.code == 0, fixed
    assert findings(fixed) == expected_findings(damaged)
    assert f"missing_blob {damaged.missing}: " in fixed.stdout
    assert "[metadata deleted]" in fixed.stdout
    assert fixed.stdout.count("[reclaimed]") == 2
    assert "the content of 1 documents was lost and cannot be recovered" in fixed.stdout

    again = await docpipe_fsck(env, "--verify-content")
    assert again.code == 0, again
    assert findings(again) == set()
    assert "checked 1 documents and 1 blob store entries" in again.stdout
    assert again.stdout.rstrip().endswith("clean")


async def test_mismatched_blobs_are_left_to_a_human(tmp_path: Path) -> None:
    settings = settings_for(blob_store="filesystem", repository="sqlite", data_dir=tmp_path)
    async with opened(settings) as (service, _):
        resized = await upload(service, b"content")
        altered = await upload(service, b"content")
    files = FilesystemBlobStore(tmp_path / "blobs")
    files.path_of(resized.blob_key).write_bytes(b"truncated")
    files.path_of(altered.blob_key).write_bytes(b"CONTENT")
    env = sqlite_environment(tmp_path)

    fixed = await docpipe_fsck(env, "--fix")
    assert fixed.code == 1, fixed
    assert findings(fixed) == {("size_mismatch", resized.id)}
    verified = await docpipe_fsck(env, "--fix", "--verify-content")
    assert verified.code == 1, verified
    assert findings(verified) == {("size_mismatch", resized.id), ("digest_mismatch", altered.id)}
    assert "never repaired automatically" in verified.stdout
    assert files.path_of(altered.blob_key).read_bytes() == b"CONTENT"


async def test_while_a_server_runs_leftovers_within_the_grace_period_are_left_alone(tmp_path: Path) -> None:
    settings = settings_for(blob_store="filesystem", repository="sqlite", data_dir=tmp_path)
    async with opened(settings) as (service, blobs):
        await upload(service)
        orphan = new_document_id()
        await blobs.put(orphan, stream(b"an upload about to commit"))
    env = sqlite_environment(tmp_path)

    with live_server(env, tmp_path / "server.log"):
        recent = await docpipe_fsck(env, "--fix")
        assert recent.code == 0, recent
        assert "(1 too recent to judge" in recent.stdout
        assert FilesystemBlobStore(tmp_path / "blobs").path_of(orphan).exists()
        assert findings(await docpipe_fsck(env, "--grace-minutes", "0")) == {("orphan_blob", orphan)}


async def test_leftovers_of_a_crash_are_judged_at_once_when_no_server_runs(tmp_path: Path) -> None:
    """Right after a crash the leftovers are seconds old: without a server holding the data folder's
    lock, none can be an upload in flight, so the grace period does not apply."""
    damaged = await damaged_data_dir(tmp_path, backdated=False)
    env = sqlite_environment(tmp_path)

    alone = await docpipe_fsck(env)
    assert alone.code == 1, alone
    assert findings(alone) == expected_findings(damaged)
    assert "no server is using this data folder: leftovers are judged whatever their age" in alone.stdout
    explicit = await docpipe_fsck(env, "--grace-minutes", "15")
    assert findings(explicit) == {("missing_blob", damaged.missing)}
    assert "(2 too recent to judge" in explicit.stdout

    with live_server(env, tmp_path / "server.log"):
        shared = await docpipe_fsck(env, "--fix")
    assert shared.code == 0, shared
    assert findings(shared) == {("missing_blob", damaged.missing)}
    assert "(2 too recent to judge" in shared.stdout
    assert "no server is using" not in shared.stdout
    assert FilesystemBlobStore(tmp_path / "blobs").path_of(damaged.orphan).exists()


async def test_a_server_does_not_start_while_fsck_runs(tmp_path: Path) -> None:
    await damaged_data_dir(tmp_path)
    settings = settings_for(blob_store="filesystem", repository="sqlite", data_dir=tmp_path)
    with data_lock.checking(settings) as alone:
        assert alone
        serve = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "docpipe.entrypoints.cli",
            "serve",
            env=sqlite_environment(tmp_path) | {"DOCPIPE_PORT": str(free_port())},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(serve.communicate(), 60)
    assert serve.returncode == 1
    assert "Traceback" not in stderr.decode()
    assert "cannot start: docpipe fsck is running on" in stderr.decode()


@pytest.mark.parametrize("folder", ["absent", "empty"])
async def test_a_folder_without_a_store_is_refused_and_left_alone(tmp_path: Path, folder: str) -> None:
    data_dir = tmp_path / folder
    if folder == "empty":
        data_dir.mkdir()
    run = await docpipe_fsck(sqlite_environment(data_dir))
    assert run.code == 2, run
    assert run.stdout == ""
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert f"no docpipe store there: blob folder {data_dir}" in run.stderr
    assert (list(data_dir.iterdir()) if data_dir.exists() else None) == ([] if folder == "empty" else None)


async def test_configuration_errors_exit_with_2(tmp_path: Path) -> None:
    env = sqlite_environment(tmp_path)
    assert (await docpipe_fsck(env | {"DOCPIPE_BLOB_STORE": "floppy"})).code == 2
    assert (await docpipe_fsck(env | {"DOCPIPE_BLOB_STOER": "s3"})).code == 2
    negative = await docpipe_fsck(env, "--grace-minutes", "-1")
    assert negative.code == 2
    assert "not a number of minutes" in negative.stderr


async def test_s3_and_dynamodb(tmp_path: Path, moto_server: MotoServer) -> None:
    """S3 objects cannot be back-dated, hence no grace period; the leftover upload is a multipart one."""
    endpoint = moto_server.endpoint_url
    settings = settings_for(
        blob_store="s3", repository="dynamodb", data_dir=tmp_path, aws_endpoint_url=endpoint
    )
    async with opened(settings) as (service, blobs):
        damaged = await damage(service, blobs)
    async with aioboto3.Session().client("s3", endpoint_url=endpoint) as client:
        await client.create_multipart_upload(Bucket=settings.s3.bucket, Key=damaged.partial)
    env = environment(
        blob_store="s3",
        repository="dynamodb",
        s3_endpoint_url=endpoint,
        s3_bucket=settings.s3.bucket,
        s3_path_style="true",
        dynamodb_endpoint_url=endpoint,
        dynamodb_table=settings.dynamodb.table,
    )

    dry = await docpipe_fsck(env, "--grace-minutes", "0")
    assert dry.code == 1, dry
    assert findings(dry) == expected_findings(damaged)
    fixed = await docpipe_fsck(env, "--grace-minutes", "0", "--fix")
    assert fixed.code == 0, fixed
    assert findings(fixed) == expected_findings(damaged)
    again = await docpipe_fsck(env, "--grace-minutes", "0", "--verify-content")
    assert again.code == 0, again
    assert findings(again) == set()
    assert "checked 1 documents and 1 blob store entries" in again.stdout


def readme_fsck_commands() -> list[str]:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if "docpipe fsck" in line]


def test_the_readme_shows_fsck_commands() -> None:
    assert len(readme_fsck_commands()) >= 4


async def test_a_readme_fsck_command_runs_from_a_checkout_as_written(tmp_path: Path) -> None:
    """The first, in a shell in a checkout where ``make`` created ``.venv``, with nothing of it on PATH."""
    (tmp_path / ".venv").symlink_to(sys.prefix)
    await damaged_data_dir(tmp_path / "data")
    command = readme_fsck_commands()[0]
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        cwd=tmp_path,
        env=environment() | {"PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode in (0, 1), (command, process.returncode, stderr.decode())
    assert "problems remain" in stdout.decode() or "clean" in stdout.decode(), stdout.decode()


@pytest.mark.parametrize("command", readme_fsck_commands())
async def test_the_readme_fsck_commands_work_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Each one's arguments, run in this process from the checkout's folder; the program they name is the
    one the test above runs in a shell."""
    program, *arguments = shlex.split(command, comments=True)
    assert program == ".venv/bin/docpipe", command
    await damaged_data_dir(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    run = await asyncio.to_thread(docpipe_here, environment(), *arguments)
    assert run.code in (0, 1), (command, run)
    assert "problems remain" in run.stdout or "clean" in run.stdout, run.stdout


async def test_workers_outliving_their_supervisor_still_hold_the_data_folder(tmp_path: Path) -> None:
    """Each serving process holds the lock, not only the supervisor: workers left running after it was
    killed still serve uploads, so fsck must keep its grace period."""
    damaged = await damaged_data_dir(tmp_path, backdated=False)
    env = sqlite_environment(tmp_path) | {"DOCPIPE_WORKERS": "2"}
    server = LiveServer(env, tmp_path / "server.log")
    server.start()
    children_file = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    children = (await asyncio.to_thread(children_file.read_text)).split()
    try:
        assert len(children) >= 2  # the two workers (and multiprocessing's resource tracker)
        server.stop(signal.SIGKILL)
        shared = await docpipe_fsck(sqlite_environment(tmp_path))
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
    assert "no server is using" not in shared.stdout
    assert findings(shared) == {("missing_blob", damaged.missing)}
