"""Two repositories over one SQLite file, as two processes (replicas, workers) have them: one lease wins."""

from __future__ import annotations

import asyncio
from pathlib import Path

from docpipe.container import Container, close
from docpipe.domain.ports import UploadRepository
from docpipe.domain.uploads.session import UploadSession, new_lease
from tests.adapters_under_test import settings_for
from tests.contract.test_upload_repository_contract import NOW, make_session


async def test_of_two_leases_taken_through_two_connections_to_one_file_one_wins(tmp_path: Path) -> None:
    containers = [Container(settings=settings_for(repository="sqlite", data_dir=tmp_path)) for _ in range(2)]
    try:
        first: UploadRepository = await containers[0].upload_sessions()
        second: UploadRepository = await containers[1].upload_sessions()
        session = make_session()
        await first.create(session)
        for _ in range(20):
            outcomes = await asyncio.gather(
                first.take_lease("alice", session.id, 0, new_lease(NOW), NOW),
                second.take_lease("alice", session.id, 0, new_lease(NOW), NOW),
                return_exceptions=True,
            )
            assert sorted(type(outcome).__name__ for outcome in outcomes) == ["UploadBusy", "UploadSession"]
            winner = next(outcome for outcome in outcomes if isinstance(outcome, UploadSession))
            assert winner.lease_token is not None
            await first.advance("alice", session.id, winner.lease_token, 0, None, session.expires_at)
    finally:
        for container in containers:
            await close(container)
