"""Structured logs: JSON lines with request, order and batch ids, and never a secret."""

from __future__ import annotations

from gateway.config import Settings


def configure_logging(settings: Settings) -> None:
    """Set up the process's logging (placeholder until the structured logs land)."""
