"""Typed results. Money and quantities are `Decimal` (never float); every result keeps the
gateway's JSON in `raw`, so a field added to the API is readable before this client knows it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from isthmus_client.signing import Token


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True)
class ChainInfo:
    """`GET /v1/chain`: what the gateway settles on."""

    chain_id: int
    settlement: str
    wallet_factory: str
    tokens: dict[str, Token]
    rpc_url: str | None = None
    explorer_url: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChainInfo:
        return cls(
            chain_id=int(data["chain_id"]),
            settlement=data["settlement"],
            wallet_factory=data["wallet_factory"],
            tokens={
                symbol: Token(symbol, token["address"], int(token["decimals"]))
                for symbol, token in data["tokens"].items()
            },
            rpc_url=data.get("rpc_url"),
            explorer_url=data.get("explorer_url"),
        )

    def transaction_url(self, tx_hash: str) -> str | None:
        """Where the operator's block explorer shows `tx_hash` (None without one)."""
        return None if self.explorer_url is None else f"{self.explorer_url}/tx/{tx_hash}"

    def token(self, symbol: str) -> Token:
        try:
            return self.tokens[symbol]
        except KeyError:
            raise KeyError(
                f"no token {symbol!r} on this chain ({', '.join(self.tokens)})"
            ) from None


@dataclass(frozen=True)
class Leg:
    instrument: str
    side: str
    ratio: int = 1


@dataclass(frozen=True)
class Order:
    """An order or a strategy as the gateway last reported it."""

    id: str
    client_order_id: str
    account: str
    instrument: str | None
    legs: tuple[Leg, ...]
    side: str
    type: str
    time_in_force: str
    status: str
    status_reason: str | None
    settlement: str
    quantity: Decimal
    price: Decimal | None
    filled_quantity: Decimal
    remaining_quantity: Decimal
    average_price: Decimal | None
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    signed: bool
    created: bool = False  # this request created it (201); False: an earlier one did (200)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_open(self) -> bool:
        return self.status in ("new", "accepted", "partially_filled", "pending")

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, created: bool = False) -> Order:
        return cls(
            id=data["id"],
            client_order_id=data["client_order_id"],
            account=data["account"],
            instrument=data.get("instrument"),
            legs=tuple(
                Leg(leg["instrument"], leg["side"], int(leg.get("ratio", 1)))
                for leg in data.get("legs") or ()
            ),
            side=data["side"],
            type=data.get("type", "limit"),
            time_in_force=data.get("time_in_force", "gtc"),
            status=data["status"],
            status_reason=data.get("status_reason"),
            settlement=data.get("settlement", "none"),
            quantity=Decimal(data["quantity"]),
            price=_dec(data.get("price")),
            filled_quantity=Decimal(data.get("filled_quantity", "0")),
            remaining_quantity=Decimal(data.get("remaining_quantity", "0")),
            average_price=_dec(data.get("average_price")),
            version=int(data.get("version", 1)),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
            signed=data.get("signed") is not None,
            created=created,
            raw=dict(data),
        )


@dataclass(frozen=True)
class Fill:
    """One execution of an order, with where its settlement stands."""

    id: str
    order_id: str
    account: str
    instrument: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    venue: str
    settlement: str  # pending | settled | failed | none ...
    batch_id: str | None
    tx_hash: str | None
    block_number: int | None
    executed_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fill:
        return cls(
            id=data["id"],
            order_id=data["order_id"],
            account=data["account"],
            instrument=data["instrument"],
            side=data["side"],
            quantity=Decimal(data["quantity"]),
            price=Decimal(data["price"]),
            fee=Decimal(data.get("fee", "0")),
            venue=data["venue"],
            settlement=data["settlement"],
            batch_id=data.get("batch_id"),
            tx_hash=data.get("tx_hash"),
            block_number=data.get("block_number"),
            executed_at=_time(data.get("executed_at")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class SettlementBatch:
    id: str
    status: str
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    reason: str | None
    fills: tuple[Fill, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SettlementBatch:
        return cls(
            id=data["id"],
            status=data["status"],
            tx_hash=data.get("tx_hash"),
            block_number=data.get("block_number"),
            gas_used=data.get("gas_used"),
            reason=data.get("reason"),
            fills=tuple(Fill.from_json(f) for f in data.get("fills", ())),
            raw=dict(data),
        )


@dataclass(frozen=True)
class ApiKeyInfo:
    key_id: str
    role: str
    scopes: tuple[str, ...]
    accounts: tuple[str, ...]
    label: str | None
    secret: str | None = field(default=None, repr=False)  # only when just created

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApiKeyInfo:
        return cls(
            key_id=data["key_id"],
            role=data["role"],
            scopes=tuple(data.get("scopes", ())),
            accounts=tuple(data.get("accounts", ())),
            label=data.get("label"),
            secret=data.get("secret"),
        )


@dataclass(frozen=True)
class BatchItem:
    """One order's own answer within a batch: its status and the order, or its error."""

    index: int
    status: int
    order: Order | None
    error: Exception | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
