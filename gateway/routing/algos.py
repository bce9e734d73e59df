"""Execution algorithms as pure, persistable state machines: TWAP, VWAP, POV, iceberg, sniper.

An algorithm is a parent order (`AlgoSpec`) that schedules child orders through the smart order
router. Everything here is pure: time and market data are passed in, nothing is read, nothing
is sent. A driver (the gateway, or a test on `gateway.domain.sim_clock.SimClock`) feeds
events in and carries the returned actions out:

    state = start(spec)
    decision = step(state, now, observation)      # at state.next_wake_at and on market data
    decision = on_fill(state, child_id, qty, price)
    decision = on_child_done(state, now, child_id, filled, cancelled_rest)
    decision = pause(state, now) / resume(state, now) / cancel(state, now)

Each call returns a `Decision`: the new `AlgoState`, the `ChildOrder`s to send, the child ids
to cancel, and `next_wake_at` (call `step` again at that time, or earlier on market data).
Persist `decision.state.to_json()` before acting on the decision; `AlgoState.from_json` of that
document continues with exactly the same subsequent actions as if the gateway had not
restarted (the state holds the spec, the open children, the observed volume and the RNG).

Common rules (every kind):

- Before `spec.start` nothing is sent (status `scheduled`); at or after `spec.end` the algo
  expires: open children are cancelled and the unfilled rest is reported (`AlgoState.unfilled`).
- Child quantities are multiples of `spec.lot_size` (take it from the instrument's
  `TradingRules`, see `AlgoSpec.check_rules`), at most `spec.max_child`, at least
  `spec.min_child` unless the child is the parent's whole unsent rest (a tail is never left
  stranded below the minimum), and never more than the parent's remaining quantity minus what
  is already in flight.
- Every child carries the parent's limit price (`None` means a market order), so no child is
  ever priced worse than the parent. Taking kinds (TWAP, VWAP, POV, sniper) send IOC children
  and send nothing while the observed opposite best price is worse than the limit.
- `pause` cancels open children and stops new ones; the schedule's clock keeps running, so on
  `resume` TWAP/VWAP/POV catch up (bounded by `max_child` per step). `cancel` stops for good.
- Fills (`on_fill`) may arrive after a cancel or expiry and are still counted; a child is open
  until `on_child_done` reports it finished.

Per kind:

- TWAP: `[start, end]` is cut into slices of `spec.interval` (the last one may be shorter).
  At slice k the target cumulative quantity is the linear schedule at the *end* of slice k, so
  the algo is never more than one slice ahead; one IOC child per step sends
  `target - filled - in_flight`, so shortfalls (partial fills, lagging fills, pauses) are made
  up in later slices. The last slice targets the whole quantity.
- VWAP: as TWAP, but the target follows the cumulative volume profile: `spec.volume_profile`
  holds the expected fraction of volume of equal-width buckets spanning `[start, end]`
  (normalized; build it from venue history with `volume_profile_from_history`), interpolated
  linearly inside a bucket.
- POV: the target cumulative quantity is `participation_rate * observed volume`, where the
  observed volume is the sum of `MarketObservation.traded_volume` seen while running (market
  volume *including* the algo's own fills). Every step sends one IOC child for
  `target - filled - in_flight` (bounded by min/max child); it wakes every `spec.interval`.
  It never completes faster than the observed volume allows.
- Iceberg: one resting GTC child at the limit price at a time. Its size is `display_quantity`
  times a uniform factor in `[1 - display_variance, 1 + display_variance]` drawn from a seeded
  splitmix64 generator (state persisted), floored to the lot and clamped to min/max child.
  When the displayed child is done, the next one is shown at once (from `on_child_done`).
- Sniper: idle until the market reaches the trigger (buy: best ask <= trigger; sell: best
  bid >= trigger), then the whole unsent rest goes at once as IOC children at the limit (split
  into the fewest near-equal pieces of at most `max_child`; every piece is >= `min_child` when
  `max_child >= 2 * min_child`, otherwise the split of the whole rest may hold smaller pieces).
  Whatever does not fill re-arms and waits for the trigger again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Any

from gateway.domain.amounts import MAX_DIGITS, is_multiple
from gateway.domain.document_fields import (
    decimal_field as _dec,
)
from gateway.domain.document_fields import (
    micros as _micros,
)
from gateway.domain.document_fields import (
    optional_decimal as _opt_dec,
)
from gateway.domain.document_fields import (
    optional_text as _opt_str,
)
from gateway.domain.errors import DomainError, IllegalTransition
from gateway.domain.instruments import TradingRules
from gateway.domain.orders import Side, TimeInForce

STATE_VERSION = 1
_ZERO = Decimal(0)
_ONE = Decimal(1)
_MASK64 = (1 << 64) - 1


class AlgoKind(str, enum.Enum):
    TWAP = "twap"
    VWAP = "vwap"
    POV = "pov"
    ICEBERG = "iceberg"
    SNIPER = "sniper"


class AlgoStatus(str, enum.Enum):
    SCHEDULED = "scheduled"  # before start (or resumed before start)
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"  # the whole quantity filled
    CANCELLED = "cancelled"  # stopped by the client; the rest is unfilled
    EXPIRED = "expired"  # end time reached; the rest is unfilled


TERMINAL_STATUSES = frozenset({AlgoStatus.COMPLETED, AlgoStatus.CANCELLED, AlgoStatus.EXPIRED})


class InvalidAlgoSpec(DomainError, ValueError):
    """The parent order's parameters are inconsistent; the message says which and why."""

    code = "invalid_algo_spec"


class AlgoEventError(DomainError):
    """An event does not fit the state (unknown child, overfill, inconsistent totals)."""

    code = "algo_event_error"


# spec


@dataclass(frozen=True, slots=True)
class AlgoSpec:
    """The parent order. Quantities and prices are exact Decimals (floats are refused).

    `interval` is the slice length for TWAP/VWAP and the wake-up cadence for POV; iceberg and
    sniper are driven by events and market data and only wake up for the end time.
    Per-kind parameters must be set exactly for their kind: `volume_profile` (VWAP),
    `participation_rate` (POV), `display_quantity`/`display_variance`/`seed` (iceberg),
    `trigger_price` (sniper; with a required `limit_price`).
    """

    algo_id: str
    kind: AlgoKind
    account: str
    instrument: str
    side: Side
    quantity: Decimal
    start: datetime
    end: datetime
    lot_size: Decimal
    min_child: Decimal
    max_child: Decimal
    limit_price: Decimal | None = None
    interval: timedelta = timedelta(minutes=1)
    volume_profile: tuple[Decimal, ...] = ()
    participation_rate: Decimal | None = None
    display_quantity: Decimal | None = None
    display_variance: Decimal = _ZERO
    seed: int = 0
    trigger_price: Decimal | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def slice_count(self) -> int:
        """Number of slices of `interval` covering `[start, end]` (the last may be shorter)."""
        return -(-self.duration // self.interval)

    @property
    def max_display(self) -> Decimal:
        """Iceberg: the largest slice ever shown (display plus randomization, lot, max child)."""
        if self.display_quantity is None:
            return _ZERO
        top = _floor_lot(self.display_quantity * (_ONE + self.display_variance), self.lot_size)
        return min(max(top, self.min_child), self.max_child)

    def check_rules(self, rules: TradingRules) -> None:
        """Check the spec against the instrument's rules (lot, tick, minimum quantity)."""
        if self.lot_size != rules.lot_size:
            raise InvalidAlgoSpec(
                f"lot_size {self.lot_size} differs from the instrument's {rules.lot_size}",
                field="lot_size",
            )
        if self.min_child < rules.min_quantity:
            raise InvalidAlgoSpec(
                f"min_child {self.min_child} is below the instrument minimum {rules.min_quantity}",
                field="min_child",
            )
        for name, price in (
            ("limit_price", self.limit_price),
            ("trigger_price", self.trigger_price),
        ):
            if price is not None and not is_multiple(price, rules.tick_size):
                raise InvalidAlgoSpec(
                    f"{name} {price} is not a multiple of the tick size {rules.tick_size}",
                    field=name,
                )

    def to_json(self) -> dict[str, Any]:
        return {
            "algo_id": self.algo_id,
            "kind": self.kind.value,
            "account": self.account,
            "instrument": self.instrument,
            "side": self.side.value,
            "quantity": str(self.quantity),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "lot_size": str(self.lot_size),
            "min_child": str(self.min_child),
            "max_child": str(self.max_child),
            "limit_price": _opt_str(self.limit_price),
            "interval_us": _micros(self.interval),
            "volume_profile": [str(v) for v in self.volume_profile],
            "participation_rate": _opt_str(self.participation_rate),
            "display_quantity": _opt_str(self.display_quantity),
            "display_variance": str(self.display_variance),
            "seed": self.seed,
            "trigger_price": _opt_str(self.trigger_price),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlgoSpec:
        return cls(
            algo_id=str(data["algo_id"]),
            kind=AlgoKind(data["kind"]),
            account=str(data["account"]),
            instrument=str(data["instrument"]),
            side=Side(data["side"]),
            quantity=_dec(data["quantity"]),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            lot_size=_dec(data["lot_size"]),
            min_child=_dec(data["min_child"]),
            max_child=_dec(data["max_child"]),
            limit_price=_opt_dec(data["limit_price"]),
            interval=timedelta(microseconds=int(data["interval_us"])),
            volume_profile=tuple(_dec(v) for v in data["volume_profile"]),
            participation_rate=_opt_dec(data["participation_rate"]),
            display_quantity=_opt_dec(data["display_quantity"]),
            display_variance=_dec(data["display_variance"]),
            seed=int(data["seed"]),
            trigger_price=_opt_dec(data["trigger_price"]),
        )


def _fail(field_name: str, message: str) -> InvalidAlgoSpec:
    return InvalidAlgoSpec(message, field=field_name)


def _validate(spec: AlgoSpec) -> None:
    for name in ("algo_id", "account", "instrument"):
        if not isinstance(getattr(spec, name), str) or not getattr(spec, name):
            raise _fail(name, f"{name} must be a non-empty string")
    if not isinstance(spec.kind, AlgoKind):
        raise _fail("kind", f"kind must be one of {[k.value for k in AlgoKind]}")
    if not isinstance(spec.side, Side):
        raise _fail("side", "side must be buy or sell")
    decimals: dict[str, Decimal | None] = {
        "quantity": spec.quantity,
        "lot_size": spec.lot_size,
        "min_child": spec.min_child,
        "max_child": spec.max_child,
        "limit_price": spec.limit_price,
        "participation_rate": spec.participation_rate,
        "display_quantity": spec.display_quantity,
        "display_variance": spec.display_variance,
        "trigger_price": spec.trigger_price,
    }
    for i, weight in enumerate(spec.volume_profile):
        decimals[f"volume_profile[{i}]"] = weight
    for name, value in decimals.items():
        if value is None:
            continue
        if not isinstance(value, Decimal):
            raise _fail(name, f"{name} must be a Decimal, not {type(value).__name__}")
        if not value.is_finite():
            raise _fail(name, f"{name} must be finite")
    for name in ("start", "end"):
        if getattr(spec, name).tzinfo is None:
            raise _fail(name, f"{name} must be timezone-aware")
    if spec.end <= spec.start:
        raise _fail("end", "end must be after start")
    if spec.lot_size <= 0:
        raise _fail("lot_size", "lot_size must be positive")
    for name in ("quantity", "min_child", "max_child"):
        value = getattr(spec, name)
        if value <= 0:
            raise _fail(name, f"{name} must be positive")
        if not is_multiple(value, spec.lot_size):
            raise _fail(name, f"{name} {value} is not a multiple of the lot size {spec.lot_size}")
    if spec.min_child > spec.max_child:
        raise _fail("min_child", "min_child must not exceed max_child")
    if spec.limit_price is not None and spec.limit_price <= 0:
        raise _fail("limit_price", "limit_price must be positive")
    if spec.interval <= timedelta(0):
        raise _fail("interval", "interval must be positive")

    kind = spec.kind
    _only_for(spec, "volume_profile", bool(spec.volume_profile), AlgoKind.VWAP)
    _only_for(spec, "participation_rate", spec.participation_rate is not None, AlgoKind.POV)
    _only_for(spec, "display_quantity", spec.display_quantity is not None, AlgoKind.ICEBERG)
    _only_for(spec, "display_variance", spec.display_variance != 0, AlgoKind.ICEBERG)
    _only_for(spec, "trigger_price", spec.trigger_price is not None, AlgoKind.SNIPER)

    if kind in (AlgoKind.TWAP, AlgoKind.VWAP, AlgoKind.POV) and spec.interval > spec.duration:
        raise _fail("interval", "interval must not be longer than end - start")
    if kind in (AlgoKind.TWAP, AlgoKind.VWAP) and spec.max_child * spec.slice_count < (
        spec.quantity
    ):
        raise _fail(
            "max_child",
            f"max_child {spec.max_child} x {spec.slice_count} slices cannot reach the "
            f"quantity {spec.quantity}; raise max_child or shorten the interval",
        )
    if kind is AlgoKind.VWAP:
        if not spec.volume_profile:
            raise _fail("volume_profile", "VWAP needs a volume profile")
        if any(w < 0 for w in spec.volume_profile):
            raise _fail("volume_profile", "volume profile fractions must not be negative")
        if sum(spec.volume_profile, _ZERO) <= 0:
            raise _fail("volume_profile", "the volume profile must have some volume")
    if kind is AlgoKind.POV:
        rate = spec.participation_rate
        if rate is None:
            raise _fail("participation_rate", "POV needs a participation rate")
        if not 0 < rate < 1:
            raise _fail("participation_rate", "participation_rate must be in (0, 1)")
    if kind is AlgoKind.ICEBERG:
        display = spec.display_quantity
        if spec.limit_price is None:
            raise _fail("limit_price", "an iceberg rests at its limit price: set limit_price")
        if display is None:
            raise _fail("display_quantity", "an iceberg needs a display quantity")
        if not spec.min_child <= display <= spec.max_child:
            raise _fail("display_quantity", "display_quantity must lie in [min_child, max_child]")
        if not 0 <= spec.display_variance < 1:
            raise _fail("display_variance", "display_variance must be in [0, 1)")
    if kind is AlgoKind.SNIPER:
        trigger = spec.trigger_price
        if trigger is None or trigger <= 0:
            raise _fail("trigger_price", "a sniper needs a positive trigger price")
        if spec.limit_price is None:
            raise _fail("limit_price", "a sniper takes at its limit price: set limit_price")
        if spec.side is Side.BUY and spec.limit_price < trigger:
            raise _fail("limit_price", "a buy sniper's limit must be at or above the trigger")
        if spec.side is Side.SELL and spec.limit_price > trigger:
            raise _fail("limit_price", "a sell sniper's limit must be at or below the trigger")
    if not isinstance(spec.seed, int) or isinstance(spec.seed, bool):
        raise _fail("seed", "seed must be an integer")


def _only_for(spec: AlgoSpec, name: str, is_set: bool, kind: AlgoKind) -> None:
    if is_set and spec.kind is not kind:
        raise _fail(name, f"{name} applies only to {kind.value}, not {spec.kind.value}")


def volume_profile_from_history(volumes: Sequence[Decimal], buckets: int) -> tuple[Decimal, ...]:
    """Aggregate a venue's historical volumes per equal interval (e.g. per minute of the
    trading window, averaged over past days) into `buckets` volume fractions summing to 1."""
    if buckets <= 0:
        raise InvalidAlgoSpec("buckets must be positive", field="buckets")
    if len(volumes) < buckets:
        raise InvalidAlgoSpec("need at least one history interval per bucket", field="buckets")
    if any(v < 0 for v in volumes):
        raise InvalidAlgoSpec("historical volumes must not be negative", field="volumes")
    totals = [_ZERO] * buckets
    n = len(volumes)
    for i, volume in enumerate(volumes):
        totals[i * buckets // n] += volume
    grand = sum(totals, _ZERO)
    if grand <= 0:
        raise InvalidAlgoSpec("the history has no volume", field="volumes")
    with localcontext() as ctx:
        ctx.prec = 28
        return tuple(t / grand for t in totals)


# market data and actions


@dataclass(frozen=True, slots=True)
class MarketObservation:
    """What the driver saw since the previous `step`: best prices now and the market volume
    traded in between (including the algo's own fills)."""

    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    last_price: Decimal | None = None
    traded_volume: Decimal = _ZERO


NO_MARKET = MarketObservation()


@dataclass(frozen=True, slots=True)
class ChildOrder:
    """A child order for the SOR. `limit_price` None is a market order."""

    child_id: str
    algo_id: str
    account: str
    instrument: str
    side: Side
    quantity: Decimal
    limit_price: Decimal | None
    time_in_force: TimeInForce
    tag: str


@dataclass(frozen=True, slots=True)
class OpenChild:
    child_id: str
    quantity: Decimal
    filled: Decimal = _ZERO

    @property
    def open_quantity(self) -> Decimal:
        return self.quantity - self.filled


@dataclass(frozen=True, slots=True)
class AlgoState:
    """Everything needed to continue the algorithm after a restart (see `to_json`)."""

    spec: AlgoSpec
    status: AlgoStatus
    filled: Decimal = _ZERO
    notional: Decimal = _ZERO  # sum of fill quantity * price
    child_seq: int = 0
    open_children: tuple[OpenChild, ...] = ()
    next_wake_at: datetime | None = None
    rng_state: int = 0
    observed_volume: Decimal = _ZERO  # POV: market volume seen while running

    @property
    def in_flight(self) -> Decimal:
        return sum((c.open_quantity for c in self.open_children), _ZERO)

    @property
    def remaining(self) -> Decimal:
        """Not yet filled (in flight or not)."""
        return self.spec.quantity - self.filled

    @property
    def unsent(self) -> Decimal:
        """Neither filled nor in flight: what the algorithm may still send."""
        return self.remaining - self.in_flight

    @property
    def unfilled(self) -> Decimal:
        """The unfilled rest; final once `is_done`."""
        return self.remaining

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_done(self) -> bool:
        """Terminal and no child still open: nothing more can change."""
        return self.is_terminal and not self.open_children

    @property
    def average_price(self) -> Decimal | None:
        return self.notional / self.filled if self.filled else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready document (Decimals as strings, times ISO 8601, RNG state an int)."""
        return {
            "version": STATE_VERSION,
            "spec": self.spec.to_json(),
            "status": self.status.value,
            "filled": str(self.filled),
            "notional": str(self.notional),
            "child_seq": self.child_seq,
            "open_children": [
                {"child_id": c.child_id, "quantity": str(c.quantity), "filled": str(c.filled)}
                for c in self.open_children
            ],
            "next_wake_at": None if self.next_wake_at is None else self.next_wake_at.isoformat(),
            "rng_state": self.rng_state,
            "observed_volume": str(self.observed_volume),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlgoState:
        """Inverse of `to_json`. Raises ValueError on an unknown version or a malformed
        document (InvalidAlgoSpec, a ValueError, if the embedded spec is invalid)."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported algo state version {data.get('version')!r}")
        try:
            return cls._from_json(data)
        except (KeyError, TypeError, InvalidOperation) as exc:
            raise ValueError(f"malformed algo state document: {exc!r}") from exc

    @classmethod
    def _from_json(cls, data: Mapping[str, Any]) -> AlgoState:
        wake = data["next_wake_at"]
        return cls(
            spec=AlgoSpec.from_json(data["spec"]),
            status=AlgoStatus(data["status"]),
            filled=_dec(data["filled"]),
            notional=_dec(data["notional"]),
            child_seq=int(data["child_seq"]),
            open_children=tuple(
                OpenChild(str(c["child_id"]), _dec(c["quantity"]), _dec(c["filled"]))
                for c in data["open_children"]
            ),
            next_wake_at=None if wake is None else datetime.fromisoformat(wake),
            rng_state=int(data["rng_state"]),
            observed_volume=_dec(data["observed_volume"]),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one event: the new state and what to do now."""

    state: AlgoState
    children: tuple[ChildOrder, ...] = ()
    cancels: tuple[str, ...] = field(default=())

    @property
    def next_wake_at(self) -> datetime | None:
        return self.state.next_wake_at


# entry points


def start(spec: AlgoSpec) -> AlgoState:
    """The initial state: scheduled, waking at `spec.start`."""
    return AlgoState(
        spec=spec,
        status=AlgoStatus.SCHEDULED,
        next_wake_at=spec.start,
        rng_state=spec.seed & _MASK64,
    )


def step(state: AlgoState, now: datetime, market: MarketObservation = NO_MARKET) -> Decision:
    """Advance the algorithm to `now` with the market as observed since the previous step.
    Call it at `state.next_wake_at` and whenever market data arrives (sniper, POV)."""
    spec = state.spec
    if state.is_terminal:
        return Decision(state)
    if now >= spec.end:
        return _stop(state, AlgoStatus.EXPIRED)
    if state.status is AlgoStatus.PAUSED:
        return Decision(replace(state, next_wake_at=spec.end))
    if now < spec.start:
        return Decision(replace(state, status=AlgoStatus.SCHEDULED, next_wake_at=spec.start))
    state = replace(state, status=AlgoStatus.RUNNING)
    if spec.kind is AlgoKind.POV:
        state = replace(state, observed_volume=state.observed_volume + market.traded_volume)
    if spec.kind in (AlgoKind.TWAP, AlgoKind.VWAP):
        return _step_scheduled(state, now, market)
    if spec.kind is AlgoKind.POV:
        return _step_pov(state, now, market)
    if spec.kind is AlgoKind.ICEBERG:
        return _step_iceberg(state)
    return _step_sniper(state, market)


def on_fill(state: AlgoState, child_id: str, quantity: Decimal, price: Decimal) -> Decision:
    """A child filled `quantity` at `price` (counted even after cancel or expiry)."""
    index = _child_index(state, child_id)
    child = state.open_children[index]
    if quantity <= 0:
        raise AlgoEventError(f"fill quantity must be positive, got {quantity}")
    if quantity > child.open_quantity:
        raise AlgoEventError(
            f"fill of {quantity} exceeds child {child_id}'s open quantity {child.open_quantity}"
        )
    children = list(state.open_children)
    children[index] = replace(child, filled=child.filled + quantity)
    filled = state.filled + quantity
    status = state.status
    wake = state.next_wake_at
    if filled == state.spec.quantity and not state.is_terminal:
        status, wake = AlgoStatus.COMPLETED, None
    return Decision(
        replace(
            state,
            open_children=tuple(children),
            filled=filled,
            notional=state.notional + quantity * price,
            status=status,
            next_wake_at=wake,
        )
    )


def on_child_done(
    state: AlgoState, now: datetime, child_id: str, filled: Decimal, cancelled_rest: Decimal
) -> Decision:
    """A child is finished: it filled `filled` in total (already reported through `on_fill`)
    and `cancelled_rest` will never fill. An iceberg shows its next slice at once."""
    index = _child_index(state, child_id)
    child = state.open_children[index]
    if filled != child.filled:
        raise AlgoEventError(
            f"child {child_id} reports {filled} filled but {child.filled} fills were received"
        )
    if filled + cancelled_rest != child.quantity:
        raise AlgoEventError(
            f"child {child_id}: filled {filled} + cancelled {cancelled_rest} "
            f"!= quantity {child.quantity}"
        )
    state = replace(
        state, open_children=state.open_children[:index] + state.open_children[index + 1 :]
    )
    if (
        state.spec.kind is AlgoKind.ICEBERG
        and state.status is AlgoStatus.RUNNING
        and state.spec.start <= now < state.spec.end
    ):
        return _step_iceberg(state)
    return Decision(state)


def pause(state: AlgoState, now: datetime) -> Decision:
    """Stop sending: open children are cancelled. The end time still expires the algo."""
    if state.status not in (AlgoStatus.SCHEDULED, AlgoStatus.RUNNING):
        raise IllegalTransition(f"cannot pause an algo that is {state.status.value}")
    cancels = tuple(c.child_id for c in state.open_children)
    return Decision(
        replace(state, status=AlgoStatus.PAUSED, next_wake_at=state.spec.end), cancels=cancels
    )


def resume(state: AlgoState, now: datetime) -> Decision:
    """Continue after `pause`; the caller steps at `next_wake_at` (now, or start)."""
    if state.status is not AlgoStatus.PAUSED:
        raise IllegalTransition(f"cannot resume an algo that is {state.status.value}")
    if now >= state.spec.end:
        return _stop(state, AlgoStatus.EXPIRED)
    if now < state.spec.start:
        return Decision(replace(state, status=AlgoStatus.SCHEDULED, next_wake_at=state.spec.start))
    return Decision(replace(state, status=AlgoStatus.RUNNING, next_wake_at=now))


def cancel(state: AlgoState, now: datetime) -> Decision:
    """Stop for good: open children are cancelled; `state.unfilled` is the rest once done."""
    if state.is_terminal:
        raise IllegalTransition(f"cannot cancel an algo that is {state.status.value}")
    return _stop(state, AlgoStatus.CANCELLED)


# planners


def _stop(state: AlgoState, status: AlgoStatus) -> Decision:
    cancels = tuple(c.child_id for c in state.open_children)
    return Decision(replace(state, status=status, next_wake_at=None), cancels=cancels)


def _step_scheduled(state: AlgoState, now: datetime, market: MarketObservation) -> Decision:
    spec = state.spec
    n = spec.slice_count
    k = min((now - spec.start) // spec.interval, n - 1)
    slice_end = min(spec.start + (k + 1) * spec.interval, spec.end)
    if k == n - 1:
        target = spec.quantity
    else:
        target = _floor_lot(spec.quantity * _schedule_fraction(spec, slice_end), spec.lot_size)
    next_wake = slice_end if slice_end < spec.end else spec.end
    state = replace(state, next_wake_at=next_wake)
    if not _marketable(spec, market):
        return Decision(state)
    size = _child_size(state, target - state.filled - state.in_flight)
    if size <= 0:
        return Decision(state)
    return _send(state, ((size, TimeInForce.IOC, f"{spec.kind.value}:slice={k}"),))


def _step_pov(state: AlgoState, now: datetime, market: MarketObservation) -> Decision:
    spec = state.spec
    rate = spec.participation_rate
    assert rate is not None
    state = replace(state, next_wake_at=min(now + spec.interval, spec.end))
    if not _marketable(spec, market):
        return Decision(state)
    target = _floor_lot(rate * state.observed_volume, spec.lot_size)
    size = _child_size(state, target - state.filled - state.in_flight)
    if size <= 0:
        return Decision(state)
    return _send(state, ((size, TimeInForce.IOC, "pov:participate"),))


def _step_iceberg(state: AlgoState) -> Decision:
    spec = state.spec
    state = replace(state, next_wake_at=spec.end)
    if state.open_children or state.unsent <= 0:
        return Decision(state)
    display = spec.display_quantity
    assert display is not None
    rng, draw = _splitmix64(state.rng_state)
    state = replace(state, rng_state=rng)
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        unit = Decimal(draw) / Decimal(1 << 64)  # uniform in [0, 1)
        factor = _ONE + spec.display_variance * (2 * unit - 1)
        size = _floor_lot(display * factor, spec.lot_size)
    top = spec.max_display
    size = min(max(size, spec.min_child), top)
    unsent = state.unsent
    if size >= unsent or (unsent - size < spec.min_child and unsent <= top):
        size = unsent  # the whole rest: never strand a tail below the minimum
    return _send(state, ((size, TimeInForce.GTC, f"iceberg:refresh={state.child_seq}"),))


def _step_sniper(state: AlgoState, market: MarketObservation) -> Decision:
    spec = state.spec
    state = replace(state, next_wake_at=spec.end)
    trigger = spec.trigger_price
    assert trigger is not None
    if spec.side is Side.BUY:
        hit = market.best_ask is not None and market.best_ask <= trigger
    else:
        hit = market.best_bid is not None and market.best_bid >= trigger
    if not hit or state.open_children or state.unsent <= 0:
        return Decision(state)
    pieces = _split(state.unsent, spec.max_child, spec.lot_size)
    return _send(
        state,
        tuple(
            (q, TimeInForce.IOC, f"sniper:shot={i + 1}/{len(pieces)}") for i, q in enumerate(pieces)
        ),
    )


def _send(state: AlgoState, orders: tuple[tuple[Decimal, TimeInForce, str], ...]) -> Decision:
    spec = state.spec
    seq = state.child_seq
    children: list[ChildOrder] = []
    opened: list[OpenChild] = []
    for quantity, tif, tag in orders:
        seq += 1
        child_id = f"{spec.algo_id}-{seq}"
        children.append(
            ChildOrder(
                child_id=child_id,
                algo_id=spec.algo_id,
                account=spec.account,
                instrument=spec.instrument,
                side=spec.side,
                quantity=quantity,
                limit_price=spec.limit_price,
                time_in_force=tif,
                tag=tag,
            )
        )
        opened.append(OpenChild(child_id, quantity))
    new_state = replace(state, child_seq=seq, open_children=state.open_children + tuple(opened))
    return Decision(new_state, children=tuple(children))


# helpers


def _child_size(state: AlgoState, need: Decimal) -> Decimal:
    """The size of the next taking child for a shortfall of `need`: lot-floored, at most
    `max_child` and the unsent rest, at least `min_child` unless it is the whole rest;
    adjusted so that no tail below `min_child` is left behind when that is possible."""
    spec = state.spec
    unsent = state.unsent
    size = _floor_lot(min(need, unsent, spec.max_child), spec.lot_size)
    if size <= 0:
        return _ZERO
    if size < spec.min_child and size < unsent:
        return _ZERO  # too small: wait until the shortfall grows
    tail = unsent - size
    if 0 < tail < spec.min_child:
        if unsent <= spec.max_child:
            size = unsent
        elif unsent - spec.min_child >= spec.min_child:
            size = min(size, unsent - spec.min_child)
    return size


def _split(total: Decimal, max_piece: Decimal, lot: Decimal) -> list[Decimal]:
    """`total` in the fewest near-equal lot multiples of at most `max_piece`."""
    lots = int(total / lot)
    max_lots = int(max_piece / lot)
    count = -(-lots // max_lots)
    base, extra = divmod(lots, count)
    return [lot * (base + (1 if i < extra else 0)) for i in range(count)]


def _marketable(spec: AlgoSpec, market: MarketObservation) -> bool:
    """False when the observed opposite best price is worse than the limit (do not chase)."""
    if spec.limit_price is None:
        return True
    if spec.side is Side.BUY:
        return market.best_ask is None or market.best_ask <= spec.limit_price
    return market.best_bid is None or market.best_bid >= spec.limit_price


def _schedule_fraction(spec: AlgoSpec, at: datetime) -> Decimal:
    """Cumulative fraction of the quantity due by `at`: linear for TWAP, the interpolated
    cumulative volume profile for VWAP."""
    elapsed = _micros(min(max(at - spec.start, timedelta(0)), spec.duration))
    total = _micros(spec.duration)
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        if spec.kind is not AlgoKind.VWAP:
            return Decimal(elapsed) / Decimal(total)
        weights = spec.volume_profile
        grand = sum(weights, _ZERO)
        buckets = len(weights)
        # position in buckets, exactly: elapsed * buckets / total
        index, rest = divmod(elapsed * buckets, total)
        done = sum(weights[:index], _ZERO)
        if index < buckets:
            done += weights[index] * Decimal(rest) / Decimal(total)
        return done / grand


def _floor_lot(value: Decimal, lot: Decimal) -> Decimal:
    if value <= 0:
        return _ZERO
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        return (value / lot).to_integral_value(rounding=ROUND_FLOOR) * lot


def _splitmix64(state: int) -> tuple[int, int]:
    """One splitmix64 step: (next state, 64-bit output). Tiny, exact, trivially persisted."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def _child_index(state: AlgoState, child_id: str) -> int:
    for i, child in enumerate(state.open_children):
        if child.child_id == child_id:
            return i
    raise AlgoEventError(f"child {child_id!r} is not an open child of {state.spec.algo_id}")
