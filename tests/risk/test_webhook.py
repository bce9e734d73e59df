"""Webhook deliveries to a real HTTP receiver: signed, retried, final on 4xx, bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.oms.webhook import WebhookSender, signature

SECRET = "s3cret"


class Receiver:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses  # answered in turn; 200 once exhausted
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status)


def serve(receiver: Receiver, scenario: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            await scenario(f"http://127.0.0.1:{port}/hook")
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_signed_and_retried_until_delivered() -> None:
    receiver = Receiver([503, 500])

    async def scenario(url: str) -> None:
        sender = WebhookSender(url, SECRET, backoff_seconds=0.01)
        sender.start()
        delivery = sender.send({"type": "risk.margin_alert", "account": "0xabc"})
        await sender.drain()
        await sender.stop()
        assert (sender.stats.delivered, sender.stats.failed, sender.stats.attempts) == (1, 0, 3)
        assert len(receiver.requests) == 3
        for headers, body in receiver.requests:
            assert headers["x-isthmus-delivery"] == delivery  # the same id on every retry
            assert headers["x-isthmus-signature"] == signature(SECRET, body)
            assert json.loads(body) == {"type": "risk.margin_alert", "account": "0xabc"}

    serve(receiver, scenario)


def test_a_client_error_is_final_and_the_next_alert_still_goes() -> None:
    receiver = Receiver([400])

    async def scenario(url: str) -> None:
        sender = WebhookSender(url, backoff_seconds=0.01)
        sender.start()
        sender.send({"n": 1})
        sender.send({"n": 2})
        await sender.drain()
        await sender.stop()
        assert (sender.stats.delivered, sender.stats.failed) == (1, 1)
        assert [json.loads(b)["n"] for _, b in receiver.requests] == [1, 2]
        assert "x-isthmus-signature" not in receiver.requests[0][0]  # no secret, no signature

    serve(receiver, scenario)


def test_gives_up_after_max_attempts_and_drops_the_oldest_when_full() -> None:
    receiver = Receiver([503] * 3)

    async def scenario(url: str) -> None:
        sender = WebhookSender(url, max_attempts=3, backoff_seconds=0.01, queue_size=2)
        for n in range(4):  # queued before the sender runs: 0 and 1 are pushed out
            sender.send({"n": n})
        sender.start()
        await sender.drain()
        await sender.stop()
        stats: Any = sender.stats
        assert (stats.dropped, stats.failed, stats.delivered) == (2, 1, 1)
        assert [json.loads(b)["n"] for _, b in receiver.requests] == [2, 2, 2, 3]

    serve(receiver, scenario)
