"""A background loop that waits for its wake-up event stops when cancelled, even when the
cancellation arrives as the event is set (the case `asyncio.wait_for` loses on 3.11)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from gateway.oms.event_wait import set_or_timeout

Wait = Callable[[asyncio.Event, float], Awaitable[None]]


def stops_when_cancelled_as_woken(wait: Wait) -> bool:
    async def body() -> bool:
        event = asyncio.Event()

        async def loop() -> None:
            while True:
                event.clear()
                await wait(event, 30)

        task = asyncio.create_task(loop())
        await asyncio.sleep(0)  # a yield: the loop is now waiting on the event
        event.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)  # the bound turns a hang into False
        if task not in done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return False
        return task.cancelled()

    return asyncio.run(body())


def test_set_or_timeout_lets_the_cancellation_through() -> None:
    assert stops_when_cancelled_as_woken(set_or_timeout)


def test_set_or_timeout_returns_on_the_event_and_on_the_timeout() -> None:
    async def body() -> None:
        event = asyncio.Event()
        event.set()
        await set_or_timeout(event, 30)  # at once: it is set
        event.clear()
        await set_or_timeout(event, 0.01)  # nothing sets it: the timeout ends the wait

    asyncio.run(body())
