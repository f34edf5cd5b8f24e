"""Migrations of the checkpoints projection (templated by generation)."""
