"""The operator credentials test apps are built with (the API refuses anonymous callers)."""

from __future__ import annotations

OPERATOR_TOKEN = "test-operator-token"
OPERATOR_HEADERS = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
