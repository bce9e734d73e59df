"""Waiting for a wake-up event with a timeout, in a background task that must stop.

Not `asyncio.wait_for(event.wait(), timeout)`: on Python 3.11 it swallows a cancellation
that arrives as the event is set (it returns the inner result instead), so a runtime that
cancels the task at that moment waits for it forever.
"""

from __future__ import annotations

import asyncio


async def set_or_timeout(event: asyncio.Event, seconds: float) -> None:
    """Return once `event` is set or `seconds` have passed, whichever is first; a
    cancellation always propagates."""
    waiting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiting}, timeout=seconds)
    finally:
        waiting.cancel()
