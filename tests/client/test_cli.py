"""``docpipe-client`` against one real server (filesystem + SQLite) on loopback: round trips by sha-256,
transfers cut by a TCP proxy and resumed, the progress bar in a real terminal (tmux) and not in a pipe,
``--json`` output, and refusals as one line with a non-zero status.

Most commands run in this process (``main``), stdout and stderr captured, so not terminals; the progress
bar tests run the command as users do, in a child process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from docpipe_client.cli import main
from docpipe_client.errors import ExitCode
from docpipe_client.upload import TUS_CHUNK
from tests.faults.proxy import Direction, FaultProxy
from tests.live_server import LiveServer, live_server

ADMIN_KEY = "client-cli-admin-key-0123456789abcdef"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("client-server")
    env = {
        "DOCPIPE_BLOB_STORE": "filesystem",
        "DOCPIPE_REPOSITORY": "sqlite",
        "DOCPIPE_DATA_DIR": str(folder / "data"),
        "DOCPIPE_ADMIN_KEY": ADMIN_KEY,
    }
    with live_server(env, folder / "server.log") as running:
        yield running


@pytest.fixture
def proxy(server: LiveServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", server.port) as running:
        yield running


class Cli:
    """Runs ``docpipe-client`` in this process against one URL, with its own upload state folder."""

    def __init__(self, url: str, state: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.environ = {"DOCPIPE_URL": url, "DOCPIPE_API_KEY": ADMIN_KEY, "XDG_STATE_HOME": str(state)}
        self._capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self._capsys.readouterr()
        status = main(list(argv), self.environ)
        out, err = self._capsys.readouterr()
        return status, out, err

    def json(self, *argv: str) -> list[dict[str, Any]]:
        status, out, err = self(*argv, "--json")
        assert status == ExitCode.OK, err
        return [json.loads(line) for line in out.splitlines()]

    def state_files(self) -> list[Path]:
        folder = Path(self.environ["XDG_STATE_HOME"])
        return [path for path in folder.rglob("*") if path.is_file()]


@pytest.fixture
def cli(server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(server.base_url, tmp_path / "state", capsys)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_a_file_makes_the_round_trip_by_sha256(cli: Cli, tmp_path: Path) -> None:
    source = random_file(tmp_path / 'Résumé "q3".bin', 300_000)
    [document] = cli.json("upload", str(source), "--tag", "round-trip", "--tag", "cli")
    assert (document["filename"], document["sha256"]) == (source.name, sha256(source))
    assert document["tags"] == ["round-trip", "cli"]

    [saved] = cli.json("download", document["id"], "-o", str(tmp_path / "copy.bin"))
    assert saved["path"] == str(tmp_path / "copy.bin")
    assert sha256(tmp_path / "copy.bin") == document["sha256"]
    assert not (tmp_path / "copy.bin.part").exists()

    assert cli.json("info", document["id"]) == [document]
    assert [found["id"] for found in cli.json("ls", "--tag", "round-trip")] == [document["id"]]
    assert [found["id"] for found in cli.json("ls", "--prefix", "Résumé")] == [document["id"]]
    [result] = cli.json("search", "resume q3", "--tag", "cli")
    assert result["document"]["id"] == document["id"]
    [link] = cli.json("link", document["id"], "--expires", "1h")
    assert hashlib.sha256(httpx.get(link["url"]).content).hexdigest() == document["sha256"]

    assert cli.json("rm", document["id"]) == [{"id": document["id"], "deleted": True}]
    assert cli.json("ls", "--tag", "round-trip") == []


def test_a_refusal_is_one_line_from_its_problem_and_a_nonzero_status(cli: Cli) -> None:
    missing = "0193f4d2-0000-7000-8000-000000000000"
    status, out, err = cli("info", missing)
    assert (status, out) == (ExitCode.REFUSED, "")
    assert re.fullmatch(rf"docpipe-client: 404 Not Found: .*'{missing}'.* \(request \w+\)\n", err), err

    cli.environ["DOCPIPE_API_KEY"] = "dp_not-a-key"
    status, _, err = cli("ls")
    assert status == ExitCode.REFUSED
    assert re.fullmatch(r"docpipe-client: 401 [^\n]+\n", err), err
    assert "dp_not-a-key" not in err


def test_a_download_cut_off_resumes_where_it_stopped(
    server: LiveServer, proxy: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    direct = Cli(server.base_url, tmp_path / "state", capsys)
    [document] = direct.json(
        "upload", str(random_file(tmp_path / "cut.bin", 6 * MIB)), "--resumable", "never"
    )
    through_proxy = Cli(proxy.url, tmp_path / "state", capsys)
    target = tmp_path / "downloaded.bin"

    part = tmp_path / "downloaded.bin.part"
    # The reset discards what the client's socket received but the client had not read yet: on a busy
    # machine that may be everything, leaving nothing to resume from. Cut again then.
    for _attempt in range(5):
        proxy.cut_after(Direction.DOWNSTREAM, 2 * MIB)
        status, _, err = through_proxy("download", document["id"], "-o", str(target))
        assert status == ExitCode.UNREACHABLE, err
        assert re.fullmatch(r"docpipe-client: [^\n]+; a transfer resumes when run again\n", err), err
        proxy.restore()
        kept = part.stat().st_size
        if kept:
            break
    assert 0 < kept < document["size"]
    assert not target.exists()

    sent_before = proxy.bytes[Direction.DOWNSTREAM]
    status, _, err = through_proxy("download", document["id"], "-o", str(target))
    assert status == ExitCode.OK, err
    assert sha256(target) == document["sha256"]
    assert proxy.bytes[Direction.DOWNSTREAM] - sent_before < document["size"] - kept + 64 * 1024


def test_an_upload_cut_off_resumes_through_tus(
    server: LiveServer, proxy: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = random_file(tmp_path / "resumed-upload.bin", TUS_CHUNK * 2 + MIB)
    cli = Cli(proxy.url, tmp_path / "state", capsys)

    proxy.cut_after(Direction.UPSTREAM, TUS_CHUNK + MIB)
    status, _, err = cli("upload", str(source), "--resumable", "always")
    assert status == ExitCode.UNREACHABLE, err
    assert len(cli.state_files()) == 1

    proxy.restore()
    received_before = proxy.bytes[Direction.UPSTREAM]
    [document] = cli.json("upload", str(source), "--resumable", "always")
    assert document["sha256"] == sha256(source)
    assert proxy.bytes[Direction.UPSTREAM] - received_before < source.stat().st_size - TUS_CHUNK / 2
    assert cli.state_files() == []
    assert [found["id"] for found in cli.json("ls", "--prefix", source.name)] == [document["id"]]


def command(server: LiveServer, *argv: str) -> list[str]:
    return [sys.executable, "-m", "docpipe_client", "--url", server.base_url, *argv]


def child_env() -> dict[str, str]:
    return {**os.environ, "DOCPIPE_API_KEY": ADMIN_KEY}


BAR = re.compile(r"(\S+) +━+ +100% +[\d.]+/[\d.]+ MB +[\d.]+ [kM]B/s +0:00:00")


@pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (.ci/install-system-packages)"
)
def test_progress_bars_show_bytes_rate_and_eta_in_a_terminal(server: LiveServer, tmp_path: Path) -> None:
    source = random_file(tmp_path / "shown.bin", 3 * MIB)
    stored = httpx.post(
        f"{server.base_url}/documents",
        files={"file": ("stored.bin", os.urandom(3 * MIB))},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    results = tmp_path / "results.jsonl"
    env = " ".join(shlex.quote(f"{name}={value}") for name, value in child_env().items())
    upload = shlex.join(command(server, "upload", "--json", str(source)))
    download = shlex.join(command(server, "download", stored["id"], "-o", str(tmp_path / "fetched.bin")))
    script = (
        f"env {env} {upload} > {shlex.quote(str(results))} && env {env} {download} > /dev/null;"
        " echo EXIT=$?; sleep 60"
    )
    socket = f"docpipe-client-test-{os.getpid()}"
    tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-x", "150", "-y", "20", script], check=True)
    try:
        deadline = time.monotonic() + 60
        screen = ""
        while "EXIT=" not in screen and time.monotonic() < deadline:
            time.sleep(0.1)
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p"], check=True, capture_output=True, text=True
            ).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    assert "EXIT=0" in screen, screen
    assert [match[1] for match in BAR.finditer(screen)] == ["shown.bin", "fetched.bin"], screen
    [document] = [json.loads(line) for line in results.read_text().splitlines()]  # stdout kept clean
    assert document["sha256"] == sha256(source)
    assert sha256(tmp_path / "fetched.bin") == stored["sha256"]


def test_no_progress_bar_in_a_pipe(server: LiveServer, tmp_path: Path) -> None:
    source = random_file(tmp_path / "piped.bin", 3 * MIB)
    done = subprocess.run(
        command(server, "upload", str(source)),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert re.fullmatch(rf"\S+  {re.escape(str(source))}\n", done.stdout), done.stdout
