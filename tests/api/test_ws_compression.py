"""`isthmus up` runs uvicorn without WebSocket compression unless ISTHMUS_WS_COMPRESSION asks
for it: a client that offers permessage-deflate gets plain frames (no zlib per order)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import uvicorn
from websockets.asyncio.client import connect

from gateway.api.app import create_app
from gateway.cli import server_options
from gateway.config import Settings
from tests.postgres_cluster import free_port

TOKEN = "ws-compression-operator"


async def extensions_served(settings: Settings) -> str | None:
    """Run the gateway under uvicorn with `isthmus up`'s options on this loop, and connect."""
    server = uvicorn.Server(uvicorn.Config(create_app(settings), **server_options(settings)))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn's own flag, set once it listens
        if serving.done():
            serving.result()
            raise RuntimeError("the server stopped before it listened")
        await asyncio.sleep(0)  # a yield, not a delay: the server starts on this loop
    try:
        return await negotiated_extensions(settings.port)
    finally:
        server.should_exit = True
        await serving


async def negotiated_extensions(port: int) -> str | None:
    uri = f"ws://127.0.0.1:{port}/v1/stream?token={TOKEN}"
    async with connect(uri, compression="deflate") as websocket:  # the client offers it
        await websocket.recv()  # subscribed
        assert websocket.response is not None
        return websocket.response.headers.get("Sec-WebSocket-Extensions")


@pytest.mark.parametrize("compression", [False, True])
def test_the_stream_is_compressed_only_when_configured(tmp_path: Path, compression: bool) -> None:
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ws.db'}",
        operator_token=TOKEN,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_compression=compression,
    )
    extensions = asyncio.run(extensions_served(settings))
    if compression:
        assert extensions is not None and "permessage-deflate" in extensions
    else:
        assert extensions is None
