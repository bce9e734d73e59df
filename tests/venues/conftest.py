"""Simulated exchanges on free loopback ports, and funded accounts on them.

The servers live for the whole session; each test gets its own API key (a fresh, funded
account) so balances it checks are its own. Tests that need a market of their own (a known
random-walk path) start a fresh simulator with `fresh_binance`."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

import pytest

from gateway.devnet.catalogue import devnet_catalogue
from gateway.devnet.exchange_sim.binance import BinanceSim
from gateway.devnet.exchange_sim.deribit import DeribitSim
from gateway.devnet.exchange_sim.server import SimServer
from gateway.devnet.exchange_sim.venues import binance_venue_config, deribit_venue_config
from gateway.venues.ccxt_venue import CcxtVenue

_ids = itertools.count(1)
T = TypeVar("T")


@dataclass
class RunningSim:
    sim: BinanceSim | DeribitSim
    server: SimServer

    @property
    def url(self) -> str:
        return self.server.url


@dataclass(frozen=True)
class Account:
    """An account on a simulator and the way to build a venue for it."""

    running: RunningSim
    api_key: str
    secret: str
    name: str

    def venue(
        self, *, api_key: str | None = None, secret: str | None = None, websocket: bool = False
    ) -> CcxtVenue:
        """A venue for this account; `websocket` streams books through ccxt.pro."""
        poll_interval = 0.05
        key = api_key if api_key is not None else self.api_key
        sec = secret if secret is not None else self.secret
        make_config = (
            binance_venue_config
            if isinstance(self.running.sim, BinanceSim)
            else deribit_venue_config
        )
        config = make_config(
            self.running.url,
            api_key=key,
            secret=sec,
            enable_rate_limit=False,
            poll_interval=poll_interval,
            websocket=websocket,
        )
        return CcxtVenue(config, catalogue=devnet_catalogue())


def with_venue(
    account: Account,
    scenario: Callable[[CcxtVenue], Awaitable[T]],
    api_key: str | None = None,
    secret: str | None = None,
) -> T:
    """Run `scenario` against a fresh venue for `account`, closing the venue afterwards."""

    async def main() -> T:
        venue = account.venue(api_key=api_key, secret=secret)
        try:
            return await scenario(venue)
        finally:
            await venue.close()

    return asyncio.run(main())


def _serve(sim: BinanceSim | DeribitSim) -> Iterator[RunningSim]:
    server = SimServer(sim.app).start()
    try:
        yield RunningSim(sim, server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def binance() -> Iterator[RunningSim]:
    yield from _serve(BinanceSim(seed=11))


@pytest.fixture(scope="session")
def deribit() -> Iterator[RunningSim]:
    yield from _serve(DeribitSim(seed=12))


@pytest.fixture
def fresh_binance() -> Iterator[RunningSim]:
    yield from _serve(BinanceSim(seed=5))


def open_account(running: RunningSim, balances: dict[str, Decimal]) -> Account:
    n = next(_ids)
    key, secret = f"test-key-{n}", f"test-secret-{n}"
    name = running.sim.add_account(key, secret, balances)
    return Account(running, key, secret, name)


@pytest.fixture
def binance_account(binance: RunningSim) -> Account:
    return open_account(binance, {"ETH": Decimal(10), "USDC": Decimal(100_000)})


@pytest.fixture
def deribit_account(deribit: RunningSim) -> Account:
    return open_account(deribit, {"ETH": Decimal(10), "USDC": Decimal(100_000)})


@pytest.fixture
def private_binance_account(fresh_binance: RunningSim) -> Account:
    """An account on a simulator of its own: for tests that trade through the gateway's
    router or algos, whose takes must not move the shared simulator's book under others."""
    return open_account(fresh_binance, {"ETH": Decimal(10), "USDC": Decimal(100_000)})


@pytest.fixture
def fresh_deribit() -> Iterator[RunningSim]:
    yield from _serve(DeribitSim(seed=6))


@pytest.fixture
def private_deribit_account(fresh_deribit: RunningSim) -> Account:
    """A Deribit account on a simulator of its own (see `private_binance_account`)."""
    return open_account(fresh_deribit, {"ETH": Decimal(10), "USDC": Decimal(100_000)})
