"""ABI tuples for ``Settlement.settle(Batch)`` built from the EIP-712 types.

Mirrors the structs of ``contracts/Settlement.vy`` / ``contracts/lib/orders.vy``::

    Instrument(uint8 kind, address base, address quote, uint256 strike, uint64 expiry, bool is_call)
    Signature(uint8 v, bytes32 r, bytes32 s)
    OrderItem(address wallet, uint256 instrument, bool is_buy, uint256 amount,
              uint256 limit_price, uint256 nonce, uint64 deadline, Signature sig,
              uint256 fill, uint256 quote)
    LegItem(uint256 instrument, bool is_buy, uint256 ratio, uint256 quote)
    StrategyItem(address wallet, LegItem[] legs, uint256 amount, int256 limit_net_price,
                 uint256 nonce, uint64 deadline, Signature sig, uint256 fill)
    Swap(address pair, address token_in, uint256 amount_in, uint256 amount_out)
    Batch(uint256 batch_id, Instrument[] instruments, OrderItem[] orders,
          StrategyItem[] strategies, Swap[] swaps)

Instruments travel once per batch as preimages; items refer to them by index (the contract
hashes each preimage once and rebuilds the signed ``Order`` / ``Strategy`` from the item).
The wallet-level structs (``OrderFill``, ``StrategyFill``) are built by :func:`order_fill` and
:func:`strategy_fill`. This is encoding only; choosing fills and prices is the batch builder's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from web3 import Web3

from gateway.settlement.eip712 import (
    KIND_OPTION,
    KIND_SPOT,
    Order,
    Strategy,
    instrument_id,
    split_signature,
)

# Bounds of the contracts' dynamic arrays (contracts/lib/orders.vy, contracts/Settlement.vy).
MAX_LEGS: Final = 8
MIN_STRATEGY_LEGS: Final = 2  # MarginWallet.apply_strategy: "strategy needs two legs"
MAX_ORDERS: Final = 64
MAX_STRATEGIES: Final = 8
MAX_SWAPS: Final = 8
MAX_BATCH_INSTRUMENTS: Final = 16
MAX_WALLETS: Final = 72  # distinct wallets per batch
MAX_BATCH_TOKENS: Final = 16  # distinct tokens a batch can move (instruments and swap pairs)


@dataclass(frozen=True, slots=True)
class Instrument:
    """The preimage of an instrument id."""

    kind: int
    base: str
    quote: str
    strike: int = 0
    expiry: int = 0
    is_call: bool = False

    @classmethod
    def spot(cls, base: str, quote: str) -> Instrument:
        return cls(KIND_SPOT, base, quote)

    @classmethod
    def option(
        cls, underlying: str, quote: str, strike: int, expiry: int, is_call: bool
    ) -> Instrument:
        return cls(KIND_OPTION, underlying, quote, strike, expiry, is_call)

    @property
    def id(self) -> bytes:
        return instrument_id(
            self.kind, self.base, self.quote, self.strike, self.expiry, self.is_call
        )

    def as_tuple(self) -> tuple[int, str, str, int, int, bool]:
        return (
            self.kind,
            Web3.to_checksum_address(self.base),
            Web3.to_checksum_address(self.quote),
            self.strike,
            self.expiry,
            self.is_call,
        )


def quote_amount(amount: int, price: int, base_decimals: int) -> int:
    """Quote value of a fill: ``amount * price // 10**base_decimals`` (rounded down)."""
    value: int = amount * price // 10**base_decimals
    return value


def signature_struct(signature: bytes) -> tuple[int, bytes, bytes]:
    """``Signature(uint8 v, bytes32 r, bytes32 s)`` from 65 bytes ``r || s || v``."""
    r, s, v = split_signature(signature)
    return (v, r.to_bytes(32, "big"), s.to_bytes(32, "big"))


def order_fill(order: Order, signature: bytes, fill: int, quote: int) -> tuple[Any, ...]:
    """``OrderFill(Order order, Signature sig, uint256 fill, uint256 quote)`` (wallet level)."""
    return (order.as_tuple(), signature_struct(signature), fill, quote)


def strategy_fill(
    strategy: Strategy, signature: bytes, fill: int, quotes: Sequence[int]
) -> tuple[Any, ...]:
    """``StrategyFill(Strategy strategy, Signature sig, uint256 fill, uint256[] quotes)``."""
    return (strategy.as_tuple(), signature_struct(signature), fill, list(quotes))


def swap(pair: str, token_in: str, amount_in: int, amount_out: int) -> tuple[Any, ...]:
    return (
        Web3.to_checksum_address(pair),
        Web3.to_checksum_address(token_in),
        amount_in,
        amount_out,
    )


class BatchBuilder:
    """Collects signed fills into one ``Batch`` tuple, interning instrument preimages."""

    def __init__(self, batch_id: int) -> None:
        self.batch_id = batch_id
        self._instruments: list[Instrument] = []
        self._index: dict[bytes, int] = {}
        self._orders: list[tuple[Any, ...]] = []
        self._strategies: list[tuple[Any, ...]] = []
        self._swaps: list[tuple[Any, ...]] = []
        self._wallets: set[str] = set()

    def _wallet(self, wallet: str) -> str:
        address = Web3.to_checksum_address(wallet)
        if address not in self._wallets:
            if len(self._wallets) >= MAX_WALLETS:
                raise ValueError(f"a batch touches at most {MAX_WALLETS} wallets")
            self._wallets.add(address)
        return address

    def _intern(self, instrument: Instrument) -> int:
        key = instrument.id
        if key not in self._index:
            if len(self._instruments) >= MAX_BATCH_INSTRUMENTS:
                raise ValueError(f"a batch trades at most {MAX_BATCH_INSTRUMENTS} instruments")
            self._index[key] = len(self._instruments)
            self._instruments.append(instrument)
        return self._index[key]

    def add_order(
        self,
        wallet: str,
        instrument: Instrument,
        order: Order,
        signature: bytes,
        fill: int,
        quote: int,
    ) -> BatchBuilder:
        if instrument.id != order.instrument:
            raise ValueError("instrument preimage does not hash to the order's instrument")
        if len(self._orders) >= MAX_ORDERS:
            raise ValueError(f"a batch holds at most {MAX_ORDERS} orders")
        self._orders.append(
            (
                self._wallet(wallet),
                self._intern(instrument),
                order.is_buy,
                order.amount,
                order.limit_price,
                order.nonce,
                order.deadline,
                signature_struct(signature),
                fill,
                quote,
            )
        )
        return self

    def add_strategy(
        self,
        wallet: str,
        instruments: Sequence[Instrument],
        strategy: Strategy,
        signature: bytes,
        fill: int,
        quotes: Sequence[int],
    ) -> BatchBuilder:
        if not MIN_STRATEGY_LEGS <= len(strategy.legs) <= MAX_LEGS:
            raise ValueError(f"a strategy has {MIN_STRATEGY_LEGS}..{MAX_LEGS} legs")
        if len(instruments) != len(strategy.legs) or len(quotes) != len(strategy.legs):
            raise ValueError("one instrument and one quote per leg")
        if len(self._strategies) >= MAX_STRATEGIES:
            raise ValueError(f"a batch holds at most {MAX_STRATEGIES} strategies")
        legs = []
        for ins, leg, quote in zip(instruments, strategy.legs, quotes, strict=True):
            if ins.id != leg.instrument:
                raise ValueError("instrument preimage does not hash to the leg's instrument")
            legs.append((self._intern(ins), leg.is_buy, leg.ratio, quote))
        self._strategies.append(
            (
                self._wallet(wallet),
                legs,
                strategy.amount,
                strategy.limit_net_price,
                strategy.nonce,
                strategy.deadline,
                signature_struct(signature),
                fill,
            )
        )
        return self

    def add_swap(self, pair: str, token_in: str, amount_in: int, amount_out: int) -> BatchBuilder:
        if len(self._swaps) >= MAX_SWAPS:
            raise ValueError(f"a batch holds at most {MAX_SWAPS} swaps")
        self._swaps.append(swap(pair, token_in, amount_in, amount_out))
        return self

    def build(self) -> tuple[Any, ...]:
        """The ``Batch`` tuple for ``Settlement.settle``."""
        return (
            self.batch_id,
            [ins.as_tuple() for ins in self._instruments],
            list(self._orders),
            list(self._strategies),
            list(self._swaps),
        )
