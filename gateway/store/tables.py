"""The tables. Schema changes go through Alembic migrations in `store/migrations`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Column, Index, Integer, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from gateway.store.column_types import DecimalText, UtcDateTime


def _decimal(nullable: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(DecimalText(), nullable=nullable)


def _time(nullable: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(UtcDateTime(), nullable=nullable)


class AccountRow(SQLModel, table=True):
    __tablename__ = "accounts"

    address: str = Field(primary_key=True, max_length=42)
    created_at: datetime = Field(sa_column=_time())


class OrderRow(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("account", "client_order_id", name="uq_orders_account_client_order_id"),
        Index("ix_orders_account_seq", "account", "seq"),
        Index("ix_orders_status_seq", "status", "seq"),
        Index("ix_orders_instrument_seq", "instrument", "seq"),
        # which orders hold a wallet's nonce (migration 0017): signed orders only
        Index(
            "ix_orders_account_sig_nonce",
            "account",
            "sig_nonce",
            sqlite_where=text("sig_nonce IS NOT NULL"),
            postgresql_where=text("sig_nonce IS NOT NULL"),
        ),
    )

    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=40)
    account: str = Field(foreign_key="accounts.address", max_length=42)
    client_order_id: str = Field(max_length=64)
    request_hash: str = Field(max_length=80)  # sha256 hex, `:smart` for routed orders
    instrument: str | None = Field(default=None, max_length=64)
    side: str = Field(max_length=4)
    order_type: str = Field(max_length=16)
    time_in_force: str = Field(max_length=4)
    post_only: bool = False
    quantity: Decimal = Field(sa_column=_decimal())
    price: Decimal | None = Field(default=None, sa_column=_decimal(nullable=True))
    stop_price: Decimal | None = Field(default=None, sa_column=_decimal(nullable=True))
    expires_at: datetime | None = Field(default=None, sa_column=_time(nullable=True))
    status: str = Field(max_length=20)
    settlement: str = Field(max_length=10)
    filled_quantity: Decimal = Field(sa_column=_decimal())
    filled_notional: Decimal = Field(sa_column=_decimal())
    status_reason: str | None = Field(default=None, max_length=200)
    # time priority on the internal book while it rests there (rebuilt in this order)
    book_priority: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # the EIP-712 signature (docs/onchain-types.md); NULL: unsigned, cannot settle. Hex of
    # 65 bytes (ECDSA: owner or trading key) or up to 520 (a contract owner's, EIP-1271)
    sig_nonce: str | None = Field(default=None, max_length=78)
    sig_deadline: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    signature: str | None = Field(default=None, max_length=1040)
    version: int
    created_at: datetime = Field(sa_column=_time())
    updated_at: datetime = Field(sa_column=_time())


class OrderLegRow(SQLModel, table=True):
    __tablename__ = "order_legs"

    order_id: str = Field(foreign_key="orders.id", primary_key=True, max_length=40)
    position: int = Field(primary_key=True)
    instrument: str = Field(max_length=64)
    side: str = Field(max_length=4)
    ratio: int


class SettlementBatchRow(SQLModel, table=True):
    __tablename__ = "settlement_batches"

    id: str = Field(primary_key=True, max_length=40)
    status: str = Field(max_length=10)
    created_at: datetime = Field(sa_column=_time())
    tx_hash: str | None = Field(default=None, max_length=66)
    block_number: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    operator_nonce: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    gas_used: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    chain_batch_id: str | None = Field(default=None, max_length=78)  # the uint256, decimal
    block_hash: str | None = Field(default=None, max_length=66)
    reason: str | None = Field(default=None, max_length=200)
    updated_at: datetime | None = Field(default=None, sa_column=_time(nullable=True))


class FillRow(SQLModel, table=True):
    __tablename__ = "fills"
    __table_args__ = (
        Index("ix_fills_order_id", "order_id"),
        Index("ix_fills_account", "account"),
        Index("ix_fills_trade_id", "trade_id"),
        Index("ix_fills_settlement", "settlement", "batch_id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    order_id: str = Field(foreign_key="orders.id", max_length=40)
    account: str = Field(max_length=42)
    instrument: str = Field(max_length=64)
    side: str = Field(max_length=4)
    quantity: Decimal = Field(sa_column=_decimal())
    price: Decimal = Field(sa_column=_decimal())
    fee: Decimal = Field(sa_column=_decimal())
    # gas the operator paid for this execution (an AMM swap), in the quote asset; NULL = none
    gas: Decimal | None = Field(default=None, sa_column=_decimal(nullable=True))
    venue: str = Field(max_length=32)
    executed_at: datetime = Field(sa_column=_time())
    settlement: str = Field(max_length=10)
    batch_id: str | None = Field(default=None, foreign_key="settlement_batches.id", max_length=40)
    tx_hash: str | None = Field(default=None, max_length=66)
    block_number: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    log_index: int | None = None
    trade_id: str | None = Field(default=None, max_length=40)  # the maker and taker of a match
    settlement_reason: str | None = Field(default=None, max_length=200)


class AuditRecordRow(SQLModel, table=True):
    """One state change. `hash` = sha256 over the previous hash and this record's content."""

    __tablename__ = "audit_log"
    # records of one kind, in order (the operator's list of batches reads the reorgs)
    __table_args__ = (Index("ix_audit_log_kind_seq", "kind", "seq"),)

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    kind: str = Field(max_length=40)
    entity_id: str = Field(max_length=66)
    payload: str
    created_at: datetime = Field(sa_column=_time())
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHeadRow(SQLModel, table=True):
    """The newest record's seq and hash: the row writers lock, and what truncation breaks."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(max_length=64)


class RiskControlRow(SQLModel, table=True):
    """Operator risk switches: scope "global" or an account address; limits as JSON."""

    __tablename__ = "risk_controls"
    scope: str = Field(primary_key=True, max_length=42)
    kill_switch: bool = Field(default=False)
    reason: str | None = Field(default=None, max_length=200)
    limits: str | None = Field(default=None)
    hedge: str | None = Field(default=None)
    updated_at: datetime = Field(sa_column=_time())


class AlgoOrderRow(SQLModel, table=True):
    """A parent order run by an execution algorithm (`gateway.routing.algos`): the spec and
    the state machine's document as JSON text (decimals as strings). `active` is False once
    the algo is terminal with no child open: nothing more can change."""

    __tablename__ = "algo_orders"
    __table_args__ = (
        Index("ix_algo_orders_active", "active"),
        Index("ix_algo_orders_account", "account"),
    )

    id: str = Field(primary_key=True, max_length=40)
    account: str = Field(max_length=42)
    instrument: str = Field(max_length=64)
    kind: str = Field(max_length=10)
    status: str = Field(max_length=12)
    active: bool = Field(default=True)
    spec: str
    state: str
    created_at: datetime = Field(sa_column=_time())
    updated_at: datetime = Field(sa_column=_time())


class ExecutionBenchmarkRow(SQLModel, table=True):
    """The market when a parent order (a smart order, an algo, a legged strategy) arrived:
    the benchmark of its transaction cost analysis. Written in the parent's own creating
    transaction. `legs` holds each leg's arrival prices (JSON) for a strategy."""

    __tablename__ = "execution_benchmarks"

    parent_id: str = Field(primary_key=True, max_length=40)
    parent_kind: str = Field(max_length=10)
    instrument: str = Field(max_length=64)
    side: str = Field(max_length=4)
    bid: Decimal | None = Field(default=None, sa_column=_decimal(nullable=True))
    ask: Decimal | None = Field(default=None, sa_column=_decimal(nullable=True))
    mid: Decimal | None = Field(default=None, sa_column=_decimal(nullable=True))
    legs: str | None = Field(default=None)
    observed_at: datetime = Field(sa_column=_time())


class VenueOrderRow(SQLModel, table=True):
    """A child a gateway order sent to a venue. Inserted (`pending`) before it is sent, so a
    crash can never leave an execution the store does not know to look for; `filled`,
    `filled_notional` and `fee` are what has been recorded as fills on the gateway order, in
    the same transaction as those fills."""

    __tablename__ = "venue_orders"
    __table_args__ = (
        Index("ix_venue_orders_order_id", "order_id"),
        Index("ix_venue_orders_status", "status"),
    )

    client_order_id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(foreign_key="orders.id", max_length=40)
    venue: str = Field(max_length=32)
    instrument: str = Field(max_length=64)
    side: str = Field(max_length=4)
    order_type: str = Field(max_length=16)
    time_in_force: str = Field(max_length=4)
    quantity: Decimal = Field(sa_column=_decimal())
    price: Decimal | None = Field(default=None, sa_column=_decimal(nullable=True))
    venue_order_id: str | None = Field(default=None, max_length=128)
    status: str = Field(max_length=10)
    filled: Decimal = Field(sa_column=_decimal())
    filled_notional: Decimal = Field(sa_column=_decimal())
    fee: Decimal = Field(sa_column=_decimal())
    reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_column=_time())
    updated_at: datetime = Field(sa_column=_time())


class LeggedStrategyRow(SQLModel, table=True):
    """A strategy order executed leg by leg (`gateway.routing.legging`): the machine's
    document as JSON text. `active` is False once it is terminal with nothing in flight."""

    __tablename__ = "legged_strategies"
    __table_args__ = (Index("ix_legged_strategies_active", "active"),)

    order_id: str = Field(foreign_key="orders.id", primary_key=True, max_length=40)
    account: str = Field(max_length=42)
    status: str = Field(max_length=16)
    active: bool = Field(default=True)
    state: str
    created_at: datetime = Field(sa_column=_time())
    updated_at: datetime = Field(sa_column=_time())


class ChainCursorRow(SQLModel, table=True):
    """Where a follower of the chain's events stands (`gateway.settlement.reconciler`),
    saved in the same transaction as what it read."""

    __tablename__ = "chain_cursors"

    name: str = Field(primary_key=True, max_length=40)
    cursor: str
    updated_at: datetime = Field(sa_column=_time())


class PoolSwapRow(SQLModel, table=True):
    """The AMM swap behind a pool fill: run inside the settlement transaction, so its exact
    token amounts are fixed when the fill is recorded (integers as decimal text: uint256)."""

    __tablename__ = "pool_swaps"

    fill_id: str = Field(primary_key=True, foreign_key="fills.id", max_length=40)
    pair: str = Field(max_length=42)
    token_in: str = Field(max_length=42)
    token_out: str = Field(max_length=42)
    amount_in: str = Field(max_length=80)
    amount_out: str = Field(max_length=80)


class ApiKeyRow(SQLModel, table=True):
    """A protocol's or auditor's API key. The secret itself is never stored: it is derived
    from the server's key secret and `salt`; `secret_hash` (sha256) proves a derivation."""

    __tablename__ = "api_keys"

    key_id: str = Field(primary_key=True, max_length=40)
    role: str = Field(max_length=16)
    scopes: str = Field(max_length=64)  # comma-separated, sorted
    accounts: str  # JSON list of checksum addresses; empty: any account
    label: str | None = Field(default=None, max_length=100)
    salt: str = Field(max_length=64)
    secret_hash: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_time())
    revoked_at: datetime | None = Field(default=None, sa_column=_time(nullable=True))


class AccessSessionRow(SQLModel, table=True):
    """A trader's Sign-In with Ethereum session; only the token's sha256 is kept."""

    __tablename__ = "access_sessions"

    token_hash: str = Field(primary_key=True, max_length=64)
    address: str = Field(max_length=42)
    created_at: datetime = Field(sa_column=_time())
    expires_at: datetime = Field(sa_column=_time())


class SiweNonceRow(SQLModel, table=True):
    """A single-use Sign-In with Ethereum nonce: `used_at` is set when it is spent."""

    __tablename__ = "siwe_nonces"
    __table_args__ = (Index("ix_siwe_nonces_expires_at", "expires_at"),)

    nonce: str = Field(primary_key=True, max_length=40)
    created_at: datetime = Field(sa_column=_time())
    expires_at: datetime = Field(sa_column=_time())
    used_at: datetime | None = Field(default=None, sa_column=_time(nullable=True))


class DeadManCountdownRow(SQLModel, table=True):
    """A caller's dead man's switch (`gateway.oms.dead_man_switch`): unless refreshed before
    `deadline`, every resting order of `accounts` is cancelled. `scope` names the caller (its
    role and subject); a refresh rewrites the row in place."""

    __tablename__ = "dead_man_countdowns"

    scope: str = Field(primary_key=True, max_length=64)
    accounts: str  # JSON list of checksum addresses, sorted
    timeout_seconds: Decimal = Field(sa_column=_decimal())
    deadline: datetime = Field(sa_column=_time())
    armed_at: datetime = Field(sa_column=_time())
    refreshed_at: datetime = Field(sa_column=_time())


class CancelOnDisconnectSessionRow(SQLModel, table=True):
    """A stream connection that asked for cancel-on-disconnect. A row found at start-up
    belonged to a connection that died with the previous process."""

    __tablename__ = "cancel_on_disconnect_sessions"

    session_id: str = Field(primary_key=True, max_length=64)
    accounts: str  # JSON list of checksum addresses, sorted
    opened_at: datetime = Field(sa_column=_time())


class LeaseRow(SQLModel, table=True):
    """A single-writer role (`gateway.store.leases`): held by `holder` until `expires_at`
    (the database's clock), unless renewed. `token` grows by one at every acquisition: the
    fencing token a holder's writes are checked against."""

    __tablename__ = "leases"

    role: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    address: str = Field(max_length=256)  # where other replicas forward the role's requests
    token: int = Field(sa_column=Column(BigInteger(), nullable=False))
    takeovers: int = Field(sa_column=Column(BigInteger(), nullable=False))  # from another holder
    acquired_at: datetime = Field(sa_column=_time())
    renewed_at: datetime = Field(sa_column=_time())
    expires_at: datetime = Field(sa_column=_time())


class ReplicaRow(SQLModel, table=True):
    """A running replica's heartbeat, for `isthmus status` and the metrics."""

    __tablename__ = "replicas"

    replica_id: str = Field(primary_key=True, max_length=128)
    address: str = Field(max_length=256)
    pid: int
    started_at: datetime = Field(sa_column=_time())
    seen_at: datetime = Field(sa_column=_time())


class StreamEventRow(SQLModel, table=True):
    """A committed event, in commit order: every replica's stream follows this table (woken by
    PostgreSQL NOTIFY), so a client sees the same events whichever replica it is connected to."""

    __tablename__ = "stream_events"
    __table_args__ = (Index("ix_stream_events_at", "at"),)

    seq: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    at: datetime = Field(sa_column=_time())
    payload: str  # the event, JSON


class ReplaySignatureRow(SQLModel, table=True):
    """An HMAC-signed request already received (by any replica), until its window passes."""

    __tablename__ = "replay_signatures"
    __table_args__ = (Index("ix_replay_signatures_forget_at_ms", "forget_at_ms"),)

    signature: str = Field(primary_key=True, max_length=64)
    forget_at_ms: int = Field(sa_column=Column(BigInteger(), nullable=False))


class RateBucketRow(SQLModel, table=True):
    """A caller's request-rate token bucket, shared by the replicas."""

    __tablename__ = "rate_buckets"

    subject: str = Field(primary_key=True, max_length=200)
    tokens: float  # a request budget, not money
    updated_at: datetime = Field(sa_column=_time())


class FixSessionRow(SQLModel, table=True):
    """A FIX session's sequence numbers (`gateway.store.fix_sessions`): what the acceptor
    sends and expects next, so a restart (or another replica) resumes the session."""

    __tablename__ = "fix_sessions"

    session_key: str = Field(primary_key=True, max_length=200)  # "FIX.4.4:ISTHMUS->DESK1"
    next_sender: int = Field(sa_column=Column(BigInteger(), nullable=False))
    next_target: int = Field(sa_column=Column(BigInteger(), nullable=False))
    updated_at: datetime = Field(sa_column=_time())
    key_id: str | None = Field(default=None, max_length=64)  # the API key logged on, if any
    logged_on_at: datetime | None = Field(default=None, sa_column=_time(nullable=True))


class FixMessageRow(SQLModel, table=True):
    """A message the acceptor sent, kept for the counterparty's resend requests."""

    __tablename__ = "fix_messages"

    session_key: str = Field(primary_key=True, max_length=200)
    seq: int = Field(sa_column=Column(BigInteger(), primary_key=True))
    raw: str
    sent_at: datetime = Field(sa_column=_time())


class FixOrderRow(SQLModel, table=True):
    """Which order a FIX session's ClOrdID names: the order's own `client_order_id` and every
    ClOrdID a replace gave it since, so cancels and replaces find it after a restart."""

    __tablename__ = "fix_orders"
    __table_args__ = (Index("ix_fix_orders_order_id", "order_id"),)

    session_key: str = Field(primary_key=True, max_length=200)
    cl_ord_id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(max_length=64)
    bound_at: datetime = Field(sa_column=_time())
