"""Signed links' use cases over the in-memory fakes, with a clock the tests move."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from docpipe.adapters.memory import MemoryBlobStore, MemoryRepository
from docpipe.domain.errors import BadLinkToken, DocumentNotFound, InvalidInput, LinkGone, UploadTooLarge
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.link_service import MAX_EXPIRES_IN, LinkService
from docpipe.domain.links import Disposition, LinkSigner, SigningKey
from docpipe.domain.model import Document, NewDocument
from docpipe.domain.service import DocumentService

LIMIT = 1024
OWNER = DEFAULT_OWNER


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def documents() -> DocumentService:
    return DocumentService(MemoryBlobStore(), MemoryRepository(), max_upload_bytes=LIMIT)


@pytest.fixture
def links(documents: DocumentService, clock: Clock) -> LinkService:
    return LinkService(documents, LinkSigner([SigningKey("k" * 43)]), clock)


async def stored(documents: DocumentService, data: bytes = b"shared bytes") -> Document:
    return await documents.upload(OWNER, stream(data), NewDocument(filename="shared.txt"))


async def test_a_link_works_until_it_expires(
    documents: DocumentService, links: LinkService, clock: Clock
) -> None:
    document = await stored(documents)
    link = await links.share(OWNER, document.id, 60, Disposition.INLINE)
    assert link.expires_at == datetime(2030, 1, 1, 12, 1, 1, tzinfo=UTC)  # rounded up to a whole second
    opened, grant = await links.open_download(link.token)
    assert (opened, grant.disposition) == (document, Disposition.INLINE)
    clock.now = link.expires_at - timedelta(microseconds=1)
    await links.open_download(link.token)
    clock.now = link.expires_at
    with pytest.raises(LinkGone, match="expired"):
        await links.open_download(link.token)


async def test_revoking_stops_earlier_links_only(documents: DocumentService, links: LinkService) -> None:
    document = await stored(documents)
    earlier = await links.share(OWNER, document.id, 60)
    await links.revoke(OWNER, document.id)
    with pytest.raises(LinkGone, match="revoked"):
        await links.open_download(earlier.token)
    later = await links.share(OWNER, document.id, 60)
    assert (await links.open_download(later.token))[0].id == document.id


async def test_a_link_to_a_deleted_document_is_not_found(
    documents: DocumentService, links: LinkService
) -> None:
    document = await stored(documents)
    link = await links.share(OWNER, document.id, 60)
    await documents.delete(OWNER, document.id)
    with pytest.raises(DocumentNotFound):
        await links.open_download(link.token)


async def test_an_expired_link_to_a_deleted_document_is_gone(
    documents: DocumentService, links: LinkService, clock: Clock
) -> None:
    document = await stored(documents)
    link = await links.share(OWNER, document.id, 1)
    await documents.delete(OWNER, document.id)
    clock.now += timedelta(seconds=2)
    with pytest.raises(LinkGone):
        await links.open_download(link.token)


@pytest.mark.parametrize("expires_in", [0, -1, MAX_EXPIRES_IN + 1])
async def test_expiry_must_be_a_second_to_a_week(
    documents: DocumentService, links: LinkService, expires_in: int
) -> None:
    document = await stored(documents)
    with pytest.raises(InvalidInput):
        await links.share(OWNER, document.id, expires_in)
    with pytest.raises(InvalidInput):
        links.invite_upload(OWNER, expires_in)


async def test_no_link_to_a_missing_document(links: LinkService) -> None:
    with pytest.raises(DocumentNotFound):
        await links.share(OWNER, "0190b8f6-7d1e-7c2a-8f3e-0123456789ab", 60)


async def test_a_link_of_one_kind_does_not_open_as_the_other(
    documents: DocumentService, links: LinkService
) -> None:
    document = await stored(documents)
    download = await links.share(OWNER, document.id, 60)
    upload = links.invite_upload(OWNER, 60)
    with pytest.raises(BadLinkToken):
        links.open_upload(download.token)
    with pytest.raises(BadLinkToken):
        await links.open_download(upload.token)


async def test_an_upload_link_uploads_once(documents: DocumentService, links: LinkService) -> None:
    grant = links.open_upload(links.invite_upload(OWNER, 60, filename="report.pdf", tags=("inbox",)).token)
    document = await documents.upload(
        OWNER, stream(b"first"), NewDocument(filename="x.bin", tags=["mine"]), link=grant
    )
    assert (document.filename, document.tags) == ("report.pdf", ("inbox", "mine"))
    with pytest.raises(LinkGone, match="used"):
        await documents.upload(OWNER, stream(b"first"), NewDocument(filename="x.bin"), link=grant)


async def test_two_uploads_racing_on_one_link_make_one_document(
    documents: DocumentService, links: LinkService
) -> None:
    grant = links.open_upload(links.invite_upload(OWNER, 60).token)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        started.set()  # read once the link is claimed
        yield b"slow "
        await release.wait()
        yield b"bytes"

    first = asyncio.create_task(documents.upload(OWNER, slow(), NewDocument(filename="a.txt"), link=grant))
    await started.wait()
    with pytest.raises(LinkGone, match="in use"):
        await documents.upload(OWNER, stream(b"other"), NewDocument(filename="b.txt"), link=grant)
    release.set()
    assert (await first).filename == "a.txt"
    assert len((await documents.list(OWNER)).documents) == 1


async def test_a_failed_upload_leaves_the_link_usable(documents: DocumentService, links: LinkService) -> None:
    grant = links.open_upload(links.invite_upload(OWNER, 60, max_bytes=4).token)
    with pytest.raises(UploadTooLarge) as refused:
        await documents.upload(OWNER, stream(b"too many"), NewDocument(filename="a.txt"), link=grant)
    assert refused.value.limit == 4
    assert (
        await documents.upload(OWNER, stream(b"four"), NewDocument(filename="a.txt"), link=grant)
    ).size == 4


async def test_an_upload_cap_above_the_servers_limit_is_refused(links: LinkService) -> None:
    with pytest.raises(InvalidInput):
        links.invite_upload(OWNER, 60, max_bytes=LIMIT + 1)
    with pytest.raises(InvalidInput):
        links.invite_upload(OWNER, 60, max_bytes=0)


async def test_an_upload_link_expires(links: LinkService, clock: Clock) -> None:
    link = links.invite_upload(OWNER, 5)
    clock.now += timedelta(seconds=6)
    with pytest.raises(LinkGone, match="expired"):
        links.open_upload(link.token)


async def test_an_upload_links_fields_are_cleaned_when_issued(links: LinkService) -> None:
    with pytest.raises(InvalidInput):
        links.invite_upload(OWNER, 60, filename="..")
    with pytest.raises(InvalidInput):
        links.invite_upload(OWNER, 60, tags=("a,b",))
    grant = links.open_upload(links.invite_upload(OWNER, 60, filename="../../etc/x.txt", tags=(" a ",)).token)
    assert (grant.filename, grant.tags) == ("x.txt", ("a",))


async def test_another_owners_document_can_neither_be_shared_nor_revoked(
    documents: DocumentService, links: LinkService
) -> None:
    document = await stored(documents)
    with pytest.raises(DocumentNotFound):
        await links.share("alice", document.id, 60)
    with pytest.raises(DocumentNotFound):
        await links.revoke("alice", document.id)
    link = await links.share(OWNER, document.id, 60)
    assert (await links.open_download(link.token))[0] == document


async def test_a_link_serves_its_makers_document(documents: DocumentService, links: LinkService) -> None:
    alices = await documents.upload("alice", stream(b"alice's"), NewDocument(filename="a.txt"))
    link = await links.share("alice", alices.id, 60)
    assert (await links.open_download(link.token))[0] == alices


async def test_an_upload_link_uploads_for_its_maker(documents: DocumentService, links: LinkService) -> None:
    grant = links.open_upload(links.invite_upload("alice", 60).token)
    document = await documents.upload(grant.owner, stream(b"x"), NewDocument(filename="a.txt"), link=grant)
    assert document.owner == "alice"
    assert (await documents.list(OWNER)).documents == []
    assert [listed.id for listed in (await documents.list("alice")).documents] == [document.id]
