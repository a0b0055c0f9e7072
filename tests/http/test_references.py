"""How routes find documents, on every adapter pair."""

from __future__ import annotations

from collections.abc import AsyncIterator

from docpipe.config import Settings
from docpipe.container import Container, close, open_service
from docpipe.domain.model import NewDocument


async def test_the_upload_that_commits_last_is_listed_first(settings: Settings) -> None:
    """Ids are minted when an upload commits, not when it starts (driven through the service: the
    test client cannot hold one request open while another runs)."""
    container = Container(settings=settings)
    try:
        service = await open_service(container)
        async with service.new_upload() as slow:
            await slow.stage(chunks(b"started first, committed last"))
            fast = await service.upload(chunks(b"started second"), NewDocument(filename="fast.txt"))
            late = await slow.commit(NewDocument(filename="slow.txt"))
        assert [document.id for document in (await service.list()).documents] == [late.id, fast.id]
        assert (await service.newest_named("slow.txt")).id == late.id
        content = b"".join([chunk async for chunk in await service.open_content(late)])
        assert content == b"started first, committed last"
    finally:
        await close(container)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
