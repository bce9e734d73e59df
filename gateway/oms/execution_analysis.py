"""Transaction cost analysis of a parent order, from what the store recorded.

A parent is a smart-routed order (its own fills) or an algo (the fills of its children, the
gateway orders whose client order id is `<algo id>-<n>`). The benchmark is the arrival price
stored with the parent when it was created; orders submitted without routing have none, so
they get `tca_unavailable` rather than a number measured against nothing. The interval runs
from the parent's creation (an algo's scheduled start if later) to its last change once it is
finished, else to now; the market's VWAP over it comes from the venues' public trade tape.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from sqlalchemy import Engine

from gateway.domain.benchmarks import ExecutionBenchmark
from gateway.domain.clock import Clock
from gateway.domain.errors import DomainError
from gateway.domain.fills import Fill
from gateway.domain.orders import Side
from gateway.oms.route_sources import RouteSources
from gateway.oms.service import OrderNotFound
from gateway.routing.tca import CostAnalysis, ExecutedFill, MarketInterval, analyse_execution
from gateway.store import algo_repository as algo_store
from gateway.store import execution_benchmarks as benchmarks
from gateway.store import order_repository as order_repo

TAPE_SLACK = timedelta(seconds=1)


class TcaUnavailable(DomainError):
    code = "tca_unavailable"


class MarketTape(Protocol):
    async def vwap(
        self, instrument: str, start: datetime, end: datetime
    ) -> tuple[Decimal | None, Decimal]: ...


@dataclass(frozen=True, slots=True)
class ParentExecution:
    parent_id: str
    parent_kind: str  # "order" or "algo"
    account: str
    instrument: str
    status: str
    start: datetime
    end: datetime
    finished: bool
    benchmark: ExecutionBenchmark
    children: int
    analysis: CostAnalysis


@dataclass(frozen=True, slots=True)
class _Parent:
    account: str
    instrument: str
    side: Side
    quantity: Decimal
    status: str
    start: datetime
    last_change: datetime
    finished: bool
    fills: list[Fill]
    children: int


class TransactionCostAnalysis:
    def __init__(
        self,
        read_engine: Engine,
        routes: RouteSources,
        clock: Clock,
        tape: MarketTape | None = None,
    ) -> None:
        self._read_engine = read_engine
        self._routes = routes
        self._clock = clock
        self._tape = tape

    async def analyse(self, parent_id: str) -> ParentExecution:
        found = await asyncio.to_thread(self._read, parent_id)
        if found is None:
            raise OrderNotFound(f"no order or algo {parent_id!r}", field="order_id")
        parent, benchmark = found
        if benchmark is None:
            raise TcaUnavailable(
                f"{parent_id} has no arrival price: only smart-routed orders and algos record "
                "one when they are created",
                field="order_id",
            )
        now = self._clock.now()
        end = parent.last_change if parent.finished else now
        market = None
        if self._tape is not None and end > parent.start:
            # venues stamp trades in whole milliseconds (pools: whole-second blocks)
            vwap, volume = await self._tape.vwap(
                parent.instrument, parent.start - TAPE_SLACK, end + TAPE_SLACK
            )
            market = MarketInterval(vwap, volume)
        mark = self._routes.arrival(parent.instrument, now).mid
        analysis = analyse_execution(
            parent.side,
            parent.quantity,
            [
                ExecutedFill(f.venue, f.quantity, f.price, f.fee, f.gas, f.executed_at)
                for f in parent.fills
            ],
            arrival_mid=benchmark.arrival.mid,
            mark=mark,
            market=market,
        )
        return ParentExecution(
            parent_id,
            benchmark.parent_kind,
            parent.account,
            parent.instrument,
            parent.status,
            parent.start,
            end,
            parent.finished,
            benchmark,
            parent.children,
            analysis,
        )

    def _read(self, parent_id: str) -> tuple[_Parent, ExecutionBenchmark | None] | None:
        with self._read_engine.connect() as connection:
            benchmark = benchmarks.get_benchmark(connection, parent_id)
            algo = algo_store.get(connection, parent_id)
            if algo is not None:
                state = algo.state
                spec = state.spec
                keys = [
                    (spec.account, f"{spec.algo_id}-{n}") for n in range(1, state.child_seq + 1)
                ]
                children = order_repo.get_by_client_order_ids(connection, keys)
                fills = [
                    fill
                    for stored in children.values()
                    for fill in order_repo.fills_for_order(connection, stored.order.id)
                ]
                parent = _Parent(
                    spec.account,
                    spec.instrument,
                    spec.side,
                    spec.quantity,
                    state.status.value,
                    max(algo.created_at, spec.start),
                    algo.updated_at,
                    state.is_done,
                    sorted(fills, key=lambda f: (f.executed_at, f.id)),
                    len(children),
                )
                return parent, benchmark
            stored = order_repo.get_order(connection, parent_id)
            if stored is None:
                return None
            order = stored.order
            if order.spec.instrument is None:  # a strategy: its legging report has the costs
                raise TcaUnavailable(
                    f"{parent_id} is a strategy: see its legging report", field="order_id"
                )
            parent = _Parent(
                order.spec.account,
                order.spec.instrument,
                order.spec.side,
                order.spec.quantity,
                order.status.value,
                order.created_at,
                order.updated_at,
                not order.status.is_open,
                order_repo.fills_for_order(connection, order.id),
                0,
            )
            return parent, benchmark
