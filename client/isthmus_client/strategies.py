"""Legs of the common option strategies, by strikes. Option symbols are
`<UNDERLYING>-<YYYYMMDD>-<STRIKE>-<C|P>` (as `GET /v1/instruments` lists them); the legs are
written for a buyer (side "buy" of the strategy), and a sell flips them when signed."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from isthmus_client.models import Leg

Strike = Decimal | int | str


def option_symbol(underlying: str, expiry: str | date, strike: Strike, right: str) -> str:
    """`WETH-20270326-2500-C`: `right` is "call"/"C" or "put"/"P"."""
    day = expiry.strftime("%Y%m%d") if isinstance(expiry, date | datetime) else str(expiry)
    letter = {"call": "C", "c": "C", "put": "P", "p": "P"}[right.lower()]
    text = format(Decimal(str(strike)).normalize(), "f")
    return f"{underlying}-{day}-{text}-{letter}"


def straddle(underlying: str, expiry: str | date, strike: Strike) -> list[Leg]:
    """Long a call and a put at the same strike."""
    return [
        Leg(option_symbol(underlying, expiry, strike, "C"), "buy"),
        Leg(option_symbol(underlying, expiry, strike, "P"), "buy"),
    ]


def strangle(
    underlying: str, expiry: str | date, put_strike: Strike, call_strike: Strike
) -> list[Leg]:
    """Long an out-of-the-money put and call."""
    if Decimal(str(put_strike)) >= Decimal(str(call_strike)):
        raise ValueError("a strangle's put strike is below its call strike")
    return [
        Leg(option_symbol(underlying, expiry, put_strike, "P"), "buy"),
        Leg(option_symbol(underlying, expiry, call_strike, "C"), "buy"),
    ]


def vertical(
    underlying: str, expiry: str | date, right: str, long_strike: Strike, short_strike: Strike
) -> list[Leg]:
    """A vertical spread: long one strike, short another of the same right (a bull call
    spread is `vertical(u, e, "call", low, high)`, a bear put spread `(u, e, "put", high, low)`)."""
    if Decimal(str(long_strike)) == Decimal(str(short_strike)):
        raise ValueError("a vertical spread has two different strikes")
    return [
        Leg(option_symbol(underlying, expiry, long_strike, right), "buy"),
        Leg(option_symbol(underlying, expiry, short_strike, right), "sell"),
    ]


def iron_condor(
    underlying: str,
    expiry: str | date,
    put_wing: Strike,
    put_body: Strike,
    call_body: Strike,
    call_wing: Strike,
) -> list[Leg]:
    """Four strikes, lowest first: short the put wing, long the put body, long the call body,
    short the call wing. Bought, that is a long (reverse) iron condor, paying when the price
    ends beyond the bodies; sell the same legs for the classic short condor, which collects
    the premium and pays when it ends beyond the wings."""
    strikes = [Decimal(str(k)) for k in (put_wing, put_body, call_body, call_wing)]
    if strikes != sorted(strikes) or len(set(strikes)) != 4:
        raise ValueError("an iron condor's four strikes are distinct and in rising order")
    return [
        Leg(option_symbol(underlying, expiry, put_wing, "P"), "sell"),
        Leg(option_symbol(underlying, expiry, put_body, "P"), "buy"),
        Leg(option_symbol(underlying, expiry, call_body, "C"), "buy"),
        Leg(option_symbol(underlying, expiry, call_wing, "C"), "sell"),
    ]
