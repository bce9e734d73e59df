"""The venues behind the consolidated book: each market-data feed as the hub holds it, and
whether its quotes count now (`state`), decided by the hub's own `stale_venues()`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway.api.dependencies import runtime
from gateway.runtime import Runtime
from gateway.venues.market_data import Staleness, VenueFeed

router = APIRouter(prefix="/v1", tags=["market data"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]

RULES: dict[Staleness, str] = {
    Staleness.SILENCE: "stale when its stream fails or is silent for longer than stale_after",
    Staleness.CHAIN_READ: (
        "stale when the chain is unreachable or its reserves were not read at the chain's "
        "head within stale_after"
    ),
    Staleness.FEED_ALIVE: "never stale for silence: stale only while its feed is failing",
}


class VenueOut(BaseModel):
    name: str
    kind: Literal["cex", "amm", "internal"]
    state: Literal["live", "stale"] = Field(
        description="Whether its quotes count in the consolidated book now (the book's own rule)"
    )
    feed_status: Literal["connecting", "live", "stale"] = Field(
        description="The feed's last reported status (the watchdog turns an aged-out feed stale)"
    )
    staleness: Literal["silence", "chain_read", "feed_alive"] = Field(
        description="The staleness rule of its kind"
    )
    staleness_rule: str
    last_update: datetime | None = Field(
        description="Its last book, changed or not (a pool: its last read at the head)"
    )
    age_seconds: str | None = Field(
        description="Seconds since last_update, as a decimal string (milliseconds)"
    )
    failures: int = Field(description="Consecutive feed failures since it was last live")
    reconnects: int = Field(description="Times it came back live after being stale")
    last_error: str | None
    instruments: list[str]


class VenuesOut(BaseModel):
    as_of: datetime
    stale_after_seconds: str = Field(description="How long an exchange may be silent")
    venues: list[VenueOut]


def _venue(feed: VenueFeed, stale: frozenset[str], now: datetime) -> VenueOut:
    name = feed.venue.name
    age = None
    if feed.last_update is not None:
        millis = max(0, round((now - feed.last_update).total_seconds() * 1000))
        age = f"{millis // 1000}.{millis % 1000:03d}"
    return VenueOut(
        name=name,
        kind=feed.venue.kind.value,
        state="stale" if name in stale else "live",
        feed_status=feed.status.value,
        staleness=feed.staleness.value,
        staleness_rule=RULES[feed.staleness],
        last_update=feed.last_update,
        age_seconds=age,
        failures=feed.failures,
        reconnects=feed.reconnects,
        last_error=feed.last_error,
        instruments=sorted(feed.instruments),
    )


@router.get(
    "/venues",
    response_model=VenuesOut,
    summary="Every venue's market-data feed: live or stale by the rule of its kind",
)
async def list_venues(rt: RuntimeDep) -> VenuesOut:
    hub = rt.market_data
    now = rt.clock.now()
    stale = hub.stale_venues()
    return VenuesOut(
        as_of=now,
        stale_after_seconds=format(rt.settings.venue_stale_after_seconds, "g"),
        venues=[_venue(feed, stale, now) for _, feed in sorted(hub.feeds.items())],
    )
