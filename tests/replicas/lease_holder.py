"""The replica holding the roles, as the `leases` table says, once one does."""

from __future__ import annotations

import time

from gateway.runtime import PRIMARY_ROLE
from gateway.store import leases
from gateway.store.database import create_database_engine


def wait_for_holder(database_url: str, timeout: float = 60) -> leases.Lease:
    """The live holder of the roles' lease (a poll for a state, with a deadline)."""
    engine = create_database_engine(database_url, for_writes=False)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                held = leases.holder(connection, PRIMARY_ROLE)
            if held is not None:
                return held
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise TimeoutError("no replica took the roles")
