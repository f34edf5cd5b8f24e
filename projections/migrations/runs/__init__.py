"""Migrations of the run-status projection (templated by generation)."""
