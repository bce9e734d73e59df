"""`CcxtVenueSettings`s for the simulated exchanges: our devnet symbols -> ccxt unified symbols.

The same configs pointed at the real exchanges (`url_host=None`, real keys) trade the same
instruments there, because the simulators list them under the real exchanges' names:

| ours                     | Binance spot | Deribit                       |
|--------------------------|--------------|-------------------------------|
| `WETH/USDC`              | `ETH/USDC`   |                               |
| `WETH-PERP`              |              | `ETH/USDC:USDC` (ETH_USDC-PERPETUAL) |
| `WETH-20270326-3000-C`   |              | `ETH/USD:ETH-270326-3000-C` (ETH-26MAR27-3000-C) |

Asset codes `ETH` map to our `WETH`. Deribit's ETH options are inverse: premium, fees and
margin are in ETH, so their books and fills are priced in WETH per option.
"""

from __future__ import annotations

from gateway.devnet.catalogue import OPTION_EXPIRY, OPTION_STRIKES
from gateway.devnet.exchange_sim import binance, deribit
from gateway.domain.market import FeeSchedule
from gateway.venues.ccxt_venue import CcxtVenueSettings

ASSET_MAP = {"ETH": "WETH"}


def binance_symbol_map() -> dict[str, str]:
    return {"WETH/USDC": "ETH/USDC"}


def deribit_symbol_map() -> dict[str, str]:
    mapping = {"WETH-PERP": "ETH/USDC:USDC"}
    for strike in OPTION_STRIKES:
        for letter in ("C", "P"):
            ours = f"WETH-{OPTION_EXPIRY:%Y%m%d}-{strike.normalize():f}-{letter}"
            theirs = f"ETH/USD:ETH-{OPTION_EXPIRY:%y%m%d}-{strike.normalize():f}-{letter}"
            mapping[ours] = theirs
    return mapping


def binance_venue_config(
    url_host: str | None,
    *,
    api_key: str = binance.DEVNET_API_KEY,
    secret: str = binance.DEVNET_SECRET,
    enable_rate_limit: bool = True,
    poll_interval: float = 1.0,
    websocket: bool = True,
) -> CcxtVenueSettings:
    """Books stream over the diff-depth WebSocket (ccxt.pro) unless `websocket=False`."""
    market = binance.SPOT_MARKET
    return CcxtVenueSettings(
        name="binance",
        exchange_id="binance",
        api_key=api_key,
        secret=secret,
        url_host=url_host,
        symbol_map=binance_symbol_map(),
        asset_map=ASSET_MAP,
        fees={"WETH/USDC": FeeSchedule(maker_bps=market.maker_bps, taker_bps=market.taker_bps)},
        enable_rate_limit=enable_rate_limit,
        poll_interval=poll_interval,
        websocket=websocket,
    )


def deribit_venue_config(
    url_host: str | None,
    *,
    api_key: str = deribit.DEVNET_CLIENT_ID,
    secret: str = deribit.DEVNET_CLIENT_SECRET,
    enable_rate_limit: bool = True,
    poll_interval: float = 1.0,
    websocket: bool = True,
) -> CcxtVenueSettings:
    """Fees come from Deribit's instrument list (`maker_commission`/`taker_commission`);
    books stream over the WebSocket (ccxt.pro) unless `websocket=False`."""
    return CcxtVenueSettings(
        name="deribit",
        exchange_id="deribit",
        api_key=api_key,
        secret=secret,
        url_host=url_host,
        symbol_map=deribit_symbol_map(),
        asset_map=ASSET_MAP,
        enable_rate_limit=enable_rate_limit,
        poll_interval=poll_interval,
        websocket=websocket,
    )


__all__ = [
    "ASSET_MAP",
    "binance_symbol_map",
    "binance_venue_config",
    "deribit_symbol_map",
    "deribit_venue_config",
]
