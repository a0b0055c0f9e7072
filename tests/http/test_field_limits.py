"""Tags and metadata are bounded before any per-item work, and their request bodies stay small.

Every legitimate request fits: the longest body counts every field at its limit, written the longest
way a JSON encoder writes it (Python's default ``ensure_ascii`` spells a character outside the BMP as
a 12-byte surrogate pair escape) and pretty-printed.
"""

from __future__ import annotations

import json

from docpipe.domain.fields import (
    MAX_FILENAME_BYTES,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_VALUE_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)
from docpipe.entrypoints.http.body_limits import MAX_FORM_FIELDS_BYTES, MAX_PATCH_BODY_BYTES
from tests.http.helpers import Client, assert_problem, upload_ok

EMOJI = "\U0001f600"  # 4 bytes of UTF-8, 12 bytes as a JSON escape
JSON = {"content-type": "application/json"}


def _longest_fields() -> tuple[str, list[str], dict[str, str]]:
    filename = EMOJI * (MAX_FILENAME_BYTES // 4 - 1) + "a.txt"
    tags = [f"{n:02}" + EMOJI * (MAX_TAG_LENGTH - 2) for n in range(MAX_TAGS)]
    metadata = {
        f"{n:02}" + EMOJI * (MAX_METADATA_KEY_LENGTH - 2): EMOJI * MAX_METADATA_VALUE_LENGTH
        for n in range(MAX_METADATA_ENTRIES)
    }
    return filename, tags, metadata


async def test_the_longest_legitimate_patch_is_accepted(client: Client) -> None:
    url = f"/documents/{(await upload_ok(client))['id']}"
    filename, tags, metadata = _longest_fields()
    body = json.dumps({"filename": filename, "tags": tags, "metadata": metadata}, indent=4).encode()
    assert len(body) <= MAX_PATCH_BODY_BYTES
    response = await client.patch(url, content=body, headers=JSON)
    assert response.status_code == 200, response.text[:500]
    assert response.json()["tags"] == tags
    assert response.json()["metadata"] == metadata


async def test_a_patch_body_over_the_limit_is_413(client: Client) -> None:
    url = f"/documents/{(await upload_ok(client))['id']}"
    body = json.dumps({"metadata": {"k": "v" * MAX_PATCH_BODY_BYTES}}).encode()
    assert_problem(await client.patch(url, content=body, headers=JSON), 413)


async def test_forty_thousand_tags_are_refused_and_nothing_changes(client: Client) -> None:
    document = await upload_ok(client, fields={"tags": "kept"})
    url = f"/documents/{document['id']}"
    response = await client.patch(url, json={"tags": [f"t{n}" for n in range(40_000)]})
    assert response.status_code in (413, 422), response.text[:500]
    assert_problem(response, response.status_code)
    assert_problem(await client.patch(url, json={"tags": ["same"] * (MAX_TAGS + 1)}), 422)
    many_entries = {f"k{n}": "v" for n in range(40_000)}
    assert (await client.patch(url, json={"metadata": many_entries})).status_code in (413, 422)
    assert (await client.get(url)).json()["tags"] == ["kept"]


async def test_the_longest_legitimate_form_fields_are_accepted(client: Client) -> None:
    _, tags, metadata = _longest_fields()
    fields = {"tags": ",".join(tags), "metadata": json.dumps(metadata, indent=4)}
    assert sum(len(value.encode()) for value in fields.values()) <= MAX_FORM_FIELDS_BYTES
    document = await upload_ok(client, fields=fields)
    assert document["tags"] == tags
    assert document["metadata"] == metadata


async def test_form_fields_over_the_limit_are_refused(client: Client) -> None:
    response = await client.post(
        "/documents",
        files={"file": ("a.txt", b"x", "text/plain")},
        data={"metadata": json.dumps({"k": "v" * MAX_FORM_FIELDS_BYTES})},
    )
    assert_problem(response, 400)
    assert (await client.get("/documents")).json()["documents"] == []
