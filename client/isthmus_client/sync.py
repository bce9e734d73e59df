"""`Isthmus`: the synchronous facade of `AsyncIsthmus`, for scripts and notebooks.

    with Isthmus("http://127.0.0.1:8000", OperatorToken(token)) as isthmus:
        order = isthmus.place_order("WETH/USDC", "buy", "1", price="3000", account=wallet)

Every method of `AsyncIsthmus` is here with the same arguments, returning what the coroutine
returns. The async client runs on an event loop in a thread of its own, so the facade also
works where a loop is already running (a notebook). `iter_orders` and `stream` give plain
iterators."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from isthmus_client.client import AsyncIsthmus

T = TypeVar("T")


class Isthmus:
    """Same constructor as `AsyncIsthmus`; close it (or use `with`) to stop its thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="isthmus-client", daemon=True
        )
        self._thread.start()
        try:
            self.aio: AsyncIsthmus = self._run(_build(args, kwargs))
        except BaseException:  # no client: stop the loop's thread, it would run forever
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            raise

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.aio, name)
        if not callable(attribute) or not asyncio.iscoroutinefunction(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(attribute(*args, **kwargs))

        call.__name__ = name
        call.__doc__ = attribute.__doc__
        return call

    def iter_orders(self, **filters: Any) -> Iterator[Any]:
        """Every order that matches, page after page."""
        return self._iterate(self.aio.iter_orders(**filters))

    def stream(self, **kwargs: Any) -> SyncStream:
        """The order stream as a plain iterator (`with isthmus.stream(...) as s: for m in s`)."""
        return SyncStream(self, self.aio.stream(**kwargs))

    def _iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self._run(_next(iterator))
            except StopAsyncIteration:
                return

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self.aio.aclose())
        finally:  # the loop's thread stops even if closing the connections failed
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> Isthmus:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class SyncStream:
    """An `OrderStream` driven from synchronous code."""

    def __init__(self, client: Isthmus, stream: Any) -> None:
        self._client = client
        self._stream = stream

    def __enter__(self) -> SyncStream:
        self._client._run(self._stream.connect())
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        return self._client._iterate(self._stream)

    def next(self, timeout: float | None = None) -> Any:
        """The next message, waiting at most `timeout` seconds (TimeoutError after)."""
        return self._client._run(asyncio.wait_for(_next(self._stream), timeout))

    def request(self, op: str, /, **fields: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self._client._run(self._stream.request(op, **fields))
        return answer

    def close(self) -> None:
        self._client._run(self._stream.close())


async def _build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncIsthmus:
    # made on the loop's own thread: its HTTP connections belong to that loop
    return AsyncIsthmus(*args, **kwargs)


async def _next(iterator: AsyncIterator[T]) -> T:
    return await iterator.__anext__()
