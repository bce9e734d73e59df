"""Settings from `ISTHMUS_*` environment variables (and an optional `.env`)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.risk.pretrade import RiskLimits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ISTHMUS_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///.isthmus/isthmus.db",
        description="SQLAlchemy URL: SQLite (WAL) by default, or postgresql+psycopg://...",
    )
    host: str = Field(default="127.0.0.1", description="Interface the API listens on")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the API listens on")
    devnet_chain_port: int = Field(
        default=8545,
        ge=1,
        le=65535,
        description="The devnet's anvil listens here (on another free port if it is taken)",
    )
    web_dir: Path = Field(
        default=Path(__file__).resolve().parents[1] / "web" / "dist",
        description="The built web app served at /app (`make up` and `make test` build it)",
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Larger request bodies get 413"
    )
    page_size_max: int = Field(default=500, ge=1, description="Largest page of GET /v1/orders")
    commit_batch_max: int = Field(
        default=256, ge=1, description="Most order writes committed in one transaction"
    )
    stream_queue_size: int = Field(
        default=1024,
        ge=1,
        description="Events buffered per WebSocket subscriber before it is dropped as too slow",
    )
    venue_stale_after_seconds: float = Field(
        default=5.0,
        gt=0,
        description="An exchange silent, or a pool not read at the chain's head, for longer is "
        "stale and leaves the consolidated book; the internal book is never stale for silence",
    )
    book_depth_max: int = Field(default=100, ge=1, description="Deepest GET /v1/book answer")
    log_level: str = Field(default="info", description="uvicorn log level")
    ws_compression: bool = Field(
        default=False,
        description="Offer permessage-deflate on WebSocket streams: smaller frames for a distant "
        "client, at a compression per message on both ends (off: about 0.05 ms less per order "
        "entered over the stream on this machine)",
    )
    risk_max_order_notional: Decimal | None = Field(
        default=Decimal(1_000_000),
        description="Default per-order exposure notional limit in quote (empty: none)",
    )
    risk_max_open_notional: Decimal | None = Field(
        default=Decimal(5_000_000),
        description="Default limit on the notional of an account's working orders together",
    )
    risk_max_position: Decimal | None = Field(
        default=None,
        description="Default worst-case position limit per instrument, in its quantity units",
    )
    risk_max_open_orders: int | None = Field(
        default=1_000, ge=1, description="Default limit on an account's working orders"
    )
    require_signed_orders: bool = Field(
        default=False,
        description="Refuse orders without the wallet owner's EIP-712 signature (orders that "
        "could not settle on chain); signatures given are always checked when a chain is set",
    )
    key_revocation_interval_seconds: float | None = Field(
        default=None,
        gt=0,
        description="With a chain: how often open orders signed by a trading key the wallet now "
        "refuses (revoked, expired) are looked for and cancelled (empty: the reconcile interval)",
    )
    sanctions_file: Path | None = Field(
        default=None,
        description="Sanctions list, CSV `address,list,reason` with `#` comments (empty: the "
        "devnet sample gateway/devnet/compliance/sanctions.csv)",
    )
    compliance_rules_file: Path | None = Field(
        default=None,
        description="KYC levels and jurisdiction rules, TOML (empty: the devnet sample "
        "gateway/devnet/compliance/rules.toml)",
    )
    kyc_file: Path | None = Field(
        default=None,
        description="KYC records of the file-backed provider, TOML or JSON (empty: the devnet "
        "sample gateway/devnet/compliance/kyc.toml, where unlisted accounts are at full KYC)",
    )
    risk_orders_per_second: Decimal = Field(
        default=Decimal(50), gt=0, description="Default sustained order rate per account"
    )
    risk_order_burst: int = Field(default=100, ge=1, description="Default order burst per account")
    risk_price_band_bps: int = Field(
        default=1_000, ge=1, description="Spot/perp limit prices further from the mid are refused"
    )
    risk_option_price_band_bps: int = Field(
        default=5_000, ge=1, description="Option limit prices further from the mid are refused"
    )

    risk_default_vol: float = Field(
        default=0.6, gt=0, description="Annual vol where no option mid implies one"
    )
    risk_rate: float = Field(default=0.0, description="Risk-free rate for option pricing")
    risk_confidence: float = Field(default=0.99, gt=0, lt=1, description="VaR/ES confidence")
    risk_horizon_days: int = Field(default=1, ge=1, description="VaR/ES horizon in days")
    risk_monte_carlo_paths: int = Field(
        default=20_000, ge=1_000, description="Monte Carlo VaR paths per report"
    )
    risk_monitor_interval_seconds: float = Field(
        default=1.0, gt=0, description="The risk monitor re-prices at least this often"
    )
    risk_history_interval_seconds: float = Field(
        default=60.0, gt=0, description="Spot mids kept for historical VaR at this spacing"
    )
    risk_webhook_url: str | None = Field(
        default=None, description="Margin alerts are POSTed here (JSON, signed)"
    )
    risk_webhook_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key for the X-Isthmus-Signature header"
    )
    risk_hedge_slippage_bps: Decimal = Field(
        default=Decimal(50), ge=0, description="Protective limit of a hedge beyond the best price"
    )

    operator_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the operator role (everything, including API keys and "
        "risk controls); unset: no operator access. `isthmus up` on devnet generates one",
    )
    api_key_secret: SecretStr | None = Field(
        default=None,
        description="Server secret API key secrets are derived from (HMAC-SHA256 with each "
        "key's salt); unset: derived from the operator token, so rotating that token then "
        "invalidates every API key",
    )
    request_window_seconds: int = Field(
        default=30,
        ge=1,
        description="HMAC-signed requests older or newer than this are refused; a signature "
        "seen within it is a replay",
    )
    replay_memory_size: int = Field(
        default=100_000, ge=1, description="Most request signatures remembered against replays"
    )
    siwe_domain: str | None = Field(
        default=None,
        description="Domain a Sign-In with Ethereum message must name (empty: the request's "
        "Host header)",
    )
    siwe_chain_id: int | None = Field(
        default=None,
        description="Chain id a Sign-In with Ethereum message must name (empty: the "
        "configured chain's, or 31337 without one)",
    )
    siwe_nonce_ttl_seconds: int = Field(
        default=300, ge=1, description="A Sign-In with Ethereum nonce expires after this"
    )
    session_ttl_seconds: int = Field(
        default=86_400, ge=60, description="A trader's session lasts at most this long"
    )
    credential_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How long the gateway trusts a session token or API key it read before "
        "reading it again (0: every request). A sign-out or revocation takes effect at once on "
        "the replica that took it, on other replicas within this time",
    )
    rate_limit_per_second: Decimal = Field(
        default=Decimal(20),
        gt=0,
        description="Sustained requests per second per API key and per trader address",
    )
    rate_limit_burst: int = Field(
        default=40, ge=1, description="Requests an API key or trader may send at once"
    )

    replica: bool = Field(
        default=False,
        description="Run as one of several replicas on one PostgreSQL database: single-writer "
        "roles are held through leases, requests are forwarded to the role's holder, stream "
        "events come through the database (refused on SQLite, which is one process only)",
    )
    replica_id: str | None = Field(
        default=None,
        description="This replica's name in leases and `isthmus status` "
        "(empty: host name and process id)",
    )
    replica_url: str | None = Field(
        default=None,
        description="Where the other replicas reach this one's API, forwarding to it when it "
        "holds a role (empty: http://HOST:PORT, with 127.0.0.1 for an all-interfaces HOST)",
    )
    lease_ttl_seconds: float = Field(
        default=3.0, gt=0, description="A role's lease lapses this long after its last renewal"
    )
    lease_renew_seconds: float = Field(
        default=0.5,
        gt=0,
        description="How often a replica renews its leases and looks for lapsed ones",
    )
    tracing: Literal["off", "otlp", "console"] = Field(
        default="off",
        description="OpenTelemetry traces: off, OTLP export (OTEL_EXPORTER_OTLP_* variables "
        "say where) or printed to the console",
    )
    log_format: Literal["json", "console"] = Field(
        default="json", description="Structured logs: one JSON object per line, or for people"
    )

    fix_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="The FIX 4.4 acceptor listens here (empty: no acceptor; the devnet starts "
        "one on 9878 by default; 0 takes a free port)",
    )
    fix_host: str = Field(default="127.0.0.1", description="Interface the FIX acceptor binds")
    fix_comp_id: str = Field(
        default="ISTHMUS", max_length=64, description="The acceptor's SenderCompID"
    )
    fix_sessions: list[str] = Field(
        default=["DESK1", "DESK2", "DESK3", "MM1"],
        description="The counterparties' SenderCompIDs, one session each (FIX sessions are "
        "provisioned: QuickFIX accepts only configured ones); JSON list in the environment",
    )
    fix_dir: Path = Field(
        default=Path(".isthmus/fix"),
        description="The acceptor's working files: its QuickFIX settings, data dictionary and "
        "message logs (sequence numbers live in the database)",
    )

    def risk_limits(self) -> RiskLimits:
        return RiskLimits(
            max_order_notional=self.risk_max_order_notional,
            max_open_notional=self.risk_max_open_notional,
            max_position=self.risk_max_position,
            max_open_orders=self.risk_max_open_orders,
            orders_per_second=self.risk_orders_per_second,
            order_burst=self.risk_order_burst,
            price_band_bps=self.risk_price_band_bps,
            option_price_band_bps=self.risk_option_price_band_bps,
        )

    def sqlite_path(self) -> Path | None:
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and ":memory:" not in self.database_url:
            return Path(self.database_url[len(prefix) :])
        return None
