"""The operator credentials test apps are built with (the API refuses anonymous callers)."""

from __future__ import annotations

OPERATOR_TOKEN = "test-operator-token"


def operator_headers() -> dict[str, str]:
    """A fresh dict each time: Starlette's TestClient (and its `websocket_connect`) adds its
    own headers to the dict it is given, and one shared dict so changed made every later
    WebSocket handshake in the process send two Sec-WebSocket-Key headers (a 400)."""
    return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
