"""Adapters of the domain ports, one module per technology."""
