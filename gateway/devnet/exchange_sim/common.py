"""Pieces both simulated exchanges share: clock, request-weight limiter, decimal formatting."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from gateway.devnet.exchange_sim.market_maker import MarketMaker
from gateway.devnet.exchange_sim.matching import SimExchange


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_decimal_param(text: str | None) -> Decimal | None:
    """A decimal request parameter, or None when absent, not a number or not finite."""
    if text is None or text == "":
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def fmt(value: Decimal, places: int = 8) -> str:
    """Fixed-point text with `places` decimals, as Binance prints amounts."""
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def plain(value: Decimal) -> str:
    """Shortest exact text without exponent."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


@dataclass
class WeightLimiter:
    """Request weight per key in fixed one-minute windows (Binance's REQUEST_WEIGHT)."""

    limit: int
    window_ms: int = 60_000
    key_limits: dict[str, int] = field(default_factory=dict)  # per-key overrides
    _used: dict[tuple[str, int], int] = field(default_factory=dict)

    def limit_for(self, key: str) -> int:
        return self.key_limits.get(key, self.limit)

    def charge(self, key: str, weight: int, now_ms: int) -> tuple[bool, int]:
        """Add `weight` for `key`; returns (allowed, used in this window)."""
        window = now_ms // self.window_ms
        used = self._used.get((key, window), 0) + weight
        self._used[(key, window)] = used
        if len(self._used) > 10_000:
            self._used = {k: v for k, v in self._used.items() if k[1] >= window}
        return used <= self.limit_for(key), used

    def reset(self) -> None:
        self._used.clear()


@dataclass(frozen=True, slots=True)
class ApiCredential:
    api_key: str
    secret: str
    account: str


class SimVenueBase:
    """State every simulated venue has: the engine, its market maker, a lock and a clock.

    The lock serializes engine access between the server's event loop and other threads
    (tests stepping the market maker, the background stepper)."""

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self.clock_offset_ms = 0
        self._base_clock = clock_ms or wall_clock_ms
        self.exchange = SimExchange(self.now_ms)
        self.lock = threading.RLock()
        self.credentials: dict[str, ApiCredential] = {}
        self.market_maker: MarketMaker | None = None
        self._stepper: asyncio.Task[None] | None = None

    def now_ms(self) -> int:
        return self._base_clock() + self.clock_offset_ms

    def add_account(
        self, api_key: str, secret: str, balances: dict[str, Decimal], account: str | None = None
    ) -> str:
        name = account or api_key
        with self.lock:
            self.credentials[api_key] = ApiCredential(api_key, secret, name)
            for asset, amount in balances.items():
                self.exchange.deposit(name, asset, amount)
        return name

    def on_book_change(self) -> None:
        """Called with the lock held after anything that may have changed a book."""

    def step(self, n: int = 1) -> None:
        """Advance the market maker `n` steps (no-op without one)."""
        if self.market_maker is None:
            return
        with self.lock:
            for _ in range(n):
                self.market_maker.step()
                self.on_book_change()

    def requote(self) -> None:
        """The market maker quotes again around the same mid (its taken levels come back)."""
        if self.market_maker is None:
            return
        with self.lock:
            self.market_maker.refresh()
            self.on_book_change()

    def start_stepping(self, interval: float) -> None:
        """Step the market maker every `interval` seconds on the running event loop."""
        if self._stepper is not None:
            return

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                self.step()

        self._stepper = asyncio.get_running_loop().create_task(loop())

    async def stop_stepping(self) -> None:
        if self._stepper is None:
            return
        self._stepper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stepper
        self._stepper = None
