"""`/v1/stream`: order state changes pushed as JSON messages.

Connect, optionally send `{"op": "subscribe", "accounts": ["0x..."]}` (default: everything
you may see), then receive `{"type": "order.accepted", "account": ..., "order": {...}}`
messages. A subscriber too slow to keep up receives `{"type": "error", "code":
"slow_consumer"}` and is closed (code 1008); reconnect and re-read over REST.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from eth_utils import is_address, to_checksum_address
from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect

from gateway.api.runtime import Runtime, websocket_runtime

router = APIRouter(prefix="/v1")


@router.websocket("/stream")
async def stream(websocket: WebSocket, rt: Annotated[Runtime, Depends(websocket_runtime)]) -> None:
    await websocket.accept()
    subscription = rt.events.subscribe(None)
    await websocket.send_json({"type": "subscribed", "accounts": None})
    control = asyncio.create_task(_control(websocket, rt, subscription))
    try:
        while True:
            get = asyncio.create_task(subscription.queue.get())
            overflow = asyncio.create_task(subscription.overflowed.wait())
            done, pending = await asyncio.wait(
                {get, overflow, control}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending - {control}:
                task.cancel()
            if control in done:
                break
            if get in done:
                await websocket.send_json(get.result())
                continue
            await websocket.send_json(
                {"type": "error", "code": "slow_consumer", "message": "fell too far behind"}
            )
            await websocket.close(code=1008)
            break
    except WebSocketDisconnect:
        pass
    finally:
        control.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await control
        rt.events.unsubscribe(subscription)


async def _control(websocket: WebSocket, rt: Runtime, subscription: Any) -> None:
    """Read client messages: subscription changes. Returns when the client goes away."""
    while True:
        try:
            message = await websocket.receive_json()
        except (WebSocketDisconnect, RuntimeError):
            return
        except ValueError:
            await websocket.send_json({"type": "error", "code": "malformed_json"})
            continue
        if not isinstance(message, dict) or message.get("op") != "subscribe":
            await websocket.send_json({"type": "error", "code": "unknown_op"})
            continue
        accounts = message.get("accounts")
        if accounts is not None and (
            not isinstance(accounts, list)
            or not all(isinstance(a, str) and is_address(a) for a in accounts)
        ):
            await websocket.send_json({"type": "error", "code": "invalid_accounts"})
            continue
        subscription.accounts = (
            None if accounts is None else frozenset(to_checksum_address(a) for a in accounts)
        )
        await websocket.send_json({"type": "subscribed", "accounts": accounts})
