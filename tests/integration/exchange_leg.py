"""What the integration tests with an exchange leg share: a simulated Binance served in the
test process (the gateway reaches it over HTTP with the real ccxt class), the gateway's
configuration for it and for the operator's inventory wallet, the operator's exchange
account as the exchange itself records it, and waiting for settlement on the stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import websockets
from web3 import Web3

from gateway.chain.deploy import Deployment
from gateway.devnet.exchange_sim.binance import SPOT_SYMBOL, BinanceSim
from gateway.devnet.exchange_sim.history import HistoryConfig
from gateway.devnet.exchange_sim.matching import SimOrder
from gateway.devnet.exchange_sim.server import SimServer
from gateway.domain.venue_child import VenueChild
from gateway.settlement.auditor import AuditReport, verify
from gateway.store import venue_orders
from gateway.store.database import create_database_engine
from tests.operator_access import operator_headers

BINANCE_KEY_ENV, BINANCE_SECRET_ENV = "ISTHMUS_TEST_BINANCE_KEY", "ISTHMUS_TEST_BINANCE_SECRET"
HEDGE_KEY, HEDGE_SECRET = "operator-hedge-key", "operator-hedge-secret"
SETTLER_KEY_ENV, INVENTORY_KEY_ENV = "ISTHMUS_TEST_SETTLER_KEY", "ISTHMUS_TEST_INVENTORY_KEY"
# the gateway under test may place as many orders as the runs need
FAST_LIMITS = {
    "ISTHMUS_RISK_ORDERS_PER_SECOND": "10000",
    "ISTHMUS_RISK_ORDER_BURST": "10000",
    "ISTHMUS_RATE_LIMIT_PER_SECOND": "10000",
    "ISTHMUS_RATE_LIMIT_BURST": "10000",
}


@dataclass
class Exchange:
    """A simulated Binance and the operator's account on it (the inventory's hedges)."""

    sim: BinanceSim
    server: SimServer
    account: str

    @property
    def url(self) -> str:
        return self.server.url

    def balances(self) -> dict[str, Decimal]:
        with self.sim.lock:
            return {a: self.sim.exchange.total(self.account, a) for a in ("ETH", "USDC")}

    def orders(self) -> list[SimOrder]:
        """Every order of the operator's account that traded, as the exchange holds it."""
        with self.sim.lock:
            ids = {
                t.taker_order_id if t.taker_account == self.account else t.maker_order_id
                for t in self.sim.exchange.trades(self.account, SPOT_SYMBOL)
            }
            return [self.sim.exchange.order(self.account, i) for i in sorted(ids)]

    def stop(self) -> None:
        self.server.stop()


def start_binance(
    *,
    seed: int,
    eth: Decimal,
    usdc: Decimal,
    levels: int = 10,
    level_size: Decimal = Decimal("0.5"),
) -> Exchange:
    sim = BinanceSim(
        seed=seed,
        start_mid=Decimal("3000.00"),
        devnet_account=False,
        history=HistoryConfig(days=0),
        levels=levels,
        level_size=level_size,
    )
    account = sim.add_account(HEDGE_KEY, HEDGE_SECRET, {"ETH": eth, "USDC": usdc})
    return Exchange(sim, SimServer(sim.app).start(), account)


def gateway_env(settler_key: str, inventory_key: str) -> dict[str, str]:
    return {
        SETTLER_KEY_ENV: settler_key,
        INVENTORY_KEY_ENV: inventory_key,
        BINANCE_KEY_ENV: HEDGE_KEY,
        BINANCE_SECRET_ENV: HEDGE_SECRET,
        **FAST_LIMITS,
    }


def chain_toml(rpc_url: str, d: Deployment, inventory_wallet: str) -> str:
    """Settlement on chain, with the operator's inventory taking signed orders' exchange
    fills."""
    return (
        f'[chain]\nrpc_url = "{rpc_url}"\nsettlement = "{d.settlement}"\n'
        f'operator_key_env = "{SETTLER_KEY_ENV}"\n'
        f'inventory_wallet = "{inventory_wallet}"\ninventory_key_env = "{INVENTORY_KEY_ENV}"\n'
        f'tokens = {{ WETH = "{d.weth}", USDC = "{d.usdc}" }}\n'
    )


def binance_toml(url: str) -> str:
    return (
        '[[venues]]\nkind = "ccxt"\nname = "binance"\nexchange = "binance"\n'
        f'api_key_env = "{BINANCE_KEY_ENV}"\nsecret_env = "{BINANCE_SECRET_ENV}"\n'
        f'url_host = "{url}"\nsymbols = {{ "WETH/USDC" = "ETH/USDC" }}\n'
        'maker_bps = "8"\ntaker_bps = "10"\npoll_interval = 0.05\n'
    )


def pool_toml(d: Deployment) -> str:
    return (
        f'[[venues]]\nkind = "uniswap_v2"\nname = "uniswap"\nrouter = "{d.uniswap_router}"\n'
        "poll_interval = 0.05\n"
        f'[[venues.pools]]\ninstrument = "WETH/USDC"\npair = "{d.weth_usdc_pair}"\n'
        f'base = "{d.weth}"\nquote = "{d.usdc}"\nbase_decimals = 18\nquote_decimals = 6\n'
    )


def stored_children(database_url: str, order_ids: Iterable[str]) -> list[VenueChild]:
    """The venue children the gateway's database holds (read while it is down or up)."""
    engine = create_database_engine(database_url, for_writes=False)
    try:
        with engine.connect() as connection:
            return [c for o in order_ids for c in venue_orders.children_of(connection, o)]
    finally:
        engine.dispose()


async def wait_for_book(
    http: httpx.AsyncClient, venues: set[str], *, on_binance: Decimal, timeout: float = 60
) -> None:
    """Until the gateway's consolidated WETH/USDC book has every venue in `venues` live and
    at least `on_binance` on each side on Binance (an HTTP poll for a state, with a
    deadline)."""
    deadline = time.monotonic() + timeout
    book: dict[str, Any] = {}

    def binance(side: str) -> Decimal:
        shares = (s for level in book[side] for s in level["venues"] if s["venue"] == "binance")
        return sum((Decimal(s["quantity"]) for s in shares), Decimal(0))

    while time.monotonic() < deadline:
        response = await http.get("/v1/book/WETH/USDC", headers=operator_headers())
        if response.status_code == 200:
            book = response.json()
            live = venues <= set(book["live_venues"])
            if live and min(binance("bids"), binance("asks")) >= on_binance:
                return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the gateway's book never showed {sorted(venues)} live: {book}")


async def orders_of(http: httpx.AsyncClient, account: str) -> list[dict[str, Any]]:
    """Every order of `account` (the operator reads them all, page by page)."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"account": account, "limit": 500}
        if cursor is not None:
            params["cursor"] = cursor
        response = await http.get("/v1/orders", params=params, headers=operator_headers())
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def all_settled(
    url: str, accounts: Iterable[str], order_ids: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Every fill of the given orders (default: every order of `accounts`), once each has
    settled. Listens for settlements first, then reads where every fill stands and waits on
    the stream for the ones still pending (no polling)."""
    wallets = [a.lower() for a in accounts]
    async with (
        websockets.connect(
            url.replace("http", "ws") + "/v1/stream", additional_headers=operator_headers()
        ) as socket,
        # idle connections dropped before uvicorn's 5 s keep-alive closes them: a request
        # sent on one the server is closing fails ("disconnected without a response"), and the
        # wait on the stream between the two reads can be longer than that
        httpx.AsyncClient(
            base_url=url,
            timeout=30,
            headers=operator_headers(),
            limits=httpx.Limits(keepalive_expiry=1.0),
        ) as http,
    ):
        assert json.loads(await socket.recv())["type"] == "subscribed"
        await socket.send(json.dumps({"op": "subscribe", "accounts": wallets}))
        while json.loads(await socket.recv())["type"] != "subscribed":
            pass  # events sent before our subscription took effect
        if order_ids is None:
            order_ids = [o["id"] for a in wallets for o in await orders_of(http, a)]
        ids = list(order_ids)

        async def read() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            for order_id in ids:
                response = await http.get(f"/v1/orders/{order_id}/fills")
                assert response.status_code == 200, response.text
                found += response.json()
            return found

        fills = await read()
        waiting = {f["id"] for f in fills if f["settlement"] != "settled"}
        while waiting:
            event = json.loads(await socket.recv())
            if event["type"] == "fill.settled":
                waiting.discard(event["fill"]["id"])
        return await read()


def audited(
    w3: Web3, settlement: str, database_url: str, tokens: dict[str, Any], stored_fills: int
) -> AuditReport:
    """The auditor over the chain and the store: every check passes, and the chain holds
    exactly the `stored_fills` fills (one to one)."""
    engine = create_database_engine(database_url, for_writes=False)
    try:
        report = verify(w3, settlement, engine=engine, tokens=tokens)
    finally:
        engine.dispose()
    assert report.ok, "\n".join(
        [*report.problems, *(p for f in report.fills if not f.ok for p in f.problems)]
    )
    assert len(report.fills) == stored_fills  # the chain holds exactly the stored fills
    return report
