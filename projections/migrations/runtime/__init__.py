"""Migrations of the tables the projector runtime shares (positions, generations)."""
