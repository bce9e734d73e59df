"""Trading keys: addresses a MarginWallet's owner authorises to sign orders within a scope.

The scope is the wallet's own rule (contracts/wallet/keys.vy), mirrored here so that an order
the wallet would refuse at settlement is refused at intake instead: the key must be active
(authorised and not past its expiry), allowed every instrument the order trades (all of them,
or each one on its allow-list), and the order's notional, in the same integers the wallet
computes, must not exceed the key's maximum. A key never withdraws or changes the wallet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gateway.domain.errors import DomainError

# max_notional meaning "no limit" (the wallet packs the limit into 128 bits)
NO_KEY_LIMIT: Final = (1 << 128) - 1


class TradingKeyRefused(DomainError):
    """403: the order is signed by a trading key of the wallet, but the key may not sign it.
    Subclasses say why; the wallet would revert the same order at settlement."""

    code = "key_refused"


class KeyRevoked(TradingKeyRefused):
    code = "key_revoked"


class KeyExpired(TradingKeyRefused):
    code = "key_expired"


class KeyScope(TradingKeyRefused):
    code = "key_scope"


class KeyMaxNotional(TradingKeyRefused):
    code = "key_max_notional"


@dataclass(frozen=True, slots=True)
class TradingKey:
    """`MarginWallet.trading_key(key)`: `active` is the chain's view at its latest block
    (expiry >= block.timestamp); an expiry of 0 means no record (never authorised, or
    revoked: revoking erases the record)."""

    expiry: int
    all_instruments: bool
    max_notional: int
    active: bool

    @property
    def exists(self) -> bool:
        return self.expiry != 0


def order_notional(amount: int, limit_price: int, base_decimals: int) -> int:
    """`amount * limit_price // 10**base_decimals`, as `MarginWallet.apply_order`."""
    unit: int = 10**base_decimals
    return amount * limit_price // unit


def strategy_notional(amount: int, limit_net_price: int, base_decimals: int) -> int:
    """`amount * |limit_net_price| // 10**base_decimals`, as `MarginWallet.apply_strategy`."""
    unit: int = 10**base_decimals
    return amount * abs(limit_net_price) // unit


def check_key_active(key: str, record: TradingKey) -> None:
    """Raise unless `record` is an active key: `KeyExpired` past its expiry, else
    `KeyRevoked`. The record alone cannot tell a revoked key from an address never
    authorised (revoking erases it): the caller refuses a signer that never was a key as an
    invalid signature before asking this."""
    if record.active:
        return
    if record.exists:
        raise KeyExpired(
            f"trading key {key} expired at {record.expiry} (unix seconds)", field="signature"
        )
    raise KeyRevoked(f"trading key {key} was revoked by the wallet's owner", field="signature")


def check_key_scope(
    key: str, record: TradingKey, allowed: Mapping[bytes, bool], notional: int
) -> None:
    """Raise why the active key `key` may not sign an order of `notional` quote units on the
    instruments of `allowed` (each with its `key_instrument_allowed` flag; the flags are not
    looked at when the key may trade every instrument)."""
    if not record.all_instruments:
        for instrument, ok in allowed.items():
            if not ok:
                raise KeyScope(
                    f"trading key {key} may not trade instrument 0x{instrument.hex()}",
                    field="signature",
                )
    if record.max_notional != NO_KEY_LIMIT and notional > record.max_notional:
        raise KeyMaxNotional(
            f"the order's notional {notional} is over trading key {key}'s maximum "
            f"{record.max_notional} (quote units)",
            field="signature",
        )
