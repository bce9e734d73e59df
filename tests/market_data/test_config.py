"""Venue configuration files: the shipped example parses, bad files say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.devnet.catalogue import devnet_catalogue
from gateway.oms.service import SystemClock
from gateway.venues.config import (
    CcxtVenueConfig,
    InternalVenueConfig,
    UniswapV2VenueConfig,
    build_venues,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_config_parses() -> None:
    config = load_config(ROOT / "examples/gateway.toml")
    kinds = [type(v) for v in config.venues]
    assert kinds == [InternalVenueConfig, UniswapV2VenueConfig, CcxtVenueConfig, CcxtVenueConfig]
    assert config.chain is not None and config.chain.rpc_url.startswith("http")
    binance = config.venues[2]
    assert isinstance(binance, CcxtVenueConfig) and binance.symbols == {"WETH/USDC": "ETH/USDC"}


def test_unknown_keys_and_kinds_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[venues]]\nkind = "internal"\nsurprise = 1\n')
    with pytest.raises(ValidationError):
        load_config(bad)
    bad.write_text('[[venues]]\nkind = "carrier-pigeon"\n')
    with pytest.raises(ValidationError):
        load_config(bad)


def test_missing_secrets_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    config_file = tmp_path / "cex.toml"
    config_file.write_text(
        '[[venues]]\nkind = "ccxt"\nname = "binance"\nexchange = "binance"\n'
        'api_key_env = "BINANCE_API_KEY"\nsymbols = {"WETH/USDC" = "ETH/USDC"}\n'
    )
    with pytest.raises(ValueError, match="BINANCE_API_KEY"):
        build_venues(load_config(config_file), devnet_catalogue(), SystemClock())


def test_duplicate_venue_names_are_refused(tmp_path: Path) -> None:
    config_file = tmp_path / "dup.toml"
    config_file.write_text('[[venues]]\nkind = "internal"\n[[venues]]\nkind = "internal"\n')
    with pytest.raises(ValueError, match="unique"):
        build_venues(load_config(config_file), devnet_catalogue(), SystemClock())
