"""Instruments the devnet trades: WETH/USDC spot, a perpetual and a strip of options."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from gateway.domain.instruments import (
    Asset,
    Instrument,
    InstrumentCatalogue,
    OptionRight,
    TradingRules,
    option,
    perpetual,
    spot,
)

USDC = Asset("USDC", 6)
WETH = Asset("WETH", 18)

SPOT_RULES = TradingRules(
    tick_size=Decimal("0.01"), lot_size=Decimal("0.0001"), min_quantity=Decimal("0.0001")
)
# as Deribit lists ETH_USDC-PERPETUAL: a router or a legging run must not size a child
# finer than the venue can fill it
PERPETUAL_RULES = TradingRules(
    tick_size=Decimal("0.05"), lot_size=Decimal("0.001"), min_quantity=Decimal("0.001")
)
OPTION_RULES = TradingRules(
    tick_size=Decimal("0.5"), lot_size=Decimal("0.01"), min_quantity=Decimal("0.01")
)
OPTION_EXPIRY = datetime(2027, 3, 26, 8, 0, tzinfo=UTC)
OPTION_STRIKES = [Decimal(k) for k in (2500, 2800, 3000, 3200, 3500)]


def devnet_catalogue() -> InstrumentCatalogue:
    instruments: list[Instrument] = [
        spot(WETH, USDC, SPOT_RULES),
        perpetual(WETH, USDC, PERPETUAL_RULES),
    ]
    for strike in OPTION_STRIKES:
        for right in (OptionRight.CALL, OptionRight.PUT):
            instruments.append(
                option(
                    WETH, USDC, OPTION_RULES, strike=strike, expires_at=OPTION_EXPIRY, right=right
                )
            )
    return InstrumentCatalogue(instruments)
