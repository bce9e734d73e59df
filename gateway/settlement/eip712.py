"""EIP-712 encoding, hashing and signing of Isthmus orders and strategies.

Implements exactly the types fixed in ``docs/onchain-types.md``:

    EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
    Order(bytes32 instrument,bool is_buy,uint256 amount,uint256 limit_price,uint256 nonce,
          uint64 deadline)
    Leg(bytes32 instrument,bool is_buy,uint256 ratio)
    Strategy(Leg[] legs,uint256 amount,int256 limit_net_price,uint256 nonce,uint64 deadline)

with ``name = "Isthmus"``, ``version = "1"`` and ``verifyingContract`` = the trader's
``MarginWallet``. The struct hashing (``encodeType`` / ``encodeData`` / ``hashStruct``) is
implemented here directly; ``eth_account.messages.encode_typed_data`` is only used in tests as
an independent cross-check.

Signatures are 65 bytes ``r || s || v`` with ``s`` in the lower half of the curve order
(EIP-2) and ``v`` in {27, 28}, by the wallet's owner or one of its trading keys. A contract
owner (e.g. a Safe) signs the same digest its own way, checked through EIP-1271
(:mod:`gateway.chain.safe` for a Safe).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from eth_abi import encode as abi_encode
from eth_keys.datatypes import PrivateKey, Signature
from eth_utils import keccak, to_checksum_address

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_TYPE",
    "DOMAIN_TYPEHASH",
    "DOMAIN_VERSION",
    "KIND_OPTION",
    "KIND_SPOT",
    "LEG_TYPE",
    "LEG_TYPEHASH",
    "ORDER_TYPE",
    "ORDER_TYPEHASH",
    "SECP256K1_N",
    "STRATEGY_TYPE",
    "STRATEGY_TYPEHASH",
    "Leg",
    "Order",
    "SignatureError",
    "Strategy",
    "domain_separator",
    "hash_leg_struct",
    "hash_order_struct",
    "hash_strategy_struct",
    "instrument_id",
    "legs_of",
    "option_instrument_id",
    "order_digest",
    "order_from_message",
    "order_typed_data",
    "recover_digest_signer",
    "recover_signer",
    "recover_strategy_signer",
    "series_id",
    "sign_digest",
    "sign_order",
    "sign_strategy",
    "split_signature",
    "spot_instrument_id",
    "strategy_digest",
    "strategy_from_message",
    "strategy_typed_data",
    "typed_data",
]

DOMAIN_NAME: Final = "Isthmus"
DOMAIN_VERSION: Final = "1"

DOMAIN_TYPE: Final = (
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ORDER_TYPE: Final = (
    "Order(bytes32 instrument,bool is_buy,uint256 amount,uint256 limit_price,"
    "uint256 nonce,uint64 deadline)"
)
LEG_TYPE: Final = "Leg(bytes32 instrument,bool is_buy,uint256 ratio)"
# encodeType of a struct appends the referenced struct types, sorted by name.
STRATEGY_TYPE: Final = (
    "Strategy(Leg[] legs,uint256 amount,int256 limit_net_price,uint256 nonce,uint64 deadline)"
    + LEG_TYPE
)

DOMAIN_TYPEHASH: Final = keccak(text=DOMAIN_TYPE)
ORDER_TYPEHASH: Final = keccak(text=ORDER_TYPE)
LEG_TYPEHASH: Final = keccak(text=LEG_TYPE)
STRATEGY_TYPEHASH: Final = keccak(text=STRATEGY_TYPE)

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

KIND_SPOT: Final = 0
KIND_OPTION: Final = 1

_UINT256_MAX: Final = 2**256 - 1
_UINT64_MAX: Final = 2**64 - 1
_INT256_MIN: Final = -(2**255)
_INT256_MAX: Final = 2**255 - 1


class SignatureError(ValueError):
    """A signature is malformed, has a high ``s`` or an invalid ``v``."""


def _check_bytes32(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes, got {value!r}")


def _check_uint(name: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} out of range: {value}")


def _check_bool(name: str, value: bool) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Order:
    """``Order(bytes32 instrument,bool is_buy,uint256 amount,uint256 limit_price,uint256 nonce,
    uint64 deadline)``."""

    instrument: bytes
    is_buy: bool
    amount: int
    limit_price: int
    nonce: int
    deadline: int

    def __post_init__(self) -> None:
        _check_bytes32("instrument", self.instrument)
        _check_bool("is_buy", self.is_buy)
        _check_uint("amount", self.amount, _UINT256_MAX)
        _check_uint("limit_price", self.limit_price, _UINT256_MAX)
        _check_uint("nonce", self.nonce, _UINT256_MAX)
        _check_uint("deadline", self.deadline, _UINT64_MAX)

    def as_tuple(self) -> tuple[bytes, bool, int, int, int, int]:
        """The ABI tuple in field order (for contract calls)."""
        return (
            self.instrument,
            self.is_buy,
            self.amount,
            self.limit_price,
            self.nonce,
            self.deadline,
        )


@dataclass(frozen=True, slots=True)
class Leg:
    """``Leg(bytes32 instrument,bool is_buy,uint256 ratio)``."""

    instrument: bytes
    is_buy: bool
    ratio: int

    def __post_init__(self) -> None:
        _check_bytes32("instrument", self.instrument)
        _check_bool("is_buy", self.is_buy)
        _check_uint("ratio", self.ratio, _UINT256_MAX)

    def as_tuple(self) -> tuple[bytes, bool, int]:
        return (self.instrument, self.is_buy, self.ratio)


@dataclass(frozen=True, slots=True)
class Strategy:
    """``Strategy(Leg[] legs,uint256 amount,int256 limit_net_price,uint256 nonce,uint64 deadline)``.

    ``limit_net_price`` is signed: positive is the maximum net debit per unit of strategy,
    negative the minimum net credit.
    """

    legs: tuple[Leg, ...]
    amount: int
    limit_net_price: int
    nonce: int
    deadline: int

    def __post_init__(self) -> None:
        if not isinstance(self.legs, tuple):
            # Accept any sequence but store an immutable tuple.
            object.__setattr__(self, "legs", tuple(self.legs))
        for leg in self.legs:
            if not isinstance(leg, Leg):
                raise TypeError(f"legs must be Leg instances, got {type(leg).__name__}")
        _check_uint("amount", self.amount, _UINT256_MAX)
        if isinstance(self.limit_net_price, bool) or not isinstance(self.limit_net_price, int):
            raise TypeError("limit_net_price must be an int")
        if not _INT256_MIN <= self.limit_net_price <= _INT256_MAX:
            raise ValueError(f"limit_net_price out of int256 range: {self.limit_net_price}")
        _check_uint("nonce", self.nonce, _UINT256_MAX)
        _check_uint("deadline", self.deadline, _UINT64_MAX)

    def as_tuple(
        self,
    ) -> tuple[list[tuple[bytes, bool, int]], int, int, int, int]:
        """The ABI tuple in field order (for contract calls)."""
        return (
            [leg.as_tuple() for leg in self.legs],
            self.amount,
            self.limit_net_price,
            self.nonce,
            self.deadline,
        )


# ---------------------------------------------------------------------------
# Instruments
# ---------------------------------------------------------------------------


def instrument_id(
    kind: int, base: str, quote: str, strike: int, expiry: int, is_call: bool
) -> bytes:
    """``keccak256(abi.encode(uint8 kind, address base, address quote, uint256 strike,
    uint64 expiry, bool is_call))``."""
    _check_uint("kind", kind, 255)
    _check_uint("strike", strike, _UINT256_MAX)
    _check_uint("expiry", expiry, _UINT64_MAX)
    _check_bool("is_call", is_call)
    return _instrument_id(kind, base, quote, strike, expiry, is_call)


# kept: every signed order and every settlement item names its instrument by this hash
# (checked above on every call: 1 == True, so the cache would answer for an invalid bool)
@lru_cache(maxsize=4096)
def _instrument_id(
    kind: int, base: str, quote: str, strike: int, expiry: int, is_call: bool
) -> bytes:
    return keccak(
        abi_encode(
            ["uint8", "address", "address", "uint256", "uint64", "bool"],
            [kind, to_checksum_address(base), to_checksum_address(quote), strike, expiry, is_call],
        )
    )


def series_id(underlying: str, quote: str, expiry: int) -> bytes:
    """One options series: ``keccak256(abi.encode(address underlying, address quote,
    uint64 expiry))``, the first argument of ``Settlement.settle_expiry(series, round_id)``:
    the series settles at the round at expiry of the feed it bound when listed (see
    :mod:`gateway.chain.expiry`), never at a price the caller supplies."""
    _check_uint("expiry", expiry, _UINT64_MAX)
    return keccak(
        abi_encode(
            ["address", "address", "uint64"],
            [to_checksum_address(underlying), to_checksum_address(quote), expiry],
        )
    )


def spot_instrument_id(base: str, quote: str) -> bytes:
    return instrument_id(KIND_SPOT, base, quote, 0, 0, False)


def option_instrument_id(
    underlying: str, quote: str, strike: int, expiry: int, is_call: bool
) -> bytes:
    return instrument_id(KIND_OPTION, underlying, quote, strike, expiry, is_call)


# ---------------------------------------------------------------------------
# Hashing
# ---------------------------------------------------------------------------


def domain_separator(chain_id: int, wallet: str) -> bytes:
    """``hashStruct(EIP712Domain)`` for the given chain and trader ``MarginWallet``."""
    _check_uint("chain_id", chain_id, _UINT256_MAX)
    return _domain_separator(chain_id, wallet)


# kept: every signed order's digest needs its wallet's (56 of a digest's 89 µs here);
# checked above on every call, not only on a miss
@lru_cache(maxsize=4096)
def _domain_separator(chain_id: int, wallet: str) -> bytes:
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                DOMAIN_TYPEHASH,
                keccak(text=DOMAIN_NAME),
                keccak(text=DOMAIN_VERSION),
                chain_id,
                to_checksum_address(wallet),
            ],
        )
    )


def hash_order_struct(order: Order) -> bytes:
    """``hashStruct(Order)``: its static fields are one word each, so they are written as
    words (a third of `abi_encode`'s time, on every signed order's intake)."""
    return keccak(
        b"".join(
            (
                ORDER_TYPEHASH,
                order.instrument,
                _word(int(order.is_buy)),
                _word(order.amount),
                _word(order.limit_price),
                _word(order.nonce),
                _word(order.deadline),
            )
        )
    )


def _word(value: int) -> bytes:
    """An unsigned value `__post_init__` checked, as one ABI word."""
    return value.to_bytes(32, "big")


def hash_leg_struct(leg: Leg) -> bytes:
    """``hashStruct(Leg)``."""
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "bool", "uint256"],
            [LEG_TYPEHASH, leg.instrument, leg.is_buy, leg.ratio],
        )
    )


def hash_strategy_struct(strategy: Strategy) -> bytes:
    """``hashStruct(Strategy)``; the ``Leg[]`` member is ``keccak(concat(hashStruct(leg_i)))``."""
    legs_hash = keccak(b"".join(hash_leg_struct(leg) for leg in strategy.legs))
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "uint256", "int256", "uint256", "uint64"],
            [
                STRATEGY_TYPEHASH,
                legs_hash,
                strategy.amount,
                strategy.limit_net_price,
                strategy.nonce,
                strategy.deadline,
            ],
        )
    )


def _digest(domain: bytes, struct_hash: bytes) -> bytes:
    return keccak(b"\x19\x01" + domain + struct_hash)


def order_digest(order: Order, chain_id: int, wallet: str) -> bytes:
    """The full EIP-712 digest ``keccak(0x1901 || domainSeparator || hashStruct(order))``."""
    return _digest(domain_separator(chain_id, wallet), hash_order_struct(order))


def strategy_digest(strategy: Strategy, chain_id: int, wallet: str) -> bytes:
    """The full EIP-712 digest of a strategy."""
    return _digest(domain_separator(chain_id, wallet), hash_strategy_struct(strategy))


# ---------------------------------------------------------------------------
# Signing and recovery
# ---------------------------------------------------------------------------


def _private_key(private_key: bytes | str) -> PrivateKey:
    if isinstance(private_key, str):
        hex_key = private_key[2:] if private_key.startswith(("0x", "0X")) else private_key
        raw = bytes.fromhex(hex_key)
    else:
        raw = bytes(private_key)
    return PrivateKey(raw)


def sign_digest(digest: bytes, private_key: bytes | str) -> bytes:
    """Sign a 32-byte digest: 65 bytes ``r || s || v``, low ``s``, ``v`` in {27, 28}."""
    _check_bytes32("digest", digest)
    sig = _private_key(private_key).sign_msg_hash(digest)
    r, s, recovery = int(sig.r), int(sig.s), int(sig.v)
    if s > SECP256K1_N // 2:  # normalise to low-s (EIP-2); flips the recovery id
        s = SECP256K1_N - s
        recovery ^= 1
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + recovery])


def sign_order(order: Order, private_key: bytes | str, chain_id: int, wallet: str) -> bytes:
    return sign_digest(order_digest(order, chain_id, wallet), private_key)


def sign_strategy(
    strategy: Strategy, private_key: bytes | str, chain_id: int, wallet: str
) -> bytes:
    return sign_digest(strategy_digest(strategy, chain_id, wallet), private_key)


def split_signature(signature: bytes) -> tuple[int, int, int]:
    """Split and validate a 65-byte ``r || s || v`` signature into ``(r, s, v)``.

    Raises :class:`SignatureError` unless the signature is in the exact form the contracts
    accept: ``0 < r < n``, ``0 < s <= n/2``, ``v`` in {27, 28}.
    """
    if not isinstance(signature, bytes | bytearray) or len(signature) != 65:
        raise SignatureError("signature must be 65 bytes r || s || v")
    r = int.from_bytes(signature[0:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise SignatureError(f"v must be 27 or 28, got {v}")
    if not 0 < r < SECP256K1_N:
        raise SignatureError("r out of range")
    if not 0 < s <= SECP256K1_N // 2:
        raise SignatureError("s must be in the lower half order (EIP-2)")
    return r, s, v


def recover_digest_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address that signed ``digest`` (strict low-s, v in {27, 28})."""
    return str(to_checksum_address(recover_digest_address(digest, signature)))


def recover_digest_address(digest: bytes, signature: bytes) -> str:
    """The same address in lower case: a third less work (no checksum's second hash), for
    intake, which only compares it."""
    _check_bytes32("digest", digest)
    r, s, v = split_signature(signature)
    sig = Signature(vrs=(v - 27, r, s))
    return "0x" + sig.recover_public_key_from_msg_hash(digest).to_canonical_address().hex()


def recover_signer(order: Order, signature: bytes, chain_id: int, wallet: str) -> str:
    """The address that signed ``order`` for ``wallet`` on ``chain_id``."""
    return recover_digest_signer(order_digest(order, chain_id, wallet), signature)


def recover_strategy_signer(
    strategy: Strategy, signature: bytes, chain_id: int, wallet: str
) -> str:
    return recover_digest_signer(strategy_digest(strategy, chain_id, wallet), signature)


# ---------------------------------------------------------------------------
# eth_signTypedData_v4 payloads
# ---------------------------------------------------------------------------

_DOMAIN_FIELDS: Final = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_ORDER_FIELDS: Final = [
    {"name": "instrument", "type": "bytes32"},
    {"name": "is_buy", "type": "bool"},
    {"name": "amount", "type": "uint256"},
    {"name": "limit_price", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint64"},
]
_LEG_FIELDS: Final = [
    {"name": "instrument", "type": "bytes32"},
    {"name": "is_buy", "type": "bool"},
    {"name": "ratio", "type": "uint256"},
]
_STRATEGY_FIELDS: Final = [
    {"name": "legs", "type": "Leg[]"},
    {"name": "amount", "type": "uint256"},
    {"name": "limit_net_price", "type": "int256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint64"},
]


def _domain_json(chain_id: int, wallet: str) -> dict[str, Any]:
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": to_checksum_address(wallet),
    }


def _leg_json(leg: Leg) -> dict[str, Any]:
    return {
        "instrument": "0x" + leg.instrument.hex(),
        "is_buy": leg.is_buy,
        "ratio": str(leg.ratio),
    }


def order_typed_data(order: Order, chain_id: int, wallet: str) -> dict[str, Any]:
    """The ``eth_signTypedData_v4`` JSON payload for an order.

    Integers are decimal strings (JSON numbers lose precision above 2**53); ``bytes32`` are
    0x-prefixed hex.
    """
    return {
        "types": {"EIP712Domain": list(_DOMAIN_FIELDS), "Order": list(_ORDER_FIELDS)},
        "primaryType": "Order",
        "domain": _domain_json(chain_id, wallet),
        "message": {
            "instrument": "0x" + order.instrument.hex(),
            "is_buy": order.is_buy,
            "amount": str(order.amount),
            "limit_price": str(order.limit_price),
            "nonce": str(order.nonce),
            "deadline": str(order.deadline),
        },
    }


def strategy_typed_data(strategy: Strategy, chain_id: int, wallet: str) -> dict[str, Any]:
    """The ``eth_signTypedData_v4`` JSON payload for a strategy."""
    return {
        "types": {
            "EIP712Domain": list(_DOMAIN_FIELDS),
            "Strategy": list(_STRATEGY_FIELDS),
            "Leg": list(_LEG_FIELDS),
        },
        "primaryType": "Strategy",
        "domain": _domain_json(chain_id, wallet),
        "message": {
            "legs": [_leg_json(leg) for leg in strategy.legs],
            "amount": str(strategy.amount),
            "limit_net_price": str(strategy.limit_net_price),
            "nonce": str(strategy.nonce),
            "deadline": str(strategy.deadline),
        },
    }


def typed_data(item: Order | Strategy, chain_id: int, wallet: str) -> dict[str, Any]:
    """The ``eth_signTypedData_v4`` JSON payload for an order or a strategy."""
    if isinstance(item, Order):
        return order_typed_data(item, chain_id, wallet)
    if isinstance(item, Strategy):
        return strategy_typed_data(item, chain_id, wallet)
    raise TypeError(f"expected Order or Strategy, got {type(item).__name__}")


def _int_field(message: Mapping[str, Any], name: str) -> int:
    value = message[name]
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        return int(text, 16) if text.lower().startswith(("0x", "-0x")) else int(text, 10)
    raise TypeError(f"{name} must be an integer or a decimal/hex string")


def _bytes32_field(message: Mapping[str, Any], name: str) -> bytes:
    value = message[name]
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return bytes.fromhex(value[2:])
    raise TypeError(f"{name} must be 0x-prefixed hex")


def _bool_field(message: Mapping[str, Any], name: str) -> bool:
    value = message[name]
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a JSON boolean")
    return value


def order_from_message(message: Mapping[str, Any]) -> Order:
    """Parse the ``message`` of an ``eth_signTypedData_v4`` Order payload (the inverse of
    :func:`order_typed_data`; integers may be JSON numbers, decimal or 0x-hex strings)."""
    return Order(
        instrument=_bytes32_field(message, "instrument"),
        is_buy=_bool_field(message, "is_buy"),
        amount=_int_field(message, "amount"),
        limit_price=_int_field(message, "limit_price"),
        nonce=_int_field(message, "nonce"),
        deadline=_int_field(message, "deadline"),
    )


def strategy_from_message(message: Mapping[str, Any]) -> Strategy:
    """Parse the ``message`` of an ``eth_signTypedData_v4`` Strategy payload."""
    legs = tuple(
        Leg(
            instrument=_bytes32_field(leg, "instrument"),
            is_buy=_bool_field(leg, "is_buy"),
            ratio=_int_field(leg, "ratio"),
        )
        for leg in message["legs"]
    )
    return Strategy(
        legs=legs,
        amount=_int_field(message, "amount"),
        limit_net_price=_int_field(message, "limit_net_price"),
        nonce=_int_field(message, "nonce"),
        deadline=_int_field(message, "deadline"),
    )


def legs_of(pairs: Sequence[tuple[bytes, bool, int]]) -> tuple[Leg, ...]:
    """Build legs from ``(instrument, is_buy, ratio)`` tuples."""
    return tuple(Leg(instrument, is_buy, ratio) for instrument, is_buy, ratio in pairs)
