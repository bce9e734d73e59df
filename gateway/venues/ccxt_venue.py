"""A centralized exchange behind the `Venue` protocol, through an unmodified ccxt class.

`CcxtVenue` drives `ccxt.async_support.<exchange_id>` with the configured keys. The only
thing it changes on the ccxt object is where it connects: with `url_host` set, the scheme and
host of every URL in `exchange.urls['api']` are replaced and the paths kept (that is all the
simulated exchanges in `gateway.devnet.exchange_sim` need; leave it unset for the real
exchange). Everything ccxt returns is converted at this boundary: numbers with
`Decimal(str(x))` (ccxt hands out floats; no arithmetic is done on them), symbols and assets
through `symbol_map`/`asset_map`, ccxt exceptions into `VenueError` subclasses. The adapter
never parses exchange JSON: that is ccxt's job.

Prices are in the venue's price currency, which `load_instruments` reports as the
instrument's `quote`: for Deribit's inverse ETH options that is the settlement asset (ETH,
mapped to WETH), not USDC; converting a premium to USDC needs an index price and is left to
the caller.

`stream_order_books` follows the exchange's own depth stream through ccxt.pro's
`watch_order_book` when `websocket` is set (the Binance simulator serves Binance's diff-depth
stream); otherwise it polls `fetch_order_book` every `poll_interval` seconds and yields a book
when it differs from the last one seen (the Deribit simulator serves HTTP only).

`fetch_trades` is the exchange's public tape through ccxt's `fetch_trades` (Binance spot:
`GET /api/v3/aggTrades`; Deribit: `public/get_last_trades_by_instrument[_and_time]`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from gateway.domain.clock import Clock
from gateway.domain.instruments import (
    Asset,
    EuropeanOption,
    Instrument,
    InstrumentCatalogue,
    InstrumentKind,
    OptionRight,
    Perpetual,
    SpotPair,
    TradingRules,
)
from gateway.domain.market import (
    Balance,
    BookLevel,
    FeeSchedule,
    OrderBook,
    PublicTrade,
    VenueKind,
    VenueOrder,
    VenueOrderRequest,
    VenueOrderStatus,
    VenuePosition,
)
from gateway.domain.orders import OrderType, Side, TimeInForce
from gateway.venues.protocol import (
    VenueError,
    VenueInsufficientFunds,
    VenueOrderNotFound,
    VenueRejected,
    VenueUnavailable,
)

T = TypeVar("T")
BPS = Decimal(10_000)
DEFAULT_ASSET_DECIMALS = 18

_STATUS = {
    "open": VenueOrderStatus.OPEN,
    "closed": VenueOrderStatus.CLOSED,
    "canceled": VenueOrderStatus.CANCELED,
    "cancelled": VenueOrderStatus.CANCELED,
    "expired": VenueOrderStatus.EXPIRED,
    "rejected": VenueOrderStatus.REJECTED,
}
_TIME_IN_FORCE = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}
MAX_TRADES_PAGE = 1000  # the most trades Binance and Deribit return per request


@dataclass(frozen=True)
class CcxtVenueSettings:
    """How to reach one exchange through ccxt, and how its names map to ours.

    `symbol_map`: our symbol -> ccxt unified symbol (`WETH/USDC` -> `ETH/USDC`).
    `asset_map`: venue asset code (as ccxt names it) -> our asset symbol (`ETH` -> `WETH`);
    codes not listed keep their name. `fees`: per our symbol; instruments not listed use
    `default_fees`, else the maker/taker rates ccxt reports for the market.
    `options` are merged into the ccxt exchange's `options`.
    """

    name: str
    exchange_id: str
    symbol_map: Mapping[str, str]
    api_key: str | None = None
    secret: str | None = None
    url_host: str | None = None
    asset_map: Mapping[str, str] = field(default_factory=dict)
    fees: Mapping[str, FeeSchedule] = field(default_factory=dict)
    default_fees: FeeSchedule | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    enable_rate_limit: bool = True
    timeout_ms: int = 10_000
    poll_interval: float = 1.0
    websocket: bool = False  # stream books with ccxt.pro `watch_order_book` instead of polling


def to_decimal(value: Any) -> Decimal | None:
    """ccxt number (float, int or numeric string) -> exact Decimal of its text; None stays."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _required_decimal(value: Any, what: str, venue: str) -> Decimal:
    result = to_decimal(value)
    if result is None:
        raise VenueError(f"{venue} returned no {what}", venue=venue)
    return result


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def rewrite_host(url: str, host: str) -> str:
    """Replace scheme and host of `url` by `host` (e.g. `http://127.0.0.1:8101`), keep path.

    WebSocket URLs keep a WebSocket scheme (`http` -> `ws`, `https` -> `wss`)."""
    parts = urlsplit(url)
    target = host.rstrip("/")
    if parts.scheme in ("ws", "wss"):
        target = "ws" + target[len("http") :] if target.startswith("http") else target
    rewritten = target + parts.path
    if parts.query:
        rewritten += "?" + parts.query
    return rewritten


def _rewrite_all(urls: dict[str, Any], host: str) -> None:
    """Rewrite every URL in a (nested) ccxt `urls['api']` dictionary in place."""
    for key, value in list(urls.items()):
        if isinstance(value, str) and "://" in value:
            urls[key] = rewrite_host(value, host)
        elif isinstance(value, dict):
            _rewrite_all(value, host)


def _ccxt_assets(ccxt_symbol: str) -> tuple[str, str]:
    """Base and quote codes of a ccxt unified symbol (`ETH/USD:ETH-270326-3000-C`)."""
    base, _, rest = ccxt_symbol.partition("/")
    quote = rest.split(":", 1)[0]
    return base, quote


def infer_asset_map(
    symbol_map: Mapping[str, str], catalogue: InstrumentCatalogue | None
) -> dict[str, str]:
    """Venue asset code -> our asset symbol, from pairs of symbols naming the same thing."""
    result: dict[str, str] = {}
    for ours, theirs in symbol_map.items():
        their_base, their_quote = _ccxt_assets(theirs)
        if catalogue is not None and ours in catalogue:
            instrument = catalogue.get(ours)
            result.setdefault(their_base, instrument.base.symbol)
            if instrument.kind is InstrumentKind.SPOT:
                result.setdefault(their_quote, instrument.quote.symbol)
        elif "/" in ours:
            our_base, our_quote = _ccxt_assets(ours)
            result.setdefault(their_base, our_base)
            result.setdefault(their_quote, our_quote)
    return {code: symbol for code, symbol in result.items() if code != symbol}


def map_ccxt_error(error: Exception, venue: str) -> VenueError:
    """A ccxt exception as the matching `VenueError` (most specific class first)."""
    message = f"{venue}: {error}"
    if isinstance(error, ccxt.OrderNotFound):
        return VenueOrderNotFound(message, venue=venue)
    if isinstance(error, ccxt.InsufficientFunds):
        return VenueInsufficientFunds(message, venue=venue)
    if isinstance(error, ccxt.AuthenticationError | ccxt.InvalidNonce):
        return VenueError(message, venue=venue, code="venue_authentication")
    if isinstance(error, ccxt.NetworkError):  # DDoSProtection, RateLimitExceeded, timeouts...
        return VenueUnavailable(message, venue=venue)
    if isinstance(
        error, ccxt.InvalidOrder | ccxt.BadRequest | ccxt.OperationRejected | ccxt.NotSupported
    ):
        return VenueRejected(message, venue=venue)
    return VenueError(message, venue=venue)


QUIET_BOOK_EVERY = 1.0  # seconds between yields of an unchanged polled book


class CcxtVenue:
    """A CEX through ccxt. Create and use it inside one running event loop; `close()` it."""

    def __init__(
        self,
        config: CcxtVenueSettings,
        *,
        catalogue: InstrumentCatalogue | None = None,
        clock: Clock | None = None,
        exchange: Any = None,
    ) -> None:
        self.config = config
        self._catalogue = catalogue
        self._clock = clock
        self._to_ccxt = dict(config.symbol_map)
        self._from_ccxt = {v: k for k, v in config.symbol_map.items()}
        self._fees: dict[str, FeeSchedule] = dict(config.fees)
        self.exchange: Any = exchange if exchange is not None else self._make_exchange(config)
        # replicas: raises unless this process still holds the roles; checked right before
        # each request that changes something on the exchange leaves, after ccxt's own rate
        # limiting and signing, so a holder paused past its lease sends nothing on waking up
        self.before_write: Callable[[], None] | None = None
        self._guard_writes()

    def _guard_writes(self) -> None:
        send = self.exchange.fetch

        async def fetch(
            url: str, method: str = "GET", headers: Any = None, body: Any = None
        ) -> Any:
            if self.before_write is not None and method.upper() != "GET":
                self.before_write()
            return await send(url, method, headers, body)

        self.exchange.fetch = fetch

    @classmethod
    def from_config(
        cls,
        entry: Any,
        *,
        catalogue: InstrumentCatalogue,
        clock: Clock | None = None,
        api_key: str | None = None,
        secret: str | None = None,
    ) -> CcxtVenue:
        """Build from a `[[venues]] kind = "ccxt"` entry (`gateway.venues.config`).

        Asset codes are inferred from the symbol map and the catalogue (`ETH/USDC` for our
        `WETH/USDC` maps `ETH` to `WETH`). `maker_bps`/`taker_bps` apply to every instrument
        when either is non-zero; otherwise the rates ccxt reports for each market are used.
        """
        symbols: dict[str, str] = dict(entry.symbols)
        maker = Decimal(entry.maker_bps)
        taker = Decimal(entry.taker_bps)
        settings = CcxtVenueSettings(
            name=entry.name,
            exchange_id=entry.exchange,
            symbol_map=symbols,
            api_key=api_key,
            secret=secret,
            url_host=entry.url_host,
            asset_map=infer_asset_map(symbols, catalogue),
            default_fees=FeeSchedule(maker, taker) if (maker or taker) else None,
            options=dict(entry.options),
            poll_interval=float(entry.poll_interval),
            websocket=bool(getattr(entry, "websocket", False)),
            timeout_ms=int(getattr(entry, "timeout_ms", 10_000)),
        )
        return cls(settings, catalogue=catalogue, clock=clock)

    def _now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime.now(tz=UTC)

    @staticmethod
    def _make_exchange(config: CcxtVenueSettings) -> Any:
        module = ccxt_pro if config.websocket else ccxt_async
        exchange_class = getattr(module, config.exchange_id)
        settings: dict[str, Any] = {
            "enableRateLimit": config.enable_rate_limit,
            "timeout": config.timeout_ms,
        }
        if config.api_key is not None:
            settings["apiKey"] = config.api_key
        if config.secret is not None:
            settings["secret"] = config.secret
        exchange = exchange_class(settings)
        options = dict(config.options)
        if config.exchange_id == "binance":
            options.setdefault("fetchMarkets", {"types": ["spot"], "loadAllOptions": False})
        exchange.options = exchange.deep_extend(exchange.options, options)
        if config.url_host is not None:
            _rewrite_all(exchange.urls["api"], config.url_host)
        return exchange

    # --- protocol: identity -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def kind(self) -> VenueKind:
        return VenueKind.CEX

    # --- helpers ------------------------------------------------------------------------------

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except ccxt.BaseError as error:
            raise map_ccxt_error(error, self.name) from error

    def _ccxt_symbol(self, instrument: str) -> str:
        try:
            return self._to_ccxt[instrument]
        except KeyError:
            raise VenueRejected(
                f"{self.name} does not trade {instrument}",
                venue=self.name,
                code="unknown_instrument",
            ) from None

    def _our_symbol(self, ccxt_symbol: str) -> str | None:
        return self._from_ccxt.get(ccxt_symbol)

    def _asset_symbol(self, code: str) -> str:
        return self.config.asset_map.get(code, code)

    def _asset(self, code: str) -> Asset:
        symbol = self._asset_symbol(code)
        if self._catalogue is not None:
            for instrument in self._catalogue:
                for asset in (instrument.base, instrument.quote):
                    if asset.symbol == symbol:
                        return asset
        return Asset(symbol, DEFAULT_ASSET_DECIMALS)

    async def _markets(self) -> dict[str, Any]:
        markets: dict[str, Any] = await self._call(self.exchange.load_markets())
        return markets

    # --- protocol: market data ----------------------------------------------------------------

    async def load_instruments(self) -> list[Instrument]:
        markets = await self._markets()
        instruments: list[Instrument] = []
        for ours, theirs in self._to_ccxt.items():
            market = markets.get(theirs)
            if market is None:
                continue
            instruments.append(self._instrument(ours, market))
            if ours not in self._fees:
                self._fees[ours] = self._market_fees(market)
        return instruments

    def _market_fees(self, market: Mapping[str, Any]) -> FeeSchedule:
        if self.config.default_fees is not None:
            return self.config.default_fees
        maker = to_decimal(market.get("maker")) or Decimal(0)
        taker = to_decimal(market.get("taker")) or Decimal(0)
        return FeeSchedule(maker_bps=maker * BPS, taker_bps=taker * BPS)

    def _instrument(self, symbol: str, market: Mapping[str, Any]) -> Instrument:
        precision = market.get("precision") or {}
        limits = (market.get("limits") or {}).get("amount") or {}
        tick = _required_decimal(precision.get("price"), "price precision", self.name)
        lot = _required_decimal(precision.get("amount"), "amount precision", self.name)
        minimum = to_decimal(limits.get("min")) or lot
        rules = TradingRules(tick_size=tick, lot_size=lot, min_quantity=minimum)
        base = self._asset(str(market["base"]))
        if market.get("inverse"):
            price_code = str(market.get("settle") or market["base"])  # inverse: priced in settle
        else:
            price_code = str(market["quote"])
        quote = self._asset(price_code)
        if market.get("option"):
            strike = _required_decimal(market.get("strike"), "strike", self.name)
            expiry = _timestamp(market.get("expiry"))
            if expiry is None:
                raise VenueError(f"{self.name} option {symbol} has no expiry", venue=self.name)
            right = OptionRight.CALL if market.get("optionType") == "call" else OptionRight.PUT
            return EuropeanOption(
                symbol,
                InstrumentKind.OPTION,
                base,
                quote,
                rules,
                strike=strike,
                expires_at=expiry,
                right=right,
            )
        if market.get("swap"):
            return Perpetual(symbol, InstrumentKind.PERPETUAL, base, quote, rules)
        return SpotPair(symbol, InstrumentKind.SPOT, base, quote, rules)

    async def fetch_order_book(self, instrument: str, depth: int = 20) -> OrderBook:
        theirs = self._ccxt_symbol(instrument)
        book = await self._call(self.exchange.fetch_order_book(theirs, depth))
        return self._order_book(instrument, book)

    def _order_book(self, instrument: str, book: Mapping[str, Any]) -> OrderBook:
        def levels(raw: Sequence[Sequence[Any]], descending: bool) -> tuple[BookLevel, ...]:
            parsed = [
                BookLevel(
                    _required_decimal(entry[0], "price", self.name),
                    _required_decimal(entry[1], "amount", self.name),
                )
                for entry in raw
            ]
            parsed.sort(key=lambda level: level.price, reverse=descending)
            return tuple(parsed)

        nonce = book.get("nonce")
        return OrderBook(
            venue=self.name,
            instrument=instrument,
            bids=levels(book.get("bids") or [], descending=True),
            asks=levels(book.get("asks") or [], descending=False),
            timestamp=_timestamp(book.get("timestamp")) or self._now(),
            sequence=int(nonce) if nonce is not None else None,
        )

    async def stream_order_books(self, instruments: Sequence[str]) -> AsyncIterator[OrderBook]:
        """With `websocket`, every update ccxt.pro's `watch_order_book` applies (the
        exchange's own depth stream, kept in sync by ccxt); otherwise poll every
        `poll_interval` seconds and yield each book whose levels changed."""
        if self.config.websocket:
            async for book in self._watch_order_books(instruments):
                yield book
            return
        last: dict[str, tuple[tuple[BookLevel, ...], tuple[BookLevel, ...]]] = {}
        shown: dict[str, float] = {}
        while True:
            for instrument in instruments:
                book = await self.fetch_order_book(instrument)
                key = (book.bids, book.asks)
                now = time.monotonic()
                # an unchanged book is yielded again now and then: a quiet exchange that
                # answers is live, not silent
                if (
                    last.get(instrument) != key
                    or now - shown.get(instrument, 0.0) >= QUIET_BOOK_EVERY
                ):
                    last[instrument] = key
                    shown[instrument] = now
                    yield book
            await asyncio.sleep(self.config.poll_interval)

    async def _watch_order_books(self, instruments: Sequence[str]) -> AsyncIterator[OrderBook]:
        """ccxt.pro resolves a watch with the first book that changed; the others it updated
        meanwhile sit in its `orderbooks` cache, so after each watch every cached book that
        differs from what was last yielded is yielded too (the watched one first)."""
        theirs = [self._ccxt_symbol(instrument) for instrument in instruments]
        last: dict[str, tuple[tuple[BookLevel, ...], tuple[BookLevel, ...]]] = {}
        while True:
            if len(theirs) == 1:
                first = await self._call(self.exchange.watch_order_book(theirs[0]))
            else:
                first = await self._call(self.exchange.watch_order_book_for_symbols(theirs))
            first_symbol = str(first["symbol"])
            cached = self.exchange.orderbooks
            ordered = [first_symbol, *(s for s in theirs if s != first_symbol)]
            for symbol in ordered:
                raw = first if symbol == first_symbol else cached.get(symbol)
                ours = self._our_symbol(symbol)
                if raw is None or ours is None:
                    continue
                book = self._order_book(ours, raw)
                if last.get(ours) != (book.bids, book.asks):
                    last[ours] = (book.bids, book.asks)
                    yield book

    # --- protocol: public trades --------------------------------------------------------------

    async def fetch_trades(
        self, instrument: str, since: datetime | None = None, limit: int = 1000
    ) -> list[PublicTrade]:
        """The exchange's public trades through ccxt's `fetch_trades`, oldest first.

        Binance (`GET /api/v3/aggTrades`): ccxt turns `since` into a one-hour window; when
        that is empty the first trade after it is found by binary search over aggregate ids,
        and a page is continued by id (`fromId`) until `limit` trades or the end of the tape.
        Deribit (`public/get_last_trades_by_instrument_and_time`) is asked for `sorting=asc`,
        so a page starts at `since` whatever the exchange's default order."""
        theirs = self._ccxt_symbol(instrument)
        if limit <= 0:
            return []
        since_ms = int(since.timestamp() * 1000) if since is not None else None
        if self.config.exchange_id == "binance" and since_ms is not None:
            raw = await self._binance_trades_since(theirs, since_ms, limit)
        else:
            params: dict[str, Any] = {}
            if self.config.exchange_id == "deribit" and since_ms is not None:
                params["sorting"] = "asc"
            page_limit = min(limit, MAX_TRADES_PAGE)
            raw = await self._call(self.exchange.fetch_trades(theirs, since_ms, page_limit, params))
        trades = [self._public_trade(instrument, entry) for entry in raw]
        if since is not None:
            trades = [t for t in trades if t.timestamp >= since]
        trades.sort(key=lambda t: t.timestamp)
        return trades[:limit] if since is not None else trades[-limit:]

    async def _binance_trades_since(
        self, theirs: str, since_ms: int, limit: int
    ) -> list[dict[str, Any]]:
        page: list[dict[str, Any]] = await self._call(
            self.exchange.fetch_trades(theirs, since_ms, min(limit, MAX_TRADES_PAGE))
        )
        if not page:  # nothing in the first hour: find the first trade after it by id
            first_id = await self._binance_first_id_at(theirs, since_ms)
            if first_id is None:
                return []
            page = await self._call(
                self.exchange.fetch_trades(
                    theirs, None, min(limit, MAX_TRADES_PAGE), {"fromId": first_id}
                )
            )
        trades = list(page)
        while page and len(trades) < limit:
            wanted = min(limit - len(trades), MAX_TRADES_PAGE)
            next_id = int(page[-1]["id"]) + 1
            page = await self._call(
                self.exchange.fetch_trades(theirs, None, wanted, {"fromId": next_id})
            )
            trades.extend(page)
            if len(page) < wanted:  # the end of the tape
                break
        return trades

    async def _binance_first_id_at(self, theirs: str, since_ms: int) -> int | None:
        """An id from which (`fromId`) the trades start at or after `since_ms`, by binary
        search over aggregate ids, one trade per request: ids grow with time. None if no
        trade is that late."""
        latest = await self._call(self.exchange.fetch_trades(theirs, None, 1))
        if not latest or int(latest[-1]["timestamp"]) < since_ms:
            return None
        low, high = 0, int(latest[-1]["id"])
        while low < high:
            middle = (low + high) // 2
            probe = await self._call(
                self.exchange.fetch_trades(theirs, None, 1, {"fromId": middle})
            )
            if not probe:
                return high
            if int(probe[0]["timestamp"]) >= since_ms:
                high = middle  # the first trade from `middle` on is late enough
            else:
                low = int(probe[0]["id"]) + 1
        return high

    def _public_trade(self, instrument: str, trade: Mapping[str, Any]) -> PublicTrade:
        timestamp = _timestamp(trade.get("timestamp"))
        if timestamp is None or trade.get("id") is None:
            raise VenueError(f"{self.name} returned a trade without id or time", venue=self.name)
        side_text = trade.get("side")
        return PublicTrade(
            venue=self.name,
            instrument=instrument,
            trade_id=str(trade["id"]),
            price=_required_decimal(trade.get("price"), "trade price", self.name),
            quantity=_required_decimal(trade.get("amount"), "trade amount", self.name),
            side=Side(side_text) if side_text in ("buy", "sell") else None,
            timestamp=timestamp,
        )

    # --- protocol: orders ---------------------------------------------------------------------

    async def place_order(self, request: VenueOrderRequest) -> VenueOrder:
        theirs = self._ccxt_symbol(request.instrument)
        params: dict[str, Any] = {}
        price: str | None = None
        if request.order_type is OrderType.LIMIT:
            if request.price is None:
                raise VenueRejected("a limit order needs a price", venue=self.name)
            price = str(request.price)
            if request.time_in_force not in _TIME_IN_FORCE:
                raise VenueRejected(
                    f"{self.name} does not support {request.time_in_force.value}", venue=self.name
                )
            if request.post_only:
                params["postOnly"] = True
            else:
                params["timeInForce"] = _TIME_IN_FORCE[request.time_in_force]
        elif request.order_type is OrderType.MARKET:
            if request.post_only:
                raise VenueRejected("a market order cannot be post-only", venue=self.name)
        else:
            raise VenueRejected(
                f"{self.name} adapter places only limit and market orders", venue=self.name
            )
        if request.client_order_id is not None:
            # ccxt's deribit passes unknown params through; Deribit's own field is `label`
            key = "label" if self.config.exchange_id == "deribit" else "clientOrderId"
            params[key] = request.client_order_id
        order = await self._call(
            self.exchange.create_order(
                theirs,
                request.order_type.value,
                request.side.value,
                str(request.quantity),
                price,
                params,
            )
        )
        return await self._venue_order(order, request.instrument, request)

    async def cancel_order(self, venue_order_id: str, instrument: str) -> VenueOrder:
        theirs = self._ccxt_symbol(instrument)
        order = await self._call(self.exchange.cancel_order(venue_order_id, theirs))
        if order.get("status") is None or order.get("amount") is None:
            order = await self._call(self.exchange.fetch_order(venue_order_id, theirs))
        return await self._venue_order(order, instrument)

    async def fetch_order(self, venue_order_id: str, instrument: str) -> VenueOrder:
        theirs = self._ccxt_symbol(instrument)
        order = await self._call(self.exchange.fetch_order(venue_order_id, theirs))
        return await self._venue_order(order, instrument)

    async def find_order(self, client_order_id: str, instrument: str) -> VenueOrder | None:
        theirs = self._ccxt_symbol(instrument)
        if self.exchange.id == "binance":  # GET /api/v3/order?origClientOrderId=
            try:
                order = await self._call(
                    self.exchange.fetch_order("", theirs, {"clientOrderId": client_order_id})
                )
            except VenueOrderNotFound:
                return None
            return await self._venue_order(order, instrument)
        # Elsewhere: the open orders, then the closed ones, matched on the client order id.
        # A venue that cannot list closed orders cannot prove the order never reached it.
        for method, capability in (
            ("fetch_open_orders", "fetchOpenOrders"),
            ("fetch_closed_orders", "fetchClosedOrders"),
        ):
            if not self.exchange.has.get(capability):
                raise VenueUnavailable(
                    f"{self.name} cannot list orders to find {client_order_id}", venue=self.name
                )
            orders = await self._call(getattr(self.exchange, method)(theirs))
            for order in orders:
                if order.get("clientOrderId") == client_order_id:
                    return await self._venue_order(order, instrument)
        return None

    async def _venue_order(
        self,
        order: Mapping[str, Any],
        instrument: str,
        request: VenueOrderRequest | None = None,
    ) -> VenueOrder:
        venue_order_id = str(order["id"])
        filled = to_decimal(order.get("filled")) or Decimal(0)
        fee, fee_asset = self._fee_of(order)
        if fee is None and filled > 0:
            fee, fee_asset = await self._fee_from_trades(venue_order_id, instrument)
        quantity = to_decimal(order.get("amount"))
        if quantity is None:
            if request is None:
                raise VenueError(f"{self.name} returned no order amount", venue=self.name)
            quantity = request.quantity
        status_text = str(order.get("status") or "")
        if status_text not in _STATUS:
            raise VenueError(f"{self.name} returned order status {status_text!r}", venue=self.name)
        order_type = OrderType.MARKET if order.get("type") == "market" else OrderType.LIMIT
        side = Side(str(order.get("side") or (request.side.value if request else "")))
        average = self._average(order, instrument, filled)
        return VenueOrder(
            venue=self.name,
            venue_order_id=venue_order_id,
            instrument=instrument,
            side=side,
            order_type=order_type,
            quantity=quantity,
            price=to_decimal(order.get("price")) if order_type is OrderType.LIMIT else None,
            status=_STATUS[status_text],
            filled=filled,
            average_price=average,
            fee=fee or Decimal(0),
            fee_asset=fee_asset,
            client_order_id=order.get("clientOrderId")
            or (request.client_order_id if request else None),
            timestamp=_timestamp(order.get("timestamp")),
        )

    def _average(
        self, order: Mapping[str, Any], instrument: str, filled: Decimal
    ) -> Decimal | None:
        """Average fill price. For spot, ccxt derives it as a float division of the
        exchange's cumulative quote amount; recompute it exactly from that amount instead.
        For contracts ccxt's `cost` is not price times amount, and exchanges such as
        Deribit send the average itself, so ccxt's value is used as is."""
        if filled == 0:
            return None
        market = (self.exchange.markets or {}).get(self._to_ccxt.get(instrument, ""))
        cost = to_decimal(order.get("cost"))
        if market is not None and market.get("spot") and cost is not None and cost > 0:
            return cost / filled
        return to_decimal(order.get("average"))

    def _fee_of(self, order: Mapping[str, Any]) -> tuple[Decimal | None, str | None]:
        fees = [f for f in (order.get("fees") or []) if f and f.get("cost") is not None]
        if not fees and order.get("fee") and order["fee"].get("cost") is not None:
            fees = [order["fee"]]
        if not fees:
            return None, None
        currencies = {f.get("currency") for f in fees}
        if len(currencies) > 1:
            raise VenueError(
                f"{self.name} charged fees in several assets {sorted(map(str, currencies))}",
                venue=self.name,
            )
        total = sum((_required_decimal(f["cost"], "fee", self.name) for f in fees), Decimal(0))
        currency = currencies.pop()
        return total, self._asset_symbol(str(currency)) if currency else None

    async def _fee_from_trades(
        self, venue_order_id: str, instrument: str
    ) -> tuple[Decimal | None, str | None]:
        if not self.exchange.has.get("fetchOrderTrades"):
            return None, None
        trades = await self._call(
            self.exchange.fetch_order_trades(venue_order_id, self._ccxt_symbol(instrument))
        )
        fees = [t["fee"] for t in trades if t.get("fee") and t["fee"].get("cost") is not None]
        if not fees:
            return None, None
        return self._fee_of({"fees": fees})

    # --- protocol: account --------------------------------------------------------------------

    async def fetch_balances(self) -> dict[str, Balance]:
        raw = await self._call(self.exchange.fetch_balance())
        free: Mapping[str, Any] = raw.get("free") or {}
        used: Mapping[str, Any] = raw.get("used") or {}
        balances: dict[str, Balance] = {}
        for code in sorted(set(free) | set(used)):
            asset = self._asset_symbol(code)
            balances[asset] = Balance(
                asset=asset,
                free=to_decimal(free.get(code)) or Decimal(0),
                locked=to_decimal(used.get(code)) or Decimal(0),
            )
        return balances

    async def fetch_positions(self) -> list[VenuePosition]:
        markets = await self._markets()
        contracts = [s for s in self._to_ccxt.values() if (markets.get(s) or {}).get("contract")]
        if not contracts or not self.exchange.has.get("fetchPositions"):
            return []
        raw = await self._call(self.exchange.fetch_positions())
        positions: list[VenuePosition] = []
        for entry in raw:
            ours = self._our_symbol(str(entry.get("symbol")))
            size = to_decimal(entry.get("contracts"))
            if ours is None or size is None or size == 0:
                continue
            sign = Decimal(-1) if entry.get("side") == "short" else Decimal(1)
            extra = {
                key: str(to_decimal(entry.get(key)))
                for key in ("markPrice", "unrealizedPnl", "realizedPnl", "initialMargin")
                if entry.get(key) is not None
            }
            positions.append(
                VenuePosition(
                    venue=self.name,
                    instrument=ours,
                    quantity=abs(size) * sign,
                    average_price=to_decimal(entry.get("entryPrice")),
                    extra=extra,
                )
            )
        return positions

    def fees(self, instrument: str) -> FeeSchedule:
        schedule = self._fees.get(instrument)
        if schedule is not None:
            return schedule
        if instrument in self._to_ccxt:
            markets = self.exchange.markets or {}
            market = markets.get(self._to_ccxt[instrument])
            if market is not None:
                return self._market_fees(market)
            if self.config.default_fees is not None:
                return self.config.default_fees
        raise VenueRejected(
            f"no fee schedule for {instrument} on {self.name} (load instruments first)",
            venue=self.name,
            code="unknown_instrument",
        )

    async def close(self) -> None:
        await self.exchange.close()
