"""Legging control: a multi-leg strategy executed leg by leg on CEX venues, as a pure,
persistable state machine.

On a CEX there is no atomic settlement of a straddle or an iron condor: each leg is a separate
order, so between the fill of one leg and the fill of the others the account carries an
unhedged position. This machine bounds that exposure in size and in time. Like
`gateway.routing.algos` it is pure: time and market data are passed in, nothing is sent.

    decision = start(spec, now, markets)          # validates; may send the first child
    decision = on_child_done(state, now, child_id, filled, average_price, markets)
    decision = step(state, now, markets)          # at decision.next_wake_at, or on market data
    decision = cancel(state, now, markets)
    report(state) -> LeggingReport

Each call returns a `Decision`: the new `LeggingState` and the IOC `LeggingChild` orders to
send. Persist `decision.state.to_json()` before sending; `LeggingState.from_json` of that
document continues with exactly the same decisions. Child ids are `<parent_id>-L<seq>`.
Every call takes `markets`, the current `LegMarket` (top of book with sizes) per instrument:
opening children are never priced without the quotes they depend on (the machine waits
instead); rebalancing children fall back to the last mid seen, then the arrival mid. The
machine decides only once every child in flight has reported (prices depend on fills), so
`step` while a child is in flight sends nothing. All arithmetic runs at 78 digits.

Conventions:

- Each leg's *effective* side is its written side for a BUY strategy, flipped for a SELL.
  Its sign `e` is +1 when we buy, -1 when we sell. The *cost* of a set of fills is
  `sum(e * quantity * price)`; the net limit `P` (debit positive, as in `OrderSpec.price`)
  becomes the cost bound `side.sign * P` per strategy unit (a BUY pays at most `P`, a SELL
  receives at least `P`).
- The strategy lot `U` is the smallest terminating decimal such that `U * ratio` is a
  multiple of every leg's lot size; the quantity and every clip are multiples of `U`, and every
  child quantity is a multiple of its leg's lot (fills must be too).

Rules:

- Clips. The quantity is executed in clips. A clip's size is the largest multiple of `U`
  (at most the remaining quantity) whose worst single-sided exposure, the sum over all legs but
  the one with the smallest `ratio * mid` of `ratio * clip * mid`, stays within
  `max_unhedged_notional`. (Excluding the smallest leg rather than "the last in the order" is
  the conservative reading: retries may change which leg lags.) If one lot already exceeds the
  bound at the arrival mids, `start` raises `InvalidLeggingSpec` with code
  `legging_bound_below_one_lot`.
- Opening. The hardest leg goes first: the one whose top-of-book size covers least of its need
  (capped at 1), then the widest relative spread, then leg order. It is sent for the whole clip
  at the limit left by the net limit after pricing every other leg at its current touch. Its
  fill fixes the clip's *level*: the fill rounded up to a multiple of `U`. Every other leg (and
  the first leg, if its fill was not a whole lot of `U`) is then sent, one child at a time
  (each price depends on the previous fills), for what it lacks to reach the level, at the
  limit implied by what the filled legs actually paid plus the other missing legs at their
  touch: the first lagging leg in clip order whose touch is within that limit. With no net
  limit, opening children are priced at mid +/- `max_slippage_bps`. A leg whose child came
  back short is retried after `retry_interval`; meanwhile other lagging legs go on.
- Not sending. A clip is not started while the first leg's budgeted limit is not marketable
  or a needed quote is missing; the machine waits `retry_interval`. A clip that ended below its
  size (short fills) lets the next one start only after `retry_interval`.
- Failure. The clip fails when it has been unbalanced (legs out of ratio) for
  `max_legging_time`, when the remaining budget cannot meet the net limit even at the current
  touch prices (`net_limit_unreachable`), or on cancel/deadline while it is unbalanced. Then,
  by `on_failure`: UNWIND sends reverse IOC children for each leg's excess over the largest
  whole level of `U` held on every leg; COMPLETE_AT_MARKET sends the missing quantity of each
  leg up to the smallest whole level of `U` covering every leg's fill. Both are priced at
  mid +/- `max_slippage_bps` and sent for all lagging legs at once; short children are retried
  after `retry_interval`, at most `max_attempts` rounds per leg, after which the parent stops
  FAILED with the residual imbalance in the report. No clip starts after a failure.
- Stopping. DONE when the quantity is complete. After a failed clip (once rebalanced) or at the
  deadline: PARTIALLY_DONE if some units completed, else FAILED. Cancel stops new clips (an
  unbalanced clip is still rebalanced by its failure policy) and ends CANCELLED.
- Report. Opening fills (purposes "open" and "complete") and unwind fills are kept apart per
  leg. Completed units are the largest multiple of `U` held in ratio on every leg; the
  residual is each leg's net quantity beyond that. Legging cost (quote, a loss positive) is the
  cost of the completed units at each leg's average opening price minus their cost at the
  arrival mids, plus the realized loss of unwinds against the average opening price. The
  maximum unhedged notional is `sum((net - ratio * h) * mid)` with `h` the least units held,
  measured after every event at the mids then observed; time unhedged sums the periods during
  which the legs were out of ratio (not all at one whole level of `U`). The legging timer runs
  over the same periods.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from fractions import Fraction
from math import gcd, lcm
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
from gateway.domain.document_fields import (
    optional_time as _opt_time,
)
from gateway.domain.document_fields import (
    parse_optional_time as _opt_parse_time,
)
from gateway.domain.errors import DomainError, IllegalTransition
from gateway.domain.orders import MAX_LEGS, Leg, Side, TimeInForce

STATE_VERSION = 1
_ZERO = Decimal(0)
_ONE = Decimal(1)
_BPS = Decimal(10_000)
_INFINITY = Decimal("Infinity")

# stable reasons (LeggingState.reason / LeggingReport.reason)
REASON_COMPLETED = "completed"
REASON_CANCELLED = "cancelled"
REASON_DEADLINE = "deadline"
REASON_LEGGING_TIMEOUT = "legging_timeout"
REASON_NET_LIMIT_UNREACHABLE = "net_limit_unreachable"
REASON_ATTEMPTS_EXHAUSTED = "attempts_exhausted"

# stable error codes
CODE_INVALID_SPEC = "invalid_legging_spec"
CODE_BOUND_BELOW_ONE_LOT = "legging_bound_below_one_lot"
CODE_EVENT_ERROR = "legging_event_error"


class FailurePolicy(str, enum.Enum):
    UNWIND = "unwind"  # reverse the excess of the filled legs
    COMPLETE_AT_MARKET = "complete_at_market"  # fill the missing legs, accepting the cost


class LeggingStatus(str, enum.Enum):
    RUNNING = "running"
    DONE = "done"
    PARTIALLY_DONE = "partially_done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset(
    {
        LeggingStatus.DONE,
        LeggingStatus.PARTIALLY_DONE,
        LeggingStatus.FAILED,
        LeggingStatus.CANCELLED,
    }
)


class ChildPurpose(str, enum.Enum):
    OPEN = "open"
    COMPLETE = "complete"
    UNWIND = "unwind"


class ClipPhase(str, enum.Enum):
    OPEN = "open"  # legging in within the net limit
    COMPLETE = "complete"  # failed: buying/selling the missing legs at market
    UNWIND = "unwind"  # failed: reversing the excess legs at market


class InvalidLeggingSpec(DomainError, ValueError):
    """The parent's parameters are inconsistent; `code` is `invalid_legging_spec` or
    `legging_bound_below_one_lot`."""

    code = CODE_INVALID_SPEC


class LeggingEventError(DomainError):
    """An event does not fit the state (unknown child, overfill, off-lot fill)."""

    code = CODE_EVENT_ERROR


# spec


@dataclass(frozen=True, slots=True)
class LeggingSpec:
    """The strategy parent. Per-leg tuples (`lot_sizes`, `tick_sizes`, `arrival_mids`) follow
    `legs`; take lot and tick from each instrument's `TradingRules`. `limit_price` is the
    signed net price per strategy unit (None: no net limit, children at mid +/- slippage)."""

    parent_id: str
    account: str
    legs: tuple[Leg, ...]
    side: Side
    quantity: Decimal
    limit_price: Decimal | None
    lot_sizes: tuple[Decimal, ...]
    tick_sizes: tuple[Decimal, ...]
    max_unhedged_notional: Decimal
    max_legging_time: timedelta
    on_failure: FailurePolicy
    max_slippage_bps: Decimal
    arrival_mids: tuple[Decimal, ...]
    deadline: datetime | None = None
    retry_interval: timedelta = timedelta(seconds=1)
    max_attempts: int = 3

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def unit_lot(self) -> Decimal:
        """The strategy lot `U` (see the module docstring)."""
        return _strategy_lot(self.legs, self.lot_sizes)

    def sign(self, leg: int) -> int:
        """+1 when the strategy buys this leg, -1 when it sells it."""
        return self.side.sign * self.legs[leg].side.sign

    def opening_side(self, leg: int) -> Side:
        return Side.BUY if self.sign(leg) > 0 else Side.SELL

    @property
    def cost_limit(self) -> Decimal | None:
        """The bound on the cost per unit (`sum(e * ratio * price)`), or None."""
        return None if self.limit_price is None else self.side.sign * self.limit_price

    def to_json(self) -> dict[str, Any]:
        return {
            "parent_id": self.parent_id,
            "account": self.account,
            "legs": [
                {"instrument": leg.instrument, "side": leg.side.value, "ratio": leg.ratio}
                for leg in self.legs
            ],
            "side": self.side.value,
            "quantity": str(self.quantity),
            "limit_price": _opt_str(self.limit_price),
            "lot_sizes": [str(v) for v in self.lot_sizes],
            "tick_sizes": [str(v) for v in self.tick_sizes],
            "max_unhedged_notional": str(self.max_unhedged_notional),
            "max_legging_time_us": _micros(self.max_legging_time),
            "on_failure": self.on_failure.value,
            "max_slippage_bps": str(self.max_slippage_bps),
            "arrival_mids": [str(v) for v in self.arrival_mids],
            "deadline": _opt_time(self.deadline),
            "retry_interval_us": _micros(self.retry_interval),
            "max_attempts": self.max_attempts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LeggingSpec:
        return cls(
            parent_id=str(data["parent_id"]),
            account=str(data["account"]),
            legs=tuple(
                Leg(str(leg["instrument"]), Side(leg["side"]), int(leg["ratio"]))
                for leg in data["legs"]
            ),
            side=Side(data["side"]),
            quantity=_dec(data["quantity"]),
            limit_price=_opt_dec(data["limit_price"]),
            lot_sizes=tuple(_dec(v) for v in data["lot_sizes"]),
            tick_sizes=tuple(_dec(v) for v in data["tick_sizes"]),
            max_unhedged_notional=_dec(data["max_unhedged_notional"]),
            max_legging_time=timedelta(microseconds=int(data["max_legging_time_us"])),
            on_failure=FailurePolicy(data["on_failure"]),
            max_slippage_bps=_dec(data["max_slippage_bps"]),
            arrival_mids=tuple(_dec(v) for v in data["arrival_mids"]),
            deadline=_opt_parse_time(data["deadline"]),
            retry_interval=timedelta(microseconds=int(data["retry_interval_us"])),
            max_attempts=int(data["max_attempts"]),
        )


def _fail(field_name: str, message: str) -> InvalidLeggingSpec:
    return InvalidLeggingSpec(message, field=field_name)


def _validate(spec: LeggingSpec) -> None:
    for name in ("parent_id", "account"):
        if not isinstance(getattr(spec, name), str) or not getattr(spec, name):
            raise _fail(name, f"{name} must be a non-empty string")
    if not isinstance(spec.side, Side):
        raise _fail("side", "side must be buy or sell")
    if not isinstance(spec.on_failure, FailurePolicy):
        raise _fail("on_failure", "on_failure must be unwind or complete_at_market")
    n = len(spec.legs)
    if not 2 <= n <= MAX_LEGS:
        raise _fail("legs", f"a strategy has 2 to {MAX_LEGS} legs")
    seen: set[tuple[str, Side]] = set()
    for i, leg in enumerate(spec.legs):
        if not isinstance(leg, Leg) or not isinstance(leg.side, Side):
            raise _fail(f"legs.{i}", "legs must be Leg values")
        if isinstance(leg.ratio, bool) or not isinstance(leg.ratio, int) or leg.ratio < 1:
            raise _fail(f"legs.{i}.ratio", "leg ratios are positive integers")
        if (leg.instrument, leg.side) in seen:
            raise _fail(f"legs.{i}", "a leg is repeated")
        seen.add((leg.instrument, leg.side))
    for name in ("lot_sizes", "tick_sizes", "arrival_mids"):
        if len(getattr(spec, name)) != n:
            raise _fail(name, f"{name} needs one value per leg")
    decimals: dict[str, Decimal | None] = {
        "quantity": spec.quantity,
        "limit_price": spec.limit_price,
        "max_unhedged_notional": spec.max_unhedged_notional,
        "max_slippage_bps": spec.max_slippage_bps,
    }
    for name in ("lot_sizes", "tick_sizes", "arrival_mids"):
        for i, value in enumerate(getattr(spec, name)):
            decimals[f"{name}.{i}"] = value
    for name, value in decimals.items():
        if value is None:
            continue
        if not isinstance(value, Decimal):
            raise _fail(name, f"{name} must be a Decimal, not {type(value).__name__}")
        if not value.is_finite():
            raise _fail(name, f"{name} must be finite")
    for name in ("lot_sizes", "tick_sizes", "arrival_mids"):
        if any(v <= 0 for v in getattr(spec, name)):
            raise _fail(name, f"{name} must be positive")
    if spec.max_unhedged_notional <= 0:
        raise _fail("max_unhedged_notional", "max_unhedged_notional must be positive")
    if spec.max_slippage_bps < 0:
        raise _fail("max_slippage_bps", "max_slippage_bps must not be negative")
    if spec.max_legging_time <= timedelta(0):
        raise _fail("max_legging_time", "max_legging_time must be positive")
    if spec.retry_interval <= timedelta(0):
        raise _fail("retry_interval", "retry_interval must be positive")
    if isinstance(spec.max_attempts, bool) or not isinstance(spec.max_attempts, int):
        raise _fail("max_attempts", "max_attempts must be an integer")
    if spec.max_attempts < 1:
        raise _fail("max_attempts", "max_attempts must be at least 1")
    if spec.deadline is not None and spec.deadline.tzinfo is None:
        raise _fail("deadline", "deadline must be timezone-aware")
    unit = _strategy_lot(spec.legs, spec.lot_sizes)
    if spec.quantity <= 0 or not is_multiple(spec.quantity, unit):
        raise _fail("quantity", f"quantity {spec.quantity} must be a positive multiple of {unit}")


def _strategy_lot(legs: Sequence[Leg], lots: Sequence[Decimal]) -> Decimal:
    """Smallest terminating decimal `U` with `U * ratio` a multiple of each leg's lot."""
    result = Fraction(0)
    for leg, lot in zip(legs, lots, strict=True):
        step = Fraction(lot) / leg.ratio
        if result == 0:
            result = step
        else:  # lcm of two reduced fractions
            result = Fraction(
                lcm(result.numerator, step.numerator), gcd(result.denominator, step.denominator)
            )
    # a strategy quantity is a Decimal: scale away denominator factors other than 2 and 5
    other = result.denominator
    for prime in (2, 5):
        while other % prime == 0:
            other //= prime
    result *= other
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        return Decimal(result.numerator) / Decimal(result.denominator)


# market data and actions


@dataclass(frozen=True, slots=True)
class LegMarket:
    """Top of book of one leg's instrument as observed now (consolidated by the driver)."""

    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    bid_size: Decimal = _ZERO
    ask_size: Decimal = _ZERO

    @property
    def mid(self) -> Decimal | None:
        if self.best_bid is None or self.best_ask is None:
            return None
        return (self.best_bid + self.best_ask) / 2

    def touch(self, side: Side) -> Decimal | None:
        """The price a taker on `side` pays or receives."""
        return self.best_ask if side is Side.BUY else self.best_bid

    def touch_size(self, side: Side) -> Decimal:
        return self.ask_size if side is Side.BUY else self.bid_size


NO_MARKETS: Mapping[str, LegMarket] = {}


@dataclass(frozen=True, slots=True)
class LeggingChild:
    """An IOC child order for the SOR. `limit_price` None would be a market order (the
    machine always prices its children)."""

    child_id: str
    parent_id: str
    account: str
    leg: int
    instrument: str
    side: Side
    quantity: Decimal
    limit_price: Decimal | None
    purpose: ChildPurpose
    clip: int
    time_in_force: TimeInForce = TimeInForce.IOC


# state


@dataclass(frozen=True, slots=True)
class LegFills:
    """One leg's executions over the whole parent."""

    opened: Decimal = _ZERO  # quantity bought/sold in the opening direction
    opened_notional: Decimal = _ZERO  # sum of quantity * price of those
    unwound: Decimal = _ZERO  # quantity reversed by unwind children
    unwound_notional: Decimal = _ZERO

    @property
    def net(self) -> Decimal:
        return self.opened - self.unwound


@dataclass(frozen=True, slots=True)
class Clip:
    """The clip being executed. Fills of this clip are `net - base_units * ratio` per leg
    (every earlier clip ended in ratio)."""

    number: int
    units: Decimal  # the clip's size in strategy units
    base_units: Decimal  # units completed before the clip
    order: tuple[int, ...]  # legs, hardest first
    phase: ClipPhase
    notional: tuple[Decimal, ...]  # this clip's opening quantity * price per leg (budget)
    retry_at: tuple[datetime | None, ...]  # per leg: no new child before this time
    attempts: tuple[int, ...]  # per leg: failure-phase rounds sent
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class InFlight:
    child_id: str
    leg: int
    side: Side
    quantity: Decimal
    limit_price: Decimal | None
    purpose: ChildPurpose
    clip: int


@dataclass(frozen=True, slots=True)
class LeggingState:
    """Everything needed to continue after a restart (see `to_json`)."""

    spec: LeggingSpec
    status: LeggingStatus = LeggingStatus.RUNNING
    reason: str | None = None
    fills: tuple[LegFills, ...] = ()
    completed_units: Decimal = _ZERO  # units of finished clips (in ratio)
    child_seq: int = 0
    clips_started: int = 0
    clip: Clip | None = None
    in_flight: tuple[InFlight, ...] = ()
    next_wake_at: datetime | None = None
    resume_at: datetime | None = None  # no new clip before this time
    stop: str | None = None  # why no new clip may start (cancel, deadline, clip failure)
    last_mids: tuple[Decimal, ...] = ()
    max_unhedged: Decimal = _ZERO
    unhedged_since: datetime | None = None
    unhedged_time: timedelta = timedelta(0)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready document (Decimals as strings, times ISO 8601, durations in us)."""
        clip = self.clip
        return {
            "version": STATE_VERSION,
            "spec": self.spec.to_json(),
            "status": self.status.value,
            "reason": self.reason,
            "fills": [
                {
                    "opened": str(f.opened),
                    "opened_notional": str(f.opened_notional),
                    "unwound": str(f.unwound),
                    "unwound_notional": str(f.unwound_notional),
                }
                for f in self.fills
            ],
            "completed_units": str(self.completed_units),
            "child_seq": self.child_seq,
            "clips_started": self.clips_started,
            "clip": None
            if clip is None
            else {
                "number": clip.number,
                "units": str(clip.units),
                "base_units": str(clip.base_units),
                "order": list(clip.order),
                "phase": clip.phase.value,
                "notional": [str(v) for v in clip.notional],
                "retry_at": [_opt_time(t) for t in clip.retry_at],
                "attempts": list(clip.attempts),
                "failure": clip.failure,
            },
            "in_flight": [
                {
                    "child_id": c.child_id,
                    "leg": c.leg,
                    "side": c.side.value,
                    "quantity": str(c.quantity),
                    "limit_price": _opt_str(c.limit_price),
                    "purpose": c.purpose.value,
                    "clip": c.clip,
                }
                for c in self.in_flight
            ],
            "next_wake_at": _opt_time(self.next_wake_at),
            "resume_at": _opt_time(self.resume_at),
            "stop": self.stop,
            "last_mids": [str(v) for v in self.last_mids],
            "max_unhedged": str(self.max_unhedged),
            "unhedged_since": _opt_time(self.unhedged_since),
            "unhedged_time_us": _micros(self.unhedged_time),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LeggingState:
        """Inverse of `to_json`. Raises ValueError on an unknown version or a malformed
        document (InvalidLeggingSpec, a ValueError, if the embedded spec is invalid)."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported legging state version {data.get('version')!r}")
        try:
            return cls._from_json(data)
        except (KeyError, TypeError, InvalidOperation) as exc:
            raise ValueError(f"malformed legging state document: {exc!r}") from exc

    @classmethod
    def _from_json(cls, data: Mapping[str, Any]) -> LeggingState:
        legs = len(data["spec"]["legs"])
        if len(data["fills"]) != legs or len(data["last_mids"]) != legs:
            raise ValueError("malformed legging state document: one fill and mid per leg")
        raw_clip = data["clip"]
        clip = None
        if raw_clip is not None:
            clip = Clip(
                number=int(raw_clip["number"]),
                units=_dec(raw_clip["units"]),
                base_units=_dec(raw_clip["base_units"]),
                order=tuple(int(i) for i in raw_clip["order"]),
                phase=ClipPhase(raw_clip["phase"]),
                notional=tuple(_dec(v) for v in raw_clip["notional"]),
                retry_at=tuple(_opt_parse_time(t) for t in raw_clip["retry_at"]),
                attempts=tuple(int(a) for a in raw_clip["attempts"]),
                failure=raw_clip["failure"],
            )
        return cls(
            spec=LeggingSpec.from_json(data["spec"]),
            status=LeggingStatus(data["status"]),
            reason=data["reason"],
            fills=tuple(
                LegFills(
                    _dec(f["opened"]),
                    _dec(f["opened_notional"]),
                    _dec(f["unwound"]),
                    _dec(f["unwound_notional"]),
                )
                for f in data["fills"]
            ),
            completed_units=_dec(data["completed_units"]),
            child_seq=int(data["child_seq"]),
            clips_started=int(data["clips_started"]),
            clip=clip,
            in_flight=tuple(
                InFlight(
                    child_id=str(c["child_id"]),
                    leg=int(c["leg"]),
                    side=Side(c["side"]),
                    quantity=_dec(c["quantity"]),
                    limit_price=_opt_dec(c["limit_price"]),
                    purpose=ChildPurpose(c["purpose"]),
                    clip=int(c["clip"]),
                )
                for c in data["in_flight"]
            ),
            next_wake_at=_opt_parse_time(data["next_wake_at"]),
            resume_at=_opt_parse_time(data["resume_at"]),
            stop=data["stop"],
            last_mids=tuple(_dec(v) for v in data["last_mids"]),
            max_unhedged=_dec(data["max_unhedged"]),
            unhedged_since=_opt_parse_time(data["unhedged_since"]),
            unhedged_time=timedelta(microseconds=int(data["unhedged_time_us"])),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one event: the new state and the children to send now."""

    state: LeggingState
    children: tuple[LeggingChild, ...] = ()

    @property
    def next_wake_at(self) -> datetime | None:
        return self.state.next_wake_at


# report


@dataclass(frozen=True, slots=True)
class LegReport:
    instrument: str
    side: Side  # the opening side (the leg's side, flipped for a SELL strategy)
    ratio: int
    opened_quantity: Decimal  # "open" and "complete" fills
    opened_average_price: Decimal | None
    unwound_quantity: Decimal
    unwound_average_price: Decimal | None
    net_quantity: Decimal
    residual: Decimal  # net quantity beyond completed_units * ratio (0 when in ratio)


@dataclass(frozen=True, slots=True)
class LeggingReport:
    parent_id: str
    status: LeggingStatus
    reason: str | None
    legs: tuple[LegReport, ...]
    completed_units: Decimal
    net_average_price: Decimal | None  # signed net per unit of the completed units
    arrival_net_price: Decimal  # signed net per unit at the arrival mids
    legging_cost: Decimal  # quote; a loss is positive
    max_unhedged_notional: Decimal
    time_unhedged: timedelta
    clips: int

    @property
    def in_ratio(self) -> bool:
        return all(leg.residual == 0 for leg in self.legs)


def report(state: LeggingState) -> LeggingReport:
    """Fills, achieved prices and the cost of legging so far (final once terminal)."""
    spec = state.spec
    units = _held_units(state)
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        legs: list[LegReport] = []
        completed_cost = _ZERO
        unwind_loss = _ZERO
        arrival_cost = _ZERO
        for i, (leg, fill) in enumerate(zip(spec.legs, state.fills, strict=True)):
            e = spec.sign(i)
            arrival_cost += e * leg.ratio * spec.arrival_mids[i]
            if fill.opened > 0:
                # completed units and unwinds are both valued at the average opening price;
                # multiply before dividing so that a leg fully accounted for is exact
                held = units * leg.ratio
                completed_cost += e * fill.opened_notional * held / fill.opened
                unwind_loss += e * (
                    fill.opened_notional * fill.unwound / fill.opened - fill.unwound_notional
                )
            legs.append(
                LegReport(
                    instrument=leg.instrument,
                    side=spec.opening_side(i),
                    ratio=leg.ratio,
                    opened_quantity=fill.opened,
                    opened_average_price=_avg(fill.opened_notional, fill.opened),
                    unwound_quantity=fill.unwound,
                    unwound_average_price=_avg(fill.unwound_notional, fill.unwound),
                    net_quantity=fill.net,
                    residual=fill.net - units * leg.ratio,
                )
            )
        net_average = None if units == 0 else spec.side.sign * completed_cost / units
        cost = completed_cost - arrival_cost * units + unwind_loss
        return LeggingReport(
            parent_id=spec.parent_id,
            status=state.status,
            reason=state.reason,
            legs=tuple(legs),
            completed_units=units,
            net_average_price=net_average,
            arrival_net_price=spec.side.sign * arrival_cost,
            legging_cost=cost,
            max_unhedged_notional=state.max_unhedged,
            time_unhedged=state.unhedged_time,
            clips=state.clips_started,
        )


# entry points


def start(
    spec: LeggingSpec, now: datetime, markets: Mapping[str, LegMarket] = NO_MARKETS
) -> Decision:
    """Validate the clip bound at the arrival mids and start the first clip if it can be
    priced. Raises `InvalidLeggingSpec` (code `legging_bound_below_one_lot`) when a single
    lot of `U` already exceeds `max_unhedged_notional`."""
    if _clip_lots(spec, spec.quantity, spec.arrival_mids) == 0:
        raise InvalidLeggingSpec(
            f"one lot ({spec.unit_lot} units) leaves more than max_unhedged_notional "
            f"{spec.max_unhedged_notional} unhedged at the arrival mids",
            field="max_unhedged_notional",
            code=CODE_BOUND_BELOW_ONE_LOT,
        )
    n = len(spec.legs)
    state = LeggingState(
        spec=spec,
        fills=tuple(LegFills() for _ in range(n)),
        last_mids=spec.arrival_mids,
    )
    return _event(state, now, markets)


def step(
    state: LeggingState, now: datetime, markets: Mapping[str, LegMarket] = NO_MARKETS
) -> Decision:
    """Advance to `now`: retries, timeouts, new clips, deadline. Call at `next_wake_at` and
    whenever market data arrives."""
    if state.is_terminal:
        return Decision(state)
    return _event(state, now, markets)


def on_child_done(
    state: LeggingState,
    now: datetime,
    child_id: str,
    filled: Decimal,
    average_price: Decimal | None,
    markets: Mapping[str, LegMarket] = NO_MARKETS,
) -> Decision:
    """A child finished: it filled `filled` in total at `average_price` (None when nothing
    filled); the rest is cancelled (IOC)."""
    index = next((k for k, c in enumerate(state.in_flight) if c.child_id == child_id), None)
    if index is None:
        raise LeggingEventError(f"child {child_id!r} is not in flight for {state.spec.parent_id}")
    child = state.in_flight[index]
    spec = state.spec
    if not isinstance(filled, Decimal) or not filled.is_finite():
        raise LeggingEventError("filled must be a finite Decimal")
    if filled < 0 or filled > child.quantity:
        raise LeggingEventError(f"child {child_id} filled {filled} of {child.quantity}")
    if not is_multiple(filled, spec.lot_sizes[child.leg]):
        raise LeggingEventError(
            f"child {child_id} filled {filled}, not a multiple of the lot "
            f"{spec.lot_sizes[child.leg]}"
        )
    if filled > 0 and (
        not isinstance(average_price, Decimal)
        or not average_price.is_finite()
        or average_price <= 0
    ):
        raise LeggingEventError(f"child {child_id} filled {filled} without a positive price")
    # exact arithmetic, whatever the caller's decimal context
    with localcontext(prec=MAX_DIGITS):
        leg = child.leg
        fills = list(state.fills)
        notional = _ZERO if average_price is None else filled * average_price
        fill = fills[leg]
        if child.purpose is ChildPurpose.UNWIND:
            fills[leg] = replace(
                fill,
                unwound=fill.unwound + filled,
                unwound_notional=fill.unwound_notional + notional,
            )
        else:
            fills[leg] = replace(
                fill, opened=fill.opened + filled, opened_notional=fill.opened_notional + notional
            )
        clip = state.clip
        if clip is not None and clip.number == child.clip:
            if child.purpose is ChildPurpose.OPEN:
                clip = replace(
                    clip, notional=_set(clip.notional, leg, clip.notional[leg] + notional)
                )
            if filled < child.quantity:
                # the touch is exhausted: give the book time to refill before this leg again
                clip = replace(clip, retry_at=_set(clip.retry_at, leg, now + spec.retry_interval))
        state = replace(
            state,
            fills=tuple(fills),
            clip=clip,
            in_flight=state.in_flight[:index] + state.in_flight[index + 1 :],
        )
    return _event(state, now, markets)


def cancel(
    state: LeggingState, now: datetime, markets: Mapping[str, LegMarket] = NO_MARKETS
) -> Decision:
    """Stop starting clips. An unbalanced clip is rebalanced by the failure policy first."""
    if state.is_terminal:
        raise IllegalTransition(f"cannot cancel a legging order that is {state.status.value}")
    if state.stop is None:
        state = replace(state, stop=REASON_CANCELLED)
    return _event(state, now, markets)


# the machine


def _event(state: LeggingState, now: datetime, markets: Mapping[str, LegMarket]) -> Decision:
    # exact arithmetic, whatever the caller's decimal context
    with localcontext(prec=MAX_DIGITS):
        state = _observe(state, now, markets)
        return _advance(state, now, markets)


def _observe(state: LeggingState, now: datetime, markets: Mapping[str, LegMarket]) -> LeggingState:
    """Record the mids and the exposure; open or close the unhedged period."""
    spec = state.spec
    mids = list(state.last_mids)
    for i, leg in enumerate(spec.legs):
        market = markets.get(leg.instrument)
        if market is not None and market.mid is not None:
            mids[i] = market.mid
    state = replace(state, last_mids=tuple(mids))
    exposure = _exposure(state)
    since = state.unhedged_since
    elapsed = state.unhedged_time
    if _in_ratio(state):
        if since is not None:
            elapsed += now - since
            since = None
    elif since is None:
        since = now
    return replace(
        state,
        max_unhedged=max(state.max_unhedged, exposure),
        unhedged_since=since,
        unhedged_time=elapsed,
    )


def _advance(state: LeggingState, now: datetime, markets: Mapping[str, LegMarket]) -> Decision:
    spec = state.spec
    if state.is_terminal:
        return Decision(state)
    if state.stop is None and spec.deadline is not None and now >= spec.deadline:
        state = replace(state, stop=REASON_DEADLINE)
    if state.in_flight:
        # decisions need every child's result (prices depend on what was paid)
        return Decision(_with_wake(state, now, None))
    if state.clip is None:
        return _between_clips(state, now, markets)
    return _in_clip(state, now, markets)


def _between_clips(
    state: LeggingState, now: datetime, markets: Mapping[str, LegMarket]
) -> Decision:
    spec = state.spec
    if state.completed_units >= spec.quantity:
        return _finish(state, now, LeggingStatus.DONE, REASON_COMPLETED)
    if state.stop is not None:
        if state.stop == REASON_CANCELLED:
            return _finish(state, now, LeggingStatus.CANCELLED, state.stop)
        status = LeggingStatus.PARTIALLY_DONE if state.completed_units > 0 else LeggingStatus.FAILED
        return _finish(state, now, status, state.stop)
    if state.resume_at is not None and now < state.resume_at:
        return Decision(_with_wake(state, now, state.resume_at))
    retry = now + spec.retry_interval
    remaining = spec.quantity - state.completed_units
    lots = _clip_lots(spec, remaining, state.last_mids)
    if lots == 0:  # prices moved: even one lot is above the bound now
        return Decision(_with_wake(state, now, retry))
    unit = spec.unit_lot
    units = unit * lots
    order = _leg_order(spec, units, markets)
    first = order[0]
    need = tuple(units * leg.ratio for leg in spec.legs)
    limit = _open_limit(state, first, need, units, _ZERO, markets)
    if limit is None:  # not marketable within the net limit, or a quote is missing
        return Decision(_with_wake(state, now, retry))
    n = len(spec.legs)
    clip = Clip(
        number=state.clips_started + 1,
        units=units,
        base_units=state.completed_units,
        order=order,
        phase=ClipPhase.OPEN,
        notional=(_ZERO,) * n,
        retry_at=(None,) * n,
        attempts=(0,) * n,
    )
    state = replace(state, clip=clip, clips_started=clip.number, resume_at=None)
    return _send(state, now, ((first, need[first], limit, ChildPurpose.OPEN),))


def _in_clip(state: LeggingState, now: datetime, markets: Mapping[str, LegMarket]) -> Decision:
    spec = state.spec
    clip = state.clip
    assert clip is not None
    unit = spec.unit_lot
    done = _clip_fills(state)
    scaled = [unit * leg.ratio for leg in spec.legs]
    if clip.phase is ClipPhase.UNWIND:
        level = min(_floor_div(done[i], scaled[i]) for i in range(len(done)))
    else:
        level = max(_ceil_div(done[i], scaled[i]) for i in range(len(done)))
    targets = [level * s for s in scaled]
    lagging = [i for i in clip.order if done[i] != targets[i]]
    if not lagging:
        return _end_clip(state, now, markets, level * unit)

    if clip.phase is ClipPhase.OPEN:
        failure = state.stop  # cancel or deadline while unbalanced: rebalance now
        timeout = None
        if state.unhedged_since is not None:
            timeout = state.unhedged_since + spec.max_legging_time
            if failure is None and now >= timeout:
                failure = REASON_LEGGING_TIMEOUT
        if failure is not None:
            return _fail_clip(state, now, markets, failure)
        ready = [i for i in lagging if _ready(clip, i, now)]
        if not ready:
            return Decision(_with_wake(state, now, _earliest_retry(clip, lagging)))
        need = tuple(targets[i] - done[i] for i in range(len(done)))
        spent = sum((spec.sign(i) * clip.notional[i] for i in range(len(done))), _ZERO)
        for leg in ready:  # the first lagging leg, in clip order, that can be priced now
            limit = _open_limit(state, leg, need, level * unit, spent, markets)
            if limit is not None:
                return _send(state, now, ((leg, need[leg], limit, ChildPurpose.OPEN),))
            if spec.limit_price is not None and _budget_exhausted(
                state, leg, need, level * unit, spent, markets
            ):
                return _fail_clip(state, now, markets, REASON_NET_LIMIT_UNREACHABLE)
        return Decision(_with_wake(state, now, now + spec.retry_interval))

    # failure phase: rebalance at market, all lagging legs at once, bounded rounds
    if any(clip.attempts[i] >= spec.max_attempts for i in lagging):
        return _finish(
            state, now, LeggingStatus.FAILED, f"{clip.failure}: {REASON_ATTEMPTS_EXHAUSTED}"
        )
    ready = [i for i in lagging if _ready(clip, i, now)]
    if not ready:
        return Decision(_with_wake(state, now, _earliest_retry(clip, lagging)))
    purpose = ChildPurpose.UNWIND if clip.phase is ClipPhase.UNWIND else ChildPurpose.COMPLETE
    orders: list[tuple[int, Decimal, Decimal | None, ChildPurpose]] = []
    attempts = clip.attempts
    for i in ready:
        side = spec.opening_side(i)
        if purpose is ChildPurpose.UNWIND:
            side = side.opposite
        orders.append(
            (i, abs(done[i] - targets[i]), _slippage_price(state, i, side, markets), purpose)
        )
        attempts = _set(attempts, i, attempts[i] + 1)
    state = replace(state, clip=replace(clip, attempts=attempts))
    return _send(state, now, tuple(orders))


def _end_clip(
    state: LeggingState, now: datetime, markets: Mapping[str, LegMarket], level: Decimal
) -> Decision:
    clip = state.clip
    assert clip is not None
    full = clip.phase is ClipPhase.OPEN and level == clip.units
    state = replace(
        state,
        clip=None,
        completed_units=state.completed_units + level,
        # a short clip means thin books: give them time before the next clip
        resume_at=None if full else now + state.spec.retry_interval,
    )
    return _between_clips(state, now, markets)


def _fail_clip(
    state: LeggingState, now: datetime, markets: Mapping[str, LegMarket], reason: str
) -> Decision:
    spec = state.spec
    clip = state.clip
    assert clip is not None
    n = len(spec.legs)
    phase = ClipPhase.UNWIND if spec.on_failure is FailurePolicy.UNWIND else ClipPhase.COMPLETE
    clip = replace(clip, phase=phase, failure=reason, retry_at=(None,) * n, attempts=(0,) * n)
    state = replace(state, clip=clip, stop=state.stop or reason)
    return _in_clip(state, now, markets)


def _finish(state: LeggingState, now: datetime, status: LeggingStatus, reason: str) -> Decision:
    elapsed = state.unhedged_time
    if state.unhedged_since is not None:  # a residual stays unhedged: count up to the stop
        elapsed += now - state.unhedged_since
    return Decision(
        replace(
            state,
            status=status,
            reason=reason,
            next_wake_at=None,
            resume_at=None,
            unhedged_since=None,
            unhedged_time=elapsed,
        )
    )


def _send(
    state: LeggingState,
    now: datetime,
    orders: Sequence[tuple[int, Decimal, Decimal | None, ChildPurpose]],
) -> Decision:
    spec = state.spec
    clip = state.clip
    assert clip is not None
    seq = state.child_seq
    children: list[LeggingChild] = []
    flying: list[InFlight] = []
    for leg, quantity, limit, purpose in orders:
        seq += 1
        child_id = f"{spec.parent_id}-L{seq}"
        if purpose is ChildPurpose.UNWIND:
            side = spec.opening_side(leg).opposite
        else:
            side = spec.opening_side(leg)
        children.append(
            LeggingChild(
                child_id=child_id,
                parent_id=spec.parent_id,
                account=spec.account,
                leg=leg,
                instrument=spec.legs[leg].instrument,
                side=side,
                quantity=quantity,
                limit_price=limit,
                purpose=purpose,
                clip=clip.number,
            )
        )
        flying.append(InFlight(child_id, leg, side, quantity, limit, purpose, clip.number))
    state = replace(state, child_seq=seq, in_flight=state.in_flight + tuple(flying))
    return Decision(_with_wake(state, now, None), children=tuple(children))


# pricing


def _open_limit(
    state: LeggingState,
    leg: int,
    need: Sequence[Decimal],
    level: Decimal,
    spent: Decimal,
    markets: Mapping[str, LegMarket],
) -> Decimal | None:
    """The limit for an opening child of `need[leg]` on `leg`, or None when it cannot be
    priced marketably: its touch is missing or worse than what the budget leaves."""
    spec = state.spec
    side = spec.opening_side(leg)
    market = markets.get(spec.legs[leg].instrument, LegMarket())
    touch = market.touch(side)
    if touch is None:
        return None
    limit: Decimal | None
    if spec.limit_price is None:
        limit = _slippage_price(state, leg, side, markets)
    else:
        available = _leg_budget(state, leg, need, level, spent, markets)
        if available is None:
            return None
        with localcontext() as ctx:
            ctx.prec = MAX_DIGITS
            per_unit = available / need[leg]
        limit = _round_limit(per_unit, spec.tick_sizes[leg], side)
    if limit is None:
        return None
    marketable = touch <= limit if side is Side.BUY else touch >= limit
    return limit if marketable else None


def _leg_budget(
    state: LeggingState,
    leg: int,
    need: Sequence[Decimal],
    level: Decimal,
    spent: Decimal,
    markets: Mapping[str, LegMarket],
) -> Decimal | None:
    """What `leg` may cost in total (`e * quantity * price`, as a price per unit of its need
    times the need) so that the clip at `level` units meets the net limit, with every other
    missing leg at its touch. None when another missing leg has no quote."""
    spec = state.spec
    cost_limit = spec.cost_limit
    assert cost_limit is not None
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        others = _ZERO
        for j, quantity in enumerate(need):
            if j == leg or quantity == 0:
                continue
            side = spec.opening_side(j)
            touch = markets.get(spec.legs[j].instrument, LegMarket()).touch(side)
            if touch is None:
                return None
            others += spec.sign(j) * quantity * touch
        # e * need * p <= room; for a sell leg (e = -1) this is p >= -room / need
        room = cost_limit * level - spent - others
        return room if spec.sign(leg) > 0 else -room


def _budget_exhausted(
    state: LeggingState,
    leg: int,
    need: Sequence[Decimal],
    level: Decimal,
    spent: Decimal,
    markets: Mapping[str, LegMarket],
) -> bool:
    """True when, with every quote present, the missing legs at their touch break the limit."""
    spec = state.spec
    side = spec.opening_side(leg)
    touch = markets.get(spec.legs[leg].instrument, LegMarket()).touch(side)
    available = _leg_budget(state, leg, need, level, spent, markets)
    if touch is None or available is None:
        return False  # unknown, not unreachable: wait for quotes (or the legging timeout)
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        price = available / need[leg]
    return touch > price if side is Side.BUY else touch < price


def _slippage_price(
    state: LeggingState, leg: int, side: Side, markets: Mapping[str, LegMarket]
) -> Decimal:
    """mid +/- max_slippage_bps, rounded inside the band to the tick (never below a tick)."""
    spec = state.spec
    mid = _mid(state, leg, markets)
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        band = spec.max_slippage_bps / _BPS
        raw = mid * (_ONE + band) if side is Side.BUY else mid * (_ONE - band)
    price = _round_limit(raw, spec.tick_sizes[leg], side)
    return spec.tick_sizes[leg] if price is None else price


def _round_limit(price: Decimal, tick: Decimal, side: Side) -> Decimal | None:
    """Round toward the safe side (buy down, sell up); None for a buy limit below a tick."""
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
        rounded = (price / tick).to_integral_value(rounding=rounding) * tick
    if rounded <= 0:
        return None if side is Side.BUY else tick  # a sell at any price: the lowest tick
    return rounded


def _mid(state: LeggingState, leg: int, markets: Mapping[str, LegMarket]) -> Decimal:
    """The current mid, else the one quoted side, else the last mid seen (arrival at first)."""
    market = markets.get(state.spec.legs[leg].instrument)
    if market is not None:
        if market.mid is not None:
            return market.mid
        for price in (market.best_bid, market.best_ask):
            if price is not None:
                return price
    return state.last_mids[leg]


# sizing and ordering


def _clip_lots(spec: LeggingSpec, remaining: Decimal, mids: Sequence[Decimal]) -> int:
    """Lots of `U` in the next clip: the most whose worst one-sided exposure fits the bound."""
    unit = spec.unit_lot
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        available = int(remaining / unit)
        per_leg = [leg.ratio * mid * unit for leg, mid in zip(spec.legs, mids, strict=True)]
        per_lot = sum(per_leg, _ZERO) - min(per_leg)
        if per_lot <= 0:
            return available
        fit = int((spec.max_unhedged_notional / per_lot).to_integral_value(rounding=ROUND_FLOOR))
    return min(fit, available)


def _leg_order(
    spec: LeggingSpec, units: Decimal, markets: Mapping[str, LegMarket]
) -> tuple[int, ...]:
    """Hardest leg first: least top-of-book coverage of its need, then widest spread."""

    def key(i: int) -> tuple[Decimal, Decimal, int]:
        leg = spec.legs[i]
        market = markets.get(leg.instrument, LegMarket())
        side = spec.opening_side(i)
        with localcontext() as ctx:
            ctx.prec = MAX_DIGITS
            need = units * leg.ratio
            size = market.touch_size(side) if market.touch(side) is not None else _ZERO
            coverage = min(size / need, _ONE)
            mid = market.mid
            spread = (
                _INFINITY
                if mid is None or mid <= 0 or market.best_ask is None or market.best_bid is None
                else (market.best_ask - market.best_bid) / mid
            )
        return (coverage, -spread, i)

    return tuple(sorted(range(len(spec.legs)), key=key))


# quantities


def _clip_fills(state: LeggingState) -> list[Decimal]:
    clip = state.clip
    assert clip is not None
    return [
        fill.net - clip.base_units * leg.ratio
        for fill, leg in zip(state.fills, state.spec.legs, strict=True)
    ]


def _in_ratio(state: LeggingState) -> bool:
    """Every leg holds exactly `ratio` times the same whole number of lots of `U` (so a
    position in ratio but not closable in strategy lots still counts as unhedged)."""
    units = _held_units(state)
    return all(
        fill.net == units * leg.ratio
        for fill, leg in zip(state.fills, state.spec.legs, strict=True)
    )


def _held_units(state: LeggingState) -> Decimal:
    """The largest multiple of `U` held on every leg in ratio."""
    unit = state.spec.unit_lot
    return unit * min(
        _floor_div(fill.net, unit * leg.ratio)
        for fill, leg in zip(state.fills, state.spec.legs, strict=True)
    )


def _exposure(state: LeggingState) -> Decimal:
    """Quote notional of every leg's position beyond the least units held (`h`), exact."""
    legs = state.spec.legs
    held = min(Fraction(f.net) / leg.ratio for f, leg in zip(state.fills, legs, strict=True))
    total = sum(
        (
            (Fraction(f.net) - leg.ratio * held) * Fraction(mid)
            for f, leg, mid in zip(state.fills, legs, state.last_mids, strict=True)
        ),
        Fraction(0),
    )
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        return Decimal(total.numerator) / Decimal(total.denominator)


def _floor_div(value: Decimal, step: Decimal) -> int:
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        return int((value / step).to_integral_value(rounding=ROUND_FLOOR))


def _ceil_div(value: Decimal, step: Decimal) -> int:
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        return int((value / step).to_integral_value(rounding=ROUND_CEILING))


# helpers


def _ready(clip: Clip, leg: int, now: datetime) -> bool:
    at = clip.retry_at[leg]
    return at is None or at <= now


def _earliest_retry(clip: Clip, legs: Sequence[int]) -> datetime | None:
    times = [t for t in (clip.retry_at[i] for i in legs) if t is not None]
    return min(times) if times else None


def _with_wake(state: LeggingState, now: datetime, at: datetime | None) -> LeggingState:
    """`next_wake_at`: the earliest future time anything can change without an event."""
    spec = state.spec
    candidates = [at]
    if state.stop is None:
        candidates.append(spec.deadline)
    clip = state.clip
    if clip is not None and clip.phase is ClipPhase.OPEN and state.unhedged_since is not None:
        candidates.append(state.unhedged_since + spec.max_legging_time)
    future = [t for t in candidates if t is not None and t > now]
    wake = min(future) if future else None
    if wake is None and at is not None:
        wake = at
    return replace(state, next_wake_at=wake)


def _set(values: tuple[Any, ...], index: int, value: Any) -> tuple[Any, ...]:
    return (*values[:index], value, *values[index + 1 :])


def _avg(notional: Decimal, quantity: Decimal) -> Decimal | None:
    if quantity == 0:
        return None
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        return notional / quantity
