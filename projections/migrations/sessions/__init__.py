"""Migrations of the session-index projection (templated by generation)."""
