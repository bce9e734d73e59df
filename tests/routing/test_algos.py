"""Execution algorithms on the simulated clock: schedules, limits, pause/resume/cancel, restart.

A seeded simulated market (price random walk, volume per tick, top-of-book depth) and a
simple fill model drive each algorithm from before its start to after its end; every run takes
milliseconds of real time because `SimClock` jumps from one due timer to the next.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.domain.clock import Clock
from gateway.domain.errors import IllegalTransition
from gateway.domain.instruments import TradingRules
from gateway.domain.orders import Side, TimeInForce
from gateway.domain.sim_clock import SimClock, Timer
from gateway.routing.algos import (
    AlgoEventError,
    AlgoKind,
    AlgoSpec,
    AlgoState,
    AlgoStatus,
    ChildOrder,
    Decision,
    InvalidAlgoSpec,
    MarketObservation,
    cancel,
    on_child_done,
    on_fill,
    pause,
    resume,
    start,
    step,
    volume_profile_from_history,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LOT = Decimal("0.001")
TICK_SIZE = Decimal("0.01")
RULES = TradingRules(tick_size=TICK_SIZE, lot_size=LOT, min_quantity=LOT)
TICK = timedelta(seconds=10)
MINUTE = timedelta(minutes=1)
U_SHAPE = tuple(Decimal(w) for w in ("3", "2", "1", "1", "1", "1", "1", "1", "2", "3"))


def make_spec(kind: AlgoKind, **changes: Any) -> AlgoSpec:
    values: dict[str, Any] = {
        "algo_id": f"{kind.value}-1",
        "kind": kind,
        "account": "0x" + "11" * 20,
        "instrument": "WETH/USDC",
        "side": Side.BUY,
        "quantity": Decimal("12"),
        "start": T0,
        "end": T0 + 10 * MINUTE,
        "lot_size": LOT,
        "min_child": Decimal("0.1"),
        "max_child": Decimal("5"),
        "interval": MINUTE,
    }
    if kind is AlgoKind.VWAP:
        values["volume_profile"] = U_SHAPE
        values["interval"] = timedelta(seconds=30)
    elif kind is AlgoKind.POV:
        values["participation_rate"] = Decimal("0.1")
        values["quantity"] = Decimal("100")
        values["interval"] = timedelta(seconds=20)
    elif kind is AlgoKind.ICEBERG:
        values["display_quantity"] = Decimal("1")
        values["display_variance"] = Decimal("0.3")
        values["seed"] = 7
        values["limit_price"] = Decimal("3010")
    elif kind is AlgoKind.SNIPER:
        values["trigger_price"] = Decimal("2990")
        values["limit_price"] = Decimal("2991")
    values.update(changes)
    return AlgoSpec(**values)


# the simulated market and fill model


class SimMarket:
    """A seeded market: each tick moves the mid by a random number of ticks (plus drift),
    trades a random volume and refreshes the top-of-book depth. IOC children take the touch
    up to the depth; resting children fill a random share of the tick volume at their price
    while they are at or better than the touch. Everything is Decimal; the RNG draws ints."""

    def __init__(
        self,
        seed: int,
        *,
        mid: str = "3000",
        half_spread_ticks: int = 50,
        move_ticks: int = 40,
        drift_ticks: int = 0,
        volume_lots: tuple[int, int] = (1_000, 3_000),
        depth_lots: tuple[int, int] = (100_000, 100_000),
        profile: Sequence[Decimal] = (),
        start: datetime = T0,
        end: datetime = T0 + 10 * MINUTE,
        lot: Decimal = LOT,
    ) -> None:
        self.rng = random.Random(seed)
        self.lot = lot
        self.last_tick = start
        self.seen: list[tuple[datetime, MarketObservation]] = []
        self.mid = Decimal(mid)
        self.half_spread = half_spread_ticks * TICK_SIZE
        self.move_ticks = move_ticks
        self.drift_ticks = drift_ticks
        self.volume_lots = volume_lots
        self.depth_lots = depth_lots
        self.profile = tuple(profile)
        self.start, self.end = start, end
        self.depth = Decimal(0)
        self.pending_volume = Decimal(0)  # traded since the last observation (ours included)
        self.volume_since_start = Decimal(0)
        self.tick_volume = Decimal(0)

    @property
    def bid(self) -> Decimal:
        return self.mid - self.half_spread

    @property
    def ask(self) -> Decimal:
        return self.mid + self.half_spread

    def tick(self, now: datetime) -> None:
        self.last_tick = now
        move = self.rng.randint(-self.move_ticks, self.move_ticks) + self.drift_ticks
        self.mid += move * TICK_SIZE
        lots = self.rng.randint(*self.volume_lots)
        if self.profile and self.start <= now < self.end:
            bucket = (now - self.start) * len(self.profile) // (self.end - self.start)
            lots = int(lots * self.profile[bucket] * len(self.profile) / sum(self.profile))
        self.tick_volume = lots * self.lot
        self._trade(self.tick_volume, now)
        self.depth = self.rng.randint(*self.depth_lots) * self.lot

    def _trade(self, quantity: Decimal, now: datetime) -> None:
        self.pending_volume += quantity
        if now >= self.start:
            self.volume_since_start += quantity

    def observe(self) -> MarketObservation:
        seen = MarketObservation(self.bid, self.ask, self.mid, self.pending_volume)
        self.pending_volume = Decimal(0)
        self.seen.append((self.last_tick, seen))
        return seen

    def take(self, child: ChildOrder, now: datetime) -> tuple[Decimal, Decimal]:
        """IOC: fill at the touch up to the depth, never beyond the child's limit."""
        if child.side is Side.BUY:
            price = self.ask
            ok = child.limit_price is None or price <= child.limit_price
        else:
            price = self.bid
            ok = child.limit_price is None or price >= child.limit_price
        if not ok:
            return Decimal(0), price
        quantity = min(child.quantity, self.depth)
        self.depth -= quantity
        self._trade(quantity, now)
        return quantity, price

    def rest(self, child: ChildOrder, open_quantity: Decimal, now: datetime) -> Decimal:
        """Resting child at its limit: fills a random share of this tick's volume when at or
        better than the touch."""
        assert child.limit_price is not None
        at_touch = (
            child.limit_price >= self.bid
            if child.side is Side.BUY
            else child.limit_price <= self.ask
        )
        if not at_touch:
            return Decimal(0)
        share = Decimal(self.rng.randint(20, 60)) / 100
        quantity = min(
            open_quantity, (self.tick_volume * share / self.lot).to_integral_value() * self.lot
        )
        if quantity > 0:
            self._trade(quantity, now)
        return quantity


@dataclass
class Sample:
    now: datetime
    filled: Decimal
    market_volume: Decimal
    status: AlgoStatus


@dataclass
class Driver:
    """Runs one algorithm on a `SimClock`: market ticks and algo wake-ups are timers; child
    orders go to `SimMarket`; optional pause/resume/cancel at given times; optional restart
    (state -> JSON text -> state) after random events."""

    spec: AlgoSpec
    market: SimMarket
    script: Sequence[tuple[datetime, str]] = ()
    restart_seed: int | None = None
    restart_probability: float = 0.3
    clock: SimClock = field(init=False)
    state: AlgoState = field(init=False)
    trace: list[tuple[Any, ...]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    sent: list[tuple[datetime, ChildOrder]] = field(default_factory=list)
    resting: dict[str, tuple[ChildOrder, Decimal]] = field(default_factory=dict)
    restarts: int = 0
    wake: Timer | None = None
    _restart_rng: random.Random = field(init=False)

    def run(self) -> Driver:
        self.clock = SimClock(self.spec.start - 3 * TICK)
        self.state = start(self.spec)
        self._restart_rng = random.Random(self.restart_seed)
        t = self.clock.now()
        while t <= self.spec.end + 2 * TICK:
            self.clock.schedule(t, "tick")
            t += TICK
        for when, action in self.script:
            self.clock.schedule(when, action)
        self._reschedule_wake()
        for _ in range(100_000):
            fired = self.clock.advance_to_next()
            if not fired:
                break
            for timer in fired:
                self._handle(timer)
            self.samples.append(
                Sample(
                    self.clock.now(),
                    self.state.filled,
                    self.market.volume_since_start,
                    self.state.status,
                )
            )
        assert self.state.is_done, "the algorithm must end terminal with no child open"
        return self

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def _handle(self, timer: Timer) -> None:
        now = self.now
        if timer.label == "tick":
            self.market.tick(now)
            self._fill_resting(now)
            self._apply(step(self.state, now, self.market.observe()))
        elif timer.label == "wake":
            if self.wake is not None and timer.timer_id == self.wake.timer_id:
                self.wake = None
                self._apply(step(self.state, now, self.market.observe()))
        elif self.state.is_terminal:
            self.trace.append((now, "skipped", timer.label))
        elif timer.label == "pause":
            self._apply(pause(self.state, now))
        elif timer.label == "resume":
            self._apply(resume(self.state, now))
        elif timer.label == "cancel":
            self._apply(cancel(self.state, now))
        else:  # pragma: no cover
            raise AssertionError(timer.label)

    def _apply(self, decision: Decision) -> None:
        spec = self.spec
        sent_now = sum((c.quantity for c in decision.children), Decimal(0))
        before_unsent = decision.state.unsent + sent_now
        self.state = decision.state
        self._check_invariants(decision, before_unsent)
        self._maybe_restart()
        now = self.now
        for child_id in decision.cancels:
            self.trace.append((now, "cancel", child_id))
            if child_id in self.resting:
                child, filled = self.resting.pop(child_id)
                self._apply(
                    on_child_done(self.state, now, child_id, filled, child.quantity - filled)
                )
        for child in decision.children:
            self.trace.append((now, "child", child))
            self.sent.append((now, child))
            assert child.algo_id == spec.algo_id and child.side is spec.side
            if child.time_in_force is TimeInForce.IOC:
                quantity, price = self.market.take(child, now)
                if quantity:
                    self._fill(child, quantity, price)
                self.trace.append(
                    (now, "done", child.child_id, quantity, child.quantity - quantity)
                )
                self._apply(
                    on_child_done(
                        self.state, now, child.child_id, quantity, child.quantity - quantity
                    )
                )
            else:
                self.resting[child.child_id] = (child, Decimal(0))
        self._reschedule_wake()

    def _fill(self, child: ChildOrder, quantity: Decimal, price: Decimal) -> None:
        if child.limit_price is not None:
            worse = (
                price > child.limit_price if child.side is Side.BUY else price < child.limit_price
            )
            assert not worse, "filled beyond the limit"
        self.trace.append((self.now, "fill", child.child_id, quantity, price))
        self._apply(on_fill(self.state, child.child_id, quantity, price))

    def _fill_resting(self, now: datetime) -> None:
        for child_id in sorted(self.resting):
            child, filled = self.resting[child_id]
            quantity = self.market.rest(child, child.quantity - filled, now)
            if quantity <= 0:
                continue
            assert child.limit_price is not None
            filled += quantity
            self.resting[child_id] = (child, filled)
            self._fill(child, quantity, child.limit_price)
            if filled == child.quantity:
                del self.resting[child_id]
                self.trace.append((now, "done", child_id, filled, Decimal(0)))
                self._apply(on_child_done(self.state, now, child_id, filled, Decimal(0)))

    def _check_invariants(self, decision: Decision, before_unsent: Decimal) -> None:
        spec, state = self.spec, decision.state
        assert Decimal(0) <= state.in_flight <= state.remaining
        assert state.filled <= spec.quantity
        whole_rest = sum((c.quantity for c in decision.children), Decimal(0)) == before_unsent
        for child in decision.children:
            assert child.quantity > 0
            assert child.quantity % spec.lot_size == 0, "child not a lot multiple"
            assert child.quantity <= spec.max_child, "child above max_child"
            assert child.quantity >= spec.min_child or whole_rest, "child below min_child"
            assert child.limit_price == spec.limit_price, "child priced off the parent limit"
        if decision.children:
            assert state.status is AlgoStatus.RUNNING

    def _maybe_restart(self) -> None:
        if self.restart_seed is None or self._restart_rng.random() >= self.restart_probability:
            return
        text = json.dumps(self.state.to_json())
        restored = AlgoState.from_json(json.loads(text))
        assert restored == self.state
        self.state = restored
        self.restarts += 1

    def _reschedule_wake(self) -> None:
        wanted = self.state.next_wake_at
        if self.wake is not None and wanted == self.wake.when:
            return
        if self.wake is not None:
            self.clock.cancel(self.wake)
            self.wake = None
        if wanted is not None:
            self.wake = self.clock.schedule(max(wanted, self.now), "wake")


def schedule_fraction(spec: AlgoSpec, at: datetime) -> Decimal:
    """Reference schedule for the assertions (independent of the implementation)."""
    at = min(max(at, spec.start), spec.end)
    x = Decimal((at - spec.start) // timedelta(microseconds=1)) / Decimal(
        (spec.end - spec.start) // timedelta(microseconds=1)
    )
    if spec.kind is AlgoKind.TWAP:
        return x
    weights = spec.volume_profile
    total = sum(weights, Decimal(0))
    position = x * len(weights)
    done = Decimal(0)
    for i, w in enumerate(weights):
        done += w * min(max(position - i, Decimal(0)), Decimal(1))
    return done / total


def running_samples(run: Driver) -> list[Sample]:
    """Samples in [start, end), the last one per instant (after every event at that time)."""
    last: dict[datetime, Sample] = {}
    for s in run.samples:
        if run.spec.start <= s.now < run.spec.end:
            last[s.now] = s
    return list(last.values())


# TWAP


def test_twap_tracks_the_linear_schedule_and_completes_by_end() -> None:
    spec = make_spec(AlgoKind.TWAP)
    run = Driver(spec, SimMarket(1)).run()
    one_slice = spec.quantity / spec.slice_count
    samples = running_samples(run)
    assert len(samples) >= 60
    for s in samples:
        linear = spec.quantity * schedule_fraction(spec, s.now)
        assert s.filled >= linear - LOT, f"behind at {s.now}: {s.filled} < {linear}"
        assert s.filled <= linear + one_slice + spec.min_child, f"front-running at {s.now}"
    assert run.state.status is AlgoStatus.COMPLETED
    assert run.state.filled == spec.quantity
    last_child_at = max(t for t, _ in run.sent)
    assert last_child_at < spec.end
    # slices: one child per slice when liquidity is deep
    assert len(run.sent) == spec.slice_count


def test_twap_catches_up_when_liquidity_is_thin() -> None:
    spec = make_spec(AlgoKind.TWAP)
    # top-of-book depth 0.2..1.0 against 1.2 per slice: children fill partially
    run = Driver(spec, SimMarket(2, depth_lots=(200, 1_000))).run()
    one_slice = spec.quantity / spec.slice_count
    partial = [e for e in run.trace if e[1] == "done" and e[4] > 0]
    assert partial, "the thin market should produce partial fills"
    for s in running_samples(run):
        linear = spec.quantity * schedule_fraction(spec, s.now)
        assert linear - one_slice <= s.filled <= linear + one_slice + spec.min_child
    assert run.state.status is AlgoStatus.COMPLETED


def test_twap_never_runs_more_than_one_slice_ahead_even_with_steps_on_every_tick() -> None:
    spec = make_spec(AlgoKind.TWAP, quantity=Decimal("3"), min_child=Decimal("0.01"))
    run = Driver(spec, SimMarket(3)).run()
    for s in running_samples(run):
        ahead = s.filled - spec.quantity * schedule_fraction(spec, s.now)
        assert ahead <= spec.quantity / spec.slice_count + LOT


# VWAP


def test_vwap_follows_its_volume_profile() -> None:
    spec = make_spec(AlgoKind.VWAP)
    run = Driver(spec, SimMarket(4, profile=U_SHAPE)).run()
    slice_fraction = max(U_SHAPE) / sum(U_SHAPE) / (spec.slice_count // len(U_SHAPE))
    tolerance = spec.quantity * slice_fraction + spec.min_child
    for s in running_samples(run):
        target = spec.quantity * schedule_fraction(spec, s.now)
        assert target - LOT <= s.filled <= target + tolerance, (s.now, s.filled, target)
    assert run.state.status is AlgoStatus.COMPLETED
    # the first bucket (weight 3/16) is traded three times faster than a middle one (1/16)
    first = sum(c.quantity for t, c in run.sent if t < spec.start + MINUTE)
    middle = sum(
        c.quantity for t, c in run.sent if spec.start + 4 * MINUTE <= t < spec.start + 5 * MINUTE
    )
    assert first == pytest.approx(3 * middle, rel=Decimal("0.05"))


def test_vwap_tracks_the_market_volume_curve_when_history_matches() -> None:
    spec = make_spec(AlgoKind.VWAP)
    run = Driver(spec, SimMarket(5, profile=U_SHAPE)).run()
    total = run.samples[-1].market_volume
    for s in running_samples(run):
        ours = s.filled / spec.quantity
        market = s.market_volume / total
        assert abs(ours - market) <= Decimal("0.12"), (s.now, ours, market)


def test_volume_profile_from_history_aggregates_and_normalizes() -> None:
    history = [Decimal(v) for v in (5, 5, 1, 1, 1, 1, 2, 4)]
    profile = volume_profile_from_history(history, 4)
    assert profile == (Decimal(10) / 20, Decimal(2) / 20, Decimal(2) / 20, Decimal(6) / 20)
    assert sum(profile) == 1
    with pytest.raises(InvalidAlgoSpec, match="no volume"):
        volume_profile_from_history([Decimal(0)] * 4, 2)
    with pytest.raises(InvalidAlgoSpec, match="at least one"):
        volume_profile_from_history([Decimal(1)], 2)


# POV


def test_pov_participates_at_its_rate_and_expires_with_the_rest() -> None:
    spec = make_spec(AlgoKind.POV)
    run = Driver(spec, SimMarket(6)).run()
    rate = spec.participation_rate
    assert rate is not None
    per_tick = 3_000 * LOT * 2  # largest tick volume, twice (one wake-up may see two ticks)
    for s in running_samples(run)[6:]:
        target = rate * s.market_volume
        assert s.filled <= target + spec.min_child + LOT, (s.now, s.filled, target)
        assert s.filled >= target - max(spec.min_child, rate * per_tick) - LOT
    final = running_samples(run)[-1]
    assert final.filled / final.market_volume == pytest.approx(rate, rel=Decimal("0.05"))
    assert run.state.status is AlgoStatus.EXPIRED
    assert run.state.unfilled == spec.quantity - run.state.filled > 0


def test_pov_does_not_complete_before_volume_allows() -> None:
    spec = make_spec(AlgoKind.POV, quantity=Decimal("5"))
    run = Driver(spec, SimMarket(7)).run()
    assert run.state.status is AlgoStatus.COMPLETED
    done_at = next(s for s in run.samples if s.status is AlgoStatus.COMPLETED)
    rate = spec.participation_rate
    assert rate is not None
    assert rate * done_at.market_volume >= spec.quantity - spec.min_child - LOT


# iceberg


def test_iceberg_shows_at_most_its_display_and_refreshes_randomly() -> None:
    spec = make_spec(AlgoKind.ICEBERG)
    run = Driver(spec, SimMarket(8, move_ticks=5)).run()
    assert run.state.status is AlgoStatus.COMPLETED
    sizes = [c.quantity for _, c in run.sent]
    display = spec.display_quantity
    assert display is not None
    top = (display * Decimal("1.3") / LOT).to_integral_value(rounding="ROUND_FLOOR") * LOT
    assert spec.max_display == top
    assert all(size <= top for size in sizes)
    assert all(size >= display * Decimal("0.7") - LOT for size in sizes[:-1])
    assert len(set(sizes)) > 3, "refreshes should be randomized"
    assert all(c.time_in_force is TimeInForce.GTC for _, c in run.sent)
    assert all(c.limit_price == spec.limit_price for _, c in run.sent)
    # never more than one slice displayed at a time: each child is sent after the previous
    # one is done
    shown: set[str] = set()
    for event in run.trace:
        if event[1] == "child":
            assert not shown
            shown.add(event[2].child_id)
        elif event[1] == "done":
            shown.discard(event[2])


def test_iceberg_same_seed_same_sizes_other_seed_other_sizes() -> None:
    def sizes(seed: int) -> list[Decimal]:
        run = Driver(make_spec(AlgoKind.ICEBERG, seed=seed), SimMarket(8, move_ticks=5)).run()
        return [c.quantity for _, c in run.sent]

    assert sizes(11) == sizes(11)
    assert sizes(11) != sizes(12)


# sniper


def test_sniper_waits_for_the_trigger_then_sends_everything_at_once() -> None:
    spec = make_spec(AlgoKind.SNIPER, quantity=Decimal("12"), max_child=Decimal("5"))
    market = SimMarket(9, drift_ticks=-25, move_ticks=20)
    run = Driver(spec, market).run()
    trigger = spec.trigger_price
    assert trigger is not None
    hit_at = next(
        t
        for t, o in market.seen
        if t >= spec.start and o.best_ask is not None and o.best_ask <= trigger
    )
    assert hit_at > spec.start + MINUTE, "the path should take a while to reach the trigger"
    times = {t for t, _ in run.sent}
    assert times == {hit_at}, "everything at once, at the first observation at the trigger"
    assert sum(c.quantity for _, c in run.sent) == spec.quantity
    assert [c.quantity for _, c in run.sent] == [Decimal(4), Decimal(4), Decimal(4)]
    assert all(c.time_in_force is TimeInForce.IOC for _, c in run.sent)
    assert all(c.limit_price == spec.limit_price for _, c in run.sent)
    assert run.state.status is AlgoStatus.COMPLETED


def test_sniper_never_fires_if_the_price_never_reaches_the_trigger() -> None:
    spec = make_spec(AlgoKind.SNIPER)
    run = Driver(spec, SimMarket(10, drift_ticks=5)).run()
    assert run.sent == []
    assert run.state.status is AlgoStatus.EXPIRED
    assert run.state.unfilled == spec.quantity


def test_sniper_rearms_after_a_partial_fill() -> None:
    spec = make_spec(AlgoKind.SNIPER, quantity=Decimal("3"), max_child=Decimal("3"))
    market = SimMarket(11, drift_ticks=-25, move_ticks=20, depth_lots=(1_000, 1_000))
    run = Driver(spec, market).run()
    assert len({t for t, _ in run.sent}) == 3  # 1 + 1 + 1 over three triggers
    assert run.state.status is AlgoStatus.COMPLETED


# pause, resume, cancel, limit


def test_pause_stops_new_children_and_resume_catches_up() -> None:
    spec = make_spec(AlgoKind.TWAP)
    paused_at, resumed_at = T0 + 3 * MINUTE + TICK, T0 + 6 * MINUTE + TICK
    run = Driver(spec, SimMarket(12), script=[(paused_at, "pause"), (resumed_at, "resume")]).run()
    assert not [t for t, _ in run.sent if paused_at <= t < resumed_at]
    paused = [s for s in run.samples if paused_at <= s.now < resumed_at]
    assert paused and all(s.status is AlgoStatus.PAUSED for s in paused)
    assert len({s.filled for s in paused}) == 1
    after = [t for t, _ in run.sent if t >= resumed_at]
    assert after and after[0] == resumed_at
    for s in running_samples(run):
        if s.now >= resumed_at:
            linear = spec.quantity * schedule_fraction(spec, s.now)
            assert linear - LOT <= s.filled <= linear + spec.quantity / spec.slice_count + LOT
    assert run.state.status is AlgoStatus.COMPLETED


def test_pausing_an_iceberg_pulls_its_slice_and_resume_shows_a_new_one() -> None:
    spec = make_spec(AlgoKind.ICEBERG, quantity=Decimal("40"))
    paused_at, resumed_at = T0 + MINUTE + TICK / 2, T0 + 2 * MINUTE + TICK / 2
    script = [(paused_at, "pause"), (resumed_at, "resume")]
    run = Driver(spec, SimMarket(16, move_ticks=5), script=script).run()
    assert next(e[0] for e in run.trace if e[1] == "cancel") == paused_at
    assert not [t for t, _ in run.sent if paused_at <= t < resumed_at]
    assert resumed_at in {t for t, _ in run.sent}
    assert all(
        s.status is AlgoStatus.PAUSED for s in run.samples if paused_at <= s.now < resumed_at
    )


def test_no_tail_below_min_child_is_left_behind() -> None:
    spec = make_spec(
        AlgoKind.TWAP,
        quantity=Decimal(1),
        min_child=Decimal("0.3"),
        max_child=Decimal(1),
        lot_size=Decimal("0.1"),
    )
    run = Driver(spec, SimMarket(17)).run()
    # 0.1 per slice is below the minimum: wait, then 0.3, 0.3 and the last 0.4 in one child
    assert [c.quantity for _, c in run.sent] == [Decimal("0.3"), Decimal("0.3"), Decimal("0.4")]
    assert [t - T0 for t, _ in run.sent] == [2 * MINUTE, 5 * MINUTE, 8 * MINUTE]
    assert run.state.status is AlgoStatus.COMPLETED


def test_cancel_pulls_the_resting_child_and_reports_the_rest() -> None:
    spec = make_spec(AlgoKind.ICEBERG)
    cancelled_at = T0 + MINUTE + TICK / 2
    run = Driver(spec, SimMarket(13, move_ticks=5), script=[(cancelled_at, "cancel")]).run()
    cancels = [e for e in run.trace if e[1] == "cancel"]
    assert len(cancels) == 1 and cancels[0][0] == cancelled_at
    assert not [t for t, _ in run.sent if t >= cancelled_at]
    assert run.state.status is AlgoStatus.CANCELLED and run.state.is_done
    assert Decimal(0) < run.state.filled < spec.quantity
    assert run.state.unfilled == spec.quantity - run.state.filled


def test_limit_price_is_respected_and_unmarketable_slices_wait() -> None:
    spec = make_spec(AlgoKind.TWAP, limit_price=Decimal("3000.50"))
    run = Driver(spec, SimMarket(14, move_ticks=60)).run()
    assert run.sent, "some slices should trade"
    assert all(c.limit_price == Decimal("3000.50") for _, c in run.sent)
    fills = [e for e in run.trace if e[1] == "fill"]
    assert fills and all(e[4] <= Decimal("3000.50") for e in fills)
    assert run.state.average_price is not None
    assert run.state.average_price <= Decimal("3000.50")


def test_sell_side_twap() -> None:
    spec = make_spec(AlgoKind.TWAP, side=Side.SELL, limit_price=Decimal("2900"))
    run = Driver(spec, SimMarket(15)).run()
    assert run.state.status is AlgoStatus.COMPLETED
    assert all(c.side is Side.SELL for _, c in run.sent)


# restart: persisted state continues exactly


@pytest.mark.parametrize("kind", list(AlgoKind))
@pytest.mark.parametrize("seed", [1, 2])
def test_restart_at_random_points_gives_identical_actions(kind: AlgoKind, seed: int) -> None:
    def market() -> SimMarket:
        if kind is AlgoKind.SNIPER:
            return SimMarket(seed, drift_ticks=-25, move_ticks=20, depth_lots=(500, 4_000))
        if kind is AlgoKind.ICEBERG:
            return SimMarket(seed, move_ticks=5)
        return SimMarket(seed, depth_lots=(300, 3_000), profile=U_SHAPE)

    script = [(T0 + 4 * MINUTE + 5 * TICK / 2, "pause"), (T0 + 5 * MINUTE, "resume")]
    spec = make_spec(kind)
    baseline = Driver(spec, market(), script=script).run()
    restarted = Driver(spec, market(), script=script, restart_seed=seed).run()
    assert restarted.restarts > 10
    assert restarted.trace == baseline.trace
    assert restarted.state == baseline.state
    assert len(baseline.sent) > 0


def test_state_json_is_plain_json_with_decimal_strings() -> None:
    spec = make_spec(AlgoKind.ICEBERG)
    decision = step(start(spec), T0, MarketObservation())
    data = decision.state.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["filled"] == "0" and data["spec"]["quantity"] == "12"
    assert isinstance(data["rng_state"], int)
    assert AlgoState.from_json(data) == decision.state
    with pytest.raises(ValueError, match="version"):
        AlgoState.from_json({**data, "version": 99})
    with pytest.raises(ValueError, match="malformed"):
        AlgoState.from_json({k: v for k, v in data.items() if k != "filled"})
    with pytest.raises(ValueError, match="malformed"):
        AlgoState.from_json({**data, "filled": "lots"})
    with pytest.raises(InvalidAlgoSpec, match="quantity must be positive"):
        AlgoState.from_json({**data, "spec": {**data["spec"], "quantity": "-1"}})


# min/max/lot under random parameters (invariants are asserted by the driver on every decision)


@pytest.mark.parametrize("kind", list(AlgoKind))
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    lot_exp=st.integers(min_value=0, max_value=3),
    quantity_lots=st.integers(min_value=1, max_value=5_000),
    min_lots=st.integers(min_value=1, max_value=400),
    extra_lots=st.integers(min_value=0, max_value=2_000),
    market_seed=st.integers(min_value=0, max_value=10_000),
    side=st.sampled_from(list(Side)),
)
def test_children_respect_min_max_lot_and_remaining(
    kind: AlgoKind,
    lot_exp: int,
    quantity_lots: int,
    min_lots: int,
    extra_lots: int,
    market_seed: int,
    side: Side,
) -> None:
    lot = Decimal(1).scaleb(-lot_exp)
    min_child = min_lots * lot
    max_child = min_child + extra_lots * lot
    quantity = quantity_lots * lot
    changes: dict[str, Any] = {
        "lot_size": lot,
        "quantity": quantity,
        "min_child": min_child,
        "max_child": max_child,
        "side": side,
        "end": T0 + 5 * MINUTE,
        "interval": timedelta(seconds=30),
    }
    if kind is AlgoKind.ICEBERG:
        changes["display_quantity"] = min_child + (extra_lots // 2) * lot
        changes["limit_price"] = Decimal("3010") if side is Side.BUY else Decimal("2990")
    if kind is AlgoKind.SNIPER:
        changes["trigger_price"] = Decimal("2998") if side is Side.BUY else Decimal("3002")
        changes["limit_price"] = Decimal("2999") if side is Side.BUY else Decimal("3001")
    if kind is AlgoKind.TWAP or kind is AlgoKind.VWAP:
        changes["max_child"] = max(max_child, quantity)  # a feasible schedule
    try:
        spec = make_spec(kind, **changes)
    except InvalidAlgoSpec:
        return
    drift = (-25 if side is Side.BUY else 25) if kind is AlgoKind.SNIPER else 0
    market = SimMarket(
        market_seed,
        drift_ticks=drift,
        move_ticks=20,
        depth_lots=(1, 5_000),
        end=spec.end,
        lot=lot,
    )
    # the driver asserts lot / min / max / limit / in-flight invariants on every decision
    run = Driver(spec, market).run()
    assert run.state.filled + run.state.unfilled == spec.quantity
    for _, child in run.sent:
        assert child.quantity % lot == 0


# validation and event errors


@pytest.mark.parametrize(
    ("kind", "changes", "message"),
    [
        (AlgoKind.TWAP, {"quantity": Decimal(0)}, "quantity must be positive"),
        (AlgoKind.TWAP, {"quantity": 1.5}, "quantity must be a Decimal"),
        (AlgoKind.TWAP, {"quantity": Decimal("1.0005")}, "not a multiple of the lot size"),
        (AlgoKind.TWAP, {"end": T0}, "end must be after start"),
        (AlgoKind.TWAP, {"start": T0.replace(tzinfo=None)}, "timezone-aware"),
        (AlgoKind.TWAP, {"min_child": Decimal(6)}, "min_child must not exceed max_child"),
        (AlgoKind.TWAP, {"max_child": Decimal(1)}, "cannot reach the quantity"),
        (AlgoKind.TWAP, {"interval": timedelta(0)}, "interval must be positive"),
        (AlgoKind.TWAP, {"interval": timedelta(hours=1)}, "interval must not be longer"),
        (AlgoKind.TWAP, {"limit_price": Decimal(-1)}, "limit_price must be positive"),
        (AlgoKind.TWAP, {"participation_rate": Decimal("0.1")}, "applies only to pov"),
        (AlgoKind.TWAP, {"algo_id": ""}, "algo_id must be a non-empty string"),
        (AlgoKind.VWAP, {"volume_profile": ()}, "VWAP needs a volume profile"),
        (AlgoKind.VWAP, {"volume_profile": (Decimal(-1), Decimal(2))}, "must not be negative"),
        (AlgoKind.VWAP, {"volume_profile": (Decimal(0),)}, "must have some volume"),
        (AlgoKind.POV, {"participation_rate": None}, "needs a participation rate"),
        (AlgoKind.POV, {"participation_rate": Decimal(1)}, r"in \(0, 1\)"),
        (AlgoKind.ICEBERG, {"limit_price": None}, "set limit_price"),
        (AlgoKind.ICEBERG, {"display_quantity": Decimal(6)}, r"\[min_child, max_child\]"),
        (AlgoKind.ICEBERG, {"display_variance": Decimal(1)}, r"in \[0, 1\)"),
        (AlgoKind.SNIPER, {"trigger_price": None}, "needs a positive trigger"),
        (AlgoKind.SNIPER, {"limit_price": Decimal(2980)}, "at or above the trigger"),
        (AlgoKind.SNIPER, {"volume_profile": U_SHAPE}, "applies only to vwap"),
    ],
)
def test_invalid_specs_are_rejected_with_clear_errors(
    kind: AlgoKind, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        make_spec(kind, **changes)
    assert isinstance(caught.value, InvalidAlgoSpec)
    assert caught.value.code == "invalid_algo_spec"


def test_check_rules_against_the_instrument() -> None:
    make_spec(AlgoKind.TWAP).check_rules(RULES)
    with pytest.raises(InvalidAlgoSpec, match="lot_size"):
        make_spec(AlgoKind.TWAP).check_rules(replace(RULES, lot_size=Decimal("0.01")))
    with pytest.raises(InvalidAlgoSpec, match="below the instrument minimum"):
        make_spec(AlgoKind.TWAP).check_rules(replace(RULES, min_quantity=Decimal(1)))
    with pytest.raises(InvalidAlgoSpec, match="tick size"):
        make_spec(AlgoKind.SNIPER, limit_price=Decimal("2991.005")).check_rules(RULES)


def test_events_that_do_not_fit_the_state_are_refused() -> None:
    spec = make_spec(AlgoKind.ICEBERG)
    decision = step(start(spec), T0, MarketObservation())
    (child,) = decision.children
    state = decision.state
    with pytest.raises(AlgoEventError, match="not an open child"):
        on_fill(state, "nope", Decimal(1), Decimal(3000))
    with pytest.raises(AlgoEventError, match="exceeds"):
        on_fill(state, child.child_id, child.quantity + LOT, Decimal(3000))
    with pytest.raises(AlgoEventError, match="fills were received"):
        on_child_done(state, T0, child.child_id, child.quantity, Decimal(0))
    with pytest.raises(AlgoEventError, match="!= quantity"):
        on_child_done(state, T0, child.child_id, Decimal(0), Decimal(0))
    cancelled = cancel(state, T0).state
    with pytest.raises(IllegalTransition):
        cancel(cancelled, T0)
    with pytest.raises(IllegalTransition):
        pause(cancelled, T0)
    with pytest.raises(IllegalTransition):
        resume(state, T0)
    # a late fill after cancel still counts, and no new slice is shown
    late = on_fill(cancelled, child.child_id, LOT, Decimal(3000)).state
    assert late.filled == LOT and late.status is AlgoStatus.CANCELLED
    finished = on_child_done(late, T0, child.child_id, LOT, child.quantity - LOT)
    assert finished.children == () and finished.state.is_done
    assert finished.state.unfilled == spec.quantity - LOT


def test_nothing_before_start_and_expiry_at_end() -> None:
    spec = make_spec(AlgoKind.TWAP)
    state = start(spec)
    early = step(state, T0 - MINUTE, MarketObservation())
    assert early.children == () and early.next_wake_at == T0
    assert early.state.status is AlgoStatus.SCHEDULED
    first = step(early.state, T0, MarketObservation())
    assert [c.quantity for c in first.children] == [Decimal("1.2")]
    assert first.next_wake_at == T0 + MINUTE
    expired = step(first.state, spec.end, MarketObservation())
    assert expired.state.status is AlgoStatus.EXPIRED
    assert expired.cancels == (first.children[0].child_id,)
    assert expired.next_wake_at is None


def test_unmarketable_market_sends_nothing() -> None:
    spec = make_spec(AlgoKind.TWAP, limit_price=Decimal(3000))
    far = MarketObservation(best_bid=Decimal(3004), best_ask=Decimal(3005))
    assert step(start(spec), T0, far).children == ()
    near = MarketObservation(best_bid=Decimal(2999), best_ask=Decimal(3000))
    (child,) = step(start(spec), T0, near).children
    assert child.limit_price == Decimal(3000)


# the simulated clock


def test_sim_clock_is_a_clock_and_fires_timers_in_order() -> None:
    clock = SimClock(T0)
    as_clock: Clock = clock
    assert as_clock.now() == T0
    fired: list[str] = []

    def chain(timer: Timer) -> None:
        fired.append(timer.label)
        if timer.label == "a":
            clock.schedule_in(timedelta(seconds=5), "c", chain)  # inside the window

    clock.schedule(T0 + timedelta(seconds=10), "b", chain)
    clock.schedule(T0 + timedelta(seconds=1), "a", chain)
    clock.schedule(T0 + timedelta(seconds=10), "b2", chain)  # same time: scheduling order
    dropped = clock.schedule(T0 + timedelta(seconds=3), "dropped", chain)
    clock.cancel(dropped)
    assert clock.next_due() == T0 + timedelta(seconds=1)
    result = clock.advance(timedelta(seconds=30))
    assert fired == ["a", "c", "b", "b2"]
    assert [t.label for t in result] == fired
    assert clock.now() == T0 + timedelta(seconds=30)
    assert clock.next_due() is None and clock.advance_to_next() == []
    with pytest.raises(ValueError, match="backwards"):
        clock.advance_to(T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2026, 1, 1))


def test_sim_clock_jumps_to_the_next_timer() -> None:
    clock = SimClock(T0)
    clock.schedule(T0 + timedelta(hours=5), "late")
    clock.schedule(T0 + timedelta(hours=1), "soon")
    assert [t.label for t in clock.advance_to_next()] == ["soon"]
    assert clock.now() == T0 + timedelta(hours=1)
    assert [t.label for t in clock.pending()] == ["late"]
    assert [t.label for t in clock.advance_to_next()] == ["late"]
    assert clock.now() == T0 + timedelta(hours=5)
