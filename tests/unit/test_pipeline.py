"""After a change commits: documents are processed, their text kept as a derived blob, the index follows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from docpipe.adapters.extraction.in_process import InProcessExtractor
from docpipe.adapters.extraction.spool import SpoolingExtractor
from docpipe.adapters.memory import MemoryBlobStore, MemoryRepository
from docpipe.adapters.memory_search import MemorySearchIndex
from docpipe.domain.events import Event
from docpipe.domain.fsck import FindingKind, Fsck
from docpipe.domain.model import (
    Document,
    DocumentChanges,
    ListQuery,
    NewDocument,
    Processing,
    ProcessingState,
    utc_now,
)
from docpipe.domain.pipeline import (
    MISSING_CONTENT,
    DocumentProcessing,
    SearchIndexing,
    Selection,
    reprocess,
    selected,
)
from docpipe.domain.processing import Extraction
from docpipe.domain.search import SearchQuery
from docpipe.domain.service import DocumentService
from tests.extraction import documents

OWNER = "alice"
PDF = "application/pdf"


class Pipeline:
    """The stores, the service and both consumers, driven by hand: ``deliver`` hands every pending
    event to the consumers, as the relay would."""

    def __init__(self) -> None:
        self.blobs = MemoryBlobStore()
        self.repository = MemoryRepository()
        self.index = MemorySearchIndex()
        self.service = DocumentService(
            self.blobs, self.repository, max_upload_bytes=1 << 30, index=self.index
        )
        self.processing = DocumentProcessing(
            self.blobs, self.repository, SpoolingExtractor(InProcessExtractor()), self.index
        )
        self.indexing = SearchIndexing(self.index)
        self.outbox = self.repository.outbox()
        self.delivered: list[Event] = []

    async def upload(self, data: bytes, filename: str, content_type: str) -> Document:
        return await self.service.upload(
            OWNER, chunks(data), NewDocument(filename=filename, content_type=content_type)
        )

    async def deliver(self) -> list[Event]:
        """Deliver until the outbox is empty (processing writes events of its own)."""
        delivered = []
        while events := await self.outbox.pending(100):
            for event in events:
                await self.processing.handle(event)
                await self.indexing.handle(event)
            await self.outbox.acknowledge(events)
            delivered += events
        self.delivered += delivered
        return delivered

    async def text_of(self, document: Document) -> str:
        assert document.processing.text_key is not None
        return b"".join(
            [chunk async for chunk in await self.blobs.open(document.processing.text_key)]
        ).decode()

    async def found(self, words: str) -> list[str]:
        page = await self.index.search(OWNER, SearchQuery.parse(words))
        return [hit.document_id for hit in page.hits]


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline()


async def test_a_pdf_is_processed_its_text_kept_and_found(pipeline: Pipeline) -> None:
    uploaded = await pipeline.upload(
        documents.reportlab_pdf(["quarterly figures", "zebra appendix"], title="Q3 report"), "q3.pdf", PDF
    )
    assert uploaded.processing.state is ProcessingState.PENDING
    assert await pipeline.found("q3") == [uploaded.id]
    assert await pipeline.found("zebra") == []

    await pipeline.deliver()
    document = await pipeline.service.get(OWNER, uploaded.id)
    processing = document.processing
    assert (processing.state, processing.pages, processing.title) == (ProcessingState.DONE, 2, "Q3 report")
    assert processing.processor == "pdf/1"
    assert processing.characters == len(await pipeline.text_of(document))
    assert "zebra appendix" in await pipeline.text_of(document)
    assert await pipeline.found("zebra") == [uploaded.id]
    assert [event.type for event in pipeline.delivered] == ["document.created", "document.processed"]


async def test_a_type_no_processor_reads_is_born_skipped(pipeline: Pipeline) -> None:
    uploaded = await pipeline.upload(b"\x89PNG\r\n\x1a\n", "a.png", "image/png")
    assert uploaded.processing.state is ProcessingState.SKIPPED
    assert [event.type for event in await pipeline.deliver()] == ["document.created"]
    document = await pipeline.service.get(OWNER, uploaded.id)
    assert document.processing.state is ProcessingState.SKIPPED
    assert pipeline.blobs.keys() == {document.blob_key}


async def test_a_damaged_file_fails_with_a_reason_and_keeps_no_text(pipeline: Pipeline) -> None:
    uploaded = await pipeline.upload(documents.truncated_pdf(), "broken.pdf", PDF)
    await pipeline.deliver()
    processing = (await pipeline.service.get(OWNER, uploaded.id)).processing
    assert processing.state is ProcessingState.FAILED
    assert processing.error == "the PDF is truncated or damaged"
    assert processing.text_key is None
    assert pipeline.blobs.keys() == {uploaded.blob_key}


async def test_a_document_is_processed_once_however_often_its_event_comes(pipeline: Pipeline) -> None:
    uploaded = await pipeline.upload(b"plain words", "a.txt", "text/plain")
    created, _ = await pipeline.deliver()
    processed = await pipeline.service.get(OWNER, uploaded.id)
    await pipeline.processing.handle(created)
    assert await pipeline.service.get(OWNER, uploaded.id) == processed
    assert len(pipeline.blobs.keys()) == 2


async def test_content_gone_from_the_blob_store_fails_the_document(pipeline: Pipeline) -> None:
    uploaded = await pipeline.upload(b"plain words", "a.txt", "text/plain")
    await pipeline.blobs.delete(uploaded.blob_key)
    await pipeline.deliver()
    processing = (await pipeline.service.get(OWNER, uploaded.id)).processing
    assert (processing.state, processing.error) == (ProcessingState.FAILED, MISSING_CONTENT)


async def test_a_document_deleted_before_it_is_processed_leaves_no_text(pipeline: Pipeline) -> None:
    uploaded = await pipeline.upload(b"plain words", "a.txt", "text/plain")
    [created] = await pipeline.outbox.pending(100)
    await pipeline.service.delete(OWNER, uploaded.id)
    assert await pipeline.processing.process(OWNER, uploaded.id) is None
    await pipeline.processing.handle(created)
    assert pipeline.blobs.keys() == set()


async def test_deleting_a_processed_document_deletes_its_text_and_unindexes_it(pipeline: Pipeline) -> None:
    uploaded = await pipeline.upload(b"walrus", "a.txt", "text/plain")
    await pipeline.deliver()
    assert await pipeline.found("walrus") == [uploaded.id]
    await pipeline.service.delete(OWNER, uploaded.id)
    await pipeline.deliver()
    assert pipeline.blobs.keys() == set()
    assert await pipeline.found("walrus") == []


async def test_processing_again_replaces_the_text_and_discards_the_old(pipeline: Pipeline) -> None:
    uploaded = await pipeline.upload(b"walrus", "a.txt", "text/plain")
    await pipeline.deliver()
    first = await pipeline.service.get(OWNER, uploaded.id)
    again = await pipeline.processing.process(OWNER, uploaded.id, again=True)
    assert again is not None
    assert again.processing.text_key not in (None, first.processing.text_key)
    assert pipeline.blobs.keys() == {uploaded.blob_key, again.processing.text_key}


async def test_a_renamed_document_keeps_its_text_in_the_index(pipeline: Pipeline) -> None:
    uploaded = await pipeline.upload(b"walrus", "a.txt", "text/plain")
    await pipeline.deliver()
    await pipeline.service.update(OWNER, uploaded.id, DocumentChanges(filename="b.txt"))
    await pipeline.deliver()
    assert await pipeline.found("walrus") == [uploaded.id]
    assert await pipeline.found("b") == [uploaded.id]


class ChangedWhileExtracting:
    """Runs ``change`` (a request changing the document, say) as extraction begins, then extracts."""

    def __init__(self, change: Callable[[], Awaitable[object]]) -> None:
        self._change = change
        self._extractor = InProcessExtractor()

    async def extract(self, source: Path, content_type: str, text_out: Path) -> Extraction:
        await self._change()
        return await self._extractor.extract(source, content_type, text_out)


async def test_a_rename_made_while_its_document_is_processed_is_what_the_index_keeps(
    pipeline: Pipeline,
) -> None:
    """Processing indexes the text of the document as it read it; a rename committed meanwhile (a
    version as high as the one processing then records) keeps its names in the index."""
    uploaded = await pipeline.upload(b"walrus", "draft.txt", "text/plain")
    renaming = ChangedWhileExtracting(
        lambda: pipeline.service.update(OWNER, uploaded.id, DocumentChanges(filename="final.txt"))
    )
    processing = DocumentProcessing(
        pipeline.blobs, pipeline.repository, SpoolingExtractor(renaming), pipeline.index
    )
    processed = await processing.process(OWNER, uploaded.id)
    assert processed is not None
    assert (processed.filename, processed.processing.state) == ("final.txt", ProcessingState.DONE)
    assert await pipeline.found("final") == [uploaded.id]
    assert await pipeline.found("walrus") == [uploaded.id]
    assert await pipeline.found("draft") == []


async def test_fsck_counts_extracted_text_as_referenced_and_reports_it_missing(pipeline: Pipeline) -> None:
    uploaded = await pipeline.upload(b"walrus", "a.txt", "text/plain")
    await pipeline.deliver()
    fsck = Fsck(pipeline.blobs, pipeline.repository)
    assert (await fsck.run(fix=True)).findings == []
    document = await pipeline.service.get(OWNER, uploaded.id)
    assert document.processing.text_key is not None
    await pipeline.blobs.delete(document.processing.text_key)
    report = await fsck.run(fix=True)
    assert [(finding.kind, finding.key, finding.fixed) for finding in report.findings] == [
        (FindingKind.MISSING_TEXT, uploaded.id, False)
    ]


async def test_reprocessing_takes_pending_and_outdated_documents_or_as_asked(pipeline: Pipeline) -> None:
    text = await pipeline.upload(b"walrus", "a.txt", "text/plain")
    broken = await pipeline.upload(documents.truncated_pdf(), "b.pdf", PDF)
    image = await pipeline.upload(b"\x89PNG\r\n\x1a\n", "c.png", "image/png")
    report = await reprocess(pipeline.repository, pipeline.processing, Selection.OUTDATED, concurrency=2)
    assert report.examined == 3
    assert report.states == {ProcessingState.DONE: 1, ProcessingState.FAILED: 1}  # the image was born skipped
    report = await reprocess(pipeline.repository, pipeline.processing, Selection.OUTDATED, concurrency=2)
    assert report.states == {}
    report = await reprocess(pipeline.repository, pipeline.processing, Selection.FAILED, concurrency=2)
    assert report.states == {ProcessingState.FAILED: 1}
    report = await reprocess(pipeline.repository, pipeline.processing, Selection.ALL, concurrency=2)
    assert sum(report.states.values()) == 3
    assert len(pipeline.blobs.keys()) == 4  # three documents and one text: earlier texts were discarded
    assert {text.id, broken.id, image.id} == {
        document.id for document in (await pipeline.repository.list(OWNER, ListQuery(limit=10))).documents
    }


def test_a_document_of_an_older_processor_version_is_outdated() -> None:
    document = Document(
        id="01a215eb-5c26-752e-88e0-963e0da9617b",
        owner=OWNER,
        blob_key=f"{OWNER}/01a215eb-5c26-752e-88e0-963e0da9617b",
        filename="a.pdf",
        content_type=PDF,
        size=1,
        sha256="0" * 64,
        created_at=utc_now(),
        updated_at=utc_now(),
        processing=Processing(state=ProcessingState.DONE, processor="pdf/0"),
    )
    assert selected(document, Selection.OUTDATED)
    current = msgspec.structs.replace(
        document, processing=Processing(state=ProcessingState.DONE, processor="pdf/1")
    )
    assert not selected(current, Selection.OUTDATED)
    assert selected(current, Selection.ALL)
    assert not selected(current, Selection.FAILED)
