"""Instrument catalogue, chain directory and health endpoints: liveness (`/v1/health`) and
readiness (`/v1/ready`, for orchestrators: the database, the chain, this replica's lease)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from web3 import Web3

from gateway.api.dependencies import runtime
from gateway.api.schemas import ChainOut, ErrorOut, HealthOut, InstrumentOut
from gateway.domain.amounts import canonical
from gateway.domain.errors import DomainError
from gateway.domain.instruments import EuropeanOption, Instrument
from gateway.runtime import Runtime

router = APIRouter(prefix="/v1")
RuntimeDep = Annotated[Runtime, Depends(runtime)]
log = logging.getLogger("gateway.api.ready")
READY_TIMEOUT_SECONDS = 2.0  # each readiness check: a database or node that hangs is not ready


def instrument_out(instrument: Instrument) -> InstrumentOut:
    out = InstrumentOut(
        symbol=instrument.symbol,
        kind=instrument.kind.value,
        base=instrument.base.symbol,
        quote=instrument.quote.symbol,
        base_decimals=instrument.base.decimals,
        quote_decimals=instrument.quote.decimals,
        tick_size=canonical(instrument.rules.tick_size),
        lot_size=canonical(instrument.rules.lot_size),
        min_quantity=canonical(instrument.rules.min_quantity),
    )
    if isinstance(instrument, EuropeanOption):
        out.strike = canonical(instrument.strike)
        out.expiry = instrument.expires_at
        out.right = instrument.right.value
    return out


@router.get("/instruments", response_model=list[InstrumentOut], tags=["instruments"])
async def list_instruments(rt: RuntimeDep) -> list[InstrumentOut]:
    return [instrument_out(i) for i in rt.orders.catalogue]


@router.get("/health", response_model=HealthOut, tags=["health"])
async def health(rt: RuntimeDep) -> HealthOut:
    def ping() -> None:
        with rt.read_engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    await asyncio.to_thread(ping)
    return HealthOut(status="ok", database=rt.read_engine.dialect.name, version="0.1.0")


class ReadyCheck(BaseModel):
    name: Literal["database", "chain", "leases"]
    status: Literal["ok", "failed", "skipped"]
    detail: str | None = Field(
        description="What answered (the database's dialect, the chain's head block, the "
        "lease loop), or why not: the error's kind only, never its message"
    )


class ReadyOut(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: list[ReadyCheck]


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not ready: the checks say which"}},
    tags=["health"],
    summary="Readiness: the database answers, the chain answers (when there is one) and, for "
    "a replica, its lease loop runs",
)
async def ready(request: Request, response: Response) -> ReadyOut:
    rt: Runtime | None = getattr(request.app.state, "runtime", None)
    if rt is None:
        starting = "the gateway is starting"
        checks = [
            ReadyCheck(name="database", status="failed", detail=starting),
            ReadyCheck(name="chain", status="failed", detail=starting),
            ReadyCheck(name="leases", status="failed", detail=starting),
        ]
    else:
        database, chain = await asyncio.gather(_check("database", _database(rt)), _check_chain(rt))
        checks = [database, chain, _check_leases(rt)]
    out = ReadyOut(
        status="ready" if all(c.status != "failed" for c in checks) else "not_ready",
        checks=checks,
    )
    if out.status != "ready":
        response.status_code = 503
    return out


async def _check(name: Literal["database", "chain"], read: Awaitable[str]) -> ReadyCheck:
    try:
        detail = await asyncio.wait_for(read, READY_TIMEOUT_SECONDS)
    except TimeoutError:
        return ReadyCheck(
            name=name, status="failed", detail=f"no answer within {READY_TIMEOUT_SECONDS:g} s"
        )
    except Exception as error:  # public: the kind of failure, the rest in the log
        log.warning("readiness: the %s check failed", name, exc_info=True)
        return ReadyCheck(name=name, status="failed", detail=type(error).__name__)
    return ReadyCheck(name=name, status="ok", detail=detail)


async def _database(rt: Runtime) -> str:
    def ping() -> None:
        with rt.read_engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    await asyncio.to_thread(ping)
    return rt.read_engine.dialect.name


def _chain_of(rt: Runtime) -> Web3 | None:
    if rt.chain_directory is not None:
        return rt.chain_directory.w3
    if rt.signatures is not None:
        return rt.signatures.w3
    return None


async def _check_chain(rt: Runtime) -> ReadyCheck:
    w3 = _chain_of(rt)
    if w3 is None:
        return ReadyCheck(name="chain", status="skipped", detail="no chain is configured")

    async def head() -> str:
        return f"block {await asyncio.to_thread(lambda: int(w3.eth.block_number))}"

    return await _check("chain", head())


def _check_leases(rt: Runtime) -> ReadyCheck:
    if not rt.settings.replica:
        return ReadyCheck(name="leases", status="skipped", detail="not a replica")
    leases = rt.leases
    if leases is None or not leases.running:
        return ReadyCheck(name="leases", status="failed", detail="the lease loop is not running")
    holding = "holds its role" if leases.holding else "follows"
    return ReadyCheck(name="leases", status="ok", detail=f"the lease loop runs ({holding})")


@router.get(
    "/chain",
    response_model=ChainOut,
    responses={422: {"model": ErrorOut}},
    tags=["instruments"],
    summary="The chain, contracts and tokens a client signs for and trades through",
)
async def chain(rt: RuntimeDep) -> ChainOut:
    if rt.chain_directory is None:
        raise DomainError("no chain is configured", code="no_chain")
    return ChainOut.model_validate(await rt.chain_directory.describe())
