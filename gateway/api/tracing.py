"""OpenTelemetry traces of API requests, and request ids in the structured logs."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.config import Settings


def install_tracing(app: FastAPI, settings: Settings) -> None:
    """Open a span per request (placeholder until the traces land)."""
