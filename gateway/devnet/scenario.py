"""The hybrid trade, end to end: what `isthmus demo` shows a person and the e2e test proves.

Two traders with their own keys and wallets: A signs an iron condor (four option legs) and a
spot buy, B signs the opposite condor; a DeFi protocol, with its API key, submits a third
trader's signed spot sell that the router splits between A's bid on the internal book and the
Uniswap pool. The engine matches, the pool leg becomes a swap, and one settlement transaction
settles every leg atomically; the auditor's verification passes; every wallet's balances and
option positions equal what the gateway's fills say, to the token unit.

Every party speaks to the gateway through `isthmus_client`, as its users do. The traders'
wallet apps are `AsyncIsthmus` instances with the trader's `Signer`: a session by Sign-In with
Ethereum, and each order's EIP-712 payload built from the order itself, checked against what
the gateway would have it sign, and signed locally. The protocol's is an `AsyncIsthmus` with
its `ApiKey` (HMAC-signed requests); it submits the body its user signed with her own key.
The operator's token serves only the market maker's quotes, the protocol's key and the reads
the checks make. Each run is deterministic given its `run` label (client order ids, nonces
and deadline are all given to the client), so a run repeated after a crash resubmits the
very same signed orders: the gateway answers them idempotently instead of trading twice.

Where the gateway also trades on a centralized exchange with the operator's inventory wallet
configured, the smart orders can fill partly there (the smart sell, and the protocol's smart
buy when the run has one: `smart_buy`): that part trades with the inventory on chain
(`inventory_moves` says what the inventory then moves), and the exchange execution hedges it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from types import TracebackType
from typing import Any

import httpx
from isthmus_client import (
    ApiKey,
    ApiKeyInfo,
    AsyncIsthmus,
    IsthmusError,
    NonceStore,
    OperatorToken,
    Order,
    Signer,
)
from isthmus_client.strategies import iron_condor
from web3 import Web3

from gateway.chain.onchain_orders import OnchainOrders
from gateway.domain.instruments import InstrumentCatalogue

EXPIRY = "20270326"
# as A writes it: long the body, short the wings (a long, or reverse, iron condor)
CONDOR = iron_condor("WETH", EXPIRY, 2500, 2800, 3200, 3500)
CONDOR_LEGS: tuple[tuple[str, str], ...] = tuple((leg.instrument, leg.side) for leg in CONDOR)
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

    def signer(self) -> Signer:
        """The trader's key as the client holds it: it signs for the trader's wallet."""
        return Signer.from_key(self.private_key, self.wallet)


class ScenarioFailed(RuntimeError):
    """A step of the scenario failed: the gateway refused it, or could not be reached."""


@contextmanager
def _step(what: str) -> Iterator[None]:
    try:
        yield
    except IsthmusError as error:
        raise ScenarioFailed(f"{what}: {error}") from error


@dataclass
class ScenarioOrders:
    """The orders of one run, as the API last reported them (its JSON)."""

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
    """One run of the scenario against the gateway at `url` (through `transport`, e.g. an
    in-process ASGI app, when given). Use it as an async context manager, or `aclose()` it:
    it holds one client per party.

    `catalogue` and `tokens` are what the checks read the chain with (option positions by
    their on-chain ids); the clients learn the chain from the gateway (`GET /v1/chain`)."""

    def __init__(
        self,
        url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        operator_token: str,
        participants: Participants,
        catalogue: InstrumentCatalogue,
        tokens: Mapping[str, str],
        run: str = "demo",
        deadline: int,
        nonce_base: int = 1,
        spot_sell: tuple[str, str] = SPOT_SELL,
        smart_buy: tuple[str, str] | None = None,
    ) -> None:
        self.url = url
        self.transport = transport
        self.people = participants
        self.onchain = OnchainOrders(catalogue, dict(tokens))
        self.run = run
        self.deadline = deadline
        self.nonce_base = nonce_base
        self.spot_sell = spot_sell  # (quantity, worst price) of the protocol's sell
        self.smart_buy = smart_buy  # the same for its buy after the sell, if it makes one
        self.orders = ScenarioOrders()
        self.operator = self._client(OperatorToken(operator_token))
        # the traders' wallet apps: each signs in with its key and signs its orders locally
        self.apps = {t.name: self._client(t.signer()) for t in (participants.a, participants.b)}
        self.protocol: AsyncIsthmus | None = None  # once the operator has issued its key

    def _client(self, credential: OperatorToken | ApiKey | Signer) -> AsyncIsthmus:
        # nonces are given with every order (`nonce_base + n`): nothing is kept on disk
        return AsyncIsthmus(
            self.url,
            credential,
            transport=self.transport,
            nonces=NonceStore(None),
            check_typed_data=True,
        )

    async def __aenter__(self) -> Scenario:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in (self.operator, *self.apps.values(), self.protocol):
            if client is not None:
                await client.aclose()

    def _signed(self, n: int, name: str) -> dict[str, Any]:
        """What makes a run's order the same every time: its id, nonce and deadline."""
        return {
            "client_order_id": f"{self.run}-{name}",
            "nonce": self.nonce_base + n,
            "deadline": self.deadline,
        }

    async def quote_legs(self, market_maker: str) -> None:
        """The market maker rests its quotes on the legs (the operator's own account)."""
        with _step("the market maker's quotes"):
            for instrument, (bid, ask) in LEG_QUOTES.items():
                for side, price in (("buy", bid), ("sell", ask)):
                    await self.operator.place_order(
                        instrument,
                        side,
                        "10",
                        price=price,
                        account=market_maker,
                        client_order_id=f"mm-{instrument}-{side}",
                        sign=False,
                    )

    async def sign_in_traders(self) -> None:
        """Sign-In with Ethereum: each trader's session for its own accounts (the client
        would sign in on its first request anyway)."""
        with _step("sign-in"):
            for app in self.apps.values():
                await app.sign_in()

    async def issue_protocol_key(self) -> ApiKeyInfo:
        with _step("the protocol's API key"):
            key = await self.operator.create_api_key(
                role="protocol",
                scopes=("quote", "trade", "read"),
                accounts=(self.people.c.wallet,),
                label=f"defi protocol ({self.run})",
            )
        assert key.secret is not None, "a new key's secret comes with its creation"
        if self.protocol is not None:
            await self.protocol.aclose()
        self.protocol = self._client(ApiKey(key.key_id, key.secret))
        return key

    async def submit_condors(self) -> None:
        a, b = self.people.a, self.people.b
        with _step("the condors"):
            condor_a = await self.apps[a.name].place_strategy(
                CONDOR, "buy", "1", price=CONDOR_PRICE, **self._signed(1, "condor-a")
            )
            self.orders.condor_a = condor_a.raw
            condor_b = await self.apps[b.name].place_strategy(
                CONDOR, "sell", "1", price=CONDOR_PRICE, **self._signed(2, "condor-b")
            )
            self.orders.condor_b = condor_b.raw

    async def submit_spot_bid(self) -> None:
        quantity, price = SPOT_BID
        with _step("the spot bid"):
            bid = await self.apps[self.people.a.name].place_order(
                SPOT, "buy", quantity, price=price, **self._signed(3, "spot-bid")
            )
        self.orders.spot_bid = bid.raw

    async def submit_spot_sell(self) -> None:
        quantity, price = self.spot_sell
        sell = await self._protocol_smart_order("spot-sell", 4, "sell", quantity, price)
        self.orders.spot_sell = sell.raw

    async def submit_smart_buy(self) -> None:
        """The protocol's trader signs a smart buy too (when the run has one): nothing rests
        on the internal book's ask side, so it routes to the exchange and the pool."""
        if self.smart_buy is None:
            return
        quantity, price = self.smart_buy
        buy = await self._protocol_smart_order("smart-buy", 5, "buy", quantity, price)
        self.orders.smart_buy = buy.raw

    async def _protocol_smart_order(
        self, label: str, n: int, side: str, quantity: str, price: str
    ) -> Order:
        """Trader c's smart IOC order: c signs it with her own key, the protocol submits the
        signed body with its API key."""
        assert self.protocol is not None, "issue the protocol's key first"
        with _step(f"the protocol's {label}"):
            body = await self.protocol.sign_order(
                SPOT,
                side,
                quantity,
                price=price,
                route="smart",
                time_in_force="ioc",
                signer=self.people.c.signer(),
                **self._signed(n, label),
            )
            return await self.protocol.submit(body)

    async def fills(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        with _step("the fills"):
            for order_id in self.orders.ids().values():
                found += [fill.raw for fill in await self.operator.fills(order_id)]
        return found

    async def refresh(self) -> None:
        with _step("the orders"):
            for name, order_id in self.orders.ids().items():
                setattr(self.orders, name, (await self.operator.get_order(order_id)).raw)


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
    onchain = scenario.onchain
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
