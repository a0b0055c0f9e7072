"""What every UploadRepository adapter must do: sessions per owner, the PATCH lease as a compare-and-set,
completion, deletion and expiry in bounded batches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from docpipe.domain.errors import OffsetMismatch, UploadBusy, UploadExpired, UploadNotFound
from docpipe.domain.model import new_blob_key
from docpipe.domain.ports import UploadRepository
from docpipe.domain.uploads.session import LEASE, Lease, UploadSession, new_lease, new_upload_id

NOW = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def make_session(owner: str = "alice", *, expires_in: timedelta = timedelta(hours=24)) -> UploadSession:
    return UploadSession(
        id=new_upload_id(),
        owner=owner,
        blob_key=new_blob_key(owner),
        length=1000,
        filename="Résumé.pdf",
        content_type="application/pdf",
        tags=("cv", "2030"),
        created_at=NOW,
        expires_at=NOW + expires_in,
    )


async def test_a_created_session_reads_back_exactly_for_its_owner_only(
    upload_repository: UploadRepository,
) -> None:
    session = make_session()
    await upload_repository.create(session)
    assert await upload_repository.get("alice", session.id) == session
    with pytest.raises(UploadNotFound):
        await upload_repository.get("bob", session.id)
    with pytest.raises(UploadNotFound):
        await upload_repository.get("alice", new_upload_id())


async def test_of_two_leases_on_one_upload_one_wins(upload_repository: UploadRepository) -> None:
    session = make_session()
    await upload_repository.create(session)
    first, second = new_lease(NOW), new_lease(NOW)
    outcomes = await asyncio.gather(
        upload_repository.take_lease("alice", session.id, 0, first, NOW),
        upload_repository.take_lease("alice", session.id, 0, second, NOW),
        return_exceptions=True,
    )
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["UploadBusy", "UploadSession"]
    held = await upload_repository.get("alice", session.id)
    winner = first if isinstance(outcomes[0], UploadSession) else second
    assert (held.lease_token, held.lease_until) == (winner.token, winner.until)


async def test_a_lease_is_refused_at_another_offset_and_for_another_owner(
    upload_repository: UploadRepository,
) -> None:
    session = make_session()
    await upload_repository.create(session)
    with pytest.raises(OffsetMismatch) as mismatch:
        await upload_repository.take_lease("alice", session.id, 10, new_lease(NOW), NOW)
    assert mismatch.value.current == 0
    with pytest.raises(UploadNotFound):
        await upload_repository.take_lease("bob", session.id, 0, new_lease(NOW), NOW)
    assert (await upload_repository.get("alice", session.id)).lease_token is None


async def test_a_lease_that_ran_out_can_be_taken_over_and_its_holder_can_no_longer_write(
    upload_repository: UploadRepository,
) -> None:
    session = make_session()
    await upload_repository.create(session)
    crashed = new_lease(NOW)
    await upload_repository.take_lease("alice", session.id, 0, crashed, NOW)
    with pytest.raises(UploadBusy):
        await upload_repository.take_lease("alice", session.id, 0, new_lease(NOW), NOW + LEASE / 2)
    later = NOW + LEASE
    successor = new_lease(later)
    await upload_repository.take_lease("alice", session.id, 0, successor, later)
    with pytest.raises(UploadBusy):
        await upload_repository.advance("alice", session.id, crashed.token, 500, None, later)
    await upload_repository.advance(
        "alice", session.id, successor.token, 300, None, later + timedelta(hours=1)
    )
    stored = await upload_repository.get("alice", session.id)
    assert (stored.offset, stored.lease_token, stored.lease_until) == (300, None, None)
    assert stored.expires_at == later + timedelta(hours=1)


async def test_advancing_with_a_lease_until_renews_it(upload_repository: UploadRepository) -> None:
    session = make_session()
    await upload_repository.create(session)
    lease = new_lease(NOW)
    await upload_repository.take_lease("alice", session.id, 0, lease, NOW)
    renewed = NOW + timedelta(minutes=5)
    await upload_repository.advance("alice", session.id, lease.token, 100, renewed, session.expires_at)
    stored = await upload_repository.get("alice", session.id)
    assert (stored.offset, stored.lease_token, stored.lease_until) == (100, lease.token, renewed)
    with pytest.raises(UploadBusy):
        await upload_repository.take_lease("alice", session.id, 100, new_lease(NOW), NOW + LEASE * 2)
    same = Lease(lease.token, NOW + timedelta(minutes=6))
    assert (await upload_repository.take_lease("alice", session.id, 100, same, NOW)).lease_until == same.until


async def test_a_completed_upload_keeps_its_document_and_takes_no_lease(
    upload_repository: UploadRepository,
) -> None:
    session = make_session()
    await upload_repository.create(session)
    lease = new_lease(NOW)
    await upload_repository.take_lease("alice", session.id, 0, lease, NOW)
    await upload_repository.advance("alice", session.id, lease.token, 1000, lease.until, session.expires_at)
    await upload_repository.complete("alice", session.id, lease.token, "doc-1", NOW + timedelta(hours=2))
    stored = await upload_repository.get("alice", session.id)
    assert (stored.offset, stored.document_id, stored.lease_token) == (1000, "doc-1", None)
    assert stored.complete
    assert stored.expires_at == NOW + timedelta(hours=2)
    with pytest.raises(OffsetMismatch):
        await upload_repository.take_lease("alice", session.id, 1000, new_lease(NOW), NOW)
    with pytest.raises(UploadBusy):
        await upload_repository.complete("alice", session.id, lease.token, "doc-2", NOW)


async def test_an_expired_upload_takes_no_lease(upload_repository: UploadRepository) -> None:
    session = make_session(expires_in=timedelta(seconds=1))
    await upload_repository.create(session)
    with pytest.raises(UploadExpired):
        await upload_repository.take_lease("alice", session.id, 0, new_lease(NOW), NOW + timedelta(seconds=1))


async def test_delete_refuses_a_leased_upload_and_another_owners(upload_repository: UploadRepository) -> None:
    session = make_session()
    await upload_repository.create(session)
    await upload_repository.take_lease("alice", session.id, 0, new_lease(NOW), NOW)
    with pytest.raises(UploadBusy):
        await upload_repository.delete("alice", session.id, NOW)
    with pytest.raises(UploadNotFound):
        await upload_repository.delete("bob", session.id, NOW + LEASE)
    deleted = await upload_repository.delete("alice", session.id, NOW + LEASE)
    assert deleted.id == session.id
    with pytest.raises(UploadNotFound):
        await upload_repository.get("alice", session.id)
    with pytest.raises(UploadNotFound):
        await upload_repository.delete("alice", session.id, NOW + LEASE)


async def test_expired_lists_every_owners_expired_unleased_sessions_oldest_first_in_batches(
    upload_repository: UploadRepository,
) -> None:
    sessions = [
        make_session(owner, expires_in=timedelta(minutes=minutes))
        for owner, minutes in (("alice", 3), ("bob", 1), ("alice", 2), ("carol", 60))
    ]
    for session in sessions:
        await upload_repository.create(session)
    leased = make_session(expires_in=timedelta(minutes=1))
    await upload_repository.create(leased)
    await upload_repository.take_lease("alice", leased.id, 0, Lease("t", NOW + timedelta(hours=1)), NOW)
    moment = NOW + timedelta(minutes=10)
    expired = await upload_repository.expired(moment, 2)
    assert [session.id for session in expired] == [sessions[1].id, sessions[2].id]
    everything = await upload_repository.expired(moment, 100)
    assert [session.id for session in everything] == [sessions[1].id, sessions[2].id, sessions[0].id]


async def test_holding_finds_a_session_by_its_blob_key(upload_repository: UploadRepository) -> None:
    session = make_session()
    await upload_repository.create(session)
    assert await upload_repository.holding(session.blob_key) == session
    assert await upload_repository.holding(new_blob_key("alice")) is None


async def test_a_session_without_content_type_or_tags_reads_back_as_such(
    upload_repository: UploadRepository,
) -> None:
    session = msgspec.structs.replace(make_session(), content_type=None, tags=())
    await upload_repository.create(session)
    assert await upload_repository.get("alice", session.id) == session


async def test_expired_follows_the_expiry_each_write_moved(upload_repository: UploadRepository) -> None:
    later, sooner = make_session(expires_in=timedelta(minutes=1)), make_session(expires_in=timedelta(hours=2))
    for session, expires_at in ((later, NOW + timedelta(hours=1)), (sooner, NOW + timedelta(minutes=5))):
        await upload_repository.create(session)
        lease = new_lease(NOW)
        await upload_repository.take_lease("alice", session.id, 0, lease, NOW)
        await upload_repository.advance("alice", session.id, lease.token, 10, None, expires_at)
    assert [session.id for session in await upload_repository.expired(NOW + timedelta(minutes=10), 10)] == [
        sooner.id
    ]
    everything = await upload_repository.expired(NOW + timedelta(hours=3), 10)
    assert [session.id for session in everything] == [sooner.id, later.id]
