"""Text extraction from PDF, DOCX, HTML and plain text, run in child processes with CPU, memory, output
and wall-clock limits (``sandbox``), so that a hostile file can fail but never hurt the service."""
