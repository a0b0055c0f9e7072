"""Processing jobs as they travel through a work queue (``ports.WorkQueue``) to ``docpipe worker``."""

from __future__ import annotations

import msgspec

from docpipe.domain.events import Event


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """Process ``owner``'s document ``document_id``, as the event ``event_id`` asked.

    Only what processing reads, not the event's document: processing reads the document as it is when
    the job runs (see ``pipeline.DocumentProcessing``), and a message stays far below a queue's size
    limit (SQS: 256 KiB) whatever the document's metadata holds."""

    event_id: str
    owner: str
    document_id: str

    @classmethod
    def of(cls, event: Event) -> Job:
        return cls(event_id=event.id, owner=event.owner, document_id=event.document_id)


class JobReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """One receipt of a job: ``receipt`` names this receipt to the queue, ``attempt`` counts the
    receipts of the job so far (1 the first time)."""

    job: Job
    receipt: str
    attempt: int
