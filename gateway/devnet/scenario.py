"""The hybrid trade, end to end: what `isthmus demo` shows a person and the e2e test proves.

Two traders with their own keys and wallets: A signs an iron condor (four option legs) and a
spot buy, B signs the opposite condor; a DeFi protocol, with its API key, submits a third
trader's signed spot sell that the router splits between A's bid on the internal book and the
Uniswap pool. The engine matches, the pool leg becomes a swap, and one settlement transaction
settles every leg atomically; the auditor's verification passes; every wallet's balances and
option positions equal what the gateway's fills say, to the token unit.

The traders' keys sign here as their wallet apps would: the EIP-712 payload is built from the
order itself (never taken from the gateway) and signed locally. Every request is
authenticated as the caller it stands for: sessions (Sign-In with Ethereum) for the traders,
HMAC for the protocol, the operator's token only for the market maker's quotes and the key.
Each run is deterministic given its `run` label (client order ids, nonces, deadline), so a
run repeated after a crash resubmits the very same signed orders: the gateway answers them
idempotently instead of trading twice.

Where the gateway also trades on a centralized exchange with the operator's inventory wallet
configured, the smart orders can fill partly there (the smart sell, and the protocol's smart
buy when the run has one: `smart_buy`): that part trades with the inventory on chain
(`inventory_moves` says what the inventory then moves), and the exchange execution hedges it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
from web3 import Web3

from gateway.api.auth_siwe import SiweMessage, sign_siwe
from gateway.api.request_signing import sign_request
from gateway.api.schemas import OrderIn, StrategyIn
from gateway.chain.onchain_orders import OnchainOrders
from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.orders import OrderSignature
from gateway.settlement import eip712

EXPIRY = "20270326"
CONDOR_LEGS: tuple[tuple[str, str], ...] = (  # as A writes it: long the body, short the wings
    (f"WETH-{EXPIRY}-2500-P", "sell"),
    (f"WETH-{EXPIRY}-2800-P", "buy"),
    (f"WETH-{EXPIRY}-3200-C", "buy"),
    (f"WETH-{EXPIRY}-3500-C", "sell"),
)
# the market maker's two-sided quotes on each leg: only their mids matter (they split the
# condors' net price across the legs); they are wide, so the condors meet each other, not them
LEG_QUOTES: Mapping[str, tuple[str, str]] = {
    f"WETH-{EXPIRY}-2500-P": ("140", "160"),
    f"WETH-{EXPIRY}-2800-P": ("260", "280"),
    f"WETH-{EXPIRY}-3200-C": ("320", "340"),
    f"WETH-{EXPIRY}-3500-C": ("220", "240"),
}
CONDOR_PRICE = "220"  # = the legs' mids: -150 + 270 + 330 - 230
SPOT = "WETH/USDC"
SPOT_BID = ("1", "3010")  # A: quantity, limit
SPOT_SELL = ("3", "2900")  # the protocol's trader: quantity, worst price


@dataclass(frozen=True, slots=True)
class Trader:
    """A trader's key (held by their wallet app) and their MarginWallet."""

    name: str
    owner: str
    private_key: str
    wallet: str


Headers = Callable[[str, str, bytes], dict[str, str]]


def bearer(token: str) -> Headers:
    return lambda method, path, body: {"Authorization": f"Bearer {token}"}


def hmac_key(key_id: str, secret: str) -> Headers:
    def headers(method: str, path: str, body: bytes) -> dict[str, str]:
        return sign_request(key_id, secret, method, path, body, now_ms=time.time_ns() // 10**6)

    return headers


@dataclass
class Caller:
    """One authenticated party speaking to the API."""

    http: httpx.AsyncClient
    headers: Headers

    async def post(self, path: str, payload: Any) -> httpx.Response:
        body = json.dumps(payload).encode()
        return await self.http.post(
            path,
            content=body,
            headers={"content-type": "application/json", **self.headers("POST", path, body)},
        )

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path, headers=self.headers("GET", path, b""))


def _ok(response: httpx.Response, *statuses: int) -> Any:
    if response.status_code not in (statuses or (200, 201)):
        raise ScenarioFailed(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text}"
        )
    return response.json()


class ScenarioFailed(RuntimeError):
    pass


async def sign_in(http: httpx.AsyncClient, trader: Trader, chain_id: int) -> Caller:
    """Sign-In with Ethereum: the trader's session for its own accounts."""
    nonce = _ok(await http.get("/v1/auth/siwe/nonce"))["nonce"]
    now = datetime.now(UTC).replace(microsecond=0)
    message = SiweMessage(
        domain=http.base_url.netloc.decode(),
        address=Web3.to_checksum_address(trader.owner),
        uri=str(http.base_url),
        chain_id=chain_id,
        nonce=nonce,
        issued_at=now,
        statement="Sign in to Isthmus",
        expiration_time=now + timedelta(hours=1),
    )
    session = _ok(
        await http.post(
            "/v1/auth/siwe",
            json={"message": message.text(), "signature": sign_siwe(message, trader.private_key)},
        )
    )
    return Caller(http, bearer(session["token"]))


@dataclass
class WalletApp:
    """What a trader's wallet does with an order: build the EIP-712 payload from the order's
    own fields and sign it with the owner's key."""

    onchain: OnchainOrders
    chain_id: int

    def sign(self, trader: Trader, body: dict[str, Any], nonce: int, deadline: int) -> None:
        unsigned = OrderSignature(nonce, deadline, b"")
        if "legs" in body:
            spec = StrategyIn.model_validate(body).to_spec()
            signature = eip712.sign_strategy(
                self.onchain.strategy(spec, unsigned),
                trader.private_key,
                self.chain_id,
                trader.wallet,
            )
        else:
            spec = OrderIn.model_validate(body).to_spec()
            signature = eip712.sign_order(
                self.onchain.order(spec, unsigned), trader.private_key, self.chain_id, trader.wallet
            )
        body["signature"] = {
            "nonce": str(nonce),
            "deadline": deadline,
            "signature": "0x" + signature.hex(),
        }


@dataclass
class ScenarioOrders:
    """The orders of one run, as the API last reported them."""

    condor_a: dict[str, Any] = field(default_factory=dict)
    condor_b: dict[str, Any] = field(default_factory=dict)
    spot_bid: dict[str, Any] = field(default_factory=dict)
    spot_sell: dict[str, Any] = field(default_factory=dict)
    smart_buy: dict[str, Any] = field(default_factory=dict)

    def ids(self) -> dict[str, str]:
        return {
            name: order["id"]
            for name, order in (
                ("condor_a", self.condor_a),
                ("condor_b", self.condor_b),
                ("spot_bid", self.spot_bid),
                ("spot_sell", self.spot_sell),
                ("smart_buy", self.smart_buy),
            )
            if order
        }


@dataclass(frozen=True, slots=True)
class Participants:
    a: Trader
    b: Trader
    c: Trader  # the protocol's user


class Scenario:
    """One run of the scenario against a gateway reachable through `http`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        operator_token: str,
        participants: Participants,
        catalogue: InstrumentCatalogue,
        tokens: Mapping[str, str],
        chain_id: int,
        run: str = "demo",
        deadline: int,
        nonce_base: int = 1,
        spot_sell: tuple[str, str] = SPOT_SELL,
        smart_buy: tuple[str, str] | None = None,
    ) -> None:
        self.http = http
        self.operator = Caller(http, bearer(operator_token))
        self.people = participants
        self.wallet_app = WalletApp(OnchainOrders(catalogue, tokens), chain_id)
        self.chain_id = chain_id
        self.run = run
        self.deadline = deadline
        self.nonce_base = nonce_base
        self.spot_sell = spot_sell  # (quantity, worst price) of the protocol's sell
        self.smart_buy = smart_buy  # the same for its buy after the sell, if it makes one
        self.orders = ScenarioOrders()
        self.protocol: Caller | None = None
        self.sessions: dict[str, Caller] = {}

    def _body(self, trader: Trader, name: str, nonce: int, **fields: Any) -> dict[str, Any]:
        body = {"account": trader.wallet, "client_order_id": f"{self.run}-{name}", **fields}
        self.wallet_app.sign(trader, body, self.nonce_base + nonce, self.deadline)
        return body

    async def quote_legs(self, market_maker: str) -> None:
        """The market maker rests its quotes on the legs (the operator's own account)."""
        for instrument, (bid, ask) in LEG_QUOTES.items():
            for side, price in (("buy", bid), ("sell", ask)):
                _ok(
                    await self.operator.post(
                        "/v1/orders",
                        {
                            "account": market_maker,
                            "client_order_id": f"mm-{instrument}-{side}",
                            "instrument": instrument,
                            "side": side,
                            "quantity": "10",
                            "price": price,
                        },
                    ),
                    200,
                    201,
                )

    async def sign_in_traders(self) -> None:
        for trader in (self.people.a, self.people.b):
            self.sessions[trader.name] = await sign_in(self.http, trader, self.chain_id)

    async def issue_protocol_key(self) -> dict[str, Any]:
        key: dict[str, Any] = _ok(
            await self.operator.post(
                "/v1/api-keys",
                {
                    "role": "protocol",
                    "scopes": ["quote", "trade", "read"],
                    "accounts": [self.people.c.wallet],
                    "label": f"defi protocol ({self.run})",
                },
            )
        )
        self.protocol = Caller(self.http, hmac_key(key["key_id"], key["secret"]))
        return key

    def _legs(self) -> list[dict[str, Any]]:
        return [{"instrument": i, "side": s, "ratio": 1} for i, s in CONDOR_LEGS]

    async def submit_condors(self) -> None:
        a, b = self.people.a, self.people.b
        self.orders.condor_a = _ok(
            await self.sessions[a.name].post(
                "/v1/strategies",
                self._body(
                    a,
                    "condor-a",
                    1,
                    side="buy",
                    quantity="1",
                    price=CONDOR_PRICE,
                    legs=self._legs(),
                ),
            ),
            200,
            201,
        )
        self.orders.condor_b = _ok(
            await self.sessions[b.name].post(
                "/v1/strategies",
                self._body(
                    b,
                    "condor-b",
                    2,
                    side="sell",
                    quantity="1",
                    price=CONDOR_PRICE,
                    legs=self._legs(),
                ),
            ),
            200,
            201,
        )

    async def submit_spot_bid(self) -> None:
        a = self.people.a
        quantity, price = SPOT_BID
        self.orders.spot_bid = _ok(
            await self.sessions[a.name].post(
                "/v1/orders",
                self._body(
                    a, "spot-bid", 3, instrument=SPOT, side="buy", quantity=quantity, price=price
                ),
            ),
            200,
            201,
        )

    async def submit_spot_sell(self) -> None:
        quantity, price = self.spot_sell
        self.orders.spot_sell = await self._protocol_smart_order(
            "spot-sell", 4, "sell", quantity, price
        )

    async def submit_smart_buy(self) -> None:
        """The protocol's trader signs a smart buy too (when the run has one): nothing rests
        on the internal book's ask side, so it routes to the exchange and the pool."""
        if self.smart_buy is None:
            return
        quantity, price = self.smart_buy
        self.orders.smart_buy = await self._protocol_smart_order(
            "smart-buy", 5, "buy", quantity, price
        )

    async def _protocol_smart_order(
        self, label: str, nonce: int, side: str, quantity: str, price: str
    ) -> dict[str, Any]:
        """Trader c's signed smart IOC order, submitted by the protocol with its API key."""
        assert self.protocol is not None, "issue the protocol's key first"
        body = self._body(
            self.people.c,
            label,
            nonce,
            instrument=SPOT,
            side=side,
            quantity=quantity,
            price=price,
            route="smart",
            time_in_force="ioc",
        )
        placed: dict[str, Any] = _ok(await self.protocol.post("/v1/orders", body), 200, 201)
        return placed

    async def fills(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for order_id in self.orders.ids().values():
            found += _ok(await self.operator.get(f"/v1/orders/{order_id}/fills"))
        return found

    async def refresh(self) -> None:
        for name, order_id in self.orders.ids().items():
            setattr(self.orders, name, _ok(await self.operator.get(f"/v1/orders/{order_id}")))


def quote_units(fill: Mapping[str, Any], quote_decimals: int) -> int:
    """What a fill pays or receives in quote token units: price × quantity, rounded to the
    unit (a pool fill's price is the swap's exact ratio, so this gives its exact amount)."""
    exact = Decimal(fill["price"]) * Decimal(fill["quantity"]) * 10**quote_decimals
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def expected_changes(
    fills: Sequence[Mapping[str, Any]], catalogue: InstrumentCatalogue
) -> dict[str, dict[str, int]]:
    """Per wallet: token units (by symbol) and option positions (by instrument, in the
    instrument's base units) that the gateway's fills say moved."""
    moved: dict[str, dict[str, int]] = {}
    for fill in fills:
        instrument = catalogue.get(fill["instrument"])
        wallet = moved.setdefault(Web3.to_checksum_address(fill["account"]), {})
        sign = 1 if fill["side"] == "buy" else -1
        base_units = int(Decimal(fill["quantity"]) * 10**instrument.base.decimals)
        paid = quote_units(fill, instrument.quote.decimals)
        quote = instrument.quote.symbol
        wallet[quote] = wallet.get(quote, 0) - sign * paid
        key = instrument.base.symbol if instrument.kind.value == "spot" else instrument.symbol
        wallet[key] = wallet.get(key, 0) + sign * base_units
    return moved


def inventory_moves(
    fills: Sequence[Mapping[str, Any]], catalogue: InstrumentCatalogue, exchanges: Set[str]
) -> dict[str, int]:
    """What the operator's inventory wallet moves on chain for these (traders') fills: the
    mirror of every fill on one of the `exchanges`, whose other side the inventory took."""
    mirrored = [
        {**fill, "side": "sell" if fill["side"] == "buy" else "buy"}
        for fill in fills
        if fill["venue"] in exchanges
    ]
    moved: dict[str, int] = {}
    for changes in expected_changes(mirrored, catalogue).values():
        for key, units in changes.items():
            moved[key] = moved.get(key, 0) + units
    return moved


SettleOnce = Callable[[], Awaitable[Any]]


def wallet_holdings(
    w3: Web3,
    wallet: str,
    tokens: Mapping[str, str],
    onchain: OnchainOrders,
    options: tuple[str, ...],
) -> dict[str, int]:
    """What `wallet` holds on chain now: each token's balance and each option's position."""
    from gateway.chain import tokens as erc20
    from gateway.chain.artifacts import compile_contract
    from gateway.chain.transactions import bind

    held = {symbol: erc20.balance_of(w3, address, wallet) for symbol, address in tokens.items()}
    margin_wallet = bind(w3, compile_contract("MarginWallet"), wallet)
    for symbol in options:
        held[symbol] = int(margin_wallet.functions.position(onchain.preimage(symbol).id).call())
    return held


@dataclass(frozen=True, slots=True)
class WalletCheck:
    """One wallet: what the gateway's fills say moved and what the chain shows moved."""

    name: str
    wallet: str
    expected: dict[str, int]
    actual: dict[str, int]

    @property
    def ok(self) -> bool:
        keys = set(self.expected) | set(self.actual)
        return all(self.expected.get(k, 0) == self.actual.get(k, 0) for k in keys)


@dataclass
class ScenarioReport:
    orders: ScenarioOrders
    fills: list[dict[str, Any]]
    tx_hashes: set[str]
    wallets: list[WalletCheck]
    audit: dict[str, Any]

    @property
    def ok(self) -> bool:
        return (
            len(self.tx_hashes) == 1
            and all(f["settlement"] == "settled" for f in self.fills)
            and all(w.ok for w in self.wallets)
            and bool(self.audit.get("ok"))
        )


async def run_hybrid_trade(
    scenario: Scenario,
    *,
    w3: Web3,
    market_maker: str,
    settle: SettleOnce,
    audit: Callable[[], Awaitable[dict[str, Any]]],
    step: Callable[[str], None] = lambda text: None,
) -> ScenarioReport:
    """Run the whole scenario once; `settle` runs (or waits for) the settlement cycle,
    `audit` returns the auditor's verification as JSON."""
    onchain = scenario.wallet_app.onchain
    tokens = {"WETH": onchain.tokens["WETH"], "USDC": onchain.tokens["USDC"]}
    options = tuple(symbol for symbol, _ in CONDOR_LEGS)
    people = scenario.people
    before = {
        t.name: wallet_holdings(w3, t.wallet, tokens, onchain, options)
        for t in (people.a, people.b, people.c)
    }
    step("the market maker quotes the four legs on the internal book (their mids split nets)")
    await scenario.quote_legs(market_maker)
    step(f"{people.a.name} and {people.b.name} sign in with Ethereum (EIP-4361)")
    await scenario.sign_in_traders()
    step(f"{people.a.name} signs an iron condor, {people.b.name} the opposite one: they match")
    await scenario.submit_condors()
    step(f"{people.a.name} signs a spot bid; it rests on the internal book")
    await scenario.submit_spot_bid()
    step("the operator issues the DeFi protocol an API key (HMAC, scopes quote/trade/read)")
    await scenario.issue_protocol_key()
    step(
        f"the protocol submits {people.c.name}'s signed spot sell, routed smart: "
        f"{people.a.name}'s bid first, the rest to the Uniswap pool (a swap in the batch)"
    )
    await scenario.submit_spot_sell()
    step("the settlement service batches every fill and swap into one transaction")
    await settle()
    await scenario.refresh()
    fills = await scenario.fills()
    step("the auditor rebuilds every fill from the chain and checks it against the store")
    verification = await audit()
    catalogue = onchain.catalogue
    expected = expected_changes(fills, catalogue)
    checks = []
    for trader in (people.a, people.b, people.c):
        after = wallet_holdings(w3, trader.wallet, tokens, onchain, options)
        moved = {k: after[k] - before[trader.name][k] for k in after}
        checks.append(
            WalletCheck(
                trader.name,
                trader.wallet,
                {
                    k: v
                    for k, v in expected.get(Web3.to_checksum_address(trader.wallet), {}).items()
                },
                {k: v for k, v in moved.items() if v},
            )
        )
    return ScenarioReport(
        scenario.orders,
        fills,
        {f["tx_hash"] for f in fills if f.get("tx_hash")},
        checks,
        verification,
    )
