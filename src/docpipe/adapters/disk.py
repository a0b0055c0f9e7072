"""What the embedded adapters (file system blobs, SQLite) ask of the disk under their folder."""

from __future__ import annotations

import os
from pathlib import Path


def has_no_room(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has no block, or no inode, left to write to.

    File systems that keep no inode count (btrfs reports none) never run out of inodes here.
    """
    stats = os.statvfs(folder)
    return stats.f_bavail == 0 or (stats.f_files > 0 and stats.f_favail == 0)
