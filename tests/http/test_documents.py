"""Upload, list, read, update and delete through the HTTP API, on every adapter pair."""

from __future__ import annotations

import hashlib
import json

import pytest

from docpipe.config import Settings
from docpipe.container import Container
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import Processing, ProcessingState, new_blob_key
from tests.http.conftest import MAX_UPLOAD_BYTES
from tests.http.helpers import Client, assert_problem, content_digest, stores_of, upload, upload_ok


async def test_multipart_upload_returns_the_document_with_location_and_etag(client: Client) -> None:
    data = b"%PDF-1.7 not really\n"
    response = await upload(client, data, "Q3 report.pdf", "application/pdf", fields={"tags": "finance, q3"})
    assert response.status_code == 201
    document = response.json()
    assert response.headers["location"] == f"/documents/{document['id']}"
    assert response.headers["etag"].startswith('"')
    assert document["filename"] == "Q3 report.pdf"
    assert document["content_type"] == "application/pdf"
    assert document["size"] == len(data)
    assert document["sha256"] == hashlib.sha256(data).hexdigest()
    assert document["tags"] == ["finance", "q3"]
    assert document["metadata"] == {}
    assert document["created_at"].endswith("Z")
    assert document["processing"] == {
        "state": "pending",
        "pages": None,
        "characters": None,
        "title": None,
        "error": None,
    }
    assert (await client.get(f"/documents/{document['id']}")).json() == document


async def test_raw_upload_takes_the_name_from_the_query(client: Client) -> None:
    response = await client.post(
        "/documents?filename=notes.md&tags=a,b",
        content=b"# notes\n",
        headers={"content-type": "text/markdown"},
    )
    assert response.status_code == 201, response.text
    document = response.json()
    assert (document["filename"], document["content_type"], document["tags"]) == (
        "notes.md",
        "text/markdown",
        ["a", "b"],
    )


async def test_raw_upload_takes_the_name_from_content_disposition(client: Client) -> None:
    response = await client.post(
        "/documents",
        content=b"data",
        headers={
            "content-disposition": "attachment; filename=\"plain.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "résumé.txt"


async def test_raw_upload_without_a_name_is_refused(client: Client) -> None:
    assert_problem(await client.post("/documents", content=b"data"), 422)


async def test_upload_with_metadata_field(client: Client) -> None:
    document = await upload_ok(client, fields={"metadata": json.dumps({"project": "apollo"})})
    assert document["metadata"] == {"project": "apollo"}


async def test_upload_with_bad_metadata_is_refused(client: Client) -> None:
    assert_problem(await upload(client, fields={"metadata": "[1, 2]"}), 422)
    assert (await client.get("/documents")).json()["documents"] == []


async def test_fields_after_the_file_part_are_honoured(client: Client) -> None:
    boundary = "xyzBOUNDARYzyx"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\nabc\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="tags"\r\n\r\nlate\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    response = await client.post(
        "/documents", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["tags"] == ["late"]


async def test_empty_upload_is_refused_and_nothing_is_stored(client: Client) -> None:
    assert_problem(await upload(client, b""), 400)
    assert_problem(await client.post("/documents?filename=a", content=b""), 400)
    assert (await client.get("/documents")).json()["documents"] == []


async def test_multipart_without_a_file_part_is_refused(client: Client) -> None:
    response = await client.post("/documents", data={"tags": "x"}, files={"other": ("x.txt", b"x")})
    assert_problem(response, 400)
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="tags"\r\n\r\nx\r\n--{boundary}--\r\n'.encode()
    )
    response = await client.post(
        "/documents", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert "file" in assert_problem(response, 400)["detail"]


async def test_truncated_multipart_is_refused(client: Client) -> None:
    boundary = "b0undary"
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc'.encode()
    response = await client.post(
        "/documents", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert_problem(response, 400)
    assert (await client.get("/documents")).json()["documents"] == []


async def test_over_limit_upload_is_refused_with_413(client: Client) -> None:
    response = await upload(client, b"x" * (MAX_UPLOAD_BYTES + 1))
    assert_problem(response, 413)
    response = await client.post("/documents?filename=big", content=b"x" * (MAX_UPLOAD_BYTES + 1))
    assert_problem(response, 413)
    assert (await client.get("/documents")).json()["documents"] == []


async def test_an_upload_exactly_at_the_limit_is_accepted(client: Client) -> None:
    response = await client.post("/documents?filename=big", content=b"x" * MAX_UPLOAD_BYTES)
    assert response.status_code == 201
    assert response.json()["size"] == MAX_UPLOAD_BYTES


async def test_content_digest_is_verified(client: Client) -> None:
    data = b"integrity matters"
    ok = await client.post(
        "/documents?filename=a.txt", content=data, headers={"content-digest": content_digest(data)}
    )
    assert ok.status_code == 201
    bad = await client.post(
        "/documents?filename=b.txt", content=data, headers={"content-digest": content_digest(b"other")}
    )
    assert_problem(bad, 400)
    names = [d["filename"] for d in (await client.get("/documents")).json()["documents"]]
    assert names == ["a.txt"]


async def test_malformed_content_digest_is_refused(client: Client) -> None:
    response = await client.post(
        "/documents?filename=a.txt", content=b"x", headers={"content-digest": "sha-256=:!!notbase64!!:"}
    )
    assert_problem(response, 400)


async def test_hostile_filenames_are_reduced_to_a_safe_last_segment(client: Client) -> None:
    cases = {
        "../../etc/passwd": "passwd",
        "..\\..\\windows\\system32\\cmd.exe": "cmd.exe",
        "/abs/path/name.txt": "name.txt",
        "evil\r\nX-Injected: 1.txt": "evilX-Injected: 1.txt",
        "nul\x00byte.txt": "nulbyte.txt",
        "日本語のファイル.pdf": "日本語のファイル.pdf",
    }
    for sent, kept in cases.items():
        response = await client.post("/documents", params={"filename": sent}, content=b"x")
        assert response.status_code == 201, (sent, response.text)
        assert response.json()["filename"] == kept


async def test_filenames_that_name_nothing_are_refused(client: Client) -> None:
    for sent in ("..", ".", "a/..", "   ", "x" * 300):
        assert_problem(await client.post("/documents", params={"filename": sent}, content=b"x"), 422)


async def test_list_is_newest_first_with_working_cursor(client: Client) -> None:
    ids = [(await upload_ok(client, f"{n}".encode(), f"{n}.txt"))["id"] for n in range(5)]
    first = (await client.get("/documents", params={"limit": 2})).json()
    assert [d["id"] for d in first["documents"]] == ids[::-1][:2]
    seen = [d["id"] for d in first["documents"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (await client.get("/documents", params={"limit": 2, "cursor": cursor})).json()
        seen += [d["id"] for d in page["documents"]]
        cursor = page["next_cursor"]
    assert seen == ids[::-1]


async def test_list_filters(client: Client) -> None:
    await upload_ok(client, b"a", "invoice-1.pdf", content_type="application/pdf", fields={"tags": "finance"})
    await upload_ok(client, b"b", "receipt.txt", content_type="text/plain", fields={"tags": "finance,legal"})
    await upload_ok(client, b"c", "invoice-2.txt", content_type="text/plain")

    async def names(**params: str) -> list[str]:
        return [d["filename"] for d in (await client.get("/documents", params=params)).json()["documents"]]

    assert await names(prefix="invoice-") == ["invoice-2.txt", "invoice-1.pdf"]
    assert await names(tag="finance") == ["receipt.txt", "invoice-1.pdf"]
    assert await names(content_type="text/plain") == ["invoice-2.txt", "receipt.txt"]
    assert await names(tag="legal", content_type="text/plain") == ["receipt.txt"]


async def test_bad_list_parameters_are_refused(client: Client) -> None:
    for params in (
        {"cursor": "not-a-cursor"},
        {"cursor": "eyJhZnRlciI6IngifQ"},
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
    ):
        assert_problem(await client.get("/documents", params=params), 400)


async def test_get_of_an_unknown_document_is_404(client: Client) -> None:
    assert_problem(await client.get("/documents/0193f4d2-0000-7000-8000-000000000000"), 404)
    assert_problem(await client.get("/documents/nonsense"), 404)


async def test_patch_changes_fields_and_the_etag(client: Client) -> None:
    document = await upload_ok(client, fields={"tags": "old"})
    before = (await client.get(f"/documents/{document['id']}")).headers["etag"]
    response = await client.patch(
        f"/documents/{document['id']}",
        json={"filename": "../renamed.txt", "tags": ["new"], "metadata": {"k": "v"}},
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["filename"], changed["tags"], changed["metadata"]) == ("renamed.txt", ["new"], {"k": "v"})
    assert changed["updated_at"] >= document["updated_at"]
    assert changed["created_at"] == document["created_at"]
    assert response.headers["etag"] != before
    assert (await client.get(f"/documents/{document['id']}")).json() == changed
    names = [
        d["filename"] for d in (await client.get("/documents", params={"tag": "new"})).json()["documents"]
    ]
    assert names == ["renamed.txt"]


async def test_patch_honours_if_match(client: Client) -> None:
    document = await upload_ok(client)
    url = f"/documents/{document['id']}"
    etag = (await client.get(url)).headers["etag"]
    assert (await client.patch(url, json={"tags": ["a"]}, headers={"if-match": etag})).status_code == 200
    assert_problem(await client.patch(url, json={"tags": ["b"]}, headers={"if-match": etag}), 412)
    assert (await client.get(url)).json()["tags"] == ["a"]
    assert (await client.patch(url, json={"tags": ["c"]}, headers={"if-match": "*"})).status_code == 200


async def test_bad_patches_are_refused(client: Client) -> None:
    document = await upload_ok(client)
    url = f"/documents/{document['id']}"
    assert_problem(await client.patch(url, json={"filename": ".."}), 422)
    assert_problem(await client.patch(url, json={"tags": ["a,b"]}), 422)
    assert_problem(await client.patch(url, json={}), 422)
    assert_problem(await client.patch(url, json={"unknown": 1}), 400)
    assert_problem(await client.patch(url, json={"tags": "not-a-list"}), 400)
    assert_problem(
        await client.patch(url, content=b"{not json", headers={"content-type": "application/json"}), 400
    )
    assert_problem(
        await client.patch(url, content=b'{"tags": []}', headers={"content-type": "text/plain"}), 415
    )
    assert_problem(
        await client.patch("/documents/0193f4d2-0000-7000-8000-000000000000", json={"tags": []}), 404
    )


async def test_delete_removes_the_document_from_every_route(client: Client) -> None:
    document = await upload_ok(client, b"bye", "gone.txt", fields={"tags": "t"})
    url = f"/documents/{document['id']}"
    response = await client.delete(url)
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(url), 404)
    assert_problem(await client.get(f"{url}/content"), 404)
    assert_problem(await client.get("/download/gone.txt"), 404)
    assert (await client.get("/documents", params={"tag": "t"})).json()["documents"] == []
    assert_problem(await client.delete(url), 404)


async def test_delete_by_filename_removes_every_document_of_that_name(client: Client) -> None:
    await upload_ok(client, b"1", "dup.txt")
    await upload_ok(client, b"2", "dup.txt")
    keep = await upload_ok(client, b"3", "keep.txt")
    assert (await client.delete("/documents/dup.txt")).status_code == 204
    remaining = [d["id"] for d in (await client.get("/documents")).json()["documents"]]
    assert remaining == [keep["id"]]
    assert_problem(await client.delete("/documents/dup.txt"), 404)


async def test_original_routes(client: Client) -> None:
    first = await upload(client, b"version 1", "report.txt", path="/upload")
    assert first.status_code == 201
    await upload_ok(client, b"version 2", "report.txt", path="/upload")
    response = await client.get("/download/report.txt")
    assert response.status_code == 200
    assert response.content == b"version 2"
    assert_problem(await client.post("/upload", content=b"raw", headers={"content-type": "text/plain"}), 415)
    assert_problem(await client.get("/download/missing.txt"), 404)


@pytest.mark.parametrize("settings", [("memory", "memory")], ids=["memory+memory"], indirect=True)
async def test_the_original_upload_route_refuses_a_type_that_only_starts_as_multipart(client: Client) -> None:
    """``multipart/form-dataextra`` is another media type: 415, not a raw upload stored under it (the
    route decides before any adapter is reached, so one pair is enough)."""
    response = await client.post(
        "/upload?filename=a.txt", content=b"raw", headers={"content-type": "multipart/form-dataextra"}
    )
    assert_problem(response, 415)


async def test_unknown_routes_and_methods_answer_problem_json(client: Client) -> None:
    assert_problem(await client.get("/nowhere"), 404)
    response = await client.put("/documents")
    assert_problem(response, 405)


async def test_health(client: Client) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"


async def test_content_type_is_detected_when_not_declared(client: Client) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    undeclared = await client.post("/documents?filename=picture", content=png)
    assert undeclared.status_code == 201
    assert undeclared.json()["content_type"] == "image/png"
    assert undeclared.json()["detected_content_type"] is None
    declared = await upload_ok(client, png, "picture.txt", content_type="text/plain")
    assert declared["content_type"] == "text/plain"
    assert declared["detected_content_type"] == "image/png"
    octet = await upload_ok(client, b"%PDF-1.7\n", "doc", content_type="application/octet-stream")
    assert octet["content_type"] == "application/pdf"


async def test_options_lists_every_method_of_a_path(client: Client) -> None:
    collection = await client.options("/documents")
    assert collection.status_code == 204
    assert collection.headers["allow"] == "GET, OPTIONS, POST"
    item = await client.options("/documents/0193f4d2-0000-7000-8000-000000000000")
    assert item.headers["allow"] == "DELETE, GET, OPTIONS, PATCH"


def _multipart(boundary: str, file_bytes: bytes, epilogue: bytes = b"") -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'.encode()
        + file_bytes
        + f"\r\n--{boundary}--\r\n".encode()
        + epilogue
    )


async def test_content_digest_of_a_multipart_upload_covers_the_whole_body(client: Client) -> None:
    boundary = "digestboundary"
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    body = _multipart(boundary, b"file bytes")
    whole = await client.post(
        "/documents", content=body, headers={**headers, "content-digest": content_digest(body)}
    )
    assert whole.status_code == 201, whole.text
    file_only = await client.post(
        "/documents", content=body, headers={**headers, "content-digest": content_digest(b"file bytes")}
    )
    assert_problem(file_only, 400)
    assert [d["id"] for d in (await client.get("/documents")).json()["documents"]] == [whole.json()["id"]]


async def test_values_longer_than_anything_stored_are_refused_or_match_nothing(client: Client) -> None:
    long_type = "text/" + "x" * 3000
    assert_problem(
        await client.post("/documents?filename=a", content=b"x", headers={"content-type": long_type}), 422
    )
    for params in ({"tag": "t" * 3000}, {"content_type": long_type}, {"prefix": "p" * 3000}):
        response = await client.get("/documents", params=params)
        assert response.status_code == 200
        assert response.json() == {"documents": [], "next_cursor": None}
    assert_problem(await client.get("/download/" + "n" * 3000), 404)


async def test_a_recorded_processing_result_shows_in_the_view_and_moves_the_etag(
    client: Client, settings: Settings, container: Container
) -> None:
    # Of a type no processor reads: the server's own processing records nothing for it meanwhile.
    document = await upload_ok(client, b"\x00\x01", "report.bin", content_type="application/octet-stream")
    before = (await client.get(f"/documents/{document['id']}")).headers["etag"]
    result = Processing(
        state=ProcessingState.DONE,
        pages=12,
        characters=48211,
        title="Q3 report",
        processor="pdf/1",
        text_key=new_blob_key(DEFAULT_OWNER),
    )
    async with stores_of(settings, container) as (_, repository):
        await repository.record_processing(DEFAULT_OWNER, document["id"], document["sha256"], result)
    shown = await client.get(f"/documents/{document['id']}")
    assert shown.json()["processing"] == {
        "state": "done",
        "pages": 12,
        "characters": 48211,
        "title": "Q3 report",
        "error": None,
    }
    assert shown.headers["etag"] != before
    assert_problem(
        await client.patch(
            f"/documents/{document['id']}", json={"tags": ["q3"]}, headers={"if-match": before}
        ),
        412,
    )
