"""The embedded default world that `make up` runs on one machine.

anvil (from the project's node_modules) with the contracts deployed, the real Uniswap v2
pair seeded, two demo traders with funded MarginWallets, and simulated exchanges speaking
real exchange protocols. `DevnetWorld.gateway_config()` describes its venues exactly as a
user's TOML would describe real ones.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil, AnvilConfig, port_is_free
from gateway.chain.deploy import Deployment, create_wallet, deploy_all
from gateway.chain.transactions import Sender, connect
from gateway.venues.config import (
    ChainConfig,
    GatewayConfig,
    InternalVenueConfig,
    UniswapPoolConfig,
    UniswapV2VenueConfig,
    VenueConfig,
)

# anvil's dev keys are public; the devnet puts the operator's where the config expects it.
OPERATOR_KEY_ENV = "ISTHMUS_DEVNET_OPERATOR_KEY"
DEMO_USDC = 250_000 * 10**6
DEMO_WETH = 50 * 10**18


@dataclass(frozen=True, slots=True)
class DemoTrader:
    name: str
    owner: str
    private_key: str
    wallet: str


@dataclass
class DevnetWorld:
    anvil: Anvil
    deployment: Deployment
    operator: LocalAccount
    traders: list[DemoTrader]
    extra_venues: list[VenueConfig] = field(default_factory=list)
    services: list[Any] = field(default_factory=list)  # things with .stop()

    def gateway_config(self) -> GatewayConfig:
        os.environ[OPERATOR_KEY_ENV] = Web3.to_hex(self.operator.key)
        d = self.deployment
        assert d.uniswap_router is not None
        return GatewayConfig(
            chain=ChainConfig(rpc_url=self.anvil.rpc_url),
            venues=[
                InternalVenueConfig(kind="internal"),
                UniswapV2VenueConfig(
                    kind="uniswap_v2",
                    name="uniswap",
                    router=d.uniswap_router,
                    trader_key_env=OPERATOR_KEY_ENV,
                    pools=[
                        UniswapPoolConfig(
                            instrument="WETH/USDC",
                            pair=d.weth_usdc_pair,
                            base=d.weth,
                            quote=d.usdc,
                            base_decimals=18,
                            quote_decimals=6,
                        )
                    ],
                ),
                *self.extra_venues,
            ],
        )

    def stop(self) -> None:
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                service.stop()
        self.anvil.stop()


def start_chain(state_dir: Path, *, port: int = 8545) -> DevnetWorld:
    """Start anvil, deploy everything, fund two demo traders' wallets."""
    state_dir.mkdir(parents=True, exist_ok=True)
    anvil = Anvil(AnvilConfig(port=port if port_is_free("127.0.0.1", port) else None)).start()
    try:
        w3 = connect(anvil.rpc_url)
        accounts = anvil.dev_accounts()
        operator = Sender(w3, accounts[0])
        deployment = deploy_all(operator)
        deployment.save(state_dir / "deployment.json")
        traders = []
        for name, account in (("alice", accounts[1]), ("bob", accounts[2])):
            wallet = create_wallet(operator, deployment, account.address)
            tokens.mint(operator, deployment.usdc, wallet, DEMO_USDC)
            tokens.mint(operator, deployment.weth, wallet, DEMO_WETH)
            traders.append(DemoTrader(name, account.address, Web3.to_hex(account.key), wallet))
        return DevnetWorld(anvil, deployment, accounts[0], traders)
    except BaseException:
        anvil.stop()
        raise
