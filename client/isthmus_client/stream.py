"""`OrderStream`: the gateway's WebSocket (`/v1/stream`) as an async iterator that survives
disconnects, with order entry on the same connection.

    async def auth(method: str, path: str, body: bytes) -> dict[str, str]:
        return api_key.headers(method, path, body)

    async with OrderStream("https://gateway.example", auth, accounts=[wallet]) as stream:
        placed = await stream.request("place", order={...})
        async for message in stream:
            match message:
                case OrderEvent():
                    ...  # message.type is "order.accepted", "order.filled", ...
                case StreamGap():
                    ...  # events may be missing: re-read the orders over REST

Every connection is authenticated by the headers `auth` returns for `GET <path>` with an
empty body; it is called again at every reconnect (HMAC timestamps and sessions change).

When the connection drops (a network failure, a gateway restart, or the gateway closing a
subscriber that fell behind: `slow_consumer`), the stream reconnects with an exponential
backoff capped at `max_backoff`, subscribes again to the same accounts and books, and then
yields a `StreamGap` before anything else: events between its `disconnected_at` and
`reconnected_at` may be missing. With `reconnect=False`, a drop ends the iteration with
`TransportError` instead.

Messages are read as they arrive, whether or not the caller iterates, so that responses to
`request()` are never stuck behind unread events. They wait in a buffer of `BUFFER_LIMIT`
messages; a caller that falls that far behind is treated as the gateway treats slow
subscribers: the connection is dropped, re-opened once the caller has iterated half the
buffer, and a `StreamGap` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from isthmus_client.errors import ApiError, IsthmusError, TransportError, error_class

__all__ = [
    "BUFFER_LIMIT",
    "AuthHeaders",
    "BookUpdate",
    "FillEvent",
    "OrderEvent",
    "OrderStream",
    "StreamGap",
    "StreamItem",
    "StreamMessage",
]

AuthHeaders = Callable[[str, str, bytes], Awaitable[dict[str, str]]]
"""`auth(method, path_with_query, body)`: the headers that authenticate one request (the
stream's handshake is `GET <path>` with an empty body)."""

BUFFER_LIMIT = 10_000
"""Messages read but not yet iterated, at most; beyond that the stream reconnects (a gap)."""

_FIRST_BACKOFF = 0.1  # seconds before the second consecutive attempt; doubles after each
_STABLE_AFTER = 10.0  # a connection that lived this long resets the backoff
_MAX_MESSAGE = 64 * 2**20  # a batch response or a deep book can exceed websockets' 1 MiB


@dataclass(frozen=True)
class OrderEvent:
    """A change of an order's state: `type` is `order.accepted`, `order.filled`,
    `order.cancelled`, `order.settled`, ...; `order` is the order as `GET /v1/orders/{id}`
    shows it (decimals as strings)."""

    type: str
    account: str
    order: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class FillEvent:
    """A fill of one of the account's orders: `type` is `fill.recorded` (matched) or
    `fill.settled` (confirmed on chain); `fill` has its order id, quantity, price and fee."""

    type: str
    account: str
    fill: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class BookUpdate:
    """The newest consolidated book of a subscribed instrument (`symbol`). Books are
    conflated: a slow reader gets the latest book, never a backlog."""

    symbol: str
    book: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class StreamMessage:
    """Any other message of the gateway (for example `{"type": "error", "code": ...}`
    about a malformed request), kept whole in `raw`."""

    type: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class StreamGap:
    """The stream was disconnected and has reconnected (and subscribed again): order events
    between `disconnected_at` and `reconnected_at` (UTC) may be missing, so re-read the
    state that matters over REST. `reason` says why it dropped (`slow_consumer` when the
    gateway or this client found the reader too slow), `attempts` how many connection
    attempts it took. Requests in flight at the drop raised `TransportError`, and a
    `cancel_on_disconnect` switch of the old connection has fired: enable it again."""

    disconnected_at: datetime
    reconnected_at: datetime
    reason: str
    attempts: int


StreamItem = OrderEvent | FillEvent | BookUpdate | StreamMessage | StreamGap
"""What iterating an `OrderStream` yields."""


class OrderStream:
    """The gateway's `/v1/stream` for `accounts` (default: every account the credentials
    may see) and the consolidated `books` of some instruments (default: none).

    `base_url` is the gateway's HTTP URL (`http(s)://host:port`, the stream is
    `ws(s)://host:port/v1/stream`); `auth` gives the handshake's headers, see
    `AuthHeaders`. `open_timeout` bounds each connection attempt (handshake and
    subscription). Use it as `async with OrderStream(...) as stream`, iterate it with
    `async for`, send orders with `request()`; `close()` ends the iteration.
    """

    def __init__(
        self,
        base_url: str,
        auth: AuthHeaders,
        *,
        accounts: Sequence[str] | None = None,
        books: Sequence[str] | None = None,
        reconnect: bool = True,
        max_backoff: float = 5.0,
        open_timeout: float = 10.0,
    ) -> None:
        if isinstance(accounts, str) or isinstance(books, str):
            raise TypeError("accounts and books are sequences of strings, not one string")
        if max_backoff <= 0 or open_timeout <= 0:
            raise ValueError("max_backoff and open_timeout must be positive")
        self.url = _stream_url(base_url)
        """The WebSocket URL, `ws(s)://.../v1/stream`."""
        self.accounts: tuple[str, ...] | None = None if accounts is None else tuple(accounts)
        """The accounts subscribed to (None: every account the credentials may see)."""
        self.books: tuple[str, ...] = () if books is None else tuple(books)
        """The instruments whose books are subscribed to."""
        self._path = urlsplit(self.url).path
        self._auth = auth
        self._reconnect = reconnect
        self._max_backoff = max_backoff
        self._open_timeout = open_timeout
        self._wanted_accounts = (
            None if self.accounts is None else frozenset(a.lower() for a in self.accounts)
        )
        self._buffer: deque[StreamItem] = deque()
        self._readable = asyncio.Event()  # a message was buffered, or the stream finished
        self._usable = asyncio.Event()  # connected (subscribed), or the stream finished
        self._drained = asyncio.Event()  # the caller took messages out of the buffer
        self._connection: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)
        self._streak = 0  # consecutive connection attempts without a stable connection
        self._failure: IsthmusError | None = None
        self._finished = False  # nothing more will be buffered
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Connect (see `connect()`)."""
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close (see `close()`)."""
        await self.close()

    async def connect(self) -> None:
        """Open the connection and subscribe; returns once subscribed. The first connection
        is not retried: bad credentials raise the typed `ApiError` (e.g. `Unauthenticated`,
        `Forbidden` for an account the credentials may not see), an unreachable gateway
        raises `TransportError`. Calling it again is a no-op; iterating or calling
        `request()` connects if this was not called."""
        if self._closed:
            raise TransportError("the stream is closed")
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._reader is not None:
                return
            connection, early = await self._open()
            if self._closed:  # closed while connecting
                await connection.close()
                raise TransportError("the stream was closed")
            self._attach(connection, early)
            self._reader = asyncio.create_task(self._run(connection), name="isthmus-stream")

    async def close(self) -> None:
        """Close the connection and end the iteration: a waiting `async for` stops, messages
        not yet iterated are dropped, requests in flight raise `TransportError`. Safe to call
        more than once."""
        if self._closed:
            return
        self._closed = True
        self._finished = True
        self._buffer.clear()
        self._readable.set()
        self._usable.set()
        self._drained.set()
        self._fail_pending(TransportError("the stream was closed"))
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.wait({reader})  # the caller's own cancellation still propagates

    @property
    def connected(self) -> bool:
        """Whether the stream is connected and subscribed right now."""
        return self._connection is not None and not self._finished

    # --- reading -----------------------------------------------------------------------

    def __aiter__(self) -> Self:
        """The stream is its own iterator."""
        return self

    async def __anext__(self) -> StreamItem:
        """The next message, in the order received; a `StreamGap` after a reconnect. Ends
        after `close()`; raises `TransportError` when the connection drops and `reconnect`
        is off, or the typed `ApiError` when a reconnect is refused (e.g. a revoked key)."""
        if self._reader is None and not self._closed:
            await self.connect()
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            if self._finished:
                failure, self._failure = self._failure, None
                if failure is not None:
                    raise failure
                raise StopAsyncIteration
            self._readable.clear()
            await self._readable.wait()
        item = self._buffer.popleft()
        if len(self._buffer) <= BUFFER_LIMIT // 2:
            self._drained.set()
        return item

    # --- order entry -------------------------------------------------------------------

    async def request(self, op: str, /, **fields: Any) -> dict[str, Any]:
        """Send an order-entry request (`place`, `amend`, `cancel`, `batch`,
        `cancel_orders`, `mass_quote`, `cancel_on_disconnect`) with `fields` as the
        message's other keys (e.g. `order={...}` for `place`; decimals may be `Decimal`),
        and return the gateway's response `{"type": "response", "id", "status", ...}`.

        A status other than 2xx raises the typed `ApiError` of its error code (e.g.
        `InvalidPriceTick`); a drop before the response raises `TransportError`: the request
        may or may not have been applied, so retry it with the same `client_order_id` (the
        gateway answers a repeated place idempotently, with status 200). While the stream
        is reconnecting, it waits for the new connection up to `open_timeout`.
        Events keep flowing to the iterator while a request waits."""
        if "id" in fields or "op" in fields:
            raise ValueError("the stream sets the request's `op` and `id` itself")
        connection = await self._ready()
        request_id = f"{self._id_prefix}-{next(self._ids)}"
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            text = json.dumps({"op": op, "id": request_id, **fields}, default=_json_default)
            try:
                await connection.send(text)
            except ConnectionClosed as error:
                raise TransportError(
                    f"the stream dropped before {op} was sent: {_describe(error)}"
                ) from error
            return await answer
        finally:
            self._pending.pop(request_id, None)

    async def _ready(self) -> ClientConnection:
        """The current connection, waiting for a reconnect up to `open_timeout`."""
        if self._reader is None and not self._closed:
            await self.connect()
        deadline = time.monotonic() + self._open_timeout
        while True:
            if self._closed:
                raise TransportError("the stream is closed")
            if self._finished:
                raise TransportError("the stream has ended") from self._failure
            if self._connection is not None:
                return self._connection
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportError("the stream is reconnecting; retry the request later")
            self._usable.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._usable.wait()

    # --- the connection ------------------------------------------------------------------

    async def _run(self, connection: ClientConnection) -> None:
        """The reader: read the connection, and reconnect when it drops."""
        try:
            while True:
                opened = time.monotonic()
                reason = await self._read(connection)
                disconnected_at = datetime.now(UTC)
                self._detach(TransportError(f"the stream dropped: {reason}"))
                if self._closed:
                    return
                if not self._reconnect:
                    self._finish(TransportError(f"the stream dropped: {reason}"))
                    return
                if time.monotonic() - opened >= _STABLE_AFTER:
                    self._streak = 0
                while len(self._buffer) > BUFFER_LIMIT // 2:  # the caller is behind: wait
                    self._drained.clear()
                    await self._drained.wait()
                    if self._closed:
                        return
                connection, early, attempts = await self._reopen()
                self._push(StreamGap(disconnected_at, datetime.now(UTC), reason, attempts))
                self._attach(connection, early)
        except asyncio.CancelledError:
            raise
        except IsthmusError as error:
            self._finish(error)
        except Exception as error:  # a bug or a failing `auth`: end the stream, loudly
            failure = TransportError(f"the stream failed: {error!r}")
            failure.__cause__ = error
            self._finish(failure)

    async def _read(self, connection: ClientConnection) -> str:
        """Dispatch the connection's messages until it closes; returns why it closed."""
        reason: str | None = None
        try:
            while True:
                message = _decode(await connection.recv())
                if message is None:
                    continue
                kind = message.get("type")
                if kind == "response":
                    self._answer(message)
                    continue
                if kind == "error" and message.get("code") == "slow_consumer":
                    reason = "slow_consumer"  # the close (1008) follows
                    continue
                item = _parse(message)
                if not self._wanted(item):
                    continue
                self._push(item)
                if len(self._buffer) > BUFFER_LIMIT:
                    reason = f"slow_consumer: more than {BUFFER_LIMIT} messages not iterated"
                    await connection.close(reason="client buffer full")
                    return reason
        except ConnectionClosed as closed:
            return reason or _describe(closed)

    async def _reopen(self) -> tuple[ClientConnection, list[StreamItem], int]:
        """Connect again, with backoff; raises when the gateway refuses for good."""
        attempts = 0
        while True:
            if self._streak:
                delay = min(self._max_backoff, _FIRST_BACKOFF * 2 ** (self._streak - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            attempts += 1
            self._streak += 1
            try:
                connection, early = await self._open()
            except ApiError as error:
                if _refused_for_good(error):
                    raise
            except TransportError:
                pass
            else:
                return connection, early, attempts

    async def _open(self) -> tuple[ClientConnection, list[StreamItem]]:
        """One connection attempt: handshake, the gateway's greeting, the subscription.
        Returns the connection and the messages that arrived before the subscription was
        confirmed (already filtered to it)."""
        headers = await self._auth("GET", self._path, b"")
        try:
            connection = await connect(
                self.url,
                additional_headers=headers,
                open_timeout=self._open_timeout,
                close_timeout=2,
                max_size=_MAX_MESSAGE,
            )
        except InvalidStatus as error:
            raise _handshake_refusal(error) from error
        except (OSError, TimeoutError, WebSocketException) as error:
            raise TransportError(f"cannot open {self.url}: {error}") from error
        try:
            async with asyncio.timeout(self._open_timeout):
                early = await self._subscribe(connection)
        except BaseException as error:
            with contextlib.suppress(Exception):
                await connection.close()
            if isinstance(error, ConnectionClosed):
                raise _closed_refusal(error) from error
            if isinstance(error, TimeoutError):
                raise TransportError(f"{self.url} did not confirm the subscription") from error
            raise
        return connection, early

    async def _subscribe(self, connection: ClientConnection) -> list[StreamItem]:
        greeting = _decode(await connection.recv())
        if greeting is not None and greeting.get("type") == "error":
            raise _message_refusal(greeting)
        if greeting is None or greeting.get("type") != "subscribed":
            raise TransportError(f"{self.url} is not an Isthmus stream (no greeting)")
        subscription: dict[str, Any] = {"op": "subscribe", "books": list(self.books)}
        if self.accounts is not None:
            subscription["accounts"] = list(self.accounts)
        await connection.send(json.dumps(subscription))
        early: list[StreamItem] = []
        while True:
            message = _decode(await connection.recv())
            if message is None:
                continue
            kind = message.get("type")
            if kind == "subscribed":
                return early
            if kind == "error":
                raise _message_refusal(message)
            item = _parse(message)
            if self._wanted(item):
                early.append(item)

    def _attach(self, connection: ClientConnection, early: list[StreamItem]) -> None:
        for item in early:
            self._push(item)
        self._connection = connection
        self._usable.set()

    def _detach(self, error: TransportError) -> None:
        self._connection = None
        self._usable.clear()
        self._fail_pending(error)

    def _finish(self, failure: IsthmusError) -> None:
        self._connection = None
        self._failure = failure
        self._finished = True
        self._readable.set()
        self._usable.set()
        self._fail_pending(failure)

    # --- dispatch ------------------------------------------------------------------------

    def _push(self, item: StreamItem) -> None:
        if not self._closed:
            self._buffer.append(item)
            self._readable.set()

    def _wanted(self, item: StreamItem) -> bool:
        """Order and fill events of the subscribed accounts only (events queued for the
        connection before its subscription narrowed may still arrive)."""
        if self._wanted_accounts is None or not isinstance(item, OrderEvent | FillEvent):
            return True
        return item.account.lower() in self._wanted_accounts

    def _answer(self, message: dict[str, Any]) -> None:
        """Resolve the request a response answers (one given up on is ignored)."""
        answer = self._pending.pop(str(message.get("id")), None)
        if answer is None or answer.done():
            return
        status = message.get("status")
        if isinstance(status, int) and 200 <= status < 300:
            answer.set_result(message)
            return
        code = status if isinstance(status, int) else 0
        error = message.get("error")
        failure = ApiError.from_error(code, error if isinstance(error, dict) else {})
        retry_after = message.get("retry_after")
        if isinstance(retry_after, int | float):
            failure.retry_after = float(retry_after)
        failure.body = message
        answer.set_exception(failure)

    def _fail_pending(self, error: IsthmusError) -> None:
        pending, self._pending = self._pending, {}
        for answer in pending.values():
            if not answer.done():
                answer.set_exception(error)


# --- helpers -------------------------------------------------------------------------------


def _stream_url(base_url: str) -> str:
    """`http(s)://host[:port][/prefix]` -> `ws(s)://host[:port][/prefix]/v1/stream`."""
    parts = urlsplit(base_url.strip())
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    path = parts.path.rstrip("/") + "/v1/stream"
    return urlunsplit((schemes[parts.scheme], parts.netloc, path, "", ""))


def _decode(data: str | bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(data)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _parse(message: dict[str, Any]) -> StreamItem:
    kind = str(message.get("type"))
    account = message.get("account")
    order, fill, book = message.get("order"), message.get("fill"), message.get("book")
    if kind.startswith("order.") and isinstance(order, dict):
        return OrderEvent(kind, str(account), order, message)
    if kind.startswith("fill.") and isinstance(fill, dict):
        return FillEvent(kind, str(account), fill, message)
    if kind == "book" and isinstance(book, dict):
        return BookUpdate(str(book.get("instrument")), book, message)
    return StreamMessage(kind, message)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


def _describe(closed: ConnectionClosed) -> str:
    frame = closed.rcvd
    if frame is None:
        return "connection lost"
    return f"closed by the gateway ({frame.code}{' ' + frame.reason if frame.reason else ''})"


def _refusal(code: str, message: str) -> ApiError:
    status = error_class(code, 0).status_default or 400
    return ApiError.from_error(status, {"code": code, "message": message})


def _handshake_refusal(error: InvalidStatus) -> ApiError:
    """The gateway answered the handshake with an HTTP error (e.g. 401 unauthenticated)."""
    status = error.response.status_code
    body = _decode(error.response.body or b"")
    detail = body.get("error") if body is not None else None
    if isinstance(detail, dict):
        return ApiError.from_error(status, detail)
    return ApiError.from_error(status, {"code": f"http_{status}", "message": str(error)})


def _closed_refusal(closed: ConnectionClosed) -> IsthmusError:
    """Closed during the handshake: 1008 with an error code is a refusal, else a drop."""
    frame = closed.rcvd
    if frame is not None and frame.code == 1008 and frame.reason:
        return _refusal(frame.reason, f"the gateway refused the stream: {frame.reason}")
    return TransportError(f"the stream dropped while subscribing: {_describe(closed)}")


def _message_refusal(message: dict[str, Any]) -> ApiError:
    """`{"type": "error", "code": ...}` instead of a confirmed subscription."""
    code = str(message.get("code", "error"))
    return _refusal(code, str(message.get("message") or f"subscription refused: {code}"))


def _refused_for_good(error: ApiError) -> bool:
    """A refusal retrying cannot fix (credentials, permissions, a bad subscription)."""
    return 400 <= error.status < 500 and error.status not in (408, 425, 429)
