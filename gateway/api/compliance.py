"""Operator endpoints of compliance: reload the lists, and what an account may trade."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from gateway.api.dependencies import runtime
from gateway.api.schemas import Address, ErrorOut
from gateway.runtime import Runtime

router = APIRouter(prefix="/v1/compliance", tags=["compliance"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]
ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorOut}}


class ReloadOut(BaseModel):
    sanctioned_addresses: int = Field(description="Addresses on the sanctions list now")
    kyc_records: int = Field(description="Addresses the KYC provider knows now")
    newly_sanctioned: list[str] = Field(description="Addresses this reload added to the list")
    cancelled_orders: list[str] = Field(
        description="Resting orders of sanctioned accounts cancelled (reason `compliance`) "
        "before the reload returned"
    )


class SanctionOut(BaseModel):
    address: str
    list: str
    reason: str


class AccountComplianceOut(BaseModel):
    account: str
    owner: str | None = Field(description="The wallet's owner, when the chain tells it")
    sanctioned: bool = Field(description="The account or its owner is on a sanctions list")
    sanctions: list[SanctionOut]
    jurisdiction: str | None
    jurisdiction_blocked: bool
    kyc_level: str | None = Field(description="None: the KYC provider does not know it")
    may_trade: list[str] = Field(description="Instrument kinds it may trade now")
    max_order_notional: str | None = Field(
        description="Largest order notional in quote its KYC level allows (None: no limit)"
    )


@router.post(
    "/reload",
    response_model=ReloadOut,
    responses=ERRORS,
    summary="Read the sanctions list, the rules and the KYC records again (all or nothing); "
    "resting orders of newly sanctioned accounts are cancelled before it answers",
)
async def reload(rt: RuntimeDep) -> ReloadOut:
    report = await rt.compliance.reload()
    return ReloadOut(
        sanctioned_addresses=report.sanctioned_addresses,
        kyc_records=report.kyc_records,
        newly_sanctioned=list(report.newly_sanctioned),
        cancelled_orders=list(report.cancelled_orders),
    )


@router.get(
    "/accounts/{account}",
    response_model=AccountComplianceOut,
    responses=ERRORS,
    summary="An account's compliance status: sanctioned, jurisdiction, KYC level, what it may "
    "trade",
)
async def account_status(
    account: Annotated[Address, Path(description="A MarginWallet or owner address")],
    rt: RuntimeDep,
) -> AccountComplianceOut:
    return AccountComplianceOut.model_validate(await rt.compliance.status(account))
