"""``DOCPIPE_QUEUE=sqs`` end to end: a real ``docpipe serve`` and ``docpipe worker`` processes beside it,
over S3, DynamoDB and SQS on moto, as they would run on separate machines. The server only queues; a
worker processes; a worker killed mid-job loses nothing, its job goes to the next worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import botocore.session
import httpx
import pytest

from docpipe.entrypoints.worker_cli import CANNOT_RUN
from tests.cli.support import docpipe_here
from tests.credentials import ADMIN_HEADERS
from tests.faults.proxy import Fault, FaultProxy
from tests.faults.support import aws_env
from tests.live_server import LiveServer
from tests.moto_server import MotoServer, stop_process

VISIBILITY = 2
"""Seconds before the job of a killed worker goes to another (DOCPIPE_SQS_VISIBILITY_TIMEOUT)."""
PATIENCE_SECONDS = 60
READY_LINE = "waiting for documents to process"
TEXT = "the quarterly revenue grew\n"


class WorkerProcess:
    """``docpipe worker`` in a child process, configured through DOCPIPE_* like a user's."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self._env = {**os.environ, **env}
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "docpipe.entrypoints.cli", "worker"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + PATIENCE_SECONDS
        while READY_LINE not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"docpipe worker did not start:\n{self.log()}")
            time.sleep(0.1)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int | None:
        if self.process is None:
            return None
        stop_process(self.process, sig, timeout=30)
        status, self.process = self.process.returncode, None
        return status

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""


class Setup:
    def __init__(self, env: dict[str, str], server: LiveServer, tmp: Path, moto: MotoServer) -> None:
        self.env = env
        self.server = server
        self.tmp = tmp
        self.moto = moto
        # botocore-stubs types no service's methods: a plain client, answers read as Any
        self.sqs: Any = cast(Any, botocore.session.get_session()).create_client(
            "sqs", endpoint_url=moto.endpoint_url
        )
        self.queue_url: str = self.sqs.get_queue_url(QueueName=env["DOCPIPE_SQS_QUEUE"])["QueueUrl"]

    def worker(self, **overrides: str) -> WorkerProcess:
        return WorkerProcess({**self.env, **overrides}, self.tmp / f"worker-{uuid.uuid4().hex[:6]}.log")

    def messages(self, attribute: str) -> int:
        answer = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[attribute])
        return int(answer["Attributes"][attribute])

    def upload(self) -> str:
        created = httpx.post(
            f"{self.server.base_url}/documents",
            params={"filename": "report.txt"},
            content=TEXT.encode(),
            headers={**ADMIN_HEADERS, "Content-Type": "text/plain"},
        )
        assert created.status_code == 201, created.text
        document_id: str = created.json()["id"]
        return document_id

    def state(self, document_id: str) -> str:
        answer = httpx.get(f"{self.server.base_url}/documents/{document_id}", headers=ADMIN_HEADERS)
        state: str = answer.json()["processing"]["state"]
        return state

    def until(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while not condition():
            assert time.monotonic() < deadline, (
                f"not {what} within {PATIENCE_SECONDS} s:\n{self.server.log()}"
            )
            time.sleep(0.1)

    def text(self, document_id: str) -> str:
        answer = httpx.get(f"{self.server.base_url}/documents/{document_id}/text", headers=ADMIN_HEADERS)
        assert answer.status_code == 200, answer.text
        return answer.text


@pytest.fixture(scope="module")
def setup(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("workers")
    env = {
        **aws_env(moto_server.endpoint_url, moto_server.endpoint_url, tmp / "data"),
        "DOCPIPE_QUEUE": "sqs",
        "DOCPIPE_SQS_QUEUE": f"docpipe-workers-{uuid.uuid4().hex[:12]}",
        "DOCPIPE_SQS_ENDPOINT_URL": moto_server.endpoint_url,
        "DOCPIPE_SQS_VISIBILITY_TIMEOUT": str(VISIBILITY),
        "DOCPIPE_EXTRACT_WORKERS": "1",
    }
    server = LiveServer(env, tmp / "server.log")
    server.start()
    try:
        yield Setup(env, server, tmp, moto_server)
    finally:
        server.stop()


def test_workers_process_what_the_server_queued_and_a_killed_workers_job_goes_to_the_next(
    setup: Setup,
) -> None:
    """One test, to start the processes once: the server only queues; a worker processes; a worker
    killed with its job in flight (its S3 reads hang) loses nothing, the next worker does the job."""
    queued = setup.upload()
    setup.until("queued", lambda: setup.messages("ApproximateNumberOfMessages") == 1)
    assert setup.state(queued) == "pending"  # the server itself extracts nothing
    with FaultProxy("127.0.0.1", setup.moto.port) as s3:
        doomed = setup.worker(DOCPIPE_S3_ENDPOINT_URL=s3.url)
        doomed.start()
        try:
            setup.until("processed", lambda: setup.state(queued) != "pending")
            assert setup.state(queued) == "done", doomed.log()
            assert setup.text(queued) == TEXT
            s3.fail(Fault.BLACKHOLE)
            in_flight = setup.upload()
            setup.until("received", lambda: setup.messages("ApproximateNumberOfMessagesNotVisible") == 1)
            assert setup.state(in_flight) == "pending"
        finally:
            doomed.stop(signal.SIGKILL)
    successor = setup.worker()
    successor.start()
    try:
        setup.until("processed again", lambda: setup.state(in_flight) != "pending")
        assert setup.state(in_flight) == "done", successor.log()
        assert setup.text(in_flight) == TEXT
        setup.until("deleted", lambda: setup.messages("ApproximateNumberOfMessagesNotVisible") == 0)
    finally:
        assert successor.stop() == 0, successor.log()
    assert setup.messages("ApproximateNumberOfMessages") == 0
    assert "Traceback" not in successor.log()


def test_a_worker_without_a_queue_refuses_to_start(tmp_path: Path) -> None:
    """Without DOCPIPE_QUEUE=sqs the servers process documents themselves: there is nothing to take."""
    run = docpipe_here({"DOCPIPE_DATA_DIR": str(tmp_path)}, "worker")
    assert run.code == CANNOT_RUN
    assert "set DOCPIPE_QUEUE=sqs" in run.stderr
    assert not any(tmp_path.iterdir())  # nothing was opened
