"""Pure pieces of the ccxt adapter: URL rewriting, asset inference, error mapping."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt
import pytest

from gateway.devnet.catalogue import devnet_catalogue
from gateway.devnet.exchange_sim.venues import (
    binance_venue_config,
    deribit_symbol_map,
    deribit_venue_config,
)
from gateway.venues.ccxt_venue import (
    CcxtVenue,
    infer_asset_map,
    map_ccxt_error,
    rewrite_host,
    to_decimal,
)
from gateway.venues.protocol import (
    VenueError,
    VenueInsufficientFunds,
    VenueOrderNotFound,
    VenueRejected,
    VenueUnavailable,
)


def test_rewrite_host_keeps_paths_and_websocket_schemes() -> None:
    host = "http://127.0.0.1:8101"
    assert rewrite_host("https://api.binance.com/api/v3", host) == host + "/api/v3"
    assert rewrite_host("https://www.deribit.com", host) == host
    assert rewrite_host("wss://stream.binance.com:9443/ws", host) == "ws://127.0.0.1:8101/ws"
    assert rewrite_host("wss://x.example/ws", "https://sim.example") == "wss://sim.example/ws"


def test_without_url_host_the_real_endpoints_are_kept() -> None:
    async def main() -> None:
        venue = CcxtVenue(binance_venue_config(None, websocket=False))
        try:
            assert venue.exchange.urls["api"]["public"] == "https://api.binance.com/api/v3"
            assert venue.exchange.options["fetchMarkets"]["types"] == ["spot"]
        finally:
            await venue.close()
        venue = CcxtVenue(deribit_venue_config(None))
        try:
            assert venue.exchange.urls["api"]["rest"] == "https://www.deribit.com"
            assert venue.exchange.urls["api"]["ws"] == "wss://www.deribit.com/ws/api/v2"
        finally:
            await venue.close()

    asyncio.run(main())


def test_symbol_and_asset_maps_cover_the_devnet_catalogue() -> None:
    catalogue = devnet_catalogue()
    mapping = deribit_symbol_map()
    assert mapping["WETH-20270326-3000-C"] == "ETH/USD:ETH-270326-3000-C"
    assert mapping["WETH-PERP"] == "ETH/USDC:USDC"
    assert set(mapping) | {"WETH/USDC"} == {i.symbol for i in catalogue}
    assert infer_asset_map(mapping, catalogue) == {"ETH": "WETH"}
    assert infer_asset_map({"WETH/USDC": "ETH/USDC"}, None) == {"ETH": "WETH"}


def test_ccxt_numbers_become_exact_decimals() -> None:
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal(3000.05) == Decimal("3000.05")
    assert to_decimal(1e-05) == Decimal("0.00001")
    assert to_decimal("0.00025") == Decimal("0.00025")
    assert to_decimal(None) is None


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        (ccxt.OrderNotFound("x"), VenueOrderNotFound, "venue_order_not_found"),
        (ccxt.InsufficientFunds("x"), VenueInsufficientFunds, "venue_insufficient_funds"),
        (ccxt.AuthenticationError("x"), VenueError, "venue_authentication"),
        (ccxt.PermissionDenied("x"), VenueError, "venue_authentication"),
        (ccxt.InvalidNonce("x"), VenueError, "venue_authentication"),
        (ccxt.RateLimitExceeded("x"), VenueUnavailable, "venue_unavailable"),
        (ccxt.DDoSProtection("x"), VenueUnavailable, "venue_unavailable"),
        (ccxt.ExchangeNotAvailable("x"), VenueUnavailable, "venue_unavailable"),
        (ccxt.RequestTimeout("x"), VenueUnavailable, "venue_unavailable"),
        (ccxt.InvalidOrder("x"), VenueRejected, "venue_rejected"),
        (ccxt.BadRequest("x"), VenueRejected, "venue_rejected"),
        (ccxt.BadSymbol("x"), VenueRejected, "venue_rejected"),
        (ccxt.ExchangeError("x"), VenueError, "venue_error"),
    ],
)
def test_ccxt_errors_map_to_venue_errors(
    error: Exception, expected: type[VenueError], code: str
) -> None:
    mapped = map_ccxt_error(error, "binance")
    assert type(mapped) is expected
    assert (mapped.code, mapped.venue) == (code, "binance")


def test_a_venue_message_is_stored_as_one_printable_line() -> None:
    """A venue's words become an order's or a child's reason: no NUL (PostgreSQL refuses it)
    nor any other control character, and not a whole page of them."""
    mapped = map_ccxt_error(ccxt.InvalidOrder('{"msg": "bad\x00qty"}\n<html>' + "x" * 900), "bnb")
    assert str(mapped).startswith('bnb: {"msg": "bad qty"} <html>xxx')
    assert len(str(mapped)) == 500 and str(mapped).endswith("…")
