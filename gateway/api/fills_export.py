"""GET /v1/fills/export: the fills for performance attribution, streamed as CSV or Parquet.

A caller restricted to some accounts (`request.state.principal.accounts`) gets only theirs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from gateway.api.dependencies import runtime
from gateway.runtime import Runtime
from gateway.store.fills_export import FillsFilter, export_chunks, read_pages

router = APIRouter(prefix="/v1", tags=["fills"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


@router.get(
    "/fills/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}, "application/vnd.apache.parquet": {}},
            "description": "One row per fill, oldest first",
        }
    },
    summary="Export fills (CSV or Parquet) for performance attribution",
)
async def export_fills(
    request: Request,
    rt: RuntimeDep,
    fmt: Annotated[Literal["csv", "parquet"], Query(alias="format")] = "csv",
    start: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="Executed at or after (ISO 8601 with a zone)"),
    ] = None,
    end: Annotated[
        AwareDatetime | None,
        Query(alias="to", description="Executed before (ISO 8601 with a zone)"),
    ] = None,
    account: Annotated[str | None, Query(min_length=1, max_length=42)] = None,
) -> StreamingResponse:
    principal = getattr(request.state, "principal", None)
    accounts: frozenset[str] | None = getattr(principal, "accounts", None)
    catalogue = rt.orders.catalogue

    def fee_asset(symbol: str) -> str | None:
        # fees are recorded in the instrument's quote asset
        return catalogue.get(symbol).quote.symbol if symbol in catalogue else None

    pages = read_pages(rt.read_engine, FillsFilter(start, end, account, accounts), fee_asset)
    return StreamingResponse(
        export_chunks(fmt, pages),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="fills.{fmt}"'},
    )
