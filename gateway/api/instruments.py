"""Instrument catalogue, chain directory and health endpoints."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import text

from gateway.api.dependencies import runtime
from gateway.api.schemas import ChainOut, ErrorOut, HealthOut, InstrumentOut
from gateway.domain.amounts import canonical
from gateway.domain.errors import DomainError
from gateway.domain.instruments import EuropeanOption, Instrument
from gateway.runtime import Runtime

router = APIRouter(prefix="/v1")
RuntimeDep = Annotated[Runtime, Depends(runtime)]


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
