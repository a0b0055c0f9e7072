"""What one extraction may use, and the reasons a user reads when it used more."""

from __future__ import annotations

import msgspec

KiB = 1 << 10
MiB = 1 << 20

MIN_TEXT_BYTES = 4 * KiB
"""The smallest text limit: room for some text and the note saying it was cut."""
MIN_MEMORY_BYTES = 128 * MiB
"""The smallest memory limit: a child needs about 80 MiB of address space before it reads anything."""


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Per-extraction limits. Breaking the first three fails the extraction; text beyond ``text_bytes``
    is dropped and the extraction succeeds, marked truncated."""

    cpu_seconds: int = 30
    """CPU time of the child process (RLIMIT_CPU): stops parsers that loop."""
    wall_seconds: float = 60.0
    """Time the parent waits for an answer before it kills the child: stops children that block."""
    memory_bytes: int = 512 * MiB
    """Address space of the child (RLIMIT_AS): stops decompression bombs and runaway parsers."""
    text_bytes: int = 64 * MiB
    """UTF-8 text kept per document; the child may write no file larger (RLIMIT_FSIZE)."""

    def __post_init__(self) -> None:
        if self.cpu_seconds < 1 or self.wall_seconds <= 0 or self.memory_bytes < MIN_MEMORY_BYTES:
            raise ValueError(
                "extraction limits: at least 1 s of CPU, some wall time and "
                f"{describe_size(MIN_MEMORY_BYTES)} of memory"
            )
        if self.text_bytes < MIN_TEXT_BYTES:
            raise ValueError(f"extraction limits: text_bytes must be at least {MIN_TEXT_BYTES}")


def describe_size(size: int) -> str:
    """``512 MiB``, ``64 KiB`` or ``1000 bytes``: a size as a user reads it."""
    for unit, name in ((1 << 30, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit:
            return f"{size / unit:.3g} {name}"
    return f"{size} bytes"


def too_slow(limits: Limits) -> str:
    return f"reading the file took longer than {limits.wall_seconds:g} s"


def too_much_cpu(limits: Limits) -> str:
    return f"reading the file took more than {limits.cpu_seconds} s of processing time"


def too_much_memory(limits: Limits) -> str:
    return f"reading the file needed more than {describe_size(limits.memory_bytes)} of memory"
