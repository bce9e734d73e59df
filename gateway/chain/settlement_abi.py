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
          StrategyItem[] strategies, Swap[] swaps, bytes[] signatures)

and for ``Settlement.settle_pairs(PairBatch)``, spot trades between two wallets::

    PairSide(address wallet, uint256 amount, uint256 limit_price, uint256 nonce,
             uint64 deadline, Signature sig)
    Pair(uint256 instrument, uint256 fill, uint256 quote, PairSide buy, PairSide sell)
    PairBatch(uint256 batch_id, Instrument[] instruments, Pair[] pairs, bytes[] signatures)

:meth:`BatchBuilder.build_pairs` lays a batch out so when it can; :func:`pair_batch_orders`
reads a decoded ``PairBatch`` back as the ``OrderItem`` s it stands for (the auditors).

Instruments travel once per batch as preimages; items refer to them by index (the contract
hashes each preimage once and rebuilds the signed ``Order`` / ``Strategy`` from the item).

Signatures: a 65-byte ``r || s || v`` is an ECDSA signature (the owner EOA's or a trading
key's) and travels in the item as ``Signature(v, r, s)``. Any other length is a contract
owner's EIP-1271 signature (e.g. a Safe's owners' signatures, 65 bytes each): it travels once
in ``Batch.signatures`` and the item carries ``Signature(0, index, 0)``. A threshold-1 Safe's
signature is also 65 bytes and the bytes alone cannot say which it is: settlement items go by
length (such a Safe trades through a trading key), the builders take ``contract_signature=True``.

The wallet-level structs (``OrderFill``, ``StrategyFill``) are built by :func:`order_fill` and
:func:`strategy_fill`. This is encoding only; choosing fills and prices is the batch builder's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from web3 import Web3

from gateway.chain.signatures import MAX_CONTRACT_SIGNATURE_LENGTH, is_contract_length
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
MAX_CONTRACT_SIGS: Final = 8  # distinct EIP-1271 signatures per batch (Batch.signatures)
# bytes of one contract signature (8 Safe owners' 65-byte signatures), and of an ECDSA one
MAX_CONTRACT_SIG: Final = MAX_CONTRACT_SIGNATURE_LENGTH
CONTRACT_SIG_V: Final = 0  # Signature.v of an item whose signature is in Batch.signatures


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


SignatureTuple = tuple[int, bytes, bytes]
_ZERO32: Final = bytes(32)


def is_contract_signature(signature: bytes, contract_signature: bool | None = None) -> bool:
    """Whether ``signature`` is checked through EIP-1271 on a contract owner rather than
    recovered (ECDSA): as stated, else by length (anything but 65 bytes)."""
    if contract_signature is not None:
        return contract_signature
    return is_contract_length(signature)


def _check_contract_signature(signature: bytes) -> bytes:
    if not 0 < len(signature) <= MAX_CONTRACT_SIG:
        raise ValueError(f"a contract signature is 1..{MAX_CONTRACT_SIG} bytes")
    return bytes(signature)


def signature_struct(signature: bytes) -> SignatureTuple:
    """``Signature(uint8 v, bytes32 r, bytes32 s)`` from 65 bytes ``r || s || v``."""
    r, s, v = split_signature(signature)
    return (v, r.to_bytes(32, "big"), s.to_bytes(32, "big"))


def contract_signature_struct(index: int) -> SignatureTuple:
    """The item signature that points at ``Batch.signatures[index]``."""
    return (CONTRACT_SIG_V, index.to_bytes(32, "big"), _ZERO32)


def item_signature(sig: Any, signatures: Sequence[bytes]) -> tuple[bytes, bool]:
    """Decode an item's ``Signature`` (a tuple or web3's decoded dict) against the batch's
    ``signatures``: (the signature bytes, whether it is a contract owner's EIP-1271 one).
    Raises ``ValueError`` for an index the batch does not have (the contract reverts)."""
    if isinstance(sig, dict):
        v, r, s = int(sig["v"]), bytes(sig["r"]), bytes(sig["s"])
    else:
        v, r, s = int(sig[0]), bytes(sig[1]), bytes(sig[2])
    if v != CONTRACT_SIG_V:
        return r + s + bytes([v]), False
    index = int.from_bytes(r, "big")
    if index >= len(signatures):
        raise ValueError(f"signature index {index} outside the batch's {len(signatures)}")
    return bytes(signatures[index]), True


def wallet_signature_args(
    signature: bytes, contract_signature: bool | None = None
) -> tuple[SignatureTuple, bytes]:
    """(``sig``, contract signature bytes): an ECDSA signature as the item's ``sig`` and no
    bytes, or, for a contract owner, ``sig`` = (0, 0, 0) and the whole signature, which the
    Settlement holds while it applies the item and the wallet reads back from it
    (``Settlement.contract_signature()``)."""
    if is_contract_signature(signature, contract_signature):
        return (CONTRACT_SIG_V, _ZERO32, _ZERO32), _check_contract_signature(signature)
    return signature_struct(signature), b""


def order_fill(
    order: Order,
    signature: bytes,
    fill: int,
    quote: int,
    *,
    contract_signature: bool | None = None,
) -> tuple[Any, ...]:
    """``OrderFill(Order order, Signature sig, uint256 fill, uint256 quote)`` (wallet level;
    a contract owner's signature travels in the batch, see :func:`wallet_signature_args`)."""
    sig, _ = wallet_signature_args(signature, contract_signature)
    return (order.as_tuple(), sig, fill, quote)


def strategy_fill(
    strategy: Strategy,
    signature: bytes,
    fill: int,
    quotes: Sequence[int],
    *,
    contract_signature: bool | None = None,
) -> tuple[Any, ...]:
    """``StrategyFill(Strategy strategy, Signature sig, uint256 fill, uint256[] quotes)``."""
    sig, _ = wallet_signature_args(signature, contract_signature)
    return (strategy.as_tuple(), sig, fill, list(quotes))


def _pair_side(item: tuple[Any, ...]) -> tuple[Any, ...]:
    wallet, _, _, amount, limit_price, nonce, deadline, sig, _, _ = item
    return (wallet, amount, limit_price, nonce, deadline, sig)


def pair_batch_orders(pairs: Sequence[Any]) -> list[dict[str, Any]]:
    """The ``OrderItem`` s (as web3 decodes them: dicts by field name) that the decoded
    ``PairBatch.pairs`` stand for, in the order ``settle_pairs`` applies them: each pair's
    buy, then its sell."""
    out = []
    for pair in pairs:
        for side, is_buy in ((pair["buy"], True), (pair["sell"], False)):
            out.append(
                {
                    "wallet": side["wallet"],
                    "instrument": pair["instrument"],
                    "is_buy": is_buy,
                    "amount": side["amount"],
                    "limit_price": side["limit_price"],
                    "nonce": side["nonce"],
                    "deadline": side["deadline"],
                    "sig": side["sig"],
                    "fill": pair["fill"],
                    "quote": pair["quote"],
                }
            )
    return out


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
        self._signatures: list[bytes] = []
        self._signature_index: dict[bytes, int] = {}  # identical bytes travel once

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

    def _signature(self, signature: bytes, contract_signature: bool | None) -> SignatureTuple:
        """The item's ``Signature``; a contract owner's is interned in ``Batch.signatures``."""
        if not is_contract_signature(signature, contract_signature):
            return signature_struct(signature)
        raw = _check_contract_signature(signature)
        index = self._signature_index.get(raw)
        if index is None:
            if len(self._signatures) >= MAX_CONTRACT_SIGS:
                raise ValueError(f"a batch carries at most {MAX_CONTRACT_SIGS} contract signatures")
            index = self._signature_index[raw] = len(self._signatures)
            self._signatures.append(raw)
        return contract_signature_struct(index)

    def add_order(
        self,
        wallet: str,
        instrument: Instrument,
        order: Order,
        signature: bytes,
        fill: int,
        quote: int,
        *,
        contract_signature: bool | None = None,
    ) -> BatchBuilder:
        if instrument.id != order.instrument:
            raise ValueError("instrument preimage does not hash to the order's instrument")
        if len(self._orders) >= MAX_ORDERS:
            raise ValueError(f"a batch holds at most {MAX_ORDERS} orders")
        sig = self._signature(signature, contract_signature)
        self._orders.append(
            (
                self._wallet(wallet),
                self._intern(instrument),
                order.is_buy,
                order.amount,
                order.limit_price,
                order.nonce,
                order.deadline,
                sig,
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
        *,
        contract_signature: bool | None = None,
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
        sig = self._signature(signature, contract_signature)
        self._strategies.append(
            (
                self._wallet(wallet),
                legs,
                strategy.amount,
                strategy.limit_net_price,
                strategy.nonce,
                strategy.deadline,
                sig,
                fill,
            )
        )
        return self

    def add_swap(self, pair: str, token_in: str, amount_in: int, amount_out: int) -> BatchBuilder:
        if len(self._swaps) >= MAX_SWAPS:
            raise ValueError(f"a batch holds at most {MAX_SWAPS} swaps")
        self._swaps.append(swap(pair, token_in, amount_in, amount_out))
        return self

    def build_pairs(self) -> tuple[Any, ...] | None:
        """The ``PairBatch`` tuple for ``Settlement.settle_pairs`` when the batch is orders
        only and orders ``2k`` and ``2k + 1`` are the two sides of one spot trade for every
        ``k`` (same instrument, opposite sides, same fill and quote, two wallets); else None.
        Each pair lists its buy side first, whatever the order of the two items."""
        orders = self._orders
        if not orders or len(orders) % 2 or self._strategies or self._swaps:
            return None
        pairs = []
        for a, b in zip(orders[::2], orders[1::2], strict=True):
            # (wallet, instrument, is_buy, amount, limit_price, nonce, deadline, sig, fill, quote)
            if (
                a[1] != b[1]
                or self._instruments[a[1]].kind != KIND_SPOT
                or a[2] == b[2]
                or a[8:] != b[8:]
                or a[0] == b[0]
            ):
                return None
            buy, sell = (a, b) if a[2] else (b, a)
            pairs.append((a[1], a[8], a[9], _pair_side(buy), _pair_side(sell)))
        return (
            self.batch_id,
            [ins.as_tuple() for ins in self._instruments],
            pairs,
            list(self._signatures),
        )

    def build(self) -> tuple[Any, ...]:
        """The ``Batch`` tuple for ``Settlement.settle``."""
        return (
            self.batch_id,
            [ins.as_tuple() for ins in self._instruments],
            list(self._orders),
            list(self._strategies),
            list(self._swaps),
            list(self._signatures),
        )
