"""Prometheus metrics: one registry per app, the request metrics the API's middleware feeds,
and collectors that read the runtime and the store when Prometheus scrapes.

Each app has its own `CollectorRegistry` (tests build many apps in one process; nothing here
is module-level state). Most metrics are read at scrape time, never counted on the order
path: the venues' feeds from the market-data hub, the leases, replicas, batches and resting
orders from the store. What has to be counted as it happens is counted in plain integers on
the event loop (`LatencyHistogram`): a request's route, method, status and duration, and the
matching engine's time per order (`InternalBook.matching_seconds`).

Store-wide readings (leases, replicas, settlement backlog, resting orders, FIX sessions, and
the settlement lag and gas of the batches confirmed since this process started, read from the
audit log) say the same on every replica: aggregate them with `max`, not `sum`.

Labels are route templates, methods, status classes, instruments, venues, roles, replica
names, alert levels and FIX sessions (the counterparty's comp id): never an account, an
order id, an API key or a secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import Connection, func, select, text

from gateway.domain.lifecycle import OrderStatus, SettlementStatus
from gateway.store.audit_log import AUDIT_LOG
from gateway.store.settlement_repository import BATCHES, FILLS, count_by_status
from gateway.store.tables import FixSessionRow, LeaseRow, OrderRow, ReplicaRow

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("gateway.metrics")

# Bucket upper bounds, in seconds (gas for the batches).
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
ACK_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
MATCHING_BUCKETS = (
    0.000001,
    0.0000025,
    0.000005,
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.005,
)
SETTLEMENT_LAG_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
BATCH_GAS_BUCKETS = (
    50_000,
    100_000,
    200_000,
    400_000,
    800_000,
    1_600_000,
    3_200_000,
    6_400_000,
    12_800_000,
    30_000_000,
)

# Batches that may still settle: building, sent, or reorged (as GET /v1/settlements counts)
PENDING_BATCHES = ("building", "sent", "reorged")
# The settlement service's audit records, and the outcome each one counts
SETTLEMENT_RECORDS = {
    "settlement.batch_opened": "opened",
    "settlement.confirmed": "confirmed",
    "settlement.batch_reverted": "reverted",
    "settlement.batch_abandoned": "abandoned",
    "settlement.batch_reorged": "reorged",
    "settlement.reorged": "reorged",
}
CONFIRMED_RECORD = "settlement.confirmed"
REORG_RECORD = "settlement.reorged"
AUDIT_READ_LIMIT = 2_000  # records read per scrape; the rest at the next one
STRATEGY_LABEL = "strategy"  # resting strategies (no single instrument)
MARGIN_ALERT = "risk.margin_alert"
STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}

LEASES = LeaseRow.__table__  # type: ignore[attr-defined]
REPLICAS = ReplicaRow.__table__  # type: ignore[attr-defined]
ORDERS = OrderRow.__table__  # type: ignore[attr-defined]
FIX_SESSIONS = FixSessionRow.__table__  # type: ignore[attr-defined]
FIX_BEGIN_STRING = "FIX.4.4"  # the acceptor's sessions are FIX 4.4 (QuickFIX's BeginString)


# --- counting on the event loop ---------------------------------------------------------


class LatencyHistogram:
    """A histogram as plain counts: one bisect and two additions per observation, no lock
    (observed and collected on the event loop's thread)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # `le`: value <= bound
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return buckets


def matching_histogram() -> LatencyHistogram:
    """The matching engine's time to place one order (the internal book observes it)."""
    return LatencyHistogram(MATCHING_BUCKETS)


def _histogram(
    name: str,
    documentation: str,
    labels: Sequence[str],
    series: Iterable[tuple[Sequence[str], LatencyHistogram]],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for values, histogram in series:
        family.add_metric(list(values), histogram.cumulative(), histogram.total)
    return family


# --- what the store says -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaseState:
    role: str
    holder: str  # "" once released
    address: str
    token: int
    takeovers: int  # acquisitions from another holder: failovers
    expires_in: float  # seconds, by the database's clock; negative once lapsed

    @property
    def live(self) -> bool:
        return bool(self.holder) and self.expires_in > 0


@dataclass(frozen=True, slots=True)
class ReplicaState:
    replica_id: str
    address: str
    pid: int
    started_at: datetime
    seen_seconds_ago: float  # by the database's clock


@dataclass(frozen=True, slots=True)
class SettlementState:
    batches: dict[str, int]  # by status, every batch
    unsettled_fills: int  # fills of trades not settled yet (outbox or in a batch)
    oldest_unsettled_at: datetime | None  # when the oldest of them was executed

    @property
    def batches_pending(self) -> int:
        return sum(self.batches.get(status, 0) for status in PENDING_BATCHES)

    def oldest_unsettled_seconds(self, now: datetime) -> float:
        if self.oldest_unsettled_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_unsettled_at).total_seconds())


def database_now(connection: Connection) -> datetime:
    """The database's clock (leases and heartbeats are written by it); this process's
    clock on SQLite, which has one process only."""
    if connection.dialect.name == "postgresql":
        moment: datetime = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
        return moment.astimezone(UTC)
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_leases(connection: Connection, now: datetime) -> list[LeaseState]:
    rows = connection.execute(select(LEASES).order_by(LEASES.c.role)).all()
    return [
        LeaseState(
            r.role,
            r.holder,
            r.address,
            int(r.token),
            int(r.takeovers),
            (_utc(r.expires_at) - now).total_seconds(),
        )
        for r in rows
    ]


def read_replicas(connection: Connection, now: datetime) -> list[ReplicaState]:
    rows = connection.execute(select(REPLICAS).order_by(REPLICAS.c.replica_id)).all()
    return [
        ReplicaState(
            r.replica_id,
            r.address,
            int(r.pid),
            _utc(r.started_at),
            max(0.0, (now - _utc(r.seen_at)).total_seconds()),
        )
        for r in rows
    ]


def read_settlement(connection: Connection) -> SettlementState:
    """Batches by status, and the fills of trades still waiting to settle: in the outbox or
    in a batch not confirmed yet (fills of no trade never settle on chain)."""
    oldest, count = connection.execute(
        select(func.min(FILLS.c.executed_at), func.count()).where(
            FILLS.c.settlement == SettlementStatus.PENDING.value,
            FILLS.c.trade_id.is_not(None),
        )
    ).one()
    return SettlementState(
        count_by_status(connection), int(count), None if oldest is None else _utc(oldest)
    )


def read_resting_orders(connection: Connection) -> dict[str, int]:
    """Orders resting on the internal book, per instrument (strategies under `strategy`)."""
    rows = connection.execute(
        select(ORDERS.c.instrument, func.count())
        .where(
            ORDERS.c.status.in_([OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value]),
            ORDERS.c.book_priority.is_not(None),
        )
        .group_by(ORDERS.c.instrument)
    ).all()
    return {(r[0] or STRATEGY_LABEL): int(r[1]) for r in rows}


@dataclass(frozen=True, slots=True)
class FixSessionReading:
    """A provisioned FIX session as the store has it (`gateway.store.fix_sessions`)."""

    session: str  # QuickFIX's session id: "FIX.4.4:ISTHMUS->DESK1"
    counterparty: str  # its SenderCompID: "DESK1"
    key_id: str | None  # the API key logged on; None: nobody
    logged_on_at: datetime | None
    next_sender: int  # the number the acceptor sends next
    next_target: int  # the number it expects from the counterparty next
    updated_at: datetime | None  # None: the session never sent or received anything

    @property
    def logged_on(self) -> bool:
        return self.key_id is not None


def fix_session_key(comp_id: str, counterparty: str) -> str:
    """The key the acceptor stores a session under (QuickFIX's `SessionID.toString()`)."""
    return f"{FIX_BEGIN_STRING}:{comp_id}->{counterparty}"


def read_fix_sessions(
    connection: Connection, comp_id: str, counterparties: Sequence[str]
) -> list[FixSessionReading]:
    """Each configured session, in the configured order, merged with its row: a session
    that never connected has none yet, and starts at 1 both ways."""
    keys = {fix_session_key(comp_id, c): c for c in counterparties}
    rows = {
        r.session_key: r
        for r in connection.execute(
            select(FIX_SESSIONS).where(FIX_SESSIONS.c.session_key.in_(list(keys)))
        )
    }
    readings = []
    for key, counterparty in keys.items():
        row = rows.get(key)
        if row is None:
            readings.append(FixSessionReading(key, counterparty, None, None, 1, 1, None))
            continue
        readings.append(
            FixSessionReading(
                key,
                counterparty,
                row.key_id,
                None if row.logged_on_at is None else _utc(row.logged_on_at),
                int(row.next_sender),
                int(row.next_target),
                _utc(row.updated_at),
            )
        )
    return readings


def last_audit_seq(connection: Connection) -> int:
    return int(connection.execute(select(func.max(AUDIT_LOG.c.seq))).scalar() or 0)


@dataclass
class SettlementRecords:
    """The settlement service's audit records after a cursor: outcomes, and for each
    confirmed batch its gas and each settled fill's lag from execution to confirmation."""

    last_seq: int
    outcomes: Counter[str] = field(default_factory=Counter)
    lags: list[float] = field(default_factory=list)
    gas: list[int] = field(default_factory=list)


def read_settlement_records(connection: Connection, after: int) -> SettlementRecords:
    rows = connection.execute(
        select(
            AUDIT_LOG.c.seq,
            AUDIT_LOG.c.kind,
            AUDIT_LOG.c.entity_id,
            AUDIT_LOG.c.payload,
            AUDIT_LOG.c.created_at,
        )
        .where(AUDIT_LOG.c.kind.in_(list(SETTLEMENT_RECORDS)), AUDIT_LOG.c.seq > after)
        .order_by(AUDIT_LOG.c.seq)
        .limit(AUDIT_READ_LIMIT)
    ).all()
    records = SettlementRecords(after)
    confirmed: list[tuple[str, datetime, list[str]]] = []
    for row in rows:
        records.last_seq = int(row.seq)
        payload = json.loads(row.payload)
        if row.kind == REORG_RECORD:
            records.outcomes["reorged"] += len(payload.get("batches", ()))
            continue
        records.outcomes[SETTLEMENT_RECORDS[row.kind]] += 1
        if row.kind == CONFIRMED_RECORD:
            confirmed.append((row.entity_id, _utc(row.created_at), list(payload.get("fills", {}))))
    if not confirmed:
        return records
    executed = _executed_at(connection, [f for _, _, fills in confirmed for f in fills])
    gas = _gas_used(connection, sorted({batch_id for batch_id, _, _ in confirmed}))
    for batch_id, at, fills in confirmed:
        used = gas.get(batch_id)
        if used is not None:
            records.gas.append(used)
        records.lags.extend(
            max(0.0, (at - executed[f]).total_seconds()) for f in fills if f in executed
        )
    return records


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _executed_at(connection: Connection, fill_ids: list[str]) -> dict[str, datetime]:
    executed: dict[str, datetime] = {}
    for chunk in _chunks(fill_ids):
        query = select(FILLS.c.id, FILLS.c.executed_at).where(FILLS.c.id.in_(chunk))
        executed.update((r.id, _utc(r.executed_at)) for r in connection.execute(query))
    return executed


def _gas_used(connection: Connection, batch_ids: list[str]) -> dict[str, int]:
    gas: dict[str, int] = {}
    for chunk in _chunks(batch_ids):
        query = select(BATCHES.c.id, BATCHES.c.gas_used).where(
            BATCHES.c.id.in_(chunk), BATCHES.c.gas_used.is_not(None)
        )
        gas.update((r.id, int(r.gas_used)) for r in connection.execute(query))
    return gas


@dataclass(frozen=True, slots=True)
class StoreReading:
    leases: list[LeaseState]
    replicas: list[ReplicaState]
    settlement: SettlementState | None  # None: this gateway does not settle
    resting: dict[str, int]
    records: SettlementRecords
    fix_sessions: list[FixSessionReading] | None  # None: this gateway runs no FIX acceptor
    at: datetime  # the gateway's clock when read


# --- the app's metrics -------------------------------------------------------------------


class GatewayMetrics:
    """One app's registry and everything it exports (a pull collector: `collect` builds the
    families from the counts kept here, the runtime's state and the last store reading)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # (route template, method, status class) -> requests
        self.requests: dict[tuple[str, str, str], int] = {}
        self.durations: dict[tuple[str, str], LatencyHistogram] = {}  # (route, method)
        self.acknowledgements: dict[str, LatencyHistogram] = {}  # order entry, by route
        self.settlement_lag = LatencyHistogram(SETTLEMENT_LAG_BUCKETS)
        self.batch_gas = LatencyHistogram(BATCH_GAS_BUCKETS)
        self.batch_outcomes: Counter[str] = Counter()
        self.margin_alerts: Counter[str] = Counter()  # by the level an account moved to
        self.store_errors = 0
        self.runtime: Runtime | None = None
        self._audit_seq: int | None = None  # settlement records before it were counted
        self._reading: StoreReading | None = None
        self._refreshing = asyncio.Lock()
        self.registry.register(self)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    # -- what the middleware counts --------------------------------------------------------

    def observe_request(
        self, route: str, method: str, status: int, seconds: float, acknowledged: bool
    ) -> None:
        key = (route, method, STATUS_CLASSES.get(status // 100, "other"))
        self.requests[key] = self.requests.get(key, 0) + 1
        duration = self.durations.get((route, method))
        if duration is None:
            duration = self.durations[(route, method)] = LatencyHistogram(REQUEST_BUCKETS)
        duration.observe(seconds)
        if acknowledged and status < 300:
            ack = self.acknowledgements.get(route)
            if ack is None:
                ack = self.acknowledgements[route] = LatencyHistogram(ACK_BUCKETS)
            ack.observe(seconds)

    # -- the runtime -------------------------------------------------------------------------

    async def attach(self, rt: Runtime) -> None:
        """Follow `rt` from now on: its margin alerts are counted as the monitor raises them,
        its settlement records from the audit log's current end."""
        if self.runtime is rt:
            return
        self.runtime = rt
        self._audit_seq = None
        self._count_margin_alerts(rt)
        try:
            self._audit_seq = await asyncio.to_thread(self._last_seq, rt)
        except Exception:  # the database is down: start at the first scrape that reads it
            log.warning("metrics: the audit log could not be read yet", exc_info=True)

    @staticmethod
    def _last_seq(rt: Runtime) -> int:
        with rt.read_engine.connect() as connection:
            return last_audit_seq(connection)

    def _count_margin_alerts(self, rt: Runtime) -> None:
        """The monitor publishes each change of an account's alert level through the function
        it was given: count them on the way (by level, never by account)."""
        monitor = rt.monitor
        publish = monitor.publish
        alerts = self.margin_alerts

        def publish_and_count(event: dict[str, Any]) -> None:
            publish(event)
            if event.get("type") == MARGIN_ALERT:
                alerts[str(event["alert"]["level"])] += 1

        monitor.publish = publish_and_count

    async def refresh(self) -> None:
        """Before a scrape: read the store (off the event loop), and count the settlement
        records written since the last one."""
        rt = self.runtime
        if rt is None:
            return
        async with self._refreshing:
            now = rt.clock.now()
            try:
                reading = await asyncio.to_thread(self._read, rt, now, self._audit_seq)
            except Exception:
                self.store_errors += 1
                self._reading = None
                log.warning("metrics: the store could not be read", exc_info=True)
                return
            if self._audit_seq is not None:
                for lag in reading.records.lags:
                    self.settlement_lag.observe(lag)
                for gas in reading.records.gas:
                    self.batch_gas.observe(gas)
                self.batch_outcomes.update(reading.records.outcomes)
            self._audit_seq = reading.records.last_seq
            self._reading = reading

    @staticmethod
    def _read(rt: Runtime, now: datetime, after: int | None) -> StoreReading:
        with rt.read_engine.connect() as connection:
            clock = database_now(connection)
            if after is None:  # the first reading: count from here on
                records = SettlementRecords(last_audit_seq(connection))
            else:
                records = read_settlement_records(connection, after)
            settings = rt.settings
            return StoreReading(
                read_leases(connection, clock),
                read_replicas(connection, clock),
                None if rt.settlement is None else read_settlement(connection),
                read_resting_orders(connection),
                records,
                None
                if settings.fix_port is None
                else read_fix_sessions(connection, settings.fix_comp_id, settings.fix_sessions),
                now,
            )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # -- the families --------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._book()
        yield from self._settlement()
        yield from self._venues()
        yield from self._margin()
        yield from self._replicas()
        yield from self._fix()
        errors = CounterMetricFamily(
            "isthmus_metrics_store_errors",
            "Scrapes whose reading of the store failed (its metrics were left out)",
        )
        errors.add_metric([], self.store_errors)
        yield errors

    def _requests(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "isthmus_http_requests",
            "HTTP requests answered, by route template, method and status class (errors: 4xx, 5xx)",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in sorted(self.requests.items()):
            requests.add_metric([route, method, status], count)
        yield requests
        yield _histogram(
            "isthmus_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route and method",
            ["route", "method"],
            ((key, h) for key, h in sorted(self.durations.items())),
        )
        yield _histogram(
            "isthmus_order_ack_seconds",
            "Order acknowledgement latency: from an order-entry request's arrival to its "
            "accepted answer (POST /v1/orders, /v1/orders/batch, /v1/strategies, /v1/quotes)",
            ["route"],
            (((route,), h) for route, h in sorted(self.acknowledgements.items())),
        )

    def _book(self) -> Iterator[Metric]:
        rt = self.runtime
        matching = HistogramMetricFamily(
            "isthmus_matching_seconds",
            "Time the internal book's matching engine takes to place one order",
        )
        if rt is not None:
            histogram = rt.book.matching_seconds
            matching.add_metric([], histogram.cumulative(), histogram.total)
        yield matching
        resting = GaugeMetricFamily(
            "isthmus_orders_resting",
            "Orders resting on the internal book, per instrument (store-wide)",
            labels=["instrument"],
        )
        if self._reading is not None:
            for instrument, count in sorted(self._reading.resting.items()):
                resting.add_metric([instrument], count)
        yield resting

    def _settlement(self) -> Iterator[Metric]:
        yield _histogram(
            "isthmus_settlement_lag_seconds",
            "Per settled fill: from its execution to its batch's confirmation (batches "
            "confirmed since this process started, store-wide)",
            [],
            [((), self.settlement_lag)],
        )
        yield _histogram(
            "isthmus_settlement_batch_gas_used",
            "Gas used per confirmed settlement batch (store-wide)",
            [],
            [((), self.batch_gas)],
        )
        outcomes = CounterMetricFamily(
            "isthmus_settlement_batches",
            "Settlement batches by outcome: opened, confirmed, reverted, abandoned, reorged "
            "(since this process started, store-wide)",
            labels=["outcome"],
        )
        for outcome in sorted({*SETTLEMENT_RECORDS.values(), *self.batch_outcomes}):
            outcomes.add_metric([outcome], self.batch_outcomes[outcome])
        yield outcomes
        pending = GaugeMetricFamily(
            "isthmus_settlement_batches_pending",
            "Settlement batches that may still settle: building, sent or reorged",
        )
        oldest = GaugeMetricFamily(
            "isthmus_settlement_oldest_unsettled_seconds",
            "Age of the oldest fill of a trade not settled yet (0: none waits)",
        )
        unsettled = GaugeMetricFamily(
            "isthmus_settlement_unsettled_fills",
            "Fills of trades not settled yet: in the outbox or in an unconfirmed batch",
        )
        reading = self._reading
        if reading is not None and reading.settlement is not None:
            pending.add_metric([], reading.settlement.batches_pending)
            oldest.add_metric([], reading.settlement.oldest_unsettled_seconds(reading.at))
            unsettled.add_metric([], reading.settlement.unsettled_fills)
        yield pending
        yield oldest
        yield unsettled

    def _venues(self) -> Iterator[Metric]:
        stale = GaugeMetricFamily(
            "isthmus_venue_stale",
            "1 while a venue's quotes are left out of the consolidated book (its kind's rule)",
            labels=["venue"],
        )
        age = GaugeMetricFamily(
            "isthmus_venue_last_update_age_seconds",
            "Seconds since a venue's last book (absent before its first)",
            labels=["venue"],
        )
        reconnects = CounterMetricFamily(
            "isthmus_venue_reconnects",
            "Times a venue's feed came back live after being stale",
            labels=["venue"],
        )
        failures = GaugeMetricFamily(
            "isthmus_venue_feed_failures",
            "Consecutive failures of a venue's feed since it was last live",
            labels=["venue"],
        )
        rt = self.runtime
        if rt is not None:
            hub = rt.market_data
            now = rt.clock.now()
            stale_now = hub.stale_venues()
            for name, feed in sorted(hub.feeds.items()):
                stale.add_metric([name], 1 if name in stale_now else 0)
                if feed.last_update is not None:
                    age.add_metric([name], max(0.0, (now - feed.last_update).total_seconds()))
                reconnects.add_metric([name], feed.reconnects)
                failures.add_metric([name], feed.failures)
        yield stale
        yield age
        yield reconnects
        yield failures

    def _margin(self) -> Iterator[Metric]:
        alerts = CounterMetricFamily(
            "isthmus_margin_alerts",
            "Margin usage alerts raised by the risk monitor, by the level an account moved to "
            "(ok: cleared)",
            labels=["level"],
        )
        for level, count in sorted(self.margin_alerts.items()):
            alerts.add_metric([level], count)
        yield alerts
        accounts = GaugeMetricFamily(
            "isthmus_margin_accounts",
            "Accounts at each margin alert level now (warning, margin_call, liquidation)",
            labels=["level"],
        )
        rt = self.runtime
        if rt is not None:
            levels = Counter(level.name.lower() for level in rt.monitor.alerts.levels.values())
            for level in ("warning", "margin_call", "liquidation"):
                accounts.add_metric([level], levels[level])
        yield accounts

    def _replicas(self) -> Iterator[Metric]:
        held = GaugeMetricFamily(
            "isthmus_lease_held",
            "1 for the replica holding a role's unexpired lease (store-wide)",
            labels=["role", "holder"],
        )
        expires = GaugeMetricFamily(
            "isthmus_lease_expires_in_seconds",
            "Seconds until a role's lease lapses unless renewed (negative: lapsed)",
            labels=["role"],
        )
        failovers = CounterMetricFamily(
            "isthmus_lease_failovers",
            "Times a role was taken over from another holder (store-wide)",
            labels=["role"],
        )
        seen = GaugeMetricFamily(
            "isthmus_replica_last_seen_seconds",
            "Seconds since each replica's last heartbeat (store-wide)",
            labels=["replica"],
        )
        reading = self._reading
        if reading is not None:
            for lease in reading.leases:
                if lease.live:
                    held.add_metric([lease.role, lease.holder], 1)
                expires.add_metric([lease.role], lease.expires_in)
                failovers.add_metric([lease.role], lease.takeovers)
            for replica in reading.replicas:
                seen.add_metric([replica.replica_id], replica.seen_seconds_ago)
        yield held
        yield expires
        yield failovers
        yield seen

    def _fix(self) -> Iterator[Metric]:
        logged_on = GaugeMetricFamily(
            "isthmus_fix_sessions_logged_on",
            "FIX sessions with an API key logged on (store-wide; absent without an acceptor)",
        )
        session_logged_on = GaugeMetricFamily(
            "isthmus_fix_session_logged_on",
            "1 while an API key is logged on to a FIX session, by counterparty comp id "
            "(store-wide)",
            labels=["session"],
        )
        next_sender = GaugeMetricFamily(
            "isthmus_fix_next_sender_seq",
            "The MsgSeqNum the acceptor sends next in a FIX session (store-wide)",
            labels=["session"],
        )
        next_target = GaugeMetricFamily(
            "isthmus_fix_next_target_seq",
            "The MsgSeqNum the acceptor expects next from a FIX session's counterparty "
            "(store-wide)",
            labels=["session"],
        )
        reading = self._reading
        if reading is not None and reading.fix_sessions is not None:
            logged_on.add_metric([], sum(s.logged_on for s in reading.fix_sessions))
            for s in reading.fix_sessions:
                session_logged_on.add_metric([s.counterparty], 1 if s.logged_on else 0)
                next_sender.add_metric([s.counterparty], s.next_sender)
                next_target.add_metric([s.counterparty], s.next_target)
        yield logged_on
        yield session_logged_on
        yield next_sender
        yield next_target
