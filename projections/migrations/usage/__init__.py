"""Migrations of the usage projection (templated by generation)."""
