"""docpipe's HTTP API over httpx: one method per call the commands make, errors as ``CommandFailed``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from docpipe_client.errors import CommandFailed, ExitCode

USER_AGENT = "docpipe-client/0.1.0"
TIMEOUT = httpx.Timeout(60, connect=10)
"""Per network operation (connect, each read, each write), not per request: a 5 GiB transfer may take
as long as it needs while bytes keep flowing."""

Document = dict[str, Any]


def problem_line(response: httpx.Response) -> str:
    """A refusal in one line: status, title and detail of its problem+json body (RFC 9457), and the
    request id a server operator can find it by. Reads the body, which a streamed response has not."""
    response.read()
    problem: Any = None
    if "json" in response.headers.get("content-type", ""):
        try:
            problem = response.json()
        except ValueError:
            problem = None
    if not isinstance(problem, dict):
        return f"{response.status_code} {response.reason_phrase}"
    title = problem.get("title") or response.reason_phrase
    detail = problem.get("detail")
    line = f"{problem.get('status', response.status_code)} {title}" + (f": {detail}" if detail else "")
    request_id = problem.get("request_id") or response.headers.get("x-request-id")
    return line + (f" (request {request_id})" if request_id else "")


def expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    """``response`` when its status is one of ``statuses``, else the server's refusal as a failure."""
    if response.status_code not in statuses:
        raise CommandFailed(problem_line(response), ExitCode.REFUSED)
    return response


def document_path(document_id: str) -> str:
    return f"/documents/{quote(document_id, safe='')}"


class Api:
    """A connection pool to one docpipe server, acting with one API key (or none, for a server run
    with ``DOCPIPE_AUTH=none``)."""

    def __init__(self, url: str, api_key: str | None) -> None:
        headers = {"User-Agent": USER_AGENT}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)

    def close(self) -> None:
        self.http.close()

    def document(self, document_id: str) -> Document:
        return self.document_at(document_path(document_id))

    def document_at(self, path: str) -> Document:
        document: Document = expect(self.http.get(path), 200).json()
        return document

    def documents(
        self, prefix: str | None, tag: str | None, content_type: str | None, limit: int | None
    ) -> Iterator[Document]:
        """The listing, newest first, page after page until its end or ``limit`` documents."""
        params: dict[str, str | int] = {
            name: value
            for name, value in (("prefix", prefix), ("tag", tag), ("content_type", content_type))
            if value is not None
        }
        remaining = limit
        while True:
            page_size = 1000 if remaining is None else min(remaining, 1000)
            page = expect(self.http.get("/documents", params={**params, "limit": page_size}), 200).json()
            for document in page["documents"]:
                yield document
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return
            if page["next_cursor"] is None:
                return
            params["cursor"] = page["next_cursor"]

    def delete(self, document_id: str) -> None:
        expect(self.http.delete(document_path(document_id)), 204)

    def search(self, query: str, tag: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, str | int] = {"q": query, "limit": limit}
        if tag is not None:
            params["tag"] = tag
        results: list[dict[str, Any]] = expect(self.http.get("/search", params=params), 200).json()["results"]
        return results

    def link(self, document_id: str, expires_in: int, disposition: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"expires_in": expires_in}
        if disposition is not None:
            body["disposition"] = disposition
        link: dict[str, Any] = expect(
            self.http.post(f"{document_path(document_id)}/links", json=body), 201
        ).json()
        return link
