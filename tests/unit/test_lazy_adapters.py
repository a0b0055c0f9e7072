"""The embedded default never imports what only other adapters need: the AWS SDK, aiohttp and joserfc
take most of a second to import, which ``make run`` and every ``docpipe`` command would pay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OTHER_ADAPTERS_LIBRARIES = ("aioboto3", "aiobotocore", "botocore", "aiohttp", "joserfc")

OPEN_THE_EMBEDDED_DEFAULT = """
import asyncio, sys
from docpipe.config import load_settings
from docpipe.container import Container, close, open_authenticator, open_service
import docpipe.entrypoints.cli

async def main():
    container = Container(settings=load_settings({"DOCPIPE_DATA_DIR": sys.argv[1]}))
    await open_service(container)
    await open_authenticator(container)
    await container.relay()
    await close(container)

asyncio.run(main())
print(" ".join(sorted(name for name in sys.modules if "." not in name)))
"""


def test_the_embedded_default_imports_no_other_adapters_library(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", OPEN_THE_EMBEDDED_DEFAULT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = set(run.stdout.split())
    assert "docpipe" in imported
    assert imported.isdisjoint(OTHER_ADAPTERS_LIBRARIES), imported & set(OTHER_ADAPTERS_LIBRARIES)
