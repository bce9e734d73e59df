"""Dead man's switch: a market maker's resting orders are cancelled when it goes quiet.

Two triggers, as exchanges offer them (Binance's countdownCancelAll, Deribit's
cancel-on-disconnect):

- **Countdown** (`cancel_all_after`). A caller (its `scope`: one countdown per caller, e.g.
  `protocol:<api key id>`, `trader:<address>`, `operator:operator`) arms a countdown of
  1..86,400 seconds over some accounts and refreshes it before it runs out, typically every
  second or so. If the deadline passes without a refresh, every order of those accounts
  resting on the internal book is cancelled (reason "dead man's switch: countdown expired")
  and the countdown is forgotten. `seconds=0` disarms it. A refresh is one committed write
  (the row rewritten by its key, one `dead_man_switch.armed` audit record) in the writer's
  shared batch: no read of the book, no lock but the writer's.
- **Cancel-on-disconnect** (`open_session` / `close_session`). A stream connection that opts
  in is registered with its accounts; when it drops, the stream calls `close_session` and
  the accounts' resting orders are cancelled (reason "cancel on disconnect: the session
  closed"), whoever placed them.

Interface for the stream (`gateway/api/stream.py`), all on `Runtime.dead_man_switch`:

    await switch.open_session(session_id: str, accounts: frozenset[str]) -> StoredSession
        # on `{"op": "cancel_on_disconnect", "enabled": true}`; again to change the accounts.
        # session_id: unique per connection, at most 64 characters; accounts: non-empty
        # (InvalidCountdown `accounts_required` otherwise), EIP-55 checksum addresses as the
        # store keeps them.
    await switch.forget_session(session_id: str) -> None
        # on `{"op": "cancel_on_disconnect", "enabled": false}`: nothing is cancelled.
    await switch.close_session(session_id: str) -> Firing
        # when the socket closes, for whatever reason (in the handler's `finally`); a
        # session that never opted in (or opted out) cancels nothing, at no cost.

Persistence and audit. Countdowns and registered sessions are rows (`dead_man_countdowns`,
`cancel_on_disconnect_sessions`) written through the single writer with their audit records:
`dead_man_switch.armed` (each arm or refresh), `.disarmed`, `.fired`;
`session.cancel_on_disconnect_enabled`, `_disabled`, and `session.cancel_on_disconnect`
when one fires. The orders themselves are cancelled through `InternalBook.cancel_where`: one
audited `order.cancelled` each, under the book's lock. A trigger cancels first and records
itself after, so a crash in between leaves the trigger in the store, and the restart fires
it again (the orders it already cancelled are gone from the book; nothing is lost).

Restart. `recover` runs in `Runtime.start` right after the book is loaded, before the API,
the feeds or any runner can place an order: a countdown whose deadline passed while the
gateway was down fires then, and every session still registered belonged to a connection
that died with the previous process: its accounts' orders are cancelled and it is cleared.
With replicas, order entry over the stream (cancel-on-disconnect included) is served only by
the replica holding the roles, whose connections die with it: every session row a new holder
finds when it takes over belonged to a dead connection, and `recover` runs then too.

Running. `run` is the production task: it sleeps until the earliest deadline (at most
`poll_interval`, woken early by every arm) and calls `fire_due`. Tests drive time with a
manual clock and call `fire_due()` themselves (`Runtime.start(dead_man_switch=False)`).
Which countdowns fire is decided under the book's lock (in the first call of the
`cancel_where` predicate): a refresh committed before the book got to it saves the orders.

Scope of the cancel: orders resting on the internal book. Orders stored but not on a book
(stop orders waiting for their trigger) are left alone; smart-routed orders never rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine

from gateway.domain.amounts import canonical
from gateway.domain.clock import Clock
from gateway.domain.errors import InvalidOrder
from gateway.domain.orders import Order
from gateway.matching import OpenOrder
from gateway.oms.event_wait import set_or_timeout
from gateway.oms.group_commit import Command, CommandResult, GroupCommitter
from gateway.oms.internal_book import InternalBook
from gateway.store import dead_man_switch_repository as store
from gateway.store.audit_log import AuditEntry
from gateway.store.dead_man_switch_repository import StoredCountdown, StoredSession

log = logging.getLogger("gateway.dead_man_switch")

MIN_TIMEOUT = Decimal(1)
MAX_TIMEOUT = Decimal(86_400)
_MILLISECOND = Decimal("0.001")
MAX_SESSION_ID = 64
COUNTDOWN_EXPIRED = "dead man's switch: countdown expired"
SESSION_CLOSED = "cancel on disconnect: the session closed"
SESSION_DIED = "cancel on disconnect: the session ended with the previous gateway process"
_SHORTEST_WAIT = 0.01  # seconds: a firing that keeps failing cannot spin the loop


class InvalidCountdown(InvalidOrder):
    """422: `invalid_countdown` (the timeout is out of bounds) or `accounts_required`."""

    code = "invalid_countdown"


@dataclass(frozen=True, slots=True)
class Firing:
    """What one trigger did: the countdowns that fired, the sessions that closed, and the
    orders they cancelled."""

    countdowns: tuple[StoredCountdown, ...] = ()
    sessions: tuple[StoredSession, ...] = ()
    cancelled: tuple[Order, ...] = ()


def countdown_timeout(seconds: Decimal | int) -> Decimal:
    """`seconds` checked: 0 (disarm) or 1..86,400, in whole milliseconds."""
    if isinstance(seconds, bool) or not isinstance(seconds, (Decimal, int)):
        raise InvalidCountdown("timeout_seconds must be a number", field="timeout_seconds")
    value = Decimal(seconds)
    in_bounds = value.is_finite() and (value == 0 or MIN_TIMEOUT <= value <= MAX_TIMEOUT)
    if not in_bounds or value % _MILLISECOND != 0:
        raise InvalidCountdown(
            f"timeout_seconds must be 0 (disarm) or from {MIN_TIMEOUT} to {MAX_TIMEOUT} "
            f"seconds in whole milliseconds, not {seconds}",
            field="timeout_seconds",
        )
    return value


def _duration(seconds: Decimal) -> timedelta:
    return timedelta(milliseconds=int(seconds * 1000))  # whole milliseconds: exact


def _required(accounts: Collection[str], what: str) -> frozenset[str]:
    chosen = frozenset(accounts)
    if not chosen:
        raise InvalidCountdown(
            f"{what} needs the accounts whose orders it cancels",
            field="accounts",
            code="accounts_required",
        )
    return chosen


def countdown_facts(countdown: StoredCountdown) -> dict[str, Any]:
    return {
        "scope": countdown.scope,
        "accounts": sorted(countdown.accounts),
        "timeout_seconds": canonical(countdown.timeout_seconds),
        "deadline": countdown.deadline.isoformat(),
        "armed_at": countdown.armed_at.isoformat(),
        "refreshed_at": countdown.refreshed_at.isoformat(),
    }


def session_facts(session: StoredSession) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "accounts": sorted(session.accounts),
        "opened_at": session.opened_at.isoformat(),
    }


class DeadMansSwitch:
    def __init__(
        self,
        writer: GroupCommitter,
        read_engine: Engine,
        book: InternalBook,
        clock: Clock,
        *,
        poll_interval: float = 1.0,
    ) -> None:
        self._writer = writer
        self._read_engine = read_engine
        self._book = book
        self._clock = clock
        self._poll = poll_interval
        # what the store holds, for reads and the timer; changed only after a commit
        self._countdowns: dict[str, StoredCountdown] = {}
        # writes commit in the order they are queued: a scope's memory follows the newest
        self._queued = 0
        self._applied: dict[str, int] = {}
        self._sessions: dict[str, StoredSession] = {}
        self._armed = asyncio.Event()  # the timer re-reads the earliest deadline
        self._firing = asyncio.Lock()  # one firing at a time: each countdown fires once

    # -- reads ----------------------------------------------------------------------------

    def countdown(self, scope: str) -> StoredCountdown | None:
        """The scope's armed countdown (None: none is armed)."""
        return self._countdowns.get(scope)

    def next_deadline(self) -> datetime | None:
        return min((c.deadline for c in self._countdowns.values()), default=None)

    def has_session(self, session_id: str) -> bool:
        return session_id in self._sessions

    # -- countdowns -----------------------------------------------------------------------

    async def cancel_all_after(
        self, scope: str, accounts: Collection[str], seconds: Decimal | int
    ) -> StoredCountdown | None:
        """Arm or refresh the scope's countdown: `seconds` from now, every resting order of
        `accounts` is cancelled unless it is called again first. `seconds=0` disarms (the
        accounts are then not needed). Returns what is armed once committed."""
        timeout = countdown_timeout(seconds)
        if timeout == 0:
            return await self._write(scope, self._disarm(scope))
        chosen = _required(accounts, "a countdown")
        armed = await self._write(scope, self._arm(scope, chosen, timeout))
        self._armed.set()
        return armed

    def _arm(self, scope: str, accounts: frozenset[str], timeout: Decimal) -> Command:
        def command(connection: Connection, now: datetime) -> CommandResult[StoredCountdown]:
            countdown = StoredCountdown(
                scope, accounts, timeout, now + _duration(timeout), now, now
            )
            earlier = store.get_countdown(connection, scope)
            if earlier is None:
                store.insert_countdown(connection, countdown)
            else:
                countdown = StoredCountdown(
                    scope, accounts, timeout, countdown.deadline, earlier.armed_at, now
                )
                store.refresh_countdown(connection, countdown)
            facts = {**countdown_facts(countdown), "refresh": earlier is not None}
            return CommandResult(countdown, [AuditEntry("dead_man_switch.armed", scope, facts)])

        return command

    def _disarm(self, scope: str) -> Command:
        def command(connection: Connection, now: datetime) -> CommandResult[None]:
            disarmed = store.delete_countdown(connection, scope)
            if disarmed is None:
                return CommandResult(None)  # nothing was armed: nothing changed
            facts = countdown_facts(disarmed)
            return CommandResult(None, [AuditEntry("dead_man_switch.disarmed", scope, facts)])

        return command

    async def _write(self, scope: str, command: Command) -> StoredCountdown | None:
        """Commit a change of the scope's countdown and mirror what the store now holds."""
        self._queued += 1
        queued = self._queued
        result: StoredCountdown | None = await self._writer.execute(command)
        if queued > self._applied.get(scope, 0):  # a later write may have been applied first
            self._applied[scope] = queued
            if result is None:
                self._countdowns.pop(scope, None)
            else:
                self._countdowns[scope] = result
        return result

    async def fire_due(self, now: datetime | None = None) -> Firing:
        """Fire every countdown whose deadline is at or before `now` (the clock's by default):
        cancel its accounts' resting orders, then record it fired and forget it."""
        async with self._firing:
            return await self._fire(self._clock.now() if now is None else now)

    async def _fire(self, now: datetime) -> Firing:
        due = [c for c in self._countdowns.values() if c.deadline <= now]
        if not due:
            return Firing()
        chosen: list[StoredCountdown] | None = None
        reasons: dict[str, str] = {}

        def still_due() -> list[StoredCountdown]:
            """Under the book's lock: those not refreshed (nor disarmed) meanwhile."""
            nonlocal chosen
            if chosen is None:
                chosen = [c for c in due if self._countdowns.get(c.scope) == c]
                reasons.update((a, COUNTDOWN_EXPIRED) for c in chosen for a in c.accounts)
            return chosen

        def reason_for(view: OpenOrder) -> str | None:
            still_due()
            return reasons.get(view.account)

        cancelled = await self._book.cancel_where(reason_for)
        fired = still_due()
        await asyncio.gather(
            *(
                self._write(c.scope, self._record_fired(c, _count(cancelled, c.accounts)))
                for c in fired
            )
        )
        for countdown in fired:
            log.warning(
                "dead man's switch %s fired (deadline %s): %d orders cancelled",
                countdown.scope,
                countdown.deadline.isoformat(),
                _count(cancelled, countdown.accounts),
            )
        return Firing(countdowns=tuple(fired), cancelled=tuple(cancelled))

    def _record_fired(self, countdown: StoredCountdown, cancelled: int) -> Command:
        """Audit the firing; the countdown is forgotten unless it was re-armed since."""

        def command(connection: Connection, now: datetime) -> CommandResult[StoredCountdown | None]:
            stored = store.get_countdown(connection, countdown.scope)
            remaining = stored
            if stored is not None and stored.deadline <= countdown.deadline:
                store.delete_countdown(connection, countdown.scope)
                remaining = None
            facts = {**countdown_facts(countdown), "cancelled_orders": cancelled}
            events = [
                {"type": "dead_man_switch.fired", "account": account, "dead_man_switch": facts}
                for account in sorted(countdown.accounts)
            ]
            entry = AuditEntry("dead_man_switch.fired", countdown.scope, facts)
            return CommandResult(remaining, [entry], events)

        return command

    # -- cancel-on-disconnect -------------------------------------------------------------

    async def open_session(self, session_id: str, accounts: Collection[str]) -> StoredSession:
        """Register a stream connection for cancel-on-disconnect (again: new accounts).
        Known at once, so a `close_session` racing this write still cancels."""
        if not 0 < len(session_id) <= MAX_SESSION_ID:
            raise ValueError(f"a session id has 1 to {MAX_SESSION_ID} characters")
        session = StoredSession(
            session_id, _required(accounts, "cancel-on-disconnect"), self._clock.now()
        )

        def command(connection: Connection, now: datetime) -> CommandResult[StoredSession]:
            opened = StoredSession(session_id, session.accounts, now)
            store.put_session(connection, opened)
            entry = AuditEntry(
                "session.cancel_on_disconnect_enabled", session_id, session_facts(opened)
            )
            return CommandResult(opened, [entry])

        written = self._writer.enqueue(command)
        self._sessions[session_id] = session
        try:
            opened: StoredSession = await written
        except Exception:
            if self._sessions.get(session_id) is session:
                del self._sessions[session_id]
            raise
        if self._sessions.get(session_id) is session:
            self._sessions[session_id] = opened
        return opened

    async def forget_session(self, session_id: str) -> None:
        """The connection opted out while connected: forget it, cancel nothing."""
        if self._sessions.pop(session_id, None) is None:
            return

        def command(connection: Connection, now: datetime) -> CommandResult[None]:
            forgotten = store.delete_session(connection, session_id)
            if forgotten is None:
                return CommandResult(None)
            facts = session_facts(forgotten)
            return CommandResult(
                None, [AuditEntry("session.cancel_on_disconnect_disabled", session_id, facts)]
            )

        await self._writer.execute(command)

    async def close_session(self, session_id: str) -> Firing:
        """The connection dropped: if it opted in, cancel its accounts' resting orders and
        forget it. A session that did not opt in costs a dictionary lookup."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return Firing()
        return await self._disconnect([session], SESSION_CLOSED)

    async def _disconnect(self, sessions: list[StoredSession], reason: str) -> Firing:
        accounts = frozenset(a for s in sessions for a in s.accounts)
        cancelled = await self._book.cancel_where(
            lambda view: reason if view.account in accounts else None
        )

        def record(session: StoredSession) -> Command:
            def command(connection: Connection, now: datetime) -> CommandResult[None]:
                store.delete_session(connection, session.session_id)
                facts = {
                    **session_facts(session),
                    "reason": reason,
                    "cancelled_orders": _count(cancelled, session.accounts),
                }
                events = [
                    {"type": "session.cancel_on_disconnect", "account": account, "session": facts}
                    for account in sorted(session.accounts)
                ]
                entry = AuditEntry("session.cancel_on_disconnect", session.session_id, facts)
                return CommandResult(None, [entry], events)

            return command

        await asyncio.gather(*(self._writer.execute(record(s)) for s in sessions))
        return Firing(sessions=tuple(sessions), cancelled=tuple(cancelled))

    # -- start-up and the timer -----------------------------------------------------------

    async def recover(self) -> Firing:
        """At start-up, after the book is loaded and before anything can trade: fire the
        countdowns whose deadline passed while the gateway was down, and cancel for every
        session the previous process left registered (its connection died with it)."""

        def read() -> tuple[list[StoredCountdown], list[StoredSession]]:
            with self._read_engine.connect() as connection:
                return store.countdowns(connection), store.sessions(connection)

        countdowns, sessions = await asyncio.to_thread(read)
        self._countdowns = {c.scope: c for c in countdowns}
        self._applied.clear()
        self._sessions.clear()
        fired = await self.fire_due()
        died = await self._disconnect(sessions, SESSION_DIED) if sessions else Firing()
        if fired.countdowns or died.sessions:
            log.warning(
                "dead man's switch at start-up: %d countdowns expired while down, %d sessions "
                "died with the previous process; %d orders cancelled",
                len(fired.countdowns),
                len(died.sessions),
                len(fired.cancelled) + len(died.cancelled),
            )
        return Firing(fired.countdowns, died.sessions, fired.cancelled + died.cancelled)

    async def run(self) -> None:
        """Background task: fire each countdown at its deadline."""
        while True:
            self._armed.clear()
            delay = self._poll
            deadline = self.next_deadline()
            if deadline is not None:
                until = (deadline - self._clock.now()).total_seconds()
                delay = min(delay, max(until, _SHORTEST_WAIT))
            await set_or_timeout(self._armed, delay)  # or less, when one is armed
            try:
                await self.fire_due()
            except Exception:
                log.exception("firing dead man's switches failed; retrying from memory")


def _count(orders: tuple[Order, ...] | list[Order], accounts: frozenset[str]) -> int:
    return sum(1 for order in orders if order.spec.account in accounts)
