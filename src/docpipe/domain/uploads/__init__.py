"""Resumable uploads (tus): sessions that receive a document's bytes over many requests, then commit it."""
