"""FastAPI dependencies: the running gateway of the app serving the request."""

from __future__ import annotations

from fastapi import Request, WebSocket

from gateway.runtime import Runtime


async def runtime(request: Request) -> Runtime:
    value: Runtime = request.app.state.runtime
    return value


async def websocket_runtime(websocket: WebSocket) -> Runtime:
    value: Runtime = websocket.app.state.runtime
    return value
