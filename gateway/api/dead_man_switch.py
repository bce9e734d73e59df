"""`/v1/orders/cancel-all-after`: the caller's dead man's switch (`gateway.oms.dead_man_switch`).

One countdown per caller: an API key, a trader's Sign-In with Ethereum address, or the
operator. The path sits under `/v1/orders`, so this router is included before the orders
router: `GET /v1/orders/{order_id}` would otherwise take `cancel-all-after` for an order id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from gateway.access.principal import Principal
from gateway.api.access import ensure_account, principal_of
from gateway.api.dependencies import runtime
from gateway.api.schemas import Address, ErrorOut, _Strict
from gateway.oms.dead_man_switch import MAX_TIMEOUT, MIN_TIMEOUT
from gateway.runtime import Runtime
from gateway.store.dead_man_switch_repository import StoredCountdown

router = APIRouter(prefix="/v1/orders", tags=["orders"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]
ERRORS: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorOut,
        "description": "forbidden: an account named is not one of the caller's",
    },
    422: {
        "model": ErrorOut,
        "description": f"invalid_countdown: timeout_seconds is not 0 nor {MIN_TIMEOUT}.."
        f"{MAX_TIMEOUT}; accounts_required: the caller is bound to no accounts and named none; "
        "validation_error: a malformed body",
    },
}


class CancelAllAfterIn(_Strict):
    timeout_seconds: int = Field(
        description=f"Cancel every resting order of the accounts this many seconds from now "
        f"unless called again first ({MIN_TIMEOUT}..{MAX_TIMEOUT}); 0 disarms the countdown"
    )
    accounts: list[Address] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Default: the caller's own accounts (required for a caller bound to none, "
        "such as the operator)",
    )


class CountdownOut(_Strict):
    armed: bool
    timeout_seconds: int | None = Field(description="null when disarmed")
    deadline: datetime | None = Field(description="When the orders are cancelled (UTC)")
    accounts: list[str] = Field(description="The accounts whose resting orders it cancels")


def caller_scope(principal: Principal) -> str:
    """The countdown's owner: one per API key, per trader address, one for the operator."""
    return f"{principal.role}:{principal.subject}"


def _out(countdown: StoredCountdown | None) -> CountdownOut:
    if countdown is None:
        return CountdownOut(armed=False, timeout_seconds=None, deadline=None, accounts=[])
    return CountdownOut(
        armed=True,
        timeout_seconds=int(countdown.timeout_seconds),
        deadline=countdown.deadline,
        accounts=sorted(countdown.accounts),
    )


@router.post(
    "/cancel-all-after",
    response_model=CountdownOut,
    responses=ERRORS,
    summary="Arm, refresh or disarm the caller's dead man's switch",
    description="Every resting order of the accounts is cancelled at the deadline unless this "
    "is called again first (a market maker refreshes it every second or so). One countdown "
    "per caller: each call replaces its timeout and accounts. A countdown that ran out while "
    "the gateway was down is applied at start, before anything can trade.",
)
async def cancel_all_after(
    body: CancelAllAfterIn, rt: RuntimeDep, request: Request
) -> CountdownOut:
    principal = principal_of(request)
    if body.accounts is None:
        accounts = principal.accounts or frozenset()
    else:
        for account in body.accounts:
            await ensure_account(request, account)
        accounts = frozenset(body.accounts)
    armed = await rt.dead_man_switch.cancel_all_after(
        caller_scope(principal), accounts, body.timeout_seconds
    )
    return _out(armed)


@router.get(
    "/cancel-all-after",
    response_model=CountdownOut,
    summary="The caller's dead man's switch (armed: false when none is)",
)
async def get_cancel_all_after(rt: RuntimeDep, request: Request) -> CountdownOut:
    return _out(rt.dead_man_switch.countdown(caller_scope(principal_of(request))))
