"""What only the OpenSearch index does, against the fake of its REST API: the owner filter in every
search and in every id, the text's cap, what its failures become, and what verify and rebuild mean."""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import RequestError

from docpipe.adapters.opensearch_search import OpenSearchIndex, _text_update, entry_id, open_search_index
from docpipe.config import OpenSearchSettings, Secret
from docpipe.domain.errors import StorageFull, StoreMissing, StoreUnavailable
from docpipe.domain.search import SearchQuery
from docpipe.domain.search_text import MAX_INDEXED_CHARS, PASSAGE_CHARS
from tests.contract.search_support import a_document, found, opened_opensearch_index, text
from tests.moto_server import free_port
from tests.opensearch_fake import RunningFake


@pytest.fixture
async def index(opensearch_fake: RunningFake) -> AsyncIterator[OpenSearchIndex]:
    async with opened_opensearch_index(opensearch_fake.url) as opened:
        yield opened


def _index_name(index: OpenSearchIndex) -> str:
    return index._index


async def test_every_search_filters_on_the_owner_and_the_fake_refuses_one_that_does_not(
    index: OpenSearchIndex, opensearch_fake: RunningFake
) -> None:
    await index.put(a_document("report.pdf", owner="alice"), text("words"))
    await index.search("alice", SearchQuery.parse("report words", tag="t", content_type="c"))
    sent = opensearch_fake.state.searches[-1]
    assert sent["query"]["bool"]["filter"][0] == {"term": {"owner": "alice"}}
    client = AsyncOpenSearch(hosts=[opensearch_fake.url])
    try:
        unscoped = {"bool": {"must": sent["query"]["bool"]["must"]}}
        with pytest.raises(RequestError, match="owner"):
            await client.search(index=_index_name(index), body={**sent, "query": unscoped})
    finally:
        await client.close()


async def test_each_owner_has_ids_of_its_own(index: OpenSearchIndex, opensearch_fake: RunningFake) -> None:
    alices = a_document("same.pdf", owner="alice")
    bobs = a_document("same.pdf", owner="bob", document_id=alices.id)
    await index.put(alices, None)
    await index.put(bobs, None)
    stored = opensearch_fake.state.indexes[_index_name(index)].documents
    assert set(stored) == {entry_id("alice", alices.id), entry_id("bob", alices.id)}
    await index.remove("bob", alices.id)
    assert await found(index, "same", owner="alice") == [alices.id]
    assert await found(index, "same", owner="bob") == []


async def test_the_text_sent_is_capped_as_every_index_caps_it() -> None:
    chunk = "word " * 1000
    pieces = [chunk] * (MAX_INDEXED_CHARS // len(chunk)) + [chunk, " beyondthecap"]
    body = msgspec.json.decode(await _text_update(text(*pieces)))
    sent = body["doc"]["passages"]
    assert MAX_INDEXED_CHARS - PASSAGE_CHARS < sum(map(len, sent)) <= MAX_INDEXED_CHARS
    assert all(len(passage) <= PASSAGE_CHARS for passage in sent)
    assert "beyondthecap" not in sent[-1]


async def test_without_create_missing_a_missing_index_is_refused(opensearch_fake: RunningFake) -> None:
    settings = OpenSearchSettings(url=opensearch_fake.url, index="docpipe-test-never-created")
    with pytest.raises(StoreMissing, match="docpipe-test-never-created"):
        await anext(open_search_index(settings, create_missing=False))
    assert "docpipe-test-never-created" not in opensearch_fake.state.indexes


async def test_an_index_deleted_under_a_running_server_is_created_again_with_docpipes_mapping(
    index: OpenSearchIndex, opensearch_fake: RunningFake
) -> None:
    del opensearch_fake.state.indexes[_index_name(index)]
    with pytest.raises(StoreUnavailable):
        await index.search("alice", SearchQuery.parse("again"))
    document = a_document("again.pdf")
    await index.put(document, text("words"))
    assert await index.verify() == []
    assert await found(index, "again words") == [document.id]


async def test_basic_auth_is_sent_when_set(opensearch_fake: RunningFake) -> None:
    settings = OpenSearchSettings(
        url=opensearch_fake.url,
        index=f"docpipe-test-{uuid.uuid4().hex[:12]}",
        username="docpipe",
        password=Secret("s3cret:pass"),
    )
    async with contextlib.asynccontextmanager(open_search_index)(settings) as index:
        await index.check()
    expected = "Basic " + base64.b64encode(b"docpipe:s3cret:pass").decode()
    assert expected in opensearch_fake.state.authorizations


async def test_an_unreachable_opensearch_is_unavailable() -> None:
    client = AsyncOpenSearch(hosts=[f"http://127.0.0.1:{free_port()}"], max_retries=0)
    index = OpenSearchIndex(client, "docpipe-unreachable", create_missing=True)
    try:
        with pytest.raises(StoreUnavailable):
            await index.put(a_document("a.pdf"), text("words"))
        with pytest.raises(StoreUnavailable):
            await index.search("alice", SearchQuery.parse("words"))
        with pytest.raises(StoreUnavailable):
            await index.remove("alice", a_document("a.pdf").id)
        with pytest.raises(StoreUnavailable):
            await index.check()
        with pytest.raises(StoreUnavailable):
            await anext(open_search_index(OpenSearchSettings(url=f"http://127.0.0.1:{free_port()}")))
    finally:
        await client.close()


async def test_an_index_blocked_for_a_full_disk_is_storage_full_and_still_searched(
    index: OpenSearchIndex, opensearch_fake: RunningFake
) -> None:
    kept = a_document("kept.pdf")
    await index.put(kept, None)
    opensearch_fake.state.indexes[_index_name(index)].read_only_allow_delete = True
    with pytest.raises(StorageFull):
        await index.check()
    with pytest.raises(StorageFull):
        await index.put(a_document("new.pdf"), None)
    assert await found(index, "kept") == [kept.id]


async def test_verify_finds_a_missing_index_and_other_analysis_and_rebuild_recreates_it(
    index: OpenSearchIndex, opensearch_fake: RunningFake
) -> None:
    name = _index_name(index)
    mapping = opensearch_fake.state.indexes[name].mappings["properties"]
    mapping["filename"]["fields"]["inside"]["analyzer"] = "standard"
    [damage] = await index.verify()
    assert "'filename.inside'" in damage
    assert "standard" in damage
    with pytest.raises(StoreUnavailable, match="reprocess --all"):
        await index.rebuild()
    del opensearch_fake.state.indexes[name]
    assert await index.verify() == [f"the OpenSearch index {name} does not exist"]
    await index.rebuild()
    assert await index.verify() == []
    await index.put(a_document("back.pdf"), None)
    await index.check()
