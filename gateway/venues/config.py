"""Which venues a gateway trades on, from a TOML file (`isthmus up --config file.toml`).

Secrets never live in the file: it names the environment variables that hold them.

```toml
database_url = "postgresql+psycopg://isthmus@db/isthmus"   # optional

[chain]
rpc_url = "http://127.0.0.1:8545"

[[venues]]
kind = "internal"

[[venues]]
kind = "uniswap_v2"
name = "uniswap"
router = "0x..."
trader_key_env = "ISTHMUS_AMM_TRADER_KEY"
pools = [{instrument = "WETH/USDC", pair = "0x...", base = "0x...", quote = "0x...",
          base_decimals = 18, quote_decimals = 6}]

[[venues]]
kind = "ccxt"
name = "binance"
exchange = "binance"
api_key_env = "BINANCE_KEY"
secret_env = "BINANCE_SECRET"
symbols = {"WETH/USDC" = "ETH/USDC"}
taker_bps = "10"
```
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.domain.clock import Clock
from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.market import FeeSchedule
from gateway.venues.protocol import Venue


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InternalVenueConfig(_Config):
    kind: Literal["internal"]
    name: str = "internal"
    maker_bps: Decimal = Decimal(0)
    taker_bps: Decimal = Decimal(0)


class UniswapPoolConfig(_Config):
    instrument: str
    pair: str
    base: str
    quote: str
    base_decimals: int = Field(ge=0, le=36)
    quote_decimals: int = Field(ge=0, le=36)
    fee_bps: int = Field(default=30, ge=0, lt=10_000)


class UniswapV2VenueConfig(_Config):
    kind: Literal["uniswap_v2"]
    name: str = "uniswap"
    router: str
    pools: list[UniswapPoolConfig]
    trader_key_env: str | None = Field(
        default=None, description="Environment variable with the swapping account's key"
    )
    poll_interval: float = Field(default=0.5, gt=0)


class CcxtVenueConfig(_Config):
    kind: Literal["ccxt"]
    name: str
    exchange: str = Field(description="ccxt exchange id, e.g. binance, deribit")
    api_key_env: str | None = None
    secret_env: str | None = None
    url_host: str | None = Field(
        default=None, description="Replace scheme and host of every API URL (simulators)"
    )
    symbols: dict[str, str] = Field(description="Our symbol -> the exchange's ccxt symbol")
    maker_bps: Decimal = Decimal(0)
    taker_bps: Decimal = Decimal(0)
    options: dict[str, Any] = Field(default_factory=dict)
    websocket: bool = Field(default=False, description="Stream books over ccxt.pro WebSockets")
    poll_interval: float = Field(default=0.5, gt=0)
    # how long a request may go unanswered before the venue counts as unavailable (an
    # order's outcome is then looked up by its client order id)
    timeout_ms: int = Field(default=10_000, gt=0)


VenueConfig = Annotated[
    InternalVenueConfig | UniswapV2VenueConfig | CcxtVenueConfig, Field(discriminator="kind")
]


class ChainConfig(_Config):
    rpc_url: str
    # The Settlement contract: accounts' MarginWallets are read through it for on-chain
    # margin (reports, pre-trade checks); without it risk uses off-chain figures only.
    settlement: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    # token symbol -> address: what maps the catalogue's instruments to on-chain ones, so
    # that signed orders can be checked and settled
    tokens: dict[str, str] = Field(default_factory=dict)
    # the environment variable holding the operator's key: with it (and `settlement` and
    # `tokens`), matched fills of signed orders settle on chain
    operator_key_env: str | None = None
    settlement_confirmations: int = Field(default=0, ge=0)
    # batches by age or size: a batch leaves once its oldest trade has waited this many
    # milliseconds, or at once when `settlement_batch_trades` trades wait (0: no waiting)
    settlement_batch_age_ms: int = Field(default=0, ge=0)
    settlement_batch_trades: int = Field(default=256, ge=1)
    # the operator's inventory MarginWallet: with it (and its owner's key in the named
    # environment variable), a signed order's fills on centralized exchanges settle on chain
    # against it; without it such fills stay off chain (the order's exchange legs are hedges
    # of nothing)
    inventory_wallet: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    inventory_key_env: str | None = None
    # added to the exchange's average price and fee, in basis points of the price
    inventory_spread_bps: Decimal = Field(default=Decimal(5), ge=0, le=1000)
    # nonces the inventory wallet used before this database (its counter-orders count on)
    inventory_nonce_base: int = Field(default=0, ge=0)
    # an RPC URL clients may use, published at GET /v1/chain (none: clients bring their own;
    # `rpc_url` above may carry a provider's secret, so it is never published)
    public_rpc_url: str | None = None
    # a block explorer's base URL (`<explorer_url>/tx/<hash>` shows a transaction), published
    # at GET /v1/chain so that clients link each settlement to it (none on the devnet)
    explorer_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+[^/\s]$")


class GatewayConfig(_Config):
    database_url: str | None = None
    chain: ChainConfig | None = None
    venues: list[VenueConfig] = Field(default_factory=list)


def load_config(path: Path) -> GatewayConfig:
    with path.open("rb") as handle:
        return GatewayConfig.model_validate(tomllib.load(handle))


def _secret(variable: str | None) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise ValueError(f"environment variable {variable} is not set")
    return value


def build_venues(
    config: GatewayConfig, catalogue: InstrumentCatalogue, clock: Clock
) -> list[Venue]:
    """Instantiate every configured venue (connections open lazily)."""
    venues: list[Venue] = []
    for entry in config.venues:
        if isinstance(entry, InternalVenueConfig):
            from gateway.venues.internal import InternalVenue

            venues.append(
                InternalVenue(catalogue, clock, FeeSchedule(entry.maker_bps, entry.taker_bps))
            )
        elif isinstance(entry, UniswapV2VenueConfig):
            venues.append(_uniswap(entry, config, catalogue, clock))
        else:
            venues.append(_ccxt(entry, catalogue, clock))
    names = [v.name for v in venues]
    if len(names) != len(set(names)):
        raise ValueError(f"venue names must be unique: {names}")
    return venues


def _uniswap(
    entry: UniswapV2VenueConfig, config: GatewayConfig, catalogue: InstrumentCatalogue, clock: Clock
) -> Venue:
    from eth_account import Account

    from gateway.chain.transactions import Sender, connect
    from gateway.venues.amm import Pool, UniswapV2Venue

    if config.chain is None:
        raise ValueError("a uniswap_v2 venue needs [chain] rpc_url")
    w3 = connect(config.chain.rpc_url)
    key = _secret(entry.trader_key_env)
    trader = Sender(w3, Account.from_key(key)) if key else None
    pools = [Pool(**pool.model_dump()) for pool in entry.pools]
    return UniswapV2Venue(
        entry.name,
        w3,
        entry.router,
        pools,
        catalogue,
        clock,
        trader=trader,
        poll_interval=entry.poll_interval,
    )


def _ccxt(entry: CcxtVenueConfig, catalogue: InstrumentCatalogue, clock: Clock) -> Venue:
    from gateway.venues.ccxt_venue import CcxtVenue

    return CcxtVenue.from_config(
        entry,
        catalogue=catalogue,
        clock=clock,
        api_key=_secret(entry.api_key_env),
        secret=_secret(entry.secret_env),
    )
