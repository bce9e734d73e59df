"""Binance SPOT REST, simulated: the wire format ccxt's `binance` class speaks, on loopback.

Endpoints (paths as on api.binance.com): `/api/v3/ping`, `time`, `exchangeInfo`, `depth`,
`ticker/bookTicker`, `ticker/24hr`, the public trade tape `aggTrades` (what ccxt's
`fetch_trades` calls for spot by default) and `trades` (its `fetchTradesMethod:
publicGetTrades`), signed `account`, `order` (POST/GET/DELETE), `openOrders`,
`myTrades`, the diff-depth WebSocket stream at `/ws` (see `depth_feed`), and the signed
`/sapi/v1/margin/allPairs`, `/sapi/v1/margin/isolated/allPairs` and
`/sapi/v1/capital/config/getall` that ccxt calls from `load_markets` when it has keys.

Signed requests are checked as Binance does: `X-MBX-APIKEY` header, HMAC-SHA256 hex of the
total params (query string then body, without `signature`) keyed by the secret, and
`timestamp` within `recvWindow` (default 5000 ms, at most 60000) of server time and at most
1000 ms ahead of it. Errors are Binance's `{"code": ..., "msg": ...}` with Binance's HTTP
statuses. Request weight is limited per API key (per client address for public calls) in
one-minute windows; over the limit the answer is HTTP 429 with code -1003.

The public tape starts with a seeded synthetic history (`history`); aggregate trades group
the consecutive fills of one taker order at one price, as Binance does.

Fault injection for tests: `lose_next_order_answer()` lets the next new order execute, then
cuts the exchange off (`Partition`): that order's answer and every later request wait until
the test restores it, as across a network partition that began right after the exchange
executed the order.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from gateway.devnet.exchange_sim.common import (
    ApiCredential,
    SimVenueBase,
    WeightLimiter,
    fmt,
    parse_decimal_param,
)
from gateway.devnet.exchange_sim.depth_feed import BinanceDepthFeed
from gateway.devnet.exchange_sim.history import HistoryConfig, seed_history
from gateway.devnet.exchange_sim.market_maker import MarketMaker, QuoteRule, RandomWalk
from gateway.devnet.exchange_sim.matching import (
    MarketKind,
    MarketSpec,
    SimError,
    SimErrorKind,
    SimOrder,
    SimOrderStatus,
    SimOrderType,
    SimSide,
    SimTimeInForce,
    SimTrade,
)

DEVNET_API_KEY = "isthmus-devnet-binance-key"
DEVNET_SECRET = "isthmus-devnet-binance-secret"
DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60_000
MAX_TRADES_LIMIT = 1000
AGG_TRADES_MAX_WINDOW_MS = 3_600_000  # startTime..endTime may span at most one hour

SPOT_SYMBOL = "ETHUSDC"
SPOT_MARKET = MarketSpec(
    symbol=SPOT_SYMBOL,
    kind=MarketKind.SPOT,
    base="ETH",
    quote="USDC",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.0001"),
    min_quantity=Decimal("0.0001"),
    min_notional=Decimal("5"),
    maker_bps=Decimal("8"),
    taker_bps=Decimal("10"),
)


class BinanceApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


_STATUS = {
    SimOrderStatus.NEW: "NEW",
    SimOrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    SimOrderStatus.FILLED: "FILLED",
    SimOrderStatus.CANCELED: "CANCELED",
    SimOrderStatus.EXPIRED: "EXPIRED",
}

_ERRORS: dict[SimErrorKind, tuple[int, int]] = {
    SimErrorKind.INSUFFICIENT_FUNDS: (400, -2010),
    SimErrorKind.POST_ONLY_WOULD_TAKE: (400, -2010),
    SimErrorKind.PRICE_FILTER: (400, -1013),
    SimErrorKind.LOT_SIZE: (400, -1013),
    SimErrorKind.MIN_NOTIONAL: (400, -1013),
    SimErrorKind.UNKNOWN_SYMBOL: (400, -1121),
    SimErrorKind.BAD_REQUEST: (400, -1102),
}


def _mandatory(name: str) -> BinanceApiError:
    return BinanceApiError(
        400,
        -1102,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


def _strip_signature(raw: str) -> tuple[str, str | None]:
    parts = raw.split("&") if raw else []
    signature = None
    kept = []
    for part in parts:
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


@dataclass(slots=True)
class AggTrade:
    """Consecutive fills of one taker order at one price (Binance's aggregate trade)."""

    agg_id: int
    first_id: int
    last_id: int
    price: Decimal
    quantity: Decimal
    timestamp_ms: int
    buyer_is_maker: bool
    taker_order_id: int


Handler = Callable[[Request, dict[str, str], ApiCredential | None], Awaitable[Any]]

# what a request held by a partition is answered once it is restored without its answer
_UNAVAILABLE = {"code": -1001, "msg": "Internal error; unable to process your request."}


class Partition:
    """The exchange cut off right after it executed one new order (`BinanceSim.
    lose_next_order_answer`). Until `restore()`, that order's answer and every request that
    arrives are held (no byte is sent: the client sees a timeout, or nothing at all if it dies
    meanwhile). `executed` is set, and `client_order_id` known, once the order has executed.

    `restore()` ends it: the held order's answer is dropped (HTTP 503) unless
    `deliver_answer`, when it arrives late as it was; the other held requests are then served
    as if they had just arrived."""

    def __init__(self) -> None:
        self.executed = threading.Event()
        self.client_order_id: str | None = None
        self.deliver_answer = False
        self._restored = threading.Event()
        self._guard = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def cut(self) -> bool:
        return self.executed.is_set() and not self._restored.is_set()

    @property
    def held(self) -> int:
        """How many requests (the order's answer included) wait for the restore now."""
        with self._guard:
            return len(self._waiters)

    async def wait_restored(self) -> None:
        event = asyncio.Event()
        with self._guard:
            if self._restored.is_set():
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        await event.wait()

    def restore(self, *, deliver_answer: bool = False) -> None:
        with self._guard:
            self.deliver_answer = deliver_answer
            self._restored.set()
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)


class BinanceSim(SimVenueBase):
    """One simulated Binance spot exchange. `app` is the ASGI application."""

    def __init__(
        self,
        *,
        seed: int = 1,
        start_mid: Decimal = Decimal("3000.00"),
        weight_limit: int = 6000,
        clock_ms: Callable[[], int] | None = None,
        devnet_account: bool = True,
        history: HistoryConfig | None = None,
        levels: int = 10,
        level_size: Decimal = Decimal("0.5"),
    ) -> None:
        """`history`: the synthetic tape seeded at startup (default: the past 2 days);
        `levels` and `level_size`: the market maker's quotes on each side (one tenth of a
        dollar apart, from half a tenth around the mid)."""
        super().__init__(clock_ms)
        self.limiter = WeightLimiter(weight_limit)
        self._agg_trades: dict[str, tuple[list[AggTrade], int]] = {}
        self.exchange.add_market(SPOT_MARKET)
        walk = RandomWalk(seed, start_mid, SPOT_MARKET.tick_size, max_ticks_per_step=50)
        self.market_maker = MarketMaker(
            self.exchange,
            walk,
            [
                QuoteRule(
                    SPOT_SYMBOL,
                    fair_price=lambda mid: mid,
                    half_spread_ticks=5,
                    level_gap_ticks=10,
                    level_size=level_size,
                    levels=levels,
                )
            ],
        )
        self.market_maker.fund({"ETH": Decimal(1_000_000), "USDC": Decimal(10_000_000_000)})
        self.market_maker.refresh()
        self.history = history if history is not None else HistoryConfig()
        self.history_until_ms = self.now_ms()  # the synthetic tape ends here
        seed_history(
            self.exchange,
            SPOT_SYMBOL,
            seed=seed,
            reference_price=start_mid,
            min_quantity=Decimal("0.01"),
            max_quantity=Decimal("2"),
            now_ms=self.history_until_ms,
            config=self.history,
        )
        if devnet_account:
            self.add_account(
                DEVNET_API_KEY,
                DEVNET_SECRET,
                {"ETH": Decimal(100), "USDC": Decimal(1_000_000)},
            )
        self.depth_feed = BinanceDepthFeed(self)
        self._partition: Partition | None = None
        self.app = self._build_app()

    def lose_next_order_answer(self) -> Partition:
        """Fault injection: the next new order (`POST /api/v3/order`) executes as usual, then
        the exchange stops answering until the returned partition is restored."""
        with self.lock:
            if self._partition is not None and not self._partition.executed.is_set():
                raise RuntimeError("a lost answer is already armed")
            partition = Partition()
            self._partition = partition
        return partition

    def _take_partition(self, request: Request, result: Any) -> Partition | None:
        """With the lock held, after a request was handled: the armed partition, if this was
        the new order it waits for (the order is then executed)."""
        partition = self._partition
        if (
            partition is None
            or partition.executed.is_set()
            or request.method != "POST"
            or request.url.path != "/api/v3/order"
        ):
            return None
        partition.client_order_id = str(result.get("clientOrderId"))
        partition.executed.set()
        return partition

    def on_book_change(self) -> None:
        self.depth_feed.publish()

    # --- plumbing -------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        def route(
            path: str, handler: Handler, methods: list[str], weight: int, signed: bool
        ) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._serve(request, handler, weight, signed)

            return Route(path, endpoint, methods=methods)

        routes = [
            route("/api/v3/ping", self._ping, ["GET"], 1, False),
            route("/api/v3/time", self._time, ["GET"], 1, False),
            route("/api/v3/exchangeInfo", self._exchange_info, ["GET"], 20, False),
            route("/api/v3/depth", self._depth, ["GET"], 5, False),
            route("/api/v3/ticker/bookTicker", self._book_ticker, ["GET"], 2, False),
            route("/api/v3/ticker/24hr", self._ticker_24hr, ["GET"], 2, False),
            route("/api/v3/aggTrades", self._agg_trades_endpoint, ["GET"], 2, False),
            route("/api/v3/trades", self._recent_trades, ["GET"], 10, False),
            route("/api/v3/account", self._account, ["GET"], 20, True),
            route("/api/v3/order", self._order, ["GET", "POST", "DELETE"], 1, True),
            route("/api/v3/openOrders", self._open_orders, ["GET"], 6, True),
            route("/api/v3/myTrades", self._my_trades, ["GET"], 20, True),
            route("/sapi/v1/margin/allPairs", self._empty_list, ["GET"], 1, True),
            route("/sapi/v1/margin/isolated/allPairs", self._empty_list, ["GET"], 10, True),
            route("/sapi/v1/capital/config/getall", self._capital_config, ["GET"], 10, True),
        ]
        ws_routes = [
            WebSocketRoute("/ws", self.depth_feed.serve),
            WebSocketRoute("/ws/{stream}", self.depth_feed.serve),
        ]
        return Starlette(routes=[*routes, *ws_routes])

    async def _serve(
        self, request: Request, handler: Handler, weight: int, signed: bool
    ) -> Response:
        raw_query = request.url.query
        raw_body = (await request.body()).decode() if request.method == "POST" else ""
        partition = self._partition
        if partition is not None and partition.cut:
            await partition.wait_restored()  # held, then served as if it had just arrived
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        params.update(parse_qsl(raw_body, keep_blank_values=True))
        api_key = request.headers.get("X-MBX-APIKEY")
        limiter_key = api_key or (request.client.host if request.client else "anonymous")
        try:
            with self.lock:
                allowed, used = self.limiter.charge(limiter_key, weight, self.now_ms())
            headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
            if not allowed:
                raise BinanceApiError(
                    429,
                    -1003,
                    "Too much request weight used; current limit is "
                    f"{self.limiter.limit_for(limiter_key)} "
                    "request weight per 1 MINUTE. Please use WebSocket Streams for live "
                    "updates to avoid polling the API.",
                )
            credential = None
            if signed:
                credential = self._authenticate(api_key, raw_query, raw_body, params)
            with self.lock:
                result = await handler(request, params, credential)
                self.on_book_change()
                cut = self._take_partition(request, result)
            if cut is not None:  # executed; its answer waits out the partition
                await cut.wait_restored()
                if not cut.deliver_answer:
                    return JSONResponse(_UNAVAILABLE, status_code=503)
            return JSONResponse(result, headers=headers)
        except BinanceApiError as error:
            return JSONResponse({"code": error.code, "msg": error.msg}, status_code=error.status)
        except SimError as error:
            status, code = _ERRORS.get(error.kind, (400, -1013))
            return JSONResponse({"code": code, "msg": error.message}, status_code=status)

    def _authenticate(
        self, api_key: str | None, raw_query: str, raw_body: str, params: dict[str, str]
    ) -> ApiCredential:
        if not api_key:
            raise BinanceApiError(401, -2014, "API-key format invalid.")
        credential = self.credentials.get(api_key)
        if credential is None:
            raise BinanceApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        timestamp_text = params.get("timestamp")
        if not timestamp_text or not timestamp_text.isdigit():
            raise _mandatory("timestamp")
        recv_text = params.get("recvWindow", str(DEFAULT_RECV_WINDOW))
        if not recv_text.isdigit():
            raise _mandatory("recvWindow")
        recv_window = int(recv_text)
        if recv_window > MAX_RECV_WINDOW:
            raise BinanceApiError(400, -1131, "recvWindow must be less than 60000")
        query, query_signature = _strip_signature(raw_query)
        body, body_signature = _strip_signature(raw_body)
        signature = query_signature or body_signature
        if not signature:
            raise _mandatory("signature")
        expected = hmac.new(
            credential.secret.encode(), (query + body).encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceApiError(400, -1022, "Signature for this request is not valid.")
        timestamp = int(timestamp_text)
        now = self.now_ms()
        if not (timestamp < now + 1000 and now - timestamp <= recv_window):
            raise BinanceApiError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        return credential

    def _symbol(self, params: dict[str, str]) -> MarketSpec:
        symbol = params.get("symbol")
        if not symbol:
            raise _mandatory("symbol")
        market = self.exchange.markets.get(symbol)
        if market is None:
            raise BinanceApiError(400, -1121, "Invalid symbol.")
        return market

    # --- public ---------------------------------------------------------------------------

    async def _ping(self, request: Request, params: dict[str, str], _: ApiCredential | None) -> Any:
        return {}

    async def _time(self, request: Request, params: dict[str, str], _: ApiCredential | None) -> Any:
        return {"serverTime": self.now_ms()}

    async def _exchange_info(
        self, request: Request, params: dict[str, str], _: ApiCredential | None
    ) -> Any:
        symbols = []
        for market in self.exchange.markets.values():
            symbols.append(
                {
                    "symbol": market.symbol,
                    "status": "TRADING",
                    "baseAsset": market.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": market.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                    "icebergAllowed": False,
                    "ocoAllowed": False,
                    "otoAllowed": False,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": False,
                    "cancelReplaceAllowed": False,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": fmt(market.tick_size),
                            "maxPrice": "1000000.00000000",
                            "tickSize": fmt(market.tick_size),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": fmt(market.min_quantity),
                            "maxQty": "9000.00000000",
                            "stepSize": fmt(market.step_size),
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": fmt(market.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": "0.00000000",
                            "maxQty": "1000.00000000",
                            "stepSize": "0.00000000",
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "NONE",
                    "allowedSelfTradePreventionModes": ["NONE"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self.limiter.limit,
                }
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    async def _depth(
        self, request: Request, params: dict[str, str], _: ApiCredential | None
    ) -> Any:
        market = self._symbol(params)
        limit_text = params.get("limit", "100")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 5000:
            raise BinanceApiError(400, -1100, "Illegal characters found in parameter 'limit'.")
        bids, asks = self.exchange.depth(market.symbol, int(limit_text))
        return {
            "lastUpdateId": self.exchange.book_versions.get(market.symbol, 0),
            "bids": [[fmt(p), fmt(q)] for p, q in bids],
            "asks": [[fmt(p), fmt(q)] for p, q in asks],
        }

    async def _book_ticker(
        self, request: Request, params: dict[str, str], _: ApiCredential | None
    ) -> Any:
        market = self._symbol(params)
        bids, asks = self.exchange.depth(market.symbol, 1)
        bid = bids[0] if bids else (Decimal(0), Decimal(0))
        ask = asks[0] if asks else (Decimal(0), Decimal(0))
        return {
            "symbol": market.symbol,
            "bidPrice": fmt(bid[0]),
            "bidQty": fmt(bid[1]),
            "askPrice": fmt(ask[0]),
            "askQty": fmt(ask[1]),
        }

    async def _ticker_24hr(
        self, request: Request, params: dict[str, str], _: ApiCredential | None
    ) -> Any:
        market = self._symbol(params)
        now = self.now_ms()
        trades = [
            t for t in self.exchange.all_trades(market.symbol) if t.timestamp_ms > now - 86_400_000
        ]
        bids, asks = self.exchange.depth(market.symbol, 1)
        last = (
            trades[-1].price
            if trades
            else (self.market_maker.mid if self.market_maker else Decimal(0))
        )
        volume = sum((t.quantity for t in trades), Decimal(0))
        quote_volume = sum((t.quantity * t.price for t in trades), Decimal(0))
        first = trades[0].price if trades else last
        return {
            "symbol": market.symbol,
            "priceChange": fmt(last - first),
            "priceChangePercent": fmt((last - first) / first * 100 if first else Decimal(0), 3),
            "weightedAvgPrice": fmt(quote_volume / volume if volume else last),
            "prevClosePrice": fmt(first),
            "lastPrice": fmt(last),
            "lastQty": fmt(trades[-1].quantity if trades else Decimal(0)),
            "bidPrice": fmt(bids[0][0] if bids else Decimal(0)),
            "bidQty": fmt(bids[0][1] if bids else Decimal(0)),
            "askPrice": fmt(asks[0][0] if asks else Decimal(0)),
            "askQty": fmt(asks[0][1] if asks else Decimal(0)),
            "openPrice": fmt(first),
            "highPrice": fmt(max((t.price for t in trades), default=last)),
            "lowPrice": fmt(min((t.price for t in trades), default=last)),
            "volume": fmt(volume),
            "quoteVolume": fmt(quote_volume),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": trades[0].trade_id if trades else -1,
            "lastId": trades[-1].trade_id if trades else -1,
            "count": len(trades),
        }

    def aggregate_trades(self, symbol: str) -> list[AggTrade]:
        """The market's aggregate trades, oldest first; extended incrementally (the engine's
        tape only grows, and a taker's fills all land within one request)."""
        aggregated, consumed = self._agg_trades.get(symbol, ([], 0))
        trades = self.exchange.all_trades(symbol)
        for trade in trades[consumed:]:
            last = aggregated[-1] if aggregated else None
            if (
                last is not None
                and trade.taker_order_id != 0
                and trade.taker_order_id == last.taker_order_id
                and trade.price == last.price
            ):
                last.last_id = trade.trade_id
                last.quantity += trade.quantity
                continue
            aggregated.append(
                AggTrade(
                    agg_id=len(aggregated) + 1,
                    first_id=trade.trade_id,
                    last_id=trade.trade_id,
                    price=trade.price,
                    quantity=trade.quantity,
                    timestamp_ms=trade.timestamp_ms,
                    buyer_is_maker=trade.taker_side is SimSide.SELL,
                    taker_order_id=trade.taker_order_id,
                )
            )
        self._agg_trades[symbol] = (aggregated, len(trades))
        return aggregated

    @staticmethod
    def _int_param(params: dict[str, str], name: str) -> int | None:
        text = params.get(name)
        if text is None or text == "":
            return None
        if not text.lstrip("-").isdigit():
            raise BinanceApiError(400, -1100, f"Illegal characters found in parameter '{name}'.")
        return int(text)

    def _trades_limit(self, params: dict[str, str]) -> int:
        limit = self._int_param(params, "limit")
        if limit is None:
            return 500
        if limit <= 0:
            raise BinanceApiError(400, -1100, "Illegal characters found in parameter 'limit'.")
        return min(limit, MAX_TRADES_LIMIT)

    async def _agg_trades_endpoint(
        self, request: Request, params: dict[str, str], _: ApiCredential | None
    ) -> Any:
        """`fromId`: from that aggregate id on; `startTime`/`endTime` (ms, inclusive, at most
        one hour apart): the first `limit` in the window; neither: the most recent `limit`."""
        market = self._symbol(params)
        limit = self._trades_limit(params)
        from_id = self._int_param(params, "fromId")
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        if start is not None and end is not None and end - start > AGG_TRADES_MAX_WINDOW_MS:
            raise BinanceApiError(400, -1127, "More than 1 hours between startTime and endTime.")
        aggregated = self.aggregate_trades(market.symbol)
        if from_id is None and start is None and end is None:
            selected = aggregated[-limit:]
        else:
            selected = [
                a
                for a in aggregated
                if (from_id is None or a.agg_id >= from_id)
                and (start is None or a.timestamp_ms >= start)
                and (end is None or a.timestamp_ms <= end)
            ][:limit]
        return [
            {
                "a": a.agg_id,
                "p": fmt(a.price),
                "q": fmt(a.quantity),
                "f": a.first_id,
                "l": a.last_id,
                "T": a.timestamp_ms,
                "m": a.buyer_is_maker,
                "M": True,
            }
            for a in selected
        ]

    async def _recent_trades(
        self, request: Request, params: dict[str, str], _: ApiCredential | None
    ) -> Any:
        """The most recent `limit` trades (Binance's `GET /api/v3/trades`), oldest first."""
        market = self._symbol(params)
        limit = self._trades_limit(params)
        return [
            {
                "id": t.trade_id,
                "price": fmt(t.price),
                "qty": fmt(t.quantity),
                "quoteQty": fmt(t.price * t.quantity),
                "time": t.timestamp_ms,
                "isBuyerMaker": t.taker_side is SimSide.SELL,
                "isBestMatch": True,
            }
            for t in self.exchange.all_trades(market.symbol)[-limit:]
        ]

    # --- signed ---------------------------------------------------------------------------

    async def _account(
        self, request: Request, params: dict[str, str], credential: ApiCredential | None
    ) -> Any:
        assert credential is not None
        account = credential.account
        market = SPOT_MARKET
        return {
            "makerCommission": int(market.maker_bps),
            "takerCommission": int(market.taker_bps),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": fmt(market.maker_bps / 10_000),
                "taker": fmt(market.taker_bps / 10_000),
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": [
                {
                    "asset": asset,
                    "free": fmt(self.exchange.free(account, asset)),
                    "locked": fmt(self.exchange.locked(account, asset)),
                }
                for asset in self.exchange.assets(account)
            ],
            "permissions": ["SPOT"],
            "uid": abs(hash(account)) % 10**9,
        }

    async def _order(
        self, request: Request, params: dict[str, str], credential: ApiCredential | None
    ) -> Any:
        assert credential is not None
        if request.method == "POST":
            return self._new_order(params, credential.account)
        order = self._find_order(params, credential.account, request.method)
        if request.method == "DELETE":
            try:
                order = self.exchange.cancel(credential.account, order.order_id)
            except SimError:
                raise BinanceApiError(400, -2011, "Unknown order sent.") from None
            result = self._order_json(order, "cancel")
            result["origClientOrderId"] = order.client_order_id
            return result
        return self._order_json(order, "query")

    def _find_order(self, params: dict[str, str], account: str, method: str) -> SimOrder:
        market = self._symbol(params)
        not_found = (
            BinanceApiError(400, -2011, "Unknown order sent.")
            if method == "DELETE"
            else BinanceApiError(400, -2013, "Order does not exist.")
        )
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        try:
            if order_id:
                if not order_id.isdigit():
                    raise not_found
                order = self.exchange.order(account, int(order_id))
            elif client_id:
                order = self.exchange.order_by_client_id(account, client_id)
            else:
                raise BinanceApiError(
                    400,
                    -1102,
                    "Param 'origClientOrderId' or 'orderId' must be sent, "
                    "but both were empty/null!",
                )
        except SimError:
            raise not_found from None
        if order.symbol != market.symbol:
            raise not_found
        return order

    def _new_order(self, params: dict[str, str], account: str) -> Any:
        market = self._symbol(params)
        side_text = params.get("side", "").upper()
        if side_text not in ("BUY", "SELL"):
            raise _mandatory("side")
        side = SimSide.BUY if side_text == "BUY" else SimSide.SELL
        type_text = params.get("type", "").upper()
        if type_text not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            raise BinanceApiError(400, -1116, "Invalid orderType.")
        quantity = parse_decimal_param(params.get("quantity"))
        quote_quantity = parse_decimal_param(params.get("quoteOrderQty"))
        price = parse_decimal_param(params.get("price"))
        client_order_id = params.get("newClientOrderId") or f"sim-{self.now_ms()}"
        tif = SimTimeInForce.GTC
        post_only = False
        if type_text in ("LIMIT", "LIMIT_MAKER"):
            if price is None:
                raise _mandatory("price")
            if quantity is None:
                raise _mandatory("quantity")
            order_type = SimOrderType.LIMIT
            if type_text == "LIMIT":
                tif_text = params.get("timeInForce")
                if tif_text not in ("GTC", "IOC", "FOK"):
                    raise _mandatory("timeInForce")
                tif = SimTimeInForce(tif_text)
            else:
                post_only = True
        else:
            order_type = SimOrderType.MARKET
            if quantity is None and quote_quantity is None:
                raise BinanceApiError(
                    400,
                    -1102,
                    "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                )
            price = None
        order = self.exchange.submit(
            account,
            market.symbol,
            side,
            order_type,
            quantity,
            price,
            time_in_force=tif,
            post_only=post_only,
            client_order_id=client_order_id,
            quote_quantity=quote_quantity if quantity is None else None,
        )
        response_type = params.get("newOrderRespType", "FULL").upper()
        if response_type == "ACK":
            return {
                "symbol": market.symbol,
                "orderId": order.order_id,
                "orderListId": -1,
                "clientOrderId": order.client_order_id,
                "transactTime": order.created_ms,
            }
        return self._order_json(order, "full" if response_type == "FULL" else "result")

    def _order_json(self, order: SimOrder, shape: str) -> dict[str, Any]:
        kind = "LIMIT_MAKER" if order.post_only else order.order_type.value.upper()
        result: dict[str, Any] = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
        }
        if shape != "query":
            result["transactTime"] = order.updated_ms
        result.update(
            {
                "price": fmt(order.price or Decimal(0)),
                "origQty": fmt(order.quantity),
                "executedQty": fmt(order.filled),
                "origQuoteOrderQty": "0.00000000",
                "cummulativeQuoteQty": fmt(order.notional),
                "status": _STATUS[order.status],
                "timeInForce": order.time_in_force.value,
                "type": kind,
                "side": order.side.value.upper(),
                "workingTime": order.created_ms,
                "selfTradePreventionMode": "NONE",
            }
        )
        if shape == "query":
            result.update(
                {
                    "stopPrice": "0.00000000",
                    "icebergQty": "0.00000000",
                    "time": order.created_ms,
                    "updateTime": order.updated_ms,
                    "isWorking": True,
                }
            )
        if shape == "full":
            result["fills"] = [self._fill_json(order, trade) for trade in order.trades]
        return result

    def _fill_json(self, order: SimOrder, trade: SimTrade) -> dict[str, Any]:
        fee, asset = trade.fee_of(order.order_id)
        return {
            "price": fmt(trade.price),
            "qty": fmt(trade.quantity),
            "commission": fmt(fee),
            "commissionAsset": asset,
            "tradeId": trade.trade_id,
        }

    async def _open_orders(
        self, request: Request, params: dict[str, str], credential: ApiCredential | None
    ) -> Any:
        assert credential is not None
        symbol = self._symbol(params).symbol if params.get("symbol") else None
        return [
            self._order_json(o, "query")
            for o in self.exchange.open_orders(credential.account, symbol)
        ]

    async def _my_trades(
        self, request: Request, params: dict[str, str], credential: ApiCredential | None
    ) -> Any:
        assert credential is not None
        market = self._symbol(params)
        account = credential.account
        order_id = params.get("orderId")
        result = []
        for trade in self.exchange.trades(account, market.symbol):
            for mine in (trade.maker_order_id, trade.taker_order_id):
                owner = trade.maker_account if mine == trade.maker_order_id else trade.taker_account
                if owner != account:
                    continue
                if order_id and str(mine) != order_id:
                    continue
                fee, asset = trade.fee_of(mine)
                result.append(
                    {
                        "symbol": market.symbol,
                        "id": trade.trade_id,
                        "orderId": mine,
                        "orderListId": -1,
                        "price": fmt(trade.price),
                        "qty": fmt(trade.quantity),
                        "quoteQty": fmt(trade.price * trade.quantity),
                        "commission": fmt(fee),
                        "commissionAsset": asset,
                        "time": trade.timestamp_ms,
                        "isBuyer": trade.side_of(account, mine) is SimSide.BUY,
                        "isMaker": trade.is_maker(mine),
                        "isBestMatch": True,
                    }
                )
        return result

    async def _empty_list(
        self, request: Request, params: dict[str, str], _: ApiCredential | None
    ) -> Any:
        return []

    async def _capital_config(
        self, request: Request, params: dict[str, str], _: ApiCredential | None
    ) -> Any:
        coins = sorted(
            {m.base for m in self.exchange.markets.values()}
            | {m.quote for m in self.exchange.markets.values()}
        )
        names = {"ETH": "Ethereum", "USDC": "USD Coin"}
        return [
            {
                "coin": coin,
                "name": names.get(coin, coin),
                "depositAllEnable": True,
                "withdrawAllEnable": True,
                "free": "0",
                "locked": "0",
                "freeze": "0",
                "withdrawing": "0",
                "ipoing": "0",
                "ipoable": "0",
                "storage": "0",
                "isLegalMoney": False,
                "trading": True,
                "networkList": [
                    {
                        "network": "ETH",
                        "coin": coin,
                        "withdrawIntegerMultiple": "0.00000001",
                        "isDefault": True,
                        "depositEnable": True,
                        "withdrawEnable": True,
                        "depositDesc": "",
                        "withdrawDesc": "",
                        "name": "Ethereum (ERC20)",
                        "resetAddressStatus": False,
                        "withdrawFee": "0.001" if coin == "ETH" else "1",
                        "withdrawMin": "0.01" if coin == "ETH" else "10",
                        "withdrawMax": "10000000",
                        "minConfirm": 12,
                        "unLockConfirm": 64,
                        "sameAddress": False,
                        "depositDust": "0.00000001",
                    }
                ],
            }
            for coin in coins
        ]
