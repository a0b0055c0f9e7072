"""Backends going away and coming back, seen through a real docpipe server.

S3 and DynamoDB are reached through one ``FaultProxy`` each, in front of the session's moto server, so
either can be refused, reset, cut mid-transfer or made to lose responses while the other keeps
working. A dedicated moto server is stopped and restarted for real (losing its state), and the
filesystem adapter gets a blob folder that cannot be written.

What must hold: a store that cannot be used turns into ``503 application/problem+json`` with
``Retry-After`` (never 500, never a request hanging past the client's timeout), a transfer cut short
never passes for a whole document, and once the store is back docpipe serves again by itself, with
every listed document intact.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from docpipe.adapters.aws_errors import RECREATE_INTERVAL_SECONDS
from docpipe.config import load_settings
from docpipe.container import Container, close, open_service
from tests.credentials import ADMIN_HEADERS
from tests.faults.proxy import Direction, Fault, FaultProxy
from tests.faults.support import (
    MIB,
    assert_fsck_clean,
    assert_problem,
    assert_unavailable,
    aws_env,
    blob_keys_of,
    documents_of,
    download_digest,
    filesystem_env,
    list_all,
    pattern_chunks,
    raw_upload,
    s3_object_keys,
    s3_unfinished_multipart_uploads,
    verify_every_listed_document,
    wait_for,
    wait_until_processed,
)
from tests.live_server import LiveServer, live_server
from tests.moto_server import MotoServer, free_port

CLIENT_TIMEOUT = httpx.Timeout(30.0)
"""No request may take longer than this to answer, outage or not."""
RECOVERY_SECONDS = 30.0
TWO_ATTEMPTS = {"AWS_MAX_ATTEMPTS": "2"}
"""The servers' AWS clients try each request twice, not 3 times: every outage still meets a retry, and
each request during one waits out one back-off (up to 1 s), not two (up to 3 s)."""
UNAVAILABLE_ROUTES = ("list", "get", "content", "upload", "form_upload", "patch", "delete")


@dataclass
class AwsStack:
    server: LiveServer
    client: httpx.Client
    s3: FaultProxy
    dynamodb: FaultProxy
    moto_url: str
    bucket: str
    env: dict[str, str]
    earlier: set[str] = field(default_factory=set)
    """The documents listed when the test started (earlier tests', on the shared server)."""


@pytest.fixture(scope="module")
def shared_stack(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    """One server for the module's proxy tests: starting one costs seconds of imports, and each test
    can isolate itself with documents of its own and what was listed before it (``stack``)."""
    folder = tmp_path_factory.mktemp("aws-stack")
    with (
        FaultProxy("127.0.0.1", moto_server.port) as s3,
        FaultProxy("127.0.0.1", moto_server.port) as dynamodb,
    ):
        env = aws_env(s3.url, dynamodb.url, folder / "data") | TWO_ATTEMPTS
        with (
            live_server(env, folder / "docpipe.log") as server,
            httpx.Client(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=CLIENT_TIMEOUT) as client,
        ):
            yield AwsStack(
                server, client, s3, dynamodb, moto_server.endpoint_url, env["DOCPIPE_S3_BUCKET"], env
            )


@pytest.fixture
def stack(shared_stack: AwsStack) -> Iterator[AwsStack]:
    """The shared server, ready, with what it lists now in ``earlier``; afterwards both stores are
    forwarded again and the server is ready, whatever the test left behind."""
    _wait_until_ready(shared_stack.client)
    shared_stack.earlier = {document["id"] for document in list_all(shared_stack.client)}
    try:
        yield shared_stack
    finally:
        shared_stack.s3.restore()
        shared_stack.dynamodb.restore()
        _wait_until_ready(shared_stack.client)


def _upload(client: httpx.Client, name: str, body: bytes | None = None) -> dict[str, Any]:
    response = raw_upload(client, body if body is not None else f"the document {name}\n".encode(), name)
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


def _form_upload(client: httpx.Client, name: str) -> httpx.Response:
    return client.post("/documents", files={"file": (name, b"a form upload\n", "text/plain")})


def _probe(client: httpx.Client, document_id: str, *, delete: bool = True) -> dict[str, httpx.Response]:
    """One request per route that needs a store, against an existing document, all at once: during
    an outage each takes seconds (botocore retries with back-off). Where the delete might succeed,
    leave it out, as it would race the others."""
    requests: dict[str, Callable[[], httpx.Response]] = {
        "ready": lambda: client.get("/health/ready"),
        "list": lambda: client.get("/documents"),
        "get": lambda: client.get(f"/documents/{document_id}"),
        "content": lambda: client.get(f"/documents/{document_id}/content"),
        "head_content": lambda: client.head(f"/documents/{document_id}/content"),
        "upload": lambda: raw_upload(client, b"sent during the outage\n", "outage.txt"),
        "form_upload": lambda: _form_upload(client, "outage-form.txt"),
        "patch": lambda: client.patch(f"/documents/{document_id}", json={"tags": ["outage"]}),
    }
    if delete:
        requests["delete"] = lambda: client.delete(f"/documents/{document_id}")
    with ThreadPoolExecutor(len(requests)) as pool:
        futures = {route: pool.submit(request) for route, request in requests.items()}
        return {route: future.result() for route, future in futures.items()}


def _assert_not_ready(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers.get("retry-after", "").isdigit(), response.headers
    assert response.json()["status"] == "unavailable"


def _wait_until_ready(client: httpx.Client) -> None:
    wait_for(lambda: client.get("/health/ready").status_code == 200, RECOVERY_SECONDS, "docpipe ready again")


def _assert_intact(client: httpx.Client, document: dict[str, Any]) -> None:
    assert download_digest(client, document["id"]) == (200, document["size"], document["sha256"])


def _assert_resumed(client: httpx.Client, expected: list[dict[str, Any]], earlier: set[str]) -> None:
    """Ready again without a restart, every document from before intact, and a new upload works; the
    listing holds those, the new one and ``earlier`` (documents listed before the test), nothing else."""
    _wait_until_ready(client)
    for document in expected:
        _assert_intact(client, document)
    after = _upload(client, "after-the-outage.txt")
    _assert_intact(client, after)
    listed = verify_every_listed_document(client)
    assert set(listed) == earlier | {document["id"] for document in expected} | {after["id"]}


@pytest.mark.parametrize("fault", [Fault.REFUSE, Fault.RESET], ids=lambda fault: fault.value)
def test_both_backends_down_gives_503_everywhere_then_recovers(stack: AwsStack, fault: Fault) -> None:
    before = _upload(stack.client, "before.txt")
    stack.s3.fail(fault)
    stack.dynamodb.fail(fault)

    responses = _probe(stack.client, before["id"])
    _assert_not_ready(responses["ready"])
    for route in (*UNAVAILABLE_ROUTES, "head_content"):
        assert_unavailable(responses[route])

    stack.s3.restore()
    stack.dynamodb.restore()
    _assert_resumed(stack.client, [before], stack.earlier)


def test_blob_store_down_spares_the_metadata_routes(stack: AwsStack) -> None:
    before = _upload(stack.client, "before.txt")
    stack.s3.fail(Fault.REFUSE)

    responses = _probe(stack.client, before["id"], delete=False)
    _assert_not_ready(responses["ready"])
    assert responses["list"].status_code == 200
    listed = [document["id"] for document in responses["list"].json()["documents"]]
    assert listed[0] == before["id"]  # newest first
    assert set(listed) == stack.earlier | {before["id"]}
    assert responses["get"].status_code == 200
    assert responses["patch"].status_code == 200
    for route in ("content", "head_content", "upload", "form_upload"):  # HEAD answers as GET does
        assert_unavailable(responses[route])

    stack.s3.restore()
    _assert_resumed(stack.client, [before], stack.earlier)


def _log_lines_of(server: LiveServer, request_id: str) -> list[dict[str, Any]]:
    """The JSON log lines written while serving the request, but its access line (logged last)."""
    lines: list[dict[str, Any]] = []

    def logged() -> bool:
        parsed = [json.loads(line) for line in server.log().splitlines()]
        mine = [line for line in parsed if line.get("request_id") == request_id]
        lines[:] = [line for line in mine if line["logger"] != "docpipe.access"]
        return len(lines) < len(mine)

    wait_for(logged, 10, f"the access line of request {request_id}")
    return lines


def test_a_store_failure_names_the_store_to_the_client_and_the_rest_to_the_log(stack: AwsStack) -> None:
    """The client gets the failing store's role and a request id; the endpoint, bucket, table and
    object key go to the log only, in a line carrying the same id."""
    document = _upload(stack.client, "before.txt")
    [stored] = documents_of(stack.env, [document["id"]])
    blob_key = stored.blob_key
    secrets = ("127.0.0.1", "http", stack.bucket, stack.env["DOCPIPE_DYNAMODB_TABLE"], "botocore")

    stack.s3.fail(Fault.REFUSE)
    content = stack.client.get(
        f"/documents/{document['id']}/content", headers={"X-Request-Id": "blobs-down-1"}
    )
    problem = assert_unavailable(content)
    assert problem["detail"] == "the blob store is unavailable"
    assert problem["request_id"] == content.headers["x-request-id"] == "blobs-down-1"
    ready = stack.client.get("/health/ready")
    assert ready.json()["detail"] == "the blob store is unavailable"
    for answer in (content.text, ready.text):
        assert not [secret for secret in secrets if secret in answer], answer
    (line,) = _log_lines_of(stack.server, "blobs-down-1")
    assert line["level"] == "WARNING"
    assert stack.bucket in line["message"]
    assert blob_key in line["message"]  # the object key, in the URL botocore could not reach
    stack.s3.restore()

    stack.dynamodb.fail(Fault.REFUSE)
    patch = stack.client.patch(f"/documents/{document['id']}", json={"tags": ["x"]})
    problem = assert_unavailable(patch)
    assert problem["detail"] == "the metadata repository is unavailable"
    ready = stack.client.get("/health/ready")
    assert ready.json()["detail"] == "the metadata repository is unavailable"
    for answer in (patch.text, ready.text):
        assert not [secret for secret in secrets if secret in answer], answer
    (line,) = _log_lines_of(stack.server, patch.headers["x-request-id"])
    assert stack.env["DOCPIPE_DYNAMODB_TABLE"] in line["message"]
    stack.dynamodb.restore()
    _assert_resumed(stack.client, [document], stack.earlier)


def test_delete_while_blob_store_down_answers_what_happened(stack: AwsStack) -> None:
    """A 503 means "nothing happened, try again"; a 204 means "gone". Either is fine if true."""
    document = _upload(stack.client, "doomed.txt")
    stack.s3.fail(Fault.REFUSE)
    response = stack.client.delete(f"/documents/{document['id']}")
    gone = stack.client.get(f"/documents/{document['id']}").status_code == 404
    stack.s3.restore()
    if response.status_code == 204:
        assert gone
    else:
        assert_unavailable(response)
        assert not gone, "answered 503, yet the document was deleted"


def test_repository_down_gives_503_and_leaves_unconfirmed_blobs_to_fsck(
    stack: AwsStack, tmp_path: Path
) -> None:
    before = _upload(stack.client, "before.txt")
    stack.dynamodb.fail(Fault.REFUSE)

    responses = _probe(stack.client, before["id"])
    _assert_not_ready(responses["ready"])
    for route in UNAVAILABLE_ROUTES:
        assert_unavailable(responses[route])

    stack.dynamodb.restore()
    # The uploads stored their bytes, then could not tell whether their metadata was written: the
    # bytes stay (deleting them could break a listed document), unlisted, until fsck reclaims them.
    _assert_resumed(stack.client, [before], stack.earlier)
    direct = {
        **stack.env,
        "DOCPIPE_S3_ENDPOINT_URL": stack.moto_url,
        "DOCPIPE_DYNAMODB_ENDPOINT_URL": stack.moto_url,
    }
    assert blob_keys_of(direct, [before["id"]]) <= set(s3_object_keys(stack.moto_url, stack.bucket))
    wait_until_processed(stack.client)
    assert_fsck_clean(tmp_path / "fsck", direct)
    listed = set(verify_every_listed_document(stack.client))
    assert before["id"] in listed
    assert set(s3_object_keys(stack.moto_url, stack.bucket)) == blob_keys_of(direct, listed)


def test_blob_store_dying_mid_download_never_passes_for_a_whole_document(stack: AwsStack) -> None:
    size = 40 * MIB
    document = _upload(stack.client, "big.bin", b"".join(pattern_chunks(1, size)))
    stack.s3.cut_after(Direction.DOWNSTREAM, 8 * MIB)

    received = 0
    with (  # noqa: PT012 - the error comes while reading the body
        pytest.raises(httpx.TransportError),
        stack.client.stream("GET", f"/documents/{document['id']}/content") as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_bytes(MIB):
            received += len(chunk)
    assert received < size

    stack.s3.restore()
    _assert_resumed(stack.client, [document], stack.earlier)
    # Not downloaded again by every later test on the shared server.
    assert stack.client.delete(f"/documents/{document['id']}").status_code == 204


def test_blob_store_dying_mid_upload_gives_503_and_no_document(stack: AwsStack) -> None:
    before = _upload(stack.client, "before.txt")
    stack.s3.cut_after(Direction.UPSTREAM, 12 * MIB)  # the second 8 MiB part is in flight

    try:
        response: httpx.Response | None = stack.client.post(
            "/documents",
            params={"filename": "cut.bin"},
            content=pattern_chunks(2, 40 * MIB),
            headers={"content-type": "application/octet-stream"},
        )
    except httpx.TransportError:  # answered before the whole body was sent, then closed
        response = None
    if response is not None:
        assert_unavailable(response)
    assert stack.s3.fault is Fault.RESET

    stack.s3.restore()
    _wait_until_ready(stack.client)
    assert {document["id"] for document in list_all(stack.client)} == stack.earlier | {before["id"]}
    leftovers = s3_unfinished_multipart_uploads(stack.moto_url, stack.bucket)
    print(f"unfinished multipart uploads left in S3 (documented, reclaimable): {leftovers}")
    assert blob_keys_of(stack.env, [before["id"]]) <= set(s3_object_keys(stack.moto_url, stack.bucket))
    _assert_resumed(stack.client, [before], stack.earlier)


def test_lost_commit_acknowledgement_leaves_no_document_without_content(stack: AwsStack) -> None:
    """DynamoDB applies the TransactWriteItems that records an upload, but the answer never arrives
    (nor those of botocore's retries): a partition at the worst moment. Whatever docpipe answers,
    it must not end up listing a document whose bytes it deleted."""
    lost_before = stack.dynamodb.lost_responses
    stack.dynamodb.drop_responses_to(b"DynamoDB_20120810.TransactWriteItems")
    response = raw_upload(stack.client, b"recorded, but nobody heard\n", "in-doubt.txt")
    assert stack.dynamodb.lost_responses > lost_before
    assert response.status_code in (201, 503), response.text
    stack.dynamodb.restore()

    listed = verify_every_listed_document(stack.client)
    if response.status_code == 201:
        assert response.json()["id"] in listed


def test_hung_backends_do_not_hang_readiness(stack: AwsStack) -> None:
    """Backends that accept connections but never answer: readiness still answers, within its own
    2 s budget, so a load balancer takes the instance out. (Requests themselves wait for botocore's
    read timeouts and retries, about half a minute on DynamoDB, before their 503: too slow to test
    here, and a matter of configuration.)"""
    before = _upload(stack.client, "before.txt")
    stack.s3.fail(Fault.BLACKHOLE)
    stack.dynamodb.fail(Fault.BLACKHOLE)
    _assert_not_ready(stack.client.get("/health/ready", timeout=10))
    stack.s3.restore()
    _assert_not_ready(stack.client.get("/health/ready", timeout=10))  # DynamoDB alone still hangs

    stack.dynamodb.restore()
    _assert_resumed(stack.client, [before], stack.earlier)


# -- the real moto server stopped, then restarted without its state ------------------------------


@dataclass
class MotoRestart:
    document: dict[str, Any]
    stopped: dict[str, httpx.Response]
    restarted: dict[str, httpx.Response]
    later: dict[str, httpx.Response]
    bucket_exists: bool
    start_up_error: str | None
    docpipe_restarted: dict[str, httpx.Response]
    log: str


def _bucket_exists(endpoint: str, bucket: str) -> bool:
    return httpx.head(f"{endpoint}/{bucket}", timeout=30).status_code == 200


def _create_stores(env: dict[str, str]) -> None:
    """Create the bucket and table ``env`` names, as docpipe does at a start-up allowed to."""

    async def create() -> None:
        container = Container(settings=load_settings({**env, "DOCPIPE_CREATE_MISSING": "true"}))
        await open_service(container)
        await close(container)

    asyncio.run(create())


def _restart_moto(folder: Path, *, create_missing: bool) -> Iterator[MotoRestart]:
    """Run the scenario, recording what docpipe answered at each stage: moto stopped, moto restarted
    empty, a few seconds later, and docpipe restarted."""
    moto = MotoServer(free_port())  # not the session's: this one is stopped and restarted
    moto.start()
    try:
        env = {
            **aws_env(moto.endpoint_url, moto.endpoint_url, folder / "data"),
            "DOCPIPE_CREATE_MISSING": str(create_missing).lower(),
            **TWO_ATTEMPTS,
        }
        _create_stores(env)
        with (
            live_server(env, folder / "docpipe.log") as server,
            httpx.Client(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=CLIENT_TIMEOUT) as client,
        ):
            document = _upload(client, "before.txt")
            moto.stop()
            stopped = _probe(client, document["id"])
            moto.start()
            restarted = _probe(client, document["id"])
            if create_missing:
                _wait_until_ready(client)
            else:
                time.sleep(RECREATE_INTERVAL_SECONDS + 1)  # long enough for a recreation, were there one
            later = _probe(client, document["id"])
            bucket_exists = _bucket_exists(moto.endpoint_url, env["DOCPIPE_S3_BUCKET"])
            server.stop()
            start_up_error = None
            docpipe_restarted: dict[str, httpx.Response] = {}
            try:
                server.start()
            except RuntimeError as error:
                start_up_error = str(error)
            else:
                docpipe_restarted = {
                    "ready": client.get("/health/ready"),
                    "list": client.get("/documents"),
                    "get": client.get(f"/documents/{document['id']}"),
                    "upload": raw_upload(client, b"after both restarts\n", "after.txt"),
                }
            yield MotoRestart(
                document,
                stopped,
                restarted,
                later,
                bucket_exists,
                start_up_error,
                docpipe_restarted,
                server.log(),
            )
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def moto_restart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoRestart]:
    """The scenario with ``DOCPIPE_CREATE_MISSING=true``, the default."""
    yield from _restart_moto(tmp_path_factory.mktemp("moto-restart"), create_missing=True)


@pytest.fixture(scope="module")
def moto_restart_not_creating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoRestart]:
    """The scenario with ``DOCPIPE_CREATE_MISSING=false``."""
    yield from _restart_moto(tmp_path_factory.mktemp("moto-restart-not-creating"), create_missing=False)


def test_stopped_moto_gives_503_on_every_route(moto_restart: MotoRestart) -> None:
    _assert_not_ready(moto_restart.stopped["ready"])
    for route in (*UNAVAILABLE_ROUTES, "head_content"):
        assert_unavailable(moto_restart.stopped[route])


_ROUTES_AFTER_RESTART = ["list", "get", "content", "head_content", "upload", "form_upload", "patch", "delete"]
_HEALED = {
    "list": 200,
    "get": 404,  # moto lost its state, the document with it
    "content": 404,
    "head_content": 404,
    "upload": 201,
    "form_upload": 201,
    "patch": 404,
    "delete": 404,
}


@pytest.mark.parametrize("route", _ROUTES_AFTER_RESTART)
def test_moto_restarted_without_its_state_heals_itself(moto_restart: MotoRestart, route: str) -> None:
    """The bucket and the table are gone. The first requests to find them missing are 503 with
    Retry-After while docpipe recreates them, then every route works again, without a restart."""
    first = moto_restart.restarted[route]
    if first.status_code != _HEALED[route]:
        assert_unavailable(first)
    assert moto_restart.later[route].status_code == _HEALED[route], moto_restart.later[route].text
    assert moto_restart.later["ready"].status_code == 200
    assert moto_restart.bucket_exists


def test_missing_stores_are_recreated_once_and_logged_as_errors(moto_restart: MotoRestart) -> None:
    records = [json.loads(line) for line in moto_restart.log.splitlines() if line.strip()]
    recreated = [record for record in records if "recreated" in record["message"]]
    assert [record["level"] for record in recreated] == ["ERROR", "ERROR"], recreated
    assert any("S3 bucket" in record["message"] for record in recreated)
    assert any("DynamoDB table" in record["message"] for record in recreated)


def test_docpipe_restart_recreates_bucket_and_table(moto_restart: MotoRestart) -> None:
    answers = moto_restart.docpipe_restarted
    assert answers["ready"].status_code == 200, answers["ready"].text
    listed = [document["filename"] for document in answers["list"].json()["documents"]]
    assert "before.txt" not in listed, "moto lost its state: only what was stored since can be listed"
    assert answers["get"].status_code == 404
    assert answers["upload"].status_code == 201, answers["upload"].text


@pytest.mark.parametrize("route", _ROUTES_AFTER_RESTART)
def test_moto_restarted_without_its_state_and_create_missing_false_gives_503_naming_the_store(
    moto_restart_not_creating: MotoRestart, route: str
) -> None:
    """Told not to create stores, docpipe answers 503 without Retry-After (retrying cannot help until
    an operator restores them), naming the missing store's role, seconds later as at once."""
    for answers in (moto_restart_not_creating.restarted, moto_restart_not_creating.later):
        response = answers[route]
        assert_problem(response, 503)
        assert "retry-after" not in response.headers
        if route != "head_content":
            assert response.json()["detail"] in (
                "the blob store is missing",
                "the metadata repository is missing",
            )
        ready = answers["ready"]
        assert ready.status_code == 503
        assert "retry-after" not in ready.headers
        assert "the blob store is missing" in ready.json()["detail"]
        assert "the metadata repository is missing" in ready.json()["detail"]
    assert not moto_restart_not_creating.bucket_exists


def test_start_up_with_create_missing_false_and_a_missing_store_fails_with_one_line(
    moto_restart_not_creating: MotoRestart,
) -> None:
    assert moto_restart_not_creating.start_up_error is not None
    log = moto_restart_not_creating.log
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    critical = [record["message"] for record in records if record["level"] == "CRITICAL"]
    assert len(critical) == 1, log
    assert "does not exist" in critical[0]
    assert "DOCPIPE_CREATE_MISSING" in critical[0]


# -- filesystem: a blob folder that cannot be written ------------------------------------------


def _chattr(flag: str, paths: list[Path]) -> bool:
    if shutil.which("chattr") is None:
        return False
    result = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    return result.returncode == 0


@pytest.fixture(scope="module")
def unwritable_blob_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    """A filesystem + SQLite server with one document, whose blob folders are then made immutable
    (``chattr +i``: not even root may create files in them), as a read-only or failing disk would.
    One for the module: its tests only read or are refused, and the server must resume after both."""
    folder = tmp_path_factory.mktemp("unwritable")
    data_dir = folder / "data"
    with (
        live_server(filesystem_env(data_dir), folder / "docpipe.log") as server,
        httpx.Client(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=CLIENT_TIMEOUT) as client,
    ):
        document = _upload(client, "before.txt")
        folders = [data_dir / "blobs", *(path for path in (data_dir / "blobs").iterdir() if path.is_dir())]
        if not _chattr("+i", folders):
            _chattr("-i", folders)
            pytest.skip("chattr +i is not available here")
        try:
            yield client, document
        finally:
            _chattr("-i", folders)
        _assert_resumed(client, [document], set())


def test_unwritable_blob_folder_fails_readiness_but_keeps_reads(
    unwritable_blob_folder: tuple[httpx.Client, dict[str, Any]],
) -> None:
    client, document = unwritable_blob_folder
    _assert_not_ready(client.get("/health/ready"))
    assert client.get("/documents").status_code == 200
    assert client.get(f"/documents/{document['id']}").status_code == 200
    _assert_intact(client, document)


def test_unwritable_blob_folder_upload_gives_503(
    unwritable_blob_folder: tuple[httpx.Client, dict[str, Any]],
) -> None:
    client, _ = unwritable_blob_folder
    assert_unavailable(raw_upload(client, b"nowhere to go\n", "refused.txt"))
