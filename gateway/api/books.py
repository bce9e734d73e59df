"""The consolidated book across venues."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from gateway.api.dependencies import runtime
from gateway.api.schemas import ConsolidatedBookOut, ErrorOut, book_out
from gateway.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["market data"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]


@router.get(
    "/book/{symbol:path}",
    response_model=ConsolidatedBookOut,
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    summary="Consolidated book: every live venue, prices after taker fees",
)
async def get_book(
    rt: RuntimeDep,
    symbol: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9/_.\-]+$")],
    depth: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> ConsolidatedBookOut:
    rt.orders.catalogue.get(symbol, field="symbol")
    return book_out(rt.market_data.book(symbol, min(depth, rt.settings.book_depth_max)))
