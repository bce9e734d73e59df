"""`/v1/stream`: order state changes and consolidated books, pushed as JSON messages.

After connecting, send `{"op": "subscribe", "accounts": ["0x..."], "books": ["WETH/USDC"]}`
(both optional; by default every order event and no books). Order events arrive as
`{"type": "order.accepted", "account": ..., "order": {...}}`; books as
`{"type": "book", "book": {...}}`.

Book updates are conflated: a subscriber that reads slowly gets the newest book per
instrument, never a backlog. Order events are never dropped silently: a subscriber too slow
for them receives `{"type": "error", "code": "slow_consumer"}` and is closed (code 1008);
it reconnects and re-reads over REST.

Order entry on the same connection: send `{"op": "place", "id": "r1", "order": {...}}`
(the body of `POST /v1/orders`), `{"op": "amend", "id", "order_id", "price"?, "quantity"?,
"expected_version"?}`, `{"op": "cancel", "id", "order_id"}`, `{"op": "batch", "id",
"orders": [...]}`, `{"op": "cancel_orders", "id", ...}` or `{"op": "mass_quote", "id",
"account", "quotes": [...]}` (the bodies of the REST routes), and `{"op":
"cancel_on_disconnect", "id", "enabled": true, "accounts"?: [...]}` (the dead man's
switch: when this connection drops, or the gateway dies, the accounts' resting orders are
cancelled; the caller's own accounts by default). Requests are handled one at a
time in the order sent; each gets `{"type": "response", "id": ..., "status": <the REST
status>, "order" | "results" | "levels" ... | "error": {...}}`, in that order, between the
fills and order events of the subscription. The same access checks, validation, risk,
idempotency and audit as REST: the handlers are the REST routes' own.

The handshake authenticates like any request (a bearer token, the HMAC headers, or
`?token=` for browsers). A caller bound to accounts gets only its accounts' events: by
default all of them, and a subscription naming another account is refused (`forbidden`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from eth_utils import is_address, to_checksum_address
from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from gateway.access.control import AccessDenied
from gateway.access.policy import Permission, allows
from gateway.api import order_entry
from gateway.api.access import access_control, can_see, ensure_account, principal_of
from gateway.api.dependencies import websocket_runtime
from gateway.api.errors import error_body
from gateway.api.forwarding import forward_entry
from gateway.api.schemas import AmendIn, OrderIn, book_out
from gateway.domain.errors import DomainError, InvalidOrder
from gateway.domain.json_text import compact_json
from gateway.oms.events import Subscription
from gateway.oms.ids import new_id
from gateway.runtime import Runtime
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
        self.id = new_id("ws")
        self.cancel_on_disconnect = False

    def close(self) -> None:
        self.rt.events.unsubscribe(self.orders)
        if self.books is not None:
            self.rt.market_data.unsubscribe(self.books)


@router.websocket("/stream")
async def stream(websocket: WebSocket, rt: Annotated[Runtime, Depends(websocket_runtime)]) -> None:
    await websocket.accept()
    session = _Session(websocket, rt)
    websocket.state.stream_session = session
    own = session.principal.accounts
    await _send(
        websocket,
        {"type": "subscribed", "accounts": None if own is None else sorted(own), "books": []},
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
                missed = session.orders.reason == "events_missed"
                await _send(
                    websocket,
                    {
                        "type": "error",
                        "code": session.orders.reason,
                        "message": "events were lost before this replica read them: re-read "
                        "the state and reconnect"
                        if missed
                        else "fell too far behind",
                    },
                )
                await websocket.close(code=1008)
                break
            if "order" in finished:
                await _send(websocket, waiting.pop("order").result())
            if "books" in finished:
                for book in waiting.pop("books").result():
                    await _send(
                        websocket, {"type": "book", "book": book_out(book).model_dump(mode="json")}
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
        if session.cancel_on_disconnect:  # the dead man's switch: pull the quotes
            await rt.dead_man_switch.close_session(session.id)


async def _control(session: _Session) -> None:
    """Read client messages (subscription changes). Returns when the client goes away."""
    websocket, rt = session.websocket, session.rt
    while True:
        try:
            message = await websocket.receive_json()
        except (WebSocketDisconnect, RuntimeError):
            return
        except ValueError:
            await _send(websocket, {"type": "error", "code": "malformed_json"})
            continue
        if not isinstance(message, dict):
            await _send(websocket, {"type": "error", "code": "unknown_op"})
            continue
        op = message.get("op")
        if op in ENTRY_OPS:
            # one request at a time, in the order sent: answers come back in that order
            await _send(websocket, await _entry(session, op, message))
            continue
        if op != "subscribe":
            await _send(websocket, {"type": "error", "code": "unknown_op"})
            continue
        accounts = message.get("accounts")
        if accounts is not None and (
            not isinstance(accounts, list)
            or not all(isinstance(a, str) and is_address(a) for a in accounts)
        ):
            await _send(websocket, {"type": "error", "code": "invalid_accounts"})
            continue
        books = message.get("books", [])
        if not isinstance(books, list) or not all(
            isinstance(b, str) and b in rt.orders.catalogue for b in books
        ):
            await _send(websocket, {"type": "error", "code": "unknown_instrument"})
            continue
        if accounts is not None and not all([await can_see(websocket, a) for a in accounts]):
            await _send(websocket, {"type": "error", "code": "forbidden"})
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
        await _send(websocket, {"type": "subscribed", "accounts": accounts, "books": books})


async def _entry(session: _Session, op: str, message: dict[str, Any]) -> dict[str, Any]:
    """An order-entry request: the same handlers as the REST routes, answered as
    `{"type": "response", "id": <the request's id>, "status": <the REST status>, ...}`."""
    request_id = message.get("id")
    answer: dict[str, Any] = {"type": "response", "id": request_id}
    websocket, rt = session.websocket, session.rt
    try:
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            raise InvalidOrder("an order-entry request needs an id (string or integer)", field="id")
        # the handshake needed only `read`: each request is checked as its REST route is
        if not allows(session.principal, Permission.TRADE):
            raise AccessDenied(f"the {session.principal.role} role may not enter orders")
        access = access_control(websocket.app)
        wait = None if access is None else await access.limit(session.principal)
        if wait is not None:
            return answer | {
                "status": 429,
                "retry_after": wait,
                "error": error_body("rate_limited", f"over the request rate; retry in {wait} s")[
                    "error"
                ],
            }
        leases = rt.leases
        if leases is not None and not leases.holding:
            primary = leases.holder_address()
            token = rt.settings.operator_token
            if op in ("amend", "cancel"):
                _order_id(message)  # the same 422 as on the holder, before asking it
            if primary is not None and token is not None:
                forwarded = await forward_entry(
                    primary,
                    leases.replica_id,
                    token.get_secret_value(),
                    session.principal,
                    op,
                    message,
                )
                if forwarded is not None:
                    return answer | forwarded
            return answer | {
                "status": 421,
                "primary": primary,
                "error": error_body(
                    "entry_on_primary",
                    "this request is served on the stream of the replica that holds the book "
                    f"({primary or 'none right now'}); this replica serves the events",
                )["error"],
            }
        status, result = await ENTRY_OPS[op](websocket, rt, message)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ())) or None
        return answer | {
            "status": 422,
            "error": error_body("validation_error", first["msg"], field)["error"],
        }
    except DomainError as error:
        return answer | {
            "status": order_entry.status_of(error),
            "error": error_body(error.code, error.message, error.field)["error"],
        }
    return answer | {"status": status, **result}


async def _send(websocket: WebSocket, payload: Any) -> None:
    """One message as compact JSON text (orjson: two a stream order, its answer and its
    event). Received messages stay with json.loads: orjson reads an integer past 64 bits as a
    float."""
    await websocket.send_text(compact_json(payload))


def _payload(message: dict[str, Any], *drop: str) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in ("op", "id", *drop)}


async def _place(
    websocket: WebSocket, rt: Runtime, message: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    order, created = await order_entry.place(
        websocket, rt, OrderIn.model_validate(message.get("order"))
    )
    return 201 if created else 200, {"order": order_entry.order_out(order).model_dump(mode="json")}


async def _amend(
    websocket: WebSocket, rt: Runtime, message: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    order_id = _order_id(message)
    order = await order_entry.amend(
        websocket, rt, order_id, AmendIn.model_validate(_payload(message, "order_id"))
    )
    return 200, {"order": order_entry.order_out(order).model_dump(mode="json")}


async def _cancel(
    websocket: WebSocket, rt: Runtime, message: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    version = message.get("expected_version")
    if version is not None and (not isinstance(version, int) or version < 1):
        raise InvalidOrder("expected_version is a positive integer", field="expected_version")
    order = await order_entry.cancel(websocket, rt, _order_id(message), version)
    return 200, {"order": order_entry.order_out(order).model_dump(mode="json")}


def _with_body(
    model: type[BaseModel], handle: Callable[[WebSocket, Runtime, Any], Awaitable[BaseModel]]
) -> EntryHandler:
    """A request whose fields are a REST route's body, answered with that route's body."""

    async def entry(
        websocket: WebSocket, rt: Runtime, message: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        out = await handle(websocket, rt, model.model_validate(_payload(message)))
        return 200, out.model_dump(mode="json")

    return entry


async def _cancel_on_disconnect(
    websocket: WebSocket, rt: Runtime, message: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Opt this connection in (or out): when it drops, the accounts' resting orders are
    cancelled, also when the gateway itself dies (cancelled at its next start)."""
    session: _Session = websocket.state.stream_session
    enabled = message.get("enabled")
    if not isinstance(enabled, bool):
        raise InvalidOrder("enabled is true or false", field="enabled")
    if not enabled:
        await rt.dead_man_switch.forget_session(session.id)
        session.cancel_on_disconnect = False
        return 200, {"cancel_on_disconnect": False}
    given = message.get("accounts")
    if given is None:
        if session.principal.accounts is None:
            raise InvalidOrder("name the accounts whose orders to cancel", field="accounts")
        accounts = frozenset(session.principal.accounts)
    elif (
        isinstance(given, list)
        and given
        and all(isinstance(a, str) and is_address(a) for a in given)
    ):
        accounts = frozenset(to_checksum_address(a) for a in given)
    else:
        raise InvalidOrder("accounts is a list of addresses", field="accounts")
    for account in accounts:
        await ensure_account(websocket, account)
    await rt.dead_man_switch.open_session(session.id, accounts)
    session.cancel_on_disconnect = True
    return 200, {"cancel_on_disconnect": True, "accounts": sorted(accounts)}


def _order_id(message: dict[str, Any]) -> str:
    order_id = message.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise InvalidOrder("order_id is required", field="order_id")
    return order_id


EntryHandler = Callable[[WebSocket, Runtime, dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]
ENTRY_OPS: dict[str, EntryHandler] = {
    "place": _place,
    "amend": _amend,
    "cancel": _cancel,
    "batch": _with_body(order_entry.BatchOrdersIn, order_entry.place_batch),
    "cancel_orders": _with_body(order_entry.CancelOrdersIn, order_entry.cancel_many),
    "mass_quote": _with_body(order_entry.MassQuoteIn, order_entry.mass_quote),
    "cancel_on_disconnect": _cancel_on_disconnect,
}
