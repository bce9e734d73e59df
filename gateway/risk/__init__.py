"""Option-pricing analytics: Black-Scholes, Black-76, Greeks, implied volatility."""

from gateway.risk.pricing import (
    Greeks,
    PriceOutsideArbitrageBounds,
    black76,
    black76_implied_vol,
    black_scholes,
    implied_vol,
)

__all__ = [
    "Greeks",
    "PriceOutsideArbitrageBounds",
    "black76",
    "black76_implied_vol",
    "black_scholes",
    "implied_vol",
]
