"""Order-book WebSocket streams for the simulators: Binance's diff-depth stream and Deribit's
`book.<instrument>.<interval>` subscription.

Every change of a book is published while the venue lock is still held (the venue calls
`publish()` from `on_book_change`), so update ids are gap-free per instrument and a REST
snapshot always falls on an update boundary: the conditions both exchanges document (and
ccxt.pro relies on) for keeping a local book in sync.

Binance (`BinanceDepthFeed`): requests `{"method": "SUBSCRIBE"|"UNSUBSCRIBE"|
"LIST_SUBSCRIPTIONS", "params": ["ethusdc@depth@100ms"], "id": n}`; updates
`{"e": "depthUpdate", "E": ms, "s": "ETHUSDC", "U": first, "u": last, "b": [["p", "q"]],
"a": [...]}` with quantity "0" for a removed level; `U`/`u` continue the REST depth's
`lastUpdateId`.

Deribit (`DeribitBookFeed`): JSON-RPC `public/subscribe` with `channels`; a `snapshot`
notification first, then `change` notifications with `[action, price, amount]` levels
(`new`, `change`, `delete`) and `change_id`/`prev_change_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.devnet.exchange_sim.common import SimVenueBase, fmt

Levels = dict[Decimal, Decimal]


@dataclass(eq=False)
class Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str]
    channels: dict[str, set[str]] = field(default_factory=dict)  # symbol -> channel names

    def send(self, message: str) -> None:
        """Queue a message; safe from any thread."""
        self.loop.call_soon_threadsafe(self.queue.put_nowait, message)


@dataclass(frozen=True, slots=True)
class BookState:
    bids: Levels
    asks: Levels
    version: int


class BookFeed:
    """Subscriber plumbing and change detection; subclasses speak one exchange's protocol."""

    def __init__(self, sim: SimVenueBase) -> None:
        self.sim = sim
        self._subscribers: set[Subscriber] = set()
        self._books = {symbol: self.state(symbol) for symbol in sim.exchange.markets}

    def state(self, symbol: str) -> BookState:
        bids, asks = self.sim.exchange.depth(symbol, 1_000_000)
        return BookState(dict(bids), dict(asks), self.sim.exchange.book_versions.get(symbol, 0))

    def publish(self) -> None:
        """Send what changed since the last call. Call with the venue lock held."""
        for symbol, before in list(self._books.items()):
            after = self.state(symbol)
            if after.version == before.version:
                continue
            self._books[symbol] = after
            for subscriber in list(self._subscribers):
                for channel in sorted(subscriber.channels.get(symbol, ())):
                    subscriber.send(self.update_message(symbol, channel, before, after))

    def update_message(self, symbol: str, channel: str, before: BookState, after: BookState) -> str:
        raise NotImplementedError

    def handle(self, subscriber: Subscriber, text: str) -> list[str]:
        """Messages answering one client message (called with the venue lock held)."""
        raise NotImplementedError

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        subscriber = Subscriber(asyncio.get_running_loop(), asyncio.Queue())
        with self.sim.lock:
            self._subscribers.add(subscriber)

        async def sender() -> None:
            while True:
                await websocket.send_text(await subscriber.queue.get())

        task = asyncio.create_task(sender())
        try:
            while True:
                text = await websocket.receive_text()
                with self.sim.lock:  # no update for a new channel can precede its reply
                    for message in self.handle(subscriber, text):
                        subscriber.queue.put_nowait(message)
        except WebSocketDisconnect:
            pass
        finally:
            with self.sim.lock:
                self._subscribers.discard(subscriber)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _changed(before: Levels, after: Levels) -> list[tuple[Decimal, Decimal | None, Decimal]]:
    """(price, quantity before or None, quantity after (0 when removed)) for changed levels."""
    result = []
    for price in sorted(set(before) | set(after)):
        old = before.get(price)
        new = after.get(price, Decimal(0))
        if old != new:
            result.append((price, old, new))
    return result


class BinanceDepthFeed(BookFeed):
    def update_message(self, symbol: str, channel: str, before: BookState, after: BookState) -> str:
        return json.dumps(
            {
                "e": "depthUpdate",
                "E": self.sim.now_ms(),
                "s": symbol,
                "U": before.version + 1,
                "u": after.version,
                "b": [[fmt(p), fmt(q)] for p, _, q in _changed(before.bids, after.bids)],
                "a": [[fmt(p), fmt(q)] for p, _, q in _changed(before.asks, after.asks)],
            }
        )

    def _stream_symbol(self, stream: str) -> str | None:
        name, _, rest = stream.partition("@")
        if rest not in ("depth", "depth@100ms", "depth@1000ms"):
            return None
        for symbol in self.sim.exchange.markets:
            if symbol.lower() == name:
                return symbol
        return None

    def handle(self, subscriber: Subscriber, text: str) -> list[str]:
        try:
            request = json.loads(text)
            method = request["method"]
            request_id = request.get("id")
        except (ValueError, KeyError, TypeError):
            return [json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})]
        params = request.get("params") or []
        if method == "LIST_SUBSCRIPTIONS":
            names = sorted(c for channels in subscriber.channels.values() for c in channels)
            return [json.dumps({"result": names, "id": request_id})]
        symbols = [(str(stream), self._stream_symbol(str(stream))) for stream in params]
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or any(s is None for _, s in symbols):
            error = {"code": 2, "msg": "Invalid request"}
            return [json.dumps({"error": error, "id": request_id})]
        for stream, symbol in symbols:
            assert symbol is not None
            if method == "SUBSCRIBE":
                subscriber.channels.setdefault(symbol, set()).add(stream)
            else:
                subscriber.channels.pop(symbol, None)
        return [json.dumps({"result": None, "id": request_id})]


class DeribitBookFeed(BookFeed):
    def __init__(self, sim: SimVenueBase, dumps: Callable[[Any], str]) -> None:
        super().__init__(sim)
        self._dumps = dumps  # JSON with exact Decimal numbers

    def _envelope(self, request_id: Any, result: Any) -> str:
        us = self.sim.now_ms() * 1000
        return self._dumps(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "result": result,
                "usIn": us,
                "usOut": us,
                "usDiff": 0,
                "testnet": True,
            }
        )

    def _notification(self, channel: str, data: dict[str, Any]) -> str:
        return self._dumps(
            {
                "jsonrpc": "2.0",
                "method": "subscription",
                "params": {"channel": channel, "data": data},
            }
        )

    def update_message(self, symbol: str, channel: str, before: BookState, after: BookState) -> str:
        def levels(old: Levels, new: Levels) -> list[list[Any]]:
            return [
                ["new" if was is None else ("delete" if now == 0 else "change"), price, now]
                for price, was, now in _changed(old, new)
            ]

        return self._notification(
            channel,
            {
                "type": "change",
                "timestamp": self.sim.now_ms(),
                "instrument_name": symbol,
                "change_id": after.version,
                "prev_change_id": before.version,
                "bids": levels(before.bids, after.bids),
                "asks": levels(before.asks, after.asks),
            },
        )

    def _snapshot(self, symbol: str, channel: str) -> str:
        state = self._books[symbol]
        return self._notification(
            channel,
            {
                "type": "snapshot",
                "timestamp": self.sim.now_ms(),
                "instrument_name": symbol,
                "change_id": state.version,
                "bids": [["new", p, q] for p, q in sorted(state.bids.items(), reverse=True)],
                "asks": [["new", p, q] for p, q in sorted(state.asks.items())],
            },
        )

    def _channel_symbol(self, channel: str) -> str | None:
        parts = channel.split(".")
        if len(parts) not in (3, 5) or parts[0] != "book" or parts[-1] not in ("100ms", "agg2"):
            return None
        return parts[1] if parts[1] in self.sim.exchange.markets else None

    def handle(self, subscriber: Subscriber, text: str) -> list[str]:
        try:
            request = json.loads(text)
            method = str(request["method"])
            request_id = request.get("id")
            params = request.get("params") or {}
        except (ValueError, KeyError, TypeError):
            error = {"code": -32700, "message": "Parse error"}
            return [self._dumps({"jsonrpc": "2.0", "error": error})]
        if method in ("public/test", "public/set_heartbeat", "public/disable_heartbeat"):
            return [self._envelope(request_id, "ok")]
        if method not in ("public/subscribe", "public/unsubscribe"):
            error = {"code": -32601, "message": "Method not found"}
            return [self._dumps({"jsonrpc": "2.0", "id": request_id, "error": error})]
        channels = [str(c) for c in params.get("channels", [])]
        accepted = [(c, s) for c in channels if (s := self._channel_symbol(c)) is not None]
        messages = [self._envelope(request_id, [c for c, _ in accepted])]
        for channel, symbol in accepted:
            if method == "public/subscribe":
                subscriber.channels.setdefault(symbol, set()).add(channel)
                messages.append(self._snapshot(symbol, channel))
            else:
                subscriber.channels.get(symbol, set()).discard(channel)
        return messages
