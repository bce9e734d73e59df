"""The credential cache keeps what a read found for its time, and nothing a read found while
a sign-out or revocation was forgetting it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from gateway.access.credential_cache import CredentialCache

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def test_a_value_is_kept_for_its_time_only() -> None:
    cache: CredentialCache[str] = CredentialCache(2)
    cache.put("k", "alice", T0, cache.epoch)
    assert cache.get("k", T0 + timedelta(seconds=1.9)) == "alice"
    assert cache.get("k", T0 + timedelta(seconds=2)) is None
    assert cache.get("k", T0) is None  # gone once expired


def test_a_read_that_began_before_a_forget_is_not_kept() -> None:
    cache: CredentialCache[str] = CredentialCache(60)
    epoch = cache.epoch  # a read begins
    cache.forget("k")  # meanwhile: signed out here
    cache.put("k", "alice", T0, epoch)  # the read found the session before the delete
    assert cache.get("k", T0) is None
    cache.put("k", "alice", T0, cache.epoch)  # a read begun after it is kept
    assert cache.get("k", T0) == "alice"


def test_no_time_keeps_nothing() -> None:
    cache: CredentialCache[str] = CredentialCache(0)
    cache.put("k", "alice", T0, cache.epoch)
    assert cache.get("k", T0) is None


def test_get_or_read_reads_once_and_keeps_only_what_it_may() -> None:
    cache: CredentialCache[str] = CredentialCache(60)
    reads: list[str] = []

    async def read() -> str | None:
        reads.append("k")
        return "revoked"

    async def scenario() -> list[str | None]:
        first = await cache.get_or_read("k", T0, read, keep=lambda value: value != "revoked")
        second = await cache.get_or_read("k", T0, read, keep=lambda value: value != "revoked")
        return [first, second]

    assert asyncio.run(scenario()) == ["revoked", "revoked"]
    assert reads == ["k", "k"]  # not kept: read each time
    assert asyncio.run(cache.get_or_read("j", T0, lambda: _value("alice"))) == "alice"
    assert cache.get("j", T0) == "alice"


async def _value(value: str) -> str | None:
    return value
