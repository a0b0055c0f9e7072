"""The ``docpipe-client`` command: arguments, output (human or ``--json``), exit statuses."""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from docpipe_client.api import Api, Document
from docpipe_client.download import STDOUT, download
from docpipe_client.errors import CommandFailed, ExitCode
from docpipe_client.progress import transfer_progress
from docpipe_client.state import state_dir
from docpipe_client.upload import Resumable, Uploader

DEFAULT_URL = "http://127.0.0.1:8000"
_DURATION = re.compile(r"(\d+)([smhd]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_MARK = re.compile(r"</?mark>")


def duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d``: seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 15m, 1h, 7d)")
    return int(match[1]) * _SECONDS[match[2]]


def _common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--url", default=default, help=f"the server (default: $DOCPIPE_URL, else {DEFAULT_URL})"
    )
    parser.add_argument("--api-key", default=default, help="the API key (default: $DOCPIPE_API_KEY)")
    parser.add_argument("--json", action="store_true", default=default, help="one JSON object per line")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars")


def parser() -> argparse.ArgumentParser:
    """The options common to every command go before or after its name (``--url U ls``, ``ls --url U``)."""
    top = argparse.ArgumentParser(
        prog="docpipe-client", description="docpipe from the command line (exit statuses: see README)."
    )
    _common_options(top, None)
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, argparse.SUPPRESS)  # given after the command, they override; else untouched
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upload = commands.add_parser("upload", parents=[common], help="upload files")
    upload.add_argument("files", nargs="+", type=Path, metavar="FILE")
    upload.add_argument("--tag", action="append", default=[], help="a tag (repeat for several)")
    upload.add_argument("--type", dest="content_type", help="the content type (default: detected)")
    upload.add_argument(
        "--resumable",
        type=Resumable,
        choices=list(Resumable),
        default=Resumable.AUTO,
        help="through tus: auto (files of 8 MiB or more, when the server offers it), always, never",
    )

    get = commands.add_parser("download", parents=[common], help="download a document (resumable)")
    get.add_argument("id")
    get.add_argument("-o", "--output", help="file or folder to write to, - for stdout (default: its name)")

    listing = commands.add_parser("ls", parents=[common], help="list documents, newest first")
    listing.add_argument("--tag")
    listing.add_argument("--prefix", help="filename prefix")
    listing.add_argument("--type", dest="content_type", help="content type")
    listing.add_argument("--limit", type=int, help="at most this many (default: all)")

    info = commands.add_parser("info", parents=[common], help="a document's metadata")
    info.add_argument("id")

    remove = commands.add_parser("rm", parents=[common], help="delete documents")
    remove.add_argument("ids", nargs="+", metavar="ID")

    search = commands.add_parser("search", parents=[common], help="full-text search, best match first")
    search.add_argument("query")
    search.add_argument("--tag")
    search.add_argument("--limit", type=int, default=20, help="1 to 100 (default 20)")

    link = commands.add_parser("link", parents=[common], help="a signed link to a document")
    link.add_argument("id")
    link.add_argument("--expires", type=duration, required=True, help="e.g. 90s, 15m, 1h, 7d (at most 7d)")
    link.add_argument("--inline", action="store_true", help="shown in the browser where its type is safe")
    return top


class Output:
    """Results on stdout, as text or as JSON lines; failures on stderr, one line each."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, value: Mapping[str, Any], text: str) -> None:
        print(json.dumps(value, ensure_ascii=False) if self.as_json else text, flush=True)

    @staticmethod
    def fail(message: str) -> None:
        print(f"docpipe-client: {message}", file=sys.stderr, flush=True)


def _size(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError


def _row(document: Document) -> str:
    size = _size(document["size"])
    return f"{document['id']}  {size:>10}  {document['created_at'][:19]}  {document['filename']}"


def _details(document: Document) -> str:
    processing = document.get("processing") or {}
    fields = {
        "id": document["id"],
        "filename": document["filename"],
        "content_type": document["content_type"],
        "size": f"{document['size']} ({_size(document['size'])})",
        "sha256": document["sha256"],
        "tags": ", ".join(document["tags"]),
        "metadata": ", ".join(f"{key}={value}" for key, value in document["metadata"].items()),
        "created_at": document["created_at"],
        "updated_at": document["updated_at"],
        "processing": processing.get("state", ""),
    }
    return "\n".join(f"{name + ':':<14}{value}" for name, value in fields.items())


def _each(items: Iterable[Any], action: Callable[[Any], None], out: Output) -> ExitCode:
    """Run ``action`` on every item, going on past failures; the status of the first failure."""
    status = ExitCode.OK
    for item in items:
        try:
            action(item)
        except CommandFailed as failure:
            out.fail(failure.message)
            status = status or failure.code
    return status


def run(arguments: argparse.Namespace, environ: Mapping[str, str]) -> ExitCode:
    out = Output(arguments.json)
    url = arguments.url or environ.get("DOCPIPE_URL") or DEFAULT_URL
    api = Api(url, arguments.api_key or environ.get("DOCPIPE_API_KEY"))
    try:
        match arguments.command:
            case "upload":
                uploader = Uploader(
                    api,
                    progress := transfer_progress(arguments.quiet),
                    state_dir(environ),
                    arguments.resumable,
                )

                def upload(path: Path) -> None:
                    document = uploader.upload(path, arguments.tag, arguments.content_type)
                    out.emit(document, f"{document['id']}  {path}")

                with progress:
                    return _each(arguments.files, upload, out)
            case "download":
                with transfer_progress(arguments.quiet) as progress:
                    document, where = download(api, arguments.id, arguments.output, progress)
                if where != STDOUT:
                    out.emit({**document, "path": where}, where)
            case "ls":
                for document in api.documents(
                    arguments.prefix, arguments.tag, arguments.content_type, arguments.limit
                ):
                    out.emit(document, _row(document))
            case "info":
                document = api.document(arguments.id)
                out.emit(document, _details(document))
            case "rm":

                def remove(document_id: str) -> None:
                    api.delete(document_id)
                    out.emit({"id": document_id, "deleted": True}, f"deleted {document_id}")

                return _each(arguments.ids, remove, out)
            case "search":
                for result in api.search(arguments.query, arguments.tag, arguments.limit):
                    snippet = html.unescape(_MARK.sub("", result.get("snippet") or ""))
                    out.emit(result, f"{result['score']:.2f}  {_row(result['document'])}\n      {snippet}")
            case "link":
                link = api.link(arguments.id, arguments.expires, "inline" if arguments.inline else None)
                out.emit(link, link["url"])
    except CommandFailed as failure:
        out.fail(failure.message)
        return failure.code
    except httpx.TransportError as error:
        out.fail(f"{url}: {str(error) or type(error).__name__}; a transfer resumes when run again")
        return ExitCode.UNREACHABLE
    except BrokenPipeError:  # `docpipe-client ls | head`: nobody reads any more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor will Python's exit flush
        return ExitCode.BROKEN_PIPE
    except OSError as error:  # a local file (httpx's own failures are not OSErrors)
        out.fail(f"{error.filename}: {error.strerror}" if error.filename else str(error))
        return ExitCode.USAGE
    except KeyboardInterrupt:
        out.fail("interrupted; a transfer resumes when run again")
        return ExitCode.INTERRUPTED
    finally:
        api.close()
    return ExitCode.OK


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    return int(run(arguments, os.environ if environ is None else environ))
