"""Prometheus metrics at /metrics and the request metrics of every route."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.config import Settings


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Serve /metrics and count requests (placeholder until the metrics land)."""
