"""Where a resumable upload is remembered between runs: one small JSON file per upload in
``$XDG_STATE_HOME/docpipe-client/uploads`` (default ``~/.local/state``), named by a hash of the server's
URL and the file's path, size and modification time. A file that changed in any of those starts a new
upload; the file is removed once its upload is committed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path


def state_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "docpipe-client" / "uploads"


class UploadState:
    """The tus upload URL of one file for one server, if an earlier run made one."""

    def __init__(self, directory: Path, server_url: str, path: Path) -> None:
        stat = path.stat()
        self._identity = {
            "server": server_url,
            "path": str(path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
        name = hashlib.sha256(json.dumps(self._identity, sort_keys=True).encode()).hexdigest()[:32]
        self._file = directory / f"{name}.json"

    def load(self) -> str | None:
        try:
            recorded = json.loads(self._file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(recorded, dict) or recorded.get("identity") != self._identity:
            return None
        url = recorded.get("url")
        return url if isinstance(url, str) else None

    def save(self, url: str) -> None:
        """Written whole or not at all (a temporary file renamed over it)."""
        self._file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._file.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"identity": self._identity, "url": url}))
        os.replace(temporary, self._file)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._file.unlink()
