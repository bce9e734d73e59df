"""EIP-712 orders and strategies, built here from the order's own fields and signed with a key
that never leaves the process.

The types are those of the gateway's `docs/onchain-types.md`:

    EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
    Order(bytes32 instrument,bool is_buy,uint256 amount,uint256 limit_price,uint256 nonce,
          uint64 deadline)
    Leg(bytes32 instrument,bool is_buy,uint256 ratio)
    Strategy(Leg[] legs,uint256 amount,int256 limit_net_price,uint256 nonce,uint64 deadline)

with name "Isthmus", version "1" and the trader's MarginWallet as `verifyingContract`. Amounts
are token units: `amount` in the base token's, prices in the quote token's per whole base unit.
A strategy has no side on chain: a sell flips every leg and the sign of the net price.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
KIND_SPOT = 0
KIND_OPTION = 1

_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_ORDER_FIELDS = [
    {"name": "instrument", "type": "bytes32"},
    {"name": "is_buy", "type": "bool"},
    {"name": "amount", "type": "uint256"},
    {"name": "limit_price", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint64"},
]
_LEG_FIELDS = [
    {"name": "instrument", "type": "bytes32"},
    {"name": "is_buy", "type": "bool"},
    {"name": "ratio", "type": "uint256"},
]
_STRATEGY_FIELDS = [
    {"name": "legs", "type": "Leg[]"},
    {"name": "amount", "type": "uint256"},
    {"name": "limit_net_price", "type": "int256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint64"},
]


class NotSignable(ValueError):
    """The order cannot be expressed on chain as given (a perpetual, a market order, a
    quantity finer than the token's decimals)."""


def token_units(value: Decimal, decimals: int, what: str) -> int:
    """`value` in a token's smallest units, exactly (never rounded)."""
    value = Decimal(value)
    # a context wide enough for every digit: the default 28 would round a large amount
    exact = Context(prec=max(28, len(value.as_tuple().digits) + abs(decimals) + 2))
    scaled = value.scaleb(decimals, context=exact)
    if scaled != scaled.to_integral_value(context=exact):
        raise NotSignable(f"{what} {value} is finer than the token's {decimals} decimals")
    return int(scaled)


def instrument_id(
    kind: int, base: str, quote: str, strike: int = 0, expiry: int = 0, is_call: bool = False
) -> bytes:
    """`keccak256(abi.encode(uint8 kind, address base, address quote, uint256 strike,
    uint64 expiry, bool is_call))`, as `Settlement.instrument_id` computes it."""
    return keccak(
        abi_encode(
            ["uint8", "address", "address", "uint256", "uint64", "bool"],
            [kind, to_checksum_address(base), to_checksum_address(quote), strike, expiry, is_call],
        )
    )


@dataclass(frozen=True, slots=True)
class Token:
    symbol: str
    address: str
    decimals: int


@dataclass(frozen=True, slots=True)
class Instrument:
    """One listed instrument (`GET /v1/instruments`), with what the chain knows it by."""

    symbol: str
    kind: str  # spot | option | perpetual
    base: str
    quote: str
    base_decimals: int
    quote_decimals: int
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal
    strike: Decimal | None = None
    expiry: datetime | None = None
    right: str | None = None  # call | put

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Instrument:
        expiry = data.get("expiry")
        return cls(
            symbol=data["symbol"],
            kind=data["kind"],
            base=data["base"],
            quote=data["quote"],
            base_decimals=int(data["base_decimals"]),
            quote_decimals=int(data["quote_decimals"]),
            tick_size=Decimal(data["tick_size"]),
            lot_size=Decimal(data["lot_size"]),
            min_quantity=Decimal(data["min_quantity"]),
            strike=None if data.get("strike") is None else Decimal(data["strike"]),
            expiry=None
            if expiry is None
            else datetime.fromisoformat(str(expiry).replace("Z", "+00:00")),
            right=data.get("right"),
        )

    def onchain_id(self, tokens: Mapping[str, Token]) -> bytes:
        """The instrument's id on chain, from the tokens' addresses (check it is registered
        on the Settlement contract before trusting it: `IsthmusWallet.check_instrument`)."""
        try:
            base, quote = tokens[self.base], tokens[self.quote]
        except KeyError as missing:
            raise NotSignable(f"{self.symbol}: token {missing} is not on chain") from None
        if self.kind == "spot":
            return instrument_id(KIND_SPOT, base.address, quote.address)
        if self.kind == "option" and self.strike is not None and self.expiry is not None:
            return instrument_id(
                KIND_OPTION,
                base.address,
                quote.address,
                token_units(self.strike, quote.decimals, "strike"),
                int(self.expiry.timestamp()),
                self.right == "call",
            )
        raise NotSignable(f"{self.symbol} does not trade on chain")


@dataclass(frozen=True, slots=True)
class OrderMessage:
    instrument: bytes
    is_buy: bool
    amount: int
    limit_price: int
    nonce: int
    deadline: int


@dataclass(frozen=True, slots=True)
class LegMessage:
    instrument: bytes
    is_buy: bool
    ratio: int


@dataclass(frozen=True, slots=True)
class StrategyMessage:
    legs: tuple[LegMessage, ...]
    amount: int
    limit_net_price: int
    nonce: int
    deadline: int


def _is_buy(side: str) -> bool:
    """`side` on chain; anything but "buy" or "sell" is refused, not signed as a sell."""
    if side not in ("buy", "sell"):
        raise NotSignable(f"side {side!r} is neither 'buy' nor 'sell'")
    return side == "buy"


def order_message(
    instrument: Instrument,
    tokens: Mapping[str, Token],
    *,
    side: str,
    quantity: Decimal,
    price: Decimal,
    nonce: int,
    deadline: int,
) -> OrderMessage:
    """The `Order` an owner signs for a limit order on one instrument."""
    return OrderMessage(
        instrument.onchain_id(tokens),
        _is_buy(side),
        token_units(quantity, instrument.base_decimals, "quantity"),
        token_units(price, instrument.quote_decimals, "price"),
        nonce,
        deadline,
    )


def strategy_message(
    legs: Sequence[tuple[Instrument, str, int]],
    tokens: Mapping[str, Token],
    *,
    side: str,
    quantity: Decimal,
    price: Decimal,
    nonce: int,
    deadline: int,
) -> StrategyMessage:
    """The `Strategy`: legs as written for a buy, flipped for a sell, the net price too."""
    if len(legs) < 2:
        raise NotSignable("a strategy has two legs or more")
    first = legs[0][0]
    flip = not _is_buy(side)
    net = token_units(price, first.quote_decimals, "price")
    return StrategyMessage(
        tuple(
            LegMessage(instrument.onchain_id(tokens), _is_buy(leg_side) != flip, ratio)
            for instrument, leg_side, ratio in legs
        ),
        token_units(quantity, first.base_decimals, "quantity"),
        -net if flip else net,
        nonce,
        deadline,
    )


def _domain(chain_id: int, wallet: str) -> dict[str, Any]:
    return {
        "name": "Isthmus",
        "version": "1",
        "chainId": chain_id,
        "verifyingContract": to_checksum_address(wallet),
    }


def typed_data(
    message: OrderMessage | StrategyMessage, chain_id: int, wallet: str
) -> dict[str, Any]:
    """The `eth_signTypedData_v4` payload: integers as decimal strings, bytes32 as 0x-hex."""
    if isinstance(message, OrderMessage):
        return {
            "types": {"EIP712Domain": list(_DOMAIN_FIELDS), "Order": list(_ORDER_FIELDS)},
            "primaryType": "Order",
            "domain": _domain(chain_id, wallet),
            "message": {
                "instrument": "0x" + message.instrument.hex(),
                "is_buy": message.is_buy,
                "amount": str(message.amount),
                "limit_price": str(message.limit_price),
                "nonce": str(message.nonce),
                "deadline": str(message.deadline),
            },
        }
    return {
        "types": {
            "EIP712Domain": list(_DOMAIN_FIELDS),
            "Strategy": list(_STRATEGY_FIELDS),
            "Leg": list(_LEG_FIELDS),
        },
        "primaryType": "Strategy",
        "domain": _domain(chain_id, wallet),
        "message": {
            "legs": [
                {
                    "instrument": "0x" + leg.instrument.hex(),
                    "is_buy": leg.is_buy,
                    "ratio": str(leg.ratio),
                }
                for leg in message.legs
            ],
            "amount": str(message.amount),
            "limit_net_price": str(message.limit_net_price),
            "nonce": str(message.nonce),
            "deadline": str(message.deadline),
        },
    }


def _canonical(value: Any) -> Any:
    """Typed data compared by meaning: numbers and numeric strings alike, hex case-blind."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if value.startswith(("0x", "0X")):
            return value.lower()
        return value
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def typed_data_differences(
    local: Mapping[str, Any], remote: Mapping[str, Any], path: str = ""
) -> list[str]:
    """Where `remote` (what the gateway asks to sign) differs from `local`; empty: the same."""
    a, b = _canonical(local), _canonical(remote)
    found: list[str] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{where}.{key}" if where else key)
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for index, (p, q) in enumerate(zip(x, y, strict=True)):
                walk(p, q, f"{where}[{index}]")
        elif x != y:
            found.append(f"{where}: expected {x!r}, the gateway sent {y!r}")

    walk(a, b, path)
    return found


def sign_typed_data(account: LocalAccount, data: Mapping[str, Any]) -> bytes:
    """65 bytes r || s || v (v in {27, 28}, s in the lower half: what the wallet accepts),
    the same bytes as a node's `eth_signTypedData_v4`."""
    signed = account.sign_message(encode_typed_data(full_message=dict(data)))
    r, s, v = int(signed.r), int(signed.s), int(signed.v)
    if v < 27:
        v += 27
    if s > SECP256K1_N // 2:  # EIP-2: the contracts refuse a high s
        s = SECP256K1_N - s
        v = 55 - v  # 27 <-> 28
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def digest(data: Mapping[str, Any]) -> bytes:
    """The EIP-712 digest of a typed-data payload (what `MarginWallet.cancel` takes)."""
    signable = encode_typed_data(full_message=dict(data))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)
