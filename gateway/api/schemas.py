"""Request and response models: the API's contract, published at /openapi.json."""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from eth_utils import to_checksum_address
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from gateway.domain.amounts import canonical
from gateway.domain.consolidated_book import ConsolidatedBook, ConsolidatedLevel
from gateway.domain.errors import InvalidOrder
from gateway.domain.orders import Leg, OrderSignature, OrderSpec, OrderType, Side, TimeInForce

DECIMAL_PATTERN = r"^[0-9]{1,30}(\.[0-9]{1,18})?$"
SIGNED_DECIMAL_PATTERN = r"^-?[0-9]{1,30}(\.[0-9]{1,18})?$"

# Money travels as decimal strings: JSON numbers would pass through binary floats.
DecimalText = Annotated[
    str,
    Field(pattern=DECIMAL_PATTERN, examples=["1.25"], description="Exact decimal, as a string"),
]
SignedDecimalText = Annotated[
    str, Field(pattern=SIGNED_DECIMAL_PATTERN, examples=["-12.5"], description="Signed decimal")
]


@functools.lru_cache(maxsize=65_536)
def checksum_address(address: str) -> str:
    """EIP-55 form (a keccak each time otherwise: a market maker's few accounts, every order)."""
    return str(to_checksum_address(address))


Address = Annotated[
    str,
    Field(pattern=r"^0x[0-9a-fA-F]{40}$", examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]),
    AfterValidator(checksum_address),
]
ClientOrderId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="Unique per account; resubmitting the same request returns the same order",
    ),
]
Symbol = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9/_.\-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


# 65 bytes: ECDSA (the owner EOA or a trading key); any other length up to the wallet's
# 520 (contracts/wallet/keys.vy MAX_CONTRACT_SIG): a contract owner's EIP-1271 signature
SIGNATURE_PATTERN = r"^0x(?:[0-9a-fA-F]{2}){1,520}$"


class SignatureIn(_Strict):
    """The EIP-712 signature of this order (`POST /v1/orders/typed-data` gives the exact
    payload to sign) by someone the wallet accepts: its owner, or one of its trading keys
    within the key's scope."""

    nonce: str = Field(pattern=r"^[0-9]{1,78}$", description="uint256, single use per wallet")
    deadline: int = Field(ge=0, lt=1 << 64, description="unix seconds")
    signature: str = Field(
        pattern=SIGNATURE_PATTERN,
        description="Hex. 65 bytes r || s || v: ECDSA by the wallet's owner (an EOA) or by "
        "one of its active trading keys. Any other length (1 to 520 bytes): the signature of "
        "a contract owner, checked with EIP-1271 isValidSignature (a 2-of-3 Safe: its owners' "
        "130 bytes over the Safe message of the order's digest). A Safe with threshold 1 "
        "signs through a trading key.",
        examples=["0x" + "11" * 65],
    )

    def to_domain(self) -> OrderSignature:
        nonce = int(self.nonce)
        if nonce >= 1 << 256:
            raise InvalidOrder("nonce is a uint256", field="signature.nonce")
        return OrderSignature(nonce, self.deadline, bytes.fromhex(self.signature[2:]))


class OrderIn(_Strict):
    account: Address
    client_order_id: ClientOrderId
    instrument: Symbol
    side: Side
    route: Literal["direct", "smart"] = Field(
        default="direct",
        description="smart: split across venues by the smart order router and executed at "
        "once (time_in_force ioc); the rest is cancelled",
    )
    type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    quantity: DecimalText
    price: DecimalText | None = None
    stop_price: DecimalText | None = None
    expires_at: AwareDatetime | None = None
    signature: SignatureIn | None = None

    def to_spec(self) -> OrderSpec:
        return OrderSpec(
            account=self.account,
            client_order_id=self.client_order_id,
            side=self.side,
            order_type=self.type,
            quantity=Decimal(self.quantity),
            time_in_force=self.time_in_force,
            instrument=self.instrument,
            price=None if self.price is None else Decimal(self.price),
            stop_price=None if self.stop_price is None else Decimal(self.stop_price),
            post_only=self.post_only,
            expires_at=self.expires_at,
            signed=None if self.signature is None else self.signature.to_domain(),
        )


class LegIn(_Strict):
    instrument: Symbol
    side: Side
    ratio: int = Field(default=1, ge=1, le=1000)


class LeggingIn(_Strict):
    """Bounds on executing a strategy leg by leg on the exchanges (`"route": "legged"`)."""

    max_unhedged_notional: DecimalText = Field(
        description="Most quote value one side may carry while the legs are out of ratio"
    )
    max_legging_time: DecimalText = Field(
        default="5", description="Seconds a clip may stay out of ratio before it fails"
    )
    on_failure: Literal["unwind", "complete_at_market"] = "unwind"
    max_slippage_bps: DecimalText = "50"
    retry_interval: DecimalText = Field(default="1", description="Seconds between retries")
    max_attempts: int = Field(default=3, ge=1, le=20)


class StrategyIn(_Strict):
    """A multi-leg strategy: all legs fill together in their ratios, or nothing fills.

    `"route": "legged"` executes it at once on the exchanges, leg by leg, within `legging`'s
    bounds (no atomicity there: legs fill one after the other)."""

    account: Address
    client_order_id: ClientOrderId
    legs: list[LegIn] = Field(min_length=2, max_length=8)
    side: Side = Side.BUY
    quantity: DecimalText
    price: SignedDecimalText = Field(
        description="Net price per unit of strategy: positive pays (debit), negative receives"
    )
    time_in_force: TimeInForce = TimeInForce.GTC
    expires_at: AwareDatetime | None = None
    route: Literal["atomic", "legged"] = Field(
        default="atomic",
        description="atomic: all legs in one settlement (the internal book); legged: leg by "
        "leg on the exchanges, within `legging`'s bounds",
    )
    legging: LeggingIn | None = None
    signature: SignatureIn | None = None

    def to_spec(self) -> OrderSpec:
        return OrderSpec(
            account=self.account,
            client_order_id=self.client_order_id,
            side=self.side,
            order_type=OrderType.LIMIT,
            quantity=Decimal(self.quantity),
            time_in_force=self.time_in_force,
            legs=tuple(Leg(leg.instrument, leg.side, leg.ratio) for leg in self.legs),
            price=Decimal(self.price),
            expires_at=self.expires_at,
            signed=None if self.signature is None else self.signature.to_domain(),
        )


class AmendIn(_Strict):
    price: SignedDecimalText | None = None
    quantity: DecimalText | None = None
    expected_version: int | None = Field(
        default=None, ge=1, description="Refuse the change if the order moved on (409)"
    )


class LegOut(BaseModel):
    instrument: str
    side: Side
    ratio: int


class SignedOut(BaseModel):
    nonce: str
    deadline: int
    signature: str


class OrderOut(BaseModel):
    id: str
    client_order_id: str
    account: str
    instrument: str | None
    legs: list[LegOut]
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    quantity: str
    price: str | None
    stop_price: str | None
    expires_at: datetime | None
    status: str
    status_reason: str | None
    settlement: str
    filled_quantity: str
    remaining_quantity: str
    average_price: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    signed: SignedOut | None = Field(
        default=None,
        description="The EIP-712 signature (owner, trading key or contract owner; absent: "
        "cannot settle)",
    )


class OrderPageOut(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class InstrumentOut(BaseModel):
    symbol: str
    kind: Literal["spot", "option", "perpetual"]
    base: str
    quote: str
    base_decimals: int
    quote_decimals: int
    tick_size: str
    lot_size: str
    min_quantity: str
    strike: str | None = None
    expiry: datetime | None = None
    right: Literal["call", "put"] | None = None


class TokenOut(BaseModel):
    address: str
    decimals: int


class ChainOut(BaseModel):
    chain_id: int
    settlement: str = Field(description="The Settlement contract (instrument ids registered here)")
    wallet_factory: str = Field(description="Creates one MarginWallet per owner")
    tokens: dict[str, TokenOut] = Field(description="Listed tokens by symbol")
    rpc_url: str | None = Field(
        description="An RPC URL the operator publishes for clients (none: bring your own)"
    )
    explorer_url: str | None = Field(
        default=None,
        description="A block explorer: `<explorer_url>/tx/<hash>` shows a transaction (none: "
        "no public explorer, as on the devnet)",
    )


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: str
    version: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code")
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class VenueShareOut(BaseModel):
    venue: str
    price: str = Field(description="The venue's own price, before fees")
    quantity: str


class BookLevelOut(BaseModel):
    price: str = Field(description="All-in price for a taker: asks plus fee, bids less fee")
    quantity: str
    venues: list[VenueShareOut]


class ConsolidatedBookOut(BaseModel):
    instrument: str
    bids: list[BookLevelOut]
    asks: list[BookLevelOut]
    mid: str | None
    live_venues: list[str]
    stale_venues: list[str] = Field(description="Venues whose quotes are excluded as not live")
    timestamp: datetime | None


def book_out(book: ConsolidatedBook) -> ConsolidatedBookOut:
    def levels(side: tuple[ConsolidatedLevel, ...]) -> list[BookLevelOut]:
        return [
            BookLevelOut(
                price=canonical(level.price),
                quantity=canonical(level.quantity),
                venues=[
                    VenueShareOut(
                        venue=s.venue, price=canonical(s.price), quantity=canonical(s.quantity)
                    )
                    for s in level.shares
                ],
            )
            for level in side
        ]

    mid = book.mid
    return ConsolidatedBookOut(
        instrument=book.instrument,
        bids=levels(book.bids),
        asks=levels(book.asks),
        mid=None if mid is None else canonical(mid),
        live_venues=list(book.live_venues),
        stale_venues=list(book.stale_venues),
        timestamp=book.timestamp,
    )
