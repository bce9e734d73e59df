"""A second baseline: the bare route plus a durable, group-committed write and nothing else.

Parses with the same models and answers with the same `OrderOut` as `starlette_baseline`,
and before answering writes one row per order to SQLite (WAL, synchronous=FULL) through one
writer thread that commits whatever is queued in one transaction, as the gateway's writer
does, with raw `sqlite3` (no ORM, no audit chain, no risk, no book). `POST /v1/orders/batch`
writes a request's orders in one commit. What it measures is the ceiling of any design that
acknowledges an order only once it is on disk, in Python on these cores.

The database path comes from ``ISTHMUS_BENCH_DB``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.order_entry import BatchOrdersIn
from gateway.api.schemas import OrderIn, OrderOut
from gateway.domain.orders import Order
from gateway.oms.ids import new_id
from gateway.oms.order_facts import order_facts

Row = tuple[str, str, str, str, str, str, str]


class Writer:
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, account TEXT, "
            "client_order_id TEXT, side TEXT, quantity TEXT, price TEXT, created_at TEXT, "
            "UNIQUE (account, client_order_id))"
        )
        self._queue: asyncio.Queue[tuple[list[Row], asyncio.Future[None]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def write(self, rows: list[Row]) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((rows, future))
        await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(0)  # let the requests that arrived meanwhile join
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await asyncio.to_thread(self._commit, [row for rows, _ in batch for row in rows])
            for _, future in batch:
                future.set_result(None)

    def _commit(self, rows: list[Row]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self._db.execute("COMMIT")


WRITER = Writer(os.environ.get("ISTHMUS_BENCH_DB", "durable-baseline.db"))


def _accepted(body: OrderIn) -> tuple[Order, Row]:
    now = datetime.now(UTC)
    order = Order.new(new_id("ord"), body.to_spec(), now).accept(now)
    spec = order.spec
    row = (
        order.id,
        spec.account,
        spec.client_order_id,
        spec.side.value,
        str(spec.quantity),
        str(spec.price),
        now.isoformat(),
    )
    return order, row


def _out(order: Order) -> OrderOut:
    return OrderOut.model_validate(order_facts(order))


async def submit(request: Request) -> Response:
    try:
        body = OrderIn.model_validate_json(await request.body())
    except ValueError as error:
        return JSONResponse({"error": {"code": "validation_error", "message": str(error)}}, 422)
    order, row = _accepted(body)
    await WRITER.write([row])
    return Response(_out(order).model_dump_json(), status_code=201, media_type="application/json")


async def submit_batch(request: Request) -> Response:
    try:
        body = BatchOrdersIn.model_validate_json(await request.body())
    except ValueError as error:
        return JSONResponse({"error": {"code": "validation_error", "message": str(error)}}, 422)
    accepted = [_accepted(item) for item in body.orders]
    await WRITER.write([row for _, row in accepted])
    results = ",".join(
        f'{{"status":201,"order":{_out(order).model_dump_json()}}}' for order, _ in accepted
    )
    return Response(f'{{"results":[{results}]}}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/v1/orders", submit, methods=["POST"]),
        Route("/v1/orders/batch", submit_batch, methods=["POST"]),
    ]
)
