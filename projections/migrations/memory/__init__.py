"""Migrations of the memory projection (templated by generation)."""
