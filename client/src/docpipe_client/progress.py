"""Progress bars for transfers: name, bar, bytes done of total, rate and time left, on stderr, drawn only
when stderr is a terminal (a pipe or a log file gets none of it)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def transfer_progress(quiet: bool) -> Progress:
    """A progress display for one command's transfers (a task per file); a no-op when ``quiet`` or when
    stderr is not a terminal. Bars stay on screen when done, so the last one shows the mean rate."""
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=quiet or not sys.stderr.isatty(),
        # Results printed meanwhile are drawn above the bars only when they go to the terminal too:
        # redirected, they would end on stderr, not in the file or pipe stdout was sent to.
        redirect_stdout=sys.stdout.isatty(),
    )
