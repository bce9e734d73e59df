"""Facts a connection's committed transactions proved, remembered with that connection.

A writer command may learn something that holds only once its transaction commits: an
account's row exists. It notes the fact as pending. The writer, which alone knows whether the
transaction and each command's savepoint went through, keeps what is pending after a commit
and forgets what a rolled-back savepoint or transaction noted. Later commands on the same
database connection then skip the statement that would prove it again.

Only facts that stay true once committed belong here (rows the gateway never deletes), so
what is kept holds for every later transaction, on this replica or another.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

_PENDING = "isthmus.commit_memory.pending"
_KEPT = "isthmus.commit_memory.kept"
# past this many facts of one kind, start again rather than grow without bound
MAX_KEPT = 100_000


def kept(connection: Connection, kind: str) -> set[str] | frozenset[str]:
    """What committed transactions on this connection proved, of `kind`."""
    facts: set[str] | frozenset[str] = connection.info.get(_KEPT, {}).get(kind, frozenset())
    return facts


def note(connection: Connection, kind: str, facts: Iterable[str]) -> None:
    """Facts the current transaction wrote: kept only if it commits."""
    pending: list[tuple[str, str]] = connection.info.setdefault(_PENDING, [])
    pending.extend((kind, fact) for fact in facts)


def mark(connection: Connection) -> int:
    """Where the pending facts end now (before a savepoint)."""
    return len(connection.info.get(_PENDING, ()))


def forget_since(connection: Connection, position: int = 0) -> None:
    """Drop the facts noted after `position`: their savepoint (or, from 0, their whole
    transaction) was rolled back, or a new transaction starts."""
    pending = connection.info.get(_PENDING)
    if pending:
        del pending[position:]


def keep_pending(connection: Connection) -> None:
    """The transaction committed: what it noted now holds."""
    pending = connection.info.get(_PENDING)
    if not pending:
        return
    store: dict[str, set[str]] = connection.info.setdefault(_KEPT, {})
    for kind, fact in pending:
        facts = store.setdefault(kind, set())
        if len(facts) >= MAX_KEPT:
            facts.clear()
        facts.add(fact)
    pending.clear()
