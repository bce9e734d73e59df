"""Operator risk switches: kill switches and account limits, persisted and audited.

A change is committed (with its audit record) before it takes effect in memory, so what the
validator enforces is always what the database says; a replica restarting reads it back.
Engaging a kill switch also cancels the working orders it covers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine

from gateway.domain.errors import DomainError
from gateway.oms.group_commit import CommandResult, GroupCommitter
from gateway.oms.service import OrderService
from gateway.risk.hedging import DeltaHedgePolicy
from gateway.risk.pretrade import RiskControls, RiskLimits
from gateway.store import risk_controls as store
from gateway.store.audit_log import AuditEntry

log = logging.getLogger("gateway.risk")
GLOBAL = store.GLOBAL_SCOPE


@dataclass(frozen=True, slots=True)
class KillSwitchState:
    scope: str
    engaged: bool
    reason: str | None
    cancelled_orders: int = 0


class RiskControlService:
    def __init__(
        self,
        writer: GroupCommitter,
        read_engine: Engine,
        controls: RiskControls,
        orders: OrderService,
        hedge_policies: dict[str, DeltaHedgePolicy] | None = None,
    ) -> None:
        self._writer = writer
        self._read_engine = read_engine
        self.controls = controls
        self._orders = orders
        # shared with the risk monitor, which hedges the accounts found here
        self.hedge_policies: dict[str, DeltaHedgePolicy] = (
            {} if hedge_policies is None else hedge_policies
        )

    def load(self) -> None:
        """Read every persisted switch into memory (at start-up, before serving)."""
        with self._read_engine.connect() as connection:
            rows = store.load_all(connection)
        self.controls.killed_accounts.clear()
        self.controls.account_limits.clear()
        self.controls.global_kill = False
        self.hedge_policies.clear()
        for row in rows:
            if row.hedge is not None:
                self.hedge_policies[row.scope] = policy_from_json(row.hedge)
            if row.scope == GLOBAL:
                self.controls.global_kill = row.kill_switch
                continue
            if row.kill_switch:
                self.controls.killed_accounts.add(row.scope)
            if row.limits is not None:
                self.controls.account_limits[row.scope] = RiskLimits.from_json(row.limits)

    async def _write(
        self, scope: str, kind: str, change: Callable[[store.StoredControl], store.StoredControl]
    ) -> store.StoredControl:
        def command(connection: Connection, now: datetime) -> CommandResult[store.StoredControl]:
            current = store.get(connection, scope) or store.StoredControl(
                scope, False, None, None, now
            )
            control = replace(change(current), updated_at=now)
            store.put(connection, control)
            facts = {
                "scope": scope,
                "kill_switch": control.kill_switch,
                "reason": control.reason,
                "limits": control.limits,
                "hedge": control.hedge,
            }
            event = {"type": kind, "account": None if scope == GLOBAL else scope, "risk": facts}
            return CommandResult(control, [AuditEntry(kind, scope, facts)], [event])

        result: store.StoredControl = await self._writer.execute(command)
        return result

    async def set_kill_switch(
        self, scope: str, engaged: bool, reason: str | None
    ) -> KillSwitchState:
        kind = "risk.kill_switch_engaged" if engaged else "risk.kill_switch_released"
        control = await self._write(
            scope, kind, lambda c: replace(c, kill_switch=engaged, reason=reason)
        )
        if scope == GLOBAL:
            self.controls.global_kill = control.kill_switch
        elif control.kill_switch:
            self.controls.killed_accounts.add(scope)
        else:
            self.controls.killed_accounts.discard(scope)
        cancelled = 0
        if engaged:
            cancelled = await self._cancel_working(None if scope == GLOBAL else scope)
        return KillSwitchState(scope, control.kill_switch, control.reason, cancelled)

    async def set_limits(self, account: str, limits: RiskLimits | None) -> RiskLimits:
        """Replace the account's limits; None goes back to the defaults."""
        data = None if limits is None else limits.to_json()
        await self._write(account, "risk.limits_set", lambda c: replace(c, limits=data))
        if limits is None:
            self.controls.account_limits.pop(account, None)
            return self.controls.defaults
        self.controls.account_limits[account] = limits
        return limits

    async def set_hedge_policy(self, account: str, policy: DeltaHedgePolicy | None) -> None:
        """Turn automatic delta hedging on (with this policy) or off for the account."""
        data = None if policy is None else policy_to_json(policy)
        await self._write(account, "risk.hedge_policy_set", lambda c: replace(c, hedge=data))
        if policy is None:
            self.hedge_policies.pop(account, None)
        else:
            self.hedge_policies[account] = policy

    def kill_switches(self) -> list[KillSwitchState]:
        states = [KillSwitchState(GLOBAL, self.controls.global_kill, None)]
        states += [KillSwitchState(a, True, None) for a in sorted(self.controls.killed_accounts)]
        return states

    async def _cancel_working(self, account: str | None) -> int:
        ledger = self._orders.pre_trade.ledger if self._orders.pre_trade else None
        if ledger is None:
            return 0
        accounts = [account] if account is not None else ledger.accounts()
        ids = [
            w.order_id
            for a in accounts
            for w in list(ledger.account(a).working.values())
            if w.order_id is not None
        ]
        results = await asyncio.gather(
            *(self._orders.cancel(order_id) for order_id in ids), return_exceptions=True
        )
        cancelled = 0
        for order_id, result in zip(ids, results, strict=True):
            if isinstance(result, DomainError):
                continue  # filled or cancelled meanwhile
            if isinstance(result, BaseException):
                log.error("kill switch: cancelling %s failed: %s", order_id, result)
                continue
            cancelled += 1
        return cancelled


def policy_to_json(policy: DeltaHedgePolicy) -> dict[str, Any]:
    return {
        "instrument": policy.instrument,
        "band": str(policy.band),
        "target": str(policy.target),
        "max_order": None if policy.max_order is None else str(policy.max_order),
    }


def policy_from_json(data: dict[str, Any]) -> DeltaHedgePolicy:
    return DeltaHedgePolicy(
        instrument=str(data["instrument"]),
        band=Decimal(data["band"]),
        target=Decimal(data.get("target", "0")),
        max_order=None if data.get("max_order") is None else Decimal(data["max_order"]),
    )
