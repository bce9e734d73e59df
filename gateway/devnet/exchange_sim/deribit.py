"""Deribit JSON-RPC v2 over HTTP, simulated: what ccxt's `deribit` class speaks, on loopback.

Methods are served as `GET|POST /api/v2/{public|private}/{method}` with parameters in the
query string (ccxt's way), and also as JSON-RPC bodies posted to `/api/v2`.

Instruments: inverse ETH options `ETH-26MAR27-{strike}-{C|P}` on the devnet strikes and expiry
(premium, fees and margin in ETH, one contract = one ETH, as on Deribit) and the linear
perpetual `ETH_USDC-PERPETUAL` (USDC-margined). The market maker quotes the options from a
deterministic price formula around the random-walk ETH index and the perpetual at the index.

Private calls are authenticated like Deribit: either `Authorization: deri-hmac-sha256
id=<client_id>,ts=<ms>,sig=<hex>,nonce=<nonce>` where `sig` is HMAC-SHA256 over
`ts\\nnonce\\nMETHOD\\nURI\\nBODY\\n` (what ccxt sends), or `Authorization: Bearer <token>`
from `public/auth` (`grant_type=client_credentials`). Errors are
`{"jsonrpc": "2.0", "error": {"code": ..., "message": ...}, "usIn": .., "usOut": ..}`.

The public tape: `public/get_last_trades_by_instrument` (ccxt's `fetch_trades` without
`since`) and `public/get_last_trades_by_instrument_and_time` (with `since`), starting with a
seeded synthetic history of the perpetual (`history`).

Wire numbers are JSON numbers (as on Deribit), written from `Decimal` exactly.

Books also stream over the WebSocket at `/ws/api/v2` (`public/subscribe` to
`book.<instrument>.100ms`), see `depth_feed`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from gateway.devnet.catalogue import OPTION_EXPIRY, OPTION_STRIKES
from gateway.devnet.exchange_sim.common import (
    ApiCredential,
    SimVenueBase,
    WeightLimiter,
    parse_decimal_param,
    plain,
)
from gateway.devnet.exchange_sim.depth_feed import DeribitBookFeed
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

DEVNET_CLIENT_ID = "isthmus-devnet-deribit-id"
DEVNET_CLIENT_SECRET = "isthmus-devnet-deribit-secret"
SIGNATURE_MAX_AGE_MS = 60_000
TOKEN_LIFETIME_S = 900
MAX_TRADES_COUNT = 1000

PERPETUAL = "ETH_USDC-PERPETUAL"
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def expiry_code(when: datetime) -> str:
    """Deribit's expiry text: day without leading zero, month, two-digit year (26MAR27)."""
    return f"{when.day}{_MONTHS[when.month - 1]}{when:%y}"


def option_name(strike: Decimal, call: bool, expiry: datetime = OPTION_EXPIRY) -> str:
    return f"ETH-{expiry_code(expiry)}-{plain(strike)}-{'C' if call else 'P'}"


def option_fair_price(strike: Decimal, call: bool) -> Callable[[Decimal], Decimal]:
    """Premium in ETH for an ETH index price in USD: intrinsic plus a smooth time value."""

    def fair(index: Decimal) -> Decimal:
        intrinsic = max(index - strike, Decimal(0)) if call else max(strike - index, Decimal(0))
        moneyness = (strike - index) / index
        time_value = index * Decimal("0.08") * (-(moneyness * moneyness) * 8).exp()
        return (intrinsic + time_value) / index

    return fair


class DeribitApiError(Exception):
    def __init__(self, code: int, message: str, status: int = 400, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.data = data


_SIM_ERRORS: dict[SimErrorKind, tuple[int, str]] = {
    SimErrorKind.INSUFFICIENT_FUNDS: (10009, "not_enough_funds"),
    SimErrorKind.ORDER_NOT_FOUND: (10004, "order_not_found"),
    SimErrorKind.PRICE_FILTER: (10043, "price_wrong_tick"),
    SimErrorKind.LOT_SIZE: (10002, "qty_too_low"),
    SimErrorKind.MIN_NOTIONAL: (10032, "whole_cost_too_low"),
    SimErrorKind.POST_ONLY_WOULD_TAKE: (11054, "post_only_reject"),
    SimErrorKind.UNKNOWN_SYMBOL: (-32602, "Invalid params"),
    SimErrorKind.BAD_REQUEST: (-32602, "Invalid params"),
}

_STATE = {
    SimOrderStatus.NEW: "open",
    SimOrderStatus.PARTIALLY_FILLED: "open",
    SimOrderStatus.FILLED: "filled",
    SimOrderStatus.CANCELED: "cancelled",
    SimOrderStatus.EXPIRED: "cancelled",
}
_TIF_IN = {
    "good_til_cancelled": SimTimeInForce.GTC,
    "immediate_or_cancel": SimTimeInForce.IOC,
    "fill_or_kill": SimTimeInForce.FOK,
}
_TIF_OUT = {v: k for k, v in _TIF_IN.items()}


def _json(value: Any) -> str:
    """JSON with `Decimal` written as an exact number."""
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json(v) for v in value) + "]"
    return json.dumps(value)


def _invalid_param(param: str, reason: str = "value required") -> DeribitApiError:
    return DeribitApiError(-32602, "Invalid params", data={"reason": reason, "param": param})


class DeribitSim(SimVenueBase):
    """One simulated Deribit. `app` is the ASGI application."""

    def __init__(
        self,
        *,
        seed: int = 1,
        start_index: Decimal = Decimal("3000.00"),
        request_limit: int = 6000,
        clock_ms: Callable[[], int] | None = None,
        devnet_account: bool = True,
        history: HistoryConfig | None = None,
    ) -> None:
        """`history`: the perpetual's synthetic tape seeded at startup (default: 2 days)."""
        super().__init__(clock_ms)
        self.limiter = WeightLimiter(request_limit)
        self.tokens: dict[str, tuple[ApiCredential, int]] = {}
        self.expiry_ms = int(OPTION_EXPIRY.timestamp() * 1000)
        rules: list[QuoteRule] = []
        for strike in OPTION_STRIKES:
            for call in (True, False):
                name = option_name(strike, call)
                self.exchange.add_market(
                    MarketSpec(
                        symbol=name,
                        kind=MarketKind.OPTION,
                        base="ETH",
                        quote="USD",
                        settle="ETH",
                        tick_size=Decimal("0.0005"),
                        step_size=Decimal("0.01"),
                        min_quantity=Decimal("0.01"),
                        maker_bps=Decimal("3"),
                        taker_bps=Decimal("5"),
                        short_margin=Decimal(1),
                    )
                )
                rules.append(
                    QuoteRule(
                        name,
                        fair_price=option_fair_price(strike, call),
                        half_spread_ticks=2,
                        level_gap_ticks=2,
                        level_size=Decimal(5),
                        levels=5,
                    )
                )
        self.exchange.add_market(
            MarketSpec(
                symbol=PERPETUAL,
                kind=MarketKind.PERPETUAL,
                base="ETH",
                quote="USDC",
                settle="USDC",
                tick_size=Decimal("0.05"),
                step_size=Decimal("0.001"),
                min_quantity=Decimal("0.001"),
                maker_bps=Decimal("0"),
                taker_bps=Decimal("5"),
                initial_margin_rate=Decimal("0.1"),
            )
        )
        rules.append(
            QuoteRule(
                PERPETUAL,
                fair_price=lambda index: index,
                half_spread_ticks=1,
                level_gap_ticks=2,
                level_size=Decimal(2),
                levels=10,
            )
        )
        walk = RandomWalk(seed, start_index, Decimal("0.05"), max_ticks_per_step=10)
        self.market_maker = MarketMaker(self.exchange, walk, rules)
        self.market_maker.fund({"ETH": Decimal(1_000_000), "USDC": Decimal(10_000_000_000)})
        self.market_maker.refresh()
        self.history = history if history is not None else HistoryConfig()
        seed_history(
            self.exchange,
            PERPETUAL,
            seed=seed,
            reference_price=start_index,
            min_quantity=Decimal("0.01"),
            max_quantity=Decimal("5"),
            now_ms=self.now_ms(),
            config=self.history,
        )
        if devnet_account:
            self.add_account(
                DEVNET_CLIENT_ID,
                DEVNET_CLIENT_SECRET,
                {"ETH": Decimal(100), "USDC": Decimal(1_000_000)},
            )
        self._public: dict[str, Callable[[dict[str, str]], Any]] = {
            "get_time": lambda p: self.now_ms(),
            "test": lambda p: {"version": "2.1.1"},
            "status": lambda p: {"locked": "false", "locked_indices": []},
            "get_currencies": self._get_currencies,
            "get_instruments": self._get_instruments,
            "get_order_book": self._get_order_book,
            "ticker": self._get_order_book,
            "get_last_trades_by_instrument": self._last_trades,
            "get_last_trades_by_instrument_and_time": self._last_trades_by_time,
            "get_index_price": lambda p: {
                "index_price": self.index,
                "estimated_delivery_price": self.index,
            },
        }
        self._private: dict[str, Callable[[dict[str, str], ApiCredential], Any]] = {
            "buy": lambda p, c: self._place(p, c, SimSide.BUY),
            "sell": lambda p, c: self._place(p, c, SimSide.SELL),
            "cancel": self._cancel,
            "cancel_all": self._cancel_all,
            "get_order_state": self._get_order_state,
            "get_open_orders_by_instrument": self._open_orders_by_instrument,
            "get_open_orders_by_currency": self._open_orders_by_currency,
            "get_positions": self._get_positions,
            "get_position": self._get_position,
            "get_account_summary": self._get_account_summary,
            "get_account_summaries": self._get_account_summaries,
            "get_user_trades_by_order": self._trades_by_order,
            "get_user_trades_by_instrument": self._trades_by_instrument,
        }
        self.book_feed = DeribitBookFeed(self, _json)
        self.app = Starlette(
            routes=[
                Route("/api/v2/{scope}/{method}", self._endpoint, methods=["GET", "POST"]),
                Route("/api/v2", self._rpc_endpoint, methods=["POST"]),
                WebSocketRoute("/ws/api/v2", self.book_feed.serve),
            ]
        )

    def on_book_change(self) -> None:
        self.book_feed.publish()

    @property
    def index(self) -> Decimal:
        assert self.market_maker is not None
        return self.market_maker.mid

    # --- plumbing -------------------------------------------------------------------------

    def _respond(
        self, us_in: int, result: Any = None, error: DeribitApiError | None = None
    ) -> Response:
        us_out = self.now_ms() * 1000
        body: dict[str, Any] = {"jsonrpc": "2.0"}
        status = 200
        if error is None:
            body["result"] = result
        else:
            body["error"] = {"code": error.code, "message": error.message}
            if error.data is not None:
                body["error"]["data"] = error.data
            status = error.status
        body.update({"usIn": us_in, "usOut": us_out, "usDiff": us_out - us_in, "testnet": True})
        return Response(_json(body), status_code=status, media_type="application/json")

    async def _endpoint(self, request: Request) -> Response:
        scope = request.path_params["scope"]
        method = request.path_params["method"]
        raw_body = (await request.body()).decode()
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        if raw_body and request.headers.get("content-type", "").startswith("application/json"):
            with_body = json.loads(raw_body)
            params.update({k: _param_text(v) for k, v in with_body.get("params", {}).items()})
        uri = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return self._dispatch(scope, method, params, request, uri, raw_body)

    async def _rpc_endpoint(self, request: Request) -> Response:
        raw_body = (await request.body()).decode()
        try:
            message = json.loads(raw_body)
            scope, method = str(message["method"]).split("/", 1)
            params = {k: _param_text(v) for k, v in message.get("params", {}).items()}
        except (ValueError, KeyError, AttributeError):
            return self._respond(self.now_ms() * 1000, error=DeribitApiError(-32700, "Parse error"))
        return self._dispatch(scope, method, params, request, request.url.path, raw_body)

    def _dispatch(
        self,
        scope: str,
        method: str,
        params: dict[str, str],
        request: Request,
        uri: str,
        raw_body: str,
    ) -> Response:
        us_in = self.now_ms() * 1000
        try:
            authorization = request.headers.get("authorization", "")
            with self.lock:
                if scope == "public" and method == "auth":
                    return self._respond(us_in, self._auth(params))
                credential = None
                if scope == "private":
                    credential = self._authenticate(authorization, request.method, uri, raw_body)
                key = (
                    credential.api_key
                    if credential
                    else (request.client.host if request.client else "anonymous")
                )
                allowed, _ = self.limiter.charge(key, 1, self.now_ms())
                if not allowed:
                    raise DeribitApiError(10028, "too_many_requests", status=429)
                if scope == "public" and method in self._public:
                    return self._respond(us_in, self._public[method](params))
                if scope == "private" and method in self._private:
                    assert credential is not None
                    result = self._private[method](params, credential)
                    self.on_book_change()
                    return self._respond(us_in, result)
                raise DeribitApiError(-32601, "Method not found", status=400)
        except DeribitApiError as error:
            return self._respond(us_in, error=error)
        except SimError as sim_error:
            code, message = _SIM_ERRORS.get(sim_error.kind, (11030, "other_reject"))
            return self._respond(us_in, error=DeribitApiError(code, message))

    def _auth(self, params: dict[str, str]) -> Any:
        grant = params.get("grant_type")
        if grant != "client_credentials":
            raise _invalid_param("grant_type", "unsupported grant_type")
        credential = self.credentials.get(params.get("client_id", ""))
        if credential is None or not hmac.compare_digest(
            credential.secret, params.get("client_secret", "")
        ):
            raise DeribitApiError(13004, "invalid_credentials", status=400)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (credential, self.now_ms() + TOKEN_LIFETIME_S * 1000)
        return {
            "access_token": token,
            "expires_in": TOKEN_LIFETIME_S,
            "refresh_token": secrets.token_urlsafe(24),
            "scope": "connection mainaccount trade:read_write wallet:read account:read",
            "token_type": "bearer",
            "enabled_features": [],
        }

    def _authenticate(
        self, authorization: str, http_method: str, uri: str, body: str
    ) -> ApiCredential:
        if not authorization:
            raise DeribitApiError(10000, "authorization_required", status=401)
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() == "bearer":
            entry = self.tokens.get(rest.strip())
            if entry is None or entry[1] < self.now_ms():
                raise DeribitApiError(13009, "unauthorized", status=401)
            return entry[0]
        if scheme.lower() != "deri-hmac-sha256":
            raise DeribitApiError(13009, "unauthorized", status=401)
        fields = dict(
            part.split("=", 1) for part in rest.replace(" ", "").split(",") if "=" in part
        )
        credential = self.credentials.get(fields.get("id", ""))
        ts_text = fields.get("ts", "")
        nonce = fields.get("nonce", "")
        signature = fields.get("sig", "")
        if credential is None or not ts_text.isdigit():
            raise DeribitApiError(13009, "unauthorized", status=401)
        payload = f"{ts_text}\n{nonce}\n{http_method.upper()}\n{uri}\n{body}\n"
        expected = hmac.new(
            credential.secret.encode(), payload.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise DeribitApiError(13009, "unauthorized", status=401)
        if abs(self.now_ms() - int(ts_text)) > SIGNATURE_MAX_AGE_MS:
            raise DeribitApiError(13009, "unauthorized", status=401)
        return credential

    # --- public ---------------------------------------------------------------------------

    def _get_currencies(self, params: dict[str, str]) -> Any:
        return [
            {
                "currency": "ETH",
                "currency_long": "Ethereum",
                "coin_type": "ETHER",
                "fee_precision": 4,
                "min_confirmations": 1,
                "min_withdrawal_fee": Decimal("0.0001"),
                "withdrawal_fee": Decimal("0.0006"),
                "withdrawal_priorities": [],
                "in_cross_collateral_pool": True,
            },
            {
                "currency": "USDC",
                "currency_long": "USD Coin",
                "coin_type": "ETHER",
                "fee_precision": 4,
                "min_confirmations": 1,
                "min_withdrawal_fee": Decimal("1"),
                "withdrawal_fee": Decimal("1"),
                "withdrawal_priorities": [],
                "in_cross_collateral_pool": True,
            },
        ]

    def _instrument_json(self, market: MarketSpec) -> dict[str, Any]:
        base: dict[str, Any] = {
            "instrument_name": market.symbol,
            "instrument_id": abs(hash(market.symbol)) % 1_000_000,
            "tick_size": market.tick_size,
            "tick_size_steps": [],
            "min_trade_amount": market.min_quantity,
            "contract_size": market.step_size if market.kind is MarketKind.PERPETUAL else 1,
            "maker_commission": market.maker_bps / 10_000,
            "taker_commission": market.taker_bps / 10_000,
            "block_trade_commission": market.taker_bps / 10_000,
            "block_trade_min_trade_amount": 25,
            "block_trade_tick_size": market.tick_size,
            "is_active": True,
            "rfq": False,
            "creation_timestamp": 1_700_000_000_000,
            "base_currency": "ETH",
            "price_index": "eth_usd" if market.kind is MarketKind.OPTION else "eth_usdc",
        }
        if market.kind is MarketKind.OPTION:
            parts = market.symbol.split("-")
            base.update(
                {
                    "kind": "option",
                    "option_type": "call" if parts[3] == "C" else "put",
                    "strike": Decimal(parts[2]),
                    "settlement_period": "month",
                    "settlement_currency": "ETH",
                    "quote_currency": "ETH",
                    "counter_currency": "USD",
                    "expiration_timestamp": self.expiry_ms,
                    "instrument_type": "reversed",
                }
            )
        else:
            base.update(
                {
                    "kind": "future",
                    "future_type": "linear",
                    "instrument_type": "linear",
                    "settlement_period": "perpetual",
                    "settlement_currency": "USDC",
                    "quote_currency": "USDC",
                    "counter_currency": "USDC",
                    "expiration_timestamp": 32503708800000,
                    "max_leverage": 10,
                    "max_liquidation_commission": Decimal("0.0075"),
                }
            )
        return base

    def _get_instruments(self, params: dict[str, str]) -> Any:
        currency = params.get("currency", "any")
        kind = params.get("kind")
        if params.get("expired") == "true":
            return []
        result = []
        for market in self.exchange.markets.values():
            instrument = self._instrument_json(market)
            if currency not in ("any", "ETH", instrument["settlement_currency"]):
                continue
            if kind and instrument["kind"] != kind:
                continue
            result.append(instrument)
        return result

    def _market_param(self, params: dict[str, str]) -> MarketSpec:
        name = params.get("instrument_name")
        if not name:
            raise _invalid_param("instrument_name")
        market = self.exchange.markets.get(name)
        if market is None:
            raise _invalid_param("instrument_name", "wrong format")
        return market

    def _mark(self, market: MarketSpec) -> Decimal:
        bids, asks = self.exchange.depth(market.symbol, 1)
        if bids and asks:
            return (bids[0][0] + asks[0][0]) / 2
        return self.index if market.kind is MarketKind.PERPETUAL else Decimal(0)

    def _get_order_book(self, params: dict[str, str]) -> Any:
        market = self._market_param(params)
        depth_text = params.get("depth", "20")
        depth = int(depth_text) if depth_text.isdigit() else 20
        bids, asks = self.exchange.depth(market.symbol, max(1, min(depth, 10_000)))
        mark = self._mark(market)
        result: dict[str, Any] = {
            "timestamp": self.now_ms(),
            "state": "open",
            "instrument_name": market.symbol,
            "change_id": self.exchange.change_id,
            "bids": [[p, q] for p, q in bids],
            "asks": [[p, q] for p, q in asks],
            "best_bid_price": bids[0][0] if bids else 0,
            "best_bid_amount": bids[0][1] if bids else 0,
            "best_ask_price": asks[0][0] if asks else 0,
            "best_ask_amount": asks[0][1] if asks else 0,
            "mark_price": mark,
            "last_price": None,
            "index_price": self.index,
            "min_price": market.tick_size,
            "max_price": mark * 2 if mark else market.tick_size * 1000,
            "open_interest": 0,
            "settlement_price": mark,
            "stats": {"volume": 0, "price_change": 0, "low": None, "high": None},
        }
        if market.kind is MarketKind.OPTION:
            result.update(
                {
                    "underlying_price": self.index,
                    "underlying_index": "index_price",
                    "interest_rate": 0,
                    "mark_iv": 60,
                    "bid_iv": 0,
                    "ask_iv": 0,
                    "greeks": {"delta": 0, "gamma": 0, "vega": 0, "theta": 0, "rho": 0},
                }
            )
        else:
            result.update(
                {"funding_8h": 0, "current_funding": 0, "estimated_delivery_price": self.index}
            )
        return result

    def _public_trade_json(self, trade: SimTrade) -> dict[str, Any]:
        result: dict[str, Any] = {
            "trade_seq": trade.trade_id,
            "trade_id": f"ETH-{trade.trade_id}",
            "timestamp": trade.timestamp_ms,
            "tick_direction": 0,
            "price": trade.price,
            "mark_price": trade.price,
            "index_price": self.index,
            "instrument_name": trade.symbol,
            "direction": trade.taker_side.value,
            "amount": trade.quantity,
            "contracts": trade.quantity,
        }
        if self.exchange.markets[trade.symbol].kind is MarketKind.OPTION:
            result["iv"] = 60
        return result

    @staticmethod
    def _int_param(params: dict[str, str], name: str, default: int | None = None) -> int | None:
        text = params.get(name)
        if text is None or text == "":
            return default
        if not text.lstrip("-").isdigit():
            raise _invalid_param(name, "must be an integer")
        return int(text)

    def _trades_page(
        self, params: dict[str, str], trades: list[SimTrade], newest_first: bool
    ) -> dict[str, Any]:
        """`count` (default 10, at most 1000) trades: the newest (`sorting` desc, Deribit's
        default) or the oldest (`asc`) of `trades`; `has_more` when some were left out."""
        count = self._int_param(params, "count", 10) or 10
        count = max(1, min(count, MAX_TRADES_COUNT))
        sorting = params.get("sorting", "desc")
        if sorting not in ("asc", "desc", "default"):
            raise _invalid_param("sorting", "must be one of asc, desc, default")
        if sorting == "asc":
            newest_first = False
        elif sorting == "desc":
            newest_first = True
        page = trades[-count:][::-1] if newest_first else trades[:count]
        return {
            "trades": [self._public_trade_json(t) for t in page],
            "has_more": len(trades) > count,
        }

    def _last_trades(self, params: dict[str, str]) -> Any:
        """Trades by sequence number (`start_seq`/`end_seq` inclusive), newest first."""
        market = self._market_param(params)
        start = self._int_param(params, "start_seq")
        end = self._int_param(params, "end_seq")
        trades = [
            t
            for t in self.exchange.all_trades(market.symbol)
            if (start is None or t.trade_id >= start) and (end is None or t.trade_id <= end)
        ]
        return self._trades_page(params, trades, newest_first=True)

    def _last_trades_by_time(self, params: dict[str, str]) -> Any:
        """Trades with `start_timestamp <= timestamp <= end_timestamp` (ms; the end defaults
        to now, as ccxt sends none), newest first unless `sorting=asc`."""
        market = self._market_param(params)
        start = self._int_param(params, "start_timestamp")
        if start is None:
            raise _invalid_param("start_timestamp")
        end = self._int_param(params, "end_timestamp", self.now_ms())
        assert end is not None
        trades = [
            t for t in self.exchange.all_trades(market.symbol) if start <= t.timestamp_ms <= end
        ]
        return self._trades_page(params, trades, newest_first=True)

    # --- private --------------------------------------------------------------------------

    def _order_id(self, order: SimOrder) -> str:
        return f"{self.exchange.markets[order.symbol].cash_asset}-{order.order_id}"

    def _parse_order_id(self, params: dict[str, str]) -> int:
        text = params.get("order_id")
        if not text:
            raise _invalid_param("order_id")
        number = text.rsplit("-", 1)[-1]
        if not number.isdigit():
            raise DeribitApiError(10004, "order_not_found")
        return int(number)

    def _order_json(self, order: SimOrder) -> dict[str, Any]:
        return {
            "order_id": self._order_id(order),
            "instrument_name": order.symbol,
            "direction": order.side.value,
            "amount": order.quantity,
            "filled_amount": order.filled,
            "price": order.price if order.price is not None else "market_price",
            "average_price": order.average_price or 0,
            "order_state": _STATE[order.status],
            "order_type": order.order_type.value,
            "time_in_force": _TIF_OUT[order.time_in_force],
            "post_only": order.post_only,
            "reject_post_only": order.post_only,
            "reduce_only": False,
            "label": order.client_order_id or "",
            "creation_timestamp": order.created_ms,
            "last_update_timestamp": order.updated_ms,
            "api": True,
            "web": False,
            "is_liquidation": False,
            "replaced": False,
            "risk_reducing": False,
            "mmp": False,
            "max_show": order.quantity,
        }

    def _trade_json(self, order: SimOrder, trade: SimTrade) -> dict[str, Any]:
        fee, asset = trade.fee_of(order.order_id)
        return {
            "trade_id": f"ETH-{trade.trade_id}",
            "trade_seq": trade.trade_id,
            "instrument_name": trade.symbol,
            "order_id": self._order_id(order),
            "order_type": order.order_type.value,
            "direction": order.side.value,
            "amount": trade.quantity,
            "price": trade.price,
            "fee": fee,
            "fee_currency": asset,
            "timestamp": trade.timestamp_ms,
            "liquidity": "M" if trade.is_maker(order.order_id) else "T",
            "index_price": self.index,
            "mark_price": trade.price,
            "state": "filled" if order.status is SimOrderStatus.FILLED else "open",
            "tick_direction": 0,
            "self_trade": trade.maker_account == trade.taker_account,
            "reduce_only": False,
            "post_only": order.post_only,
            "mmp": False,
            "api": True,
            "label": order.client_order_id or "",
        }

    def _place(self, params: dict[str, str], credential: ApiCredential, side: SimSide) -> Any:
        market = self._market_param(params)
        amount = parse_decimal_param(params.get("amount"))
        if amount is None:
            raise _invalid_param("amount")
        order_type_text = params.get("type", "limit")
        if order_type_text not in ("limit", "market"):
            raise DeribitApiError(11047, "unsupported_arg_combination")
        price = parse_decimal_param(params.get("price"))
        if order_type_text == "limit" and price is None:
            raise _invalid_param("price")
        tif_text = params.get("time_in_force", "good_til_cancelled")
        if tif_text not in _TIF_IN:
            raise _invalid_param("time_in_force", "must be one of good_til_cancelled, ...")
        post_only = params.get("post_only") == "true"
        order = self.exchange.submit(
            credential.account,
            market.symbol,
            side,
            SimOrderType.LIMIT if order_type_text == "limit" else SimOrderType.MARKET,
            amount,
            price,
            time_in_force=_TIF_IN[tif_text],
            post_only=post_only,
            client_order_id=params.get("label") or None,
        )
        return {
            "order": self._order_json(order),
            "trades": [self._trade_json(order, t) for t in order.trades],
        }

    def _cancel(self, params: dict[str, str], credential: ApiCredential) -> Any:
        order_id = self._parse_order_id(params)
        order = self.exchange.order(credential.account, order_id)
        if not order.status.is_open:
            raise DeribitApiError(10010, "already_closed")
        return self._order_json(self.exchange.cancel(credential.account, order_id))

    def _cancel_all(self, params: dict[str, str], credential: ApiCredential) -> Any:
        return len(self.exchange.cancel_all(credential.account))

    def _get_order_state(self, params: dict[str, str], credential: ApiCredential) -> Any:
        return self._order_json(
            self.exchange.order(credential.account, self._parse_order_id(params))
        )

    def _open_orders_by_instrument(self, params: dict[str, str], credential: ApiCredential) -> Any:
        market = self._market_param(params)
        return [
            self._order_json(o)
            for o in self.exchange.open_orders(credential.account, market.symbol)
        ]

    def _open_orders_by_currency(self, params: dict[str, str], credential: ApiCredential) -> Any:
        return [self._order_json(o) for o in self.exchange.open_orders(credential.account)]

    def _position_json(
        self, symbol: str, size: Decimal, average: Decimal, realized: Decimal
    ) -> Any:
        market = self.exchange.markets[symbol]
        mark = self._mark(market)
        if market.kind is MarketKind.OPTION:
            upl = (mark - average) * size
            margin = market.short_margin * -size if size < 0 else Decimal(0)
            size_currency = size
        else:
            upl = (mark - average) * size
            margin = market.initial_margin_rate * abs(size) * average
            size_currency = size
        return {
            "instrument_name": symbol,
            "kind": "option" if market.kind is MarketKind.OPTION else "future",
            "direction": "buy" if size > 0 else ("sell" if size < 0 else "zero"),
            "size": size,
            "size_currency": size_currency,
            "average_price": average,
            "mark_price": mark,
            "index_price": self.index,
            "settlement_price": mark,
            "floating_profit_loss": upl,
            "realized_profit_loss": realized,
            "total_profit_loss": upl + realized,
            "initial_margin": margin,
            "maintenance_margin": margin,
            "open_orders_margin": 0,
            "delta": size,
            "leverage": 10 if market.kind is MarketKind.PERPETUAL else 1,
            "estimated_liquidation_price": None,
        }

    def _get_positions(self, params: dict[str, str], credential: ApiCredential) -> Any:
        currency = params.get("currency", "any")
        kind = params.get("kind")
        result = []
        for symbol, position in sorted(self.exchange.positions(credential.account).items()):
            if position.size == 0:
                continue
            market = self.exchange.markets[symbol]
            if currency not in ("any", "ETH", market.cash_asset):
                continue
            instrument_kind = "option" if market.kind is MarketKind.OPTION else "future"
            if kind and kind != instrument_kind:
                continue
            result.append(
                self._position_json(
                    symbol, position.size, position.average_price, position.realized_pnl
                )
            )
        return result

    def _get_position(self, params: dict[str, str], credential: ApiCredential) -> Any:
        market = self._market_param(params)
        position = self.exchange.position(credential.account, market.symbol)
        return self._position_json(
            market.symbol, position.size, position.average_price, position.realized_pnl
        )

    def _summary(self, account: str, currency: str) -> dict[str, Any]:
        total = self.exchange.total(account, currency)
        locked = self.exchange.locked(account, currency)
        return {
            "currency": currency,
            "balance": total,
            "equity": total,
            "margin_balance": total,
            "available_funds": total - locked,
            "available_withdrawal_funds": total - locked,
            "initial_margin": locked,
            "maintenance_margin": locked,
            "total_pl": 0,
            "session_rpl": 0,
            "session_upl": 0,
            "options_pl": 0,
            "futures_pl": 0,
            "options_value": 0,
            "delta_total": 0,
            "fee_balance": 0,
            "portfolio_margining_enabled": False,
            "cross_collateral_enabled": False,
            "margin_model": "segregated_sm",
            "limits": {"non_matching_engine": {"rate": 20, "burst": 100}},
        }

    def _get_account_summary(self, params: dict[str, str], credential: ApiCredential) -> Any:
        currency = params.get("currency")
        if currency not in ("ETH", "USDC"):
            raise _invalid_param("currency", "wrong format")
        return self._summary(credential.account, currency)

    def _get_account_summaries(self, params: dict[str, str], credential: ApiCredential) -> Any:
        return {
            "id": abs(hash(credential.account)) % 1_000_000,
            "username": credential.account,
            "type": "main",
            "system_name": credential.account,
            "summaries": [self._summary(credential.account, c) for c in ("ETH", "USDC")],
        }

    def _trades_by_order(self, params: dict[str, str], credential: ApiCredential) -> Any:
        order = self.exchange.order(credential.account, self._parse_order_id(params))
        return [self._trade_json(order, t) for t in order.trades]

    def _trades_by_instrument(self, params: dict[str, str], credential: ApiCredential) -> Any:
        market = self._market_param(params)
        trades = []
        for trade in self.exchange.trades(credential.account, market.symbol):
            for order_id in (trade.maker_order_id, trade.taker_order_id):
                order = self.exchange.find_order(order_id)
                if order is not None and order.account == credential.account:
                    trades.append(self._trade_json(order, trade))
        return {"trades": trades, "has_more": False}


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
