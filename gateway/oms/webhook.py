"""Outgoing webhooks: alerts POSTed as JSON, signed, retried, never blocking the caller.

Each delivery carries `X-Isthmus-Signature: sha256=<hex HMAC of the body>` (when a secret
is configured) and `X-Isthmus-Delivery: <id>`, so a receiver can authenticate it and drop
a repeated delivery. Failures (connection errors, 5xx, 429) are retried with exponential
backoff up to `max_attempts`; a 4xx other than 429 is final. The queue is bounded: when the
receiver is down for long, the oldest alerts are dropped (and counted) rather than memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("gateway.webhook")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class WebhookStats:
    delivered: int = 0
    failed: int = 0  # gave up after the last attempt, or refused with a 4xx
    dropped: int = 0  # pushed out of a full queue
    attempts: int = 0


@dataclass
class WebhookSender:
    url: str
    secret: str | None = None
    max_attempts: int = 5
    backoff_seconds: float = 0.2
    timeout_seconds: float = 5.0
    queue_size: int = 1_000
    stats: WebhookStats = field(default_factory=WebhookStats)

    def __post_init__(self) -> None:
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def send(self, payload: dict[str, Any]) -> str:
        """Queue one delivery and return its id; never waits."""
        delivery = uuid.uuid4().hex
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        if len(self._queue) >= self.queue_size:
            self._queue.popleft()
            self.stats.dropped += 1
        self._queue.append((delivery, body))
        self._idle.clear()
        self._wake.set()
        return delivery

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="webhook")

    async def drain(self) -> None:
        """Wait until everything queued has been delivered or given up on."""
        await self._idle.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_seconds) as client:
            while True:
                if not self._queue:
                    self._idle.set()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                delivery, body = self._queue.popleft()
                await self._deliver(client, delivery, body)

    async def _deliver(self, client: httpx.AsyncClient, delivery: str, body: bytes) -> None:
        headers = {"content-type": "application/json", "x-isthmus-delivery": delivery}
        if self.secret:
            headers["x-isthmus-signature"] = signature(self.secret, body)
        for attempt in range(self.max_attempts):
            self.stats.attempts += 1
            try:
                response = await client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as error:
                log.warning("webhook %s attempt %d failed: %s", delivery, attempt + 1, error)
            else:
                if response.status_code < 300:
                    self.stats.delivered += 1
                    return
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    log.error("webhook %s refused with %d", delivery, response.status_code)
                    self.stats.failed += 1
                    return
            if attempt + 1 < self.max_attempts:
                await asyncio.sleep(self.backoff_seconds * 2**attempt)
        self.stats.failed += 1
