"""Canonical transcript: messages, the ledger that builds them, validation."""
