"""`/v1/stream`: order state changes and consolidated books, pushed as JSON messages.

After connecting, send `{"op": "subscribe", "accounts": ["0x..."], "books": ["WETH/USDC"]}`
(both optional; by default every order event and no books). Order events arrive as
`{"type": "order.accepted", "account": ..., "order": {...}}`; books as
`{"type": "book", "book": {...}}`.

Book updates are conflated: a subscriber that reads slowly gets the newest book per
instrument, never a backlog. Order events are never dropped silently: a subscriber too slow
for them receives `{"type": "error", "code": "slow_consumer"}` and is closed (code 1008);
it reconnects and re-reads over REST.

The handshake authenticates like any request (a bearer token, the HMAC headers, or
`?token=` for browsers). A caller bound to accounts gets only its accounts' events: by
default all of them, and a subscription naming another account is refused (`forbidden`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from eth_utils import is_address, to_checksum_address
from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect

from gateway.api.access import can_see, principal_of
from gateway.api.runtime import Runtime, websocket_runtime
from gateway.api.schemas import book_out
from gateway.oms.events import Subscription
from gateway.venues.market_data import ConflatedBooks

router = APIRouter(prefix="/v1")


class _Session:
    def __init__(self, websocket: WebSocket, rt: Runtime) -> None:
        self.websocket = websocket
        self.rt = rt
        self.principal = principal_of(websocket)
        self.orders: Subscription = rt.events.subscribe(self.principal.accounts)
        self.books: ConflatedBooks | None = None
        self.resubscribed = asyncio.Event()

    def close(self) -> None:
        self.rt.events.unsubscribe(self.orders)
        if self.books is not None:
            self.rt.market_data.unsubscribe(self.books)


@router.websocket("/stream")
async def stream(websocket: WebSocket, rt: Annotated[Runtime, Depends(websocket_runtime)]) -> None:
    await websocket.accept()
    session = _Session(websocket, rt)
    own = session.principal.accounts
    await websocket.send_json(
        {"type": "subscribed", "accounts": None if own is None else sorted(own), "books": []}
    )
    control = asyncio.create_task(_control(session))
    waiting: dict[str, asyncio.Task[Any]] = {}
    try:
        while True:
            if "order" not in waiting:
                waiting["order"] = asyncio.create_task(session.orders.queue.get())
            if "overflow" not in waiting:
                waiting["overflow"] = asyncio.create_task(session.orders.overflowed.wait())
            if session.books is not None and "books" not in waiting:
                waiting["books"] = asyncio.create_task(session.books.next())
            if "resubscribed" not in waiting:
                waiting["resubscribed"] = asyncio.create_task(session.resubscribed.wait())
            done, _ = await asyncio.wait(
                {control, *waiting.values()}, return_when=asyncio.FIRST_COMPLETED
            )
            if control in done:
                break
            finished = {name for name, task in waiting.items() if task in done}
            if "overflow" in finished:
                await websocket.send_json(
                    {"type": "error", "code": "slow_consumer", "message": "fell too far behind"}
                )
                await websocket.close(code=1008)
                break
            if "order" in finished:
                await websocket.send_json(waiting.pop("order").result())
            if "books" in finished:
                for book in waiting.pop("books").result():
                    await websocket.send_json(
                        {"type": "book", "book": book_out(book).model_dump(mode="json")}
                    )
            if "resubscribed" in finished:
                waiting.pop("resubscribed")
                session.resubscribed.clear()
                stale = waiting.pop("books", None)  # the mailbox may have been replaced
                if stale is not None:
                    stale.cancel()
    except WebSocketDisconnect:
        pass
    finally:
        for task in (control, *waiting.values()):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await control
        session.close()


async def _control(session: _Session) -> None:
    """Read client messages (subscription changes). Returns when the client goes away."""
    websocket, rt = session.websocket, session.rt
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
        books = message.get("books", [])
        if not isinstance(books, list) or not all(
            isinstance(b, str) and b in rt.orders.catalogue for b in books
        ):
            await websocket.send_json({"type": "error", "code": "unknown_instrument"})
            continue
        if accounts is not None and not all([await can_see(websocket, a) for a in accounts]):
            await websocket.send_json({"type": "error", "code": "forbidden"})
            continue
        session.orders.accounts = (
            session.principal.accounts
            if accounts is None
            else frozenset(to_checksum_address(a) for a in accounts)
        )
        if session.books is not None:
            rt.market_data.unsubscribe(session.books)
        session.books = rt.market_data.subscribe(frozenset(books)) if books else None
        session.resubscribed.set()
        await websocket.send_json({"type": "subscribed", "accounts": accounts, "books": books})
