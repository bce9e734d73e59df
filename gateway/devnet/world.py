"""The embedded default world that `make up` runs on one machine.

anvil (from the project's node_modules) with the contracts deployed, the real Uniswap v2
pair seeded, two demo traders with funded MarginWallets, and simulated exchanges speaking
real exchange protocols. `DevnetWorld.gateway_config()` describes its venues exactly as a
user's TOML would describe real ones.

`deploy_world` is the chain part over an RPC URL: `start_chain` runs it on the anvil it
starts, `isthmus deploy` (gateway/devnet/existing_chain.py) on one that already runs, such as
docker-compose's `anvil` service.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil, AnvilConfig, port_is_free
from gateway.chain.deploy import (
    DeployConfig,
    Deployment,
    create_wallet,
    deploy_all,
    register_option,
)
from gateway.chain.transactions import Sender, connect
from gateway.devnet.catalogue import OPTION_EXPIRY, OPTION_STRIKES
from gateway.devnet.exchange_sim import binance, deribit
from gateway.venues.config import (
    CcxtVenueConfig,
    ChainConfig,
    GatewayConfig,
    InternalVenueConfig,
    UniswapPoolConfig,
    UniswapV2VenueConfig,
    VenueConfig,
)

# anvil's dev keys and the simulators' credentials are public; the devnet puts them where
# the config expects secrets: in environment variables.
OPERATOR_KEY_ENV = "ISTHMUS_DEVNET_OPERATOR_KEY"
# a key of its own for settlement: its nonce is managed by the settlement sender alone
SETTLER_KEY_ENV = "ISTHMUS_DEVNET_SETTLER_KEY"
SETTLER_ACCOUNT = 9  # the anvil dev account that sends settlement batches
# the operator's inventory MarginWallet's owner: it signs the counter-orders that settle
# signed orders' exchange fills on chain
INVENTORY_ACCOUNT = 8
INVENTORY_KEY_ENV = "ISTHMUS_DEVNET_INVENTORY_KEY"
DEVNET_SECRETS = {
    "ISTHMUS_DEVNET_BINANCE_KEY": binance.DEVNET_API_KEY,
    "ISTHMUS_DEVNET_BINANCE_SECRET": binance.DEVNET_SECRET,
    "ISTHMUS_DEVNET_DERIBIT_KEY": deribit.DEVNET_CLIENT_ID,
    "ISTHMUS_DEVNET_DERIBIT_SECRET": deribit.DEVNET_CLIENT_SECRET,
}
DEMO_USDC = 250_000 * 10**6
DEMO_WETH = 50 * 10**18
OPERATOR_USDC = 1_000_000 * 10**6
OPERATOR_WETH = 300 * 10**18
INVENTORY_USDC = 1_000_000 * 10**6
INVENTORY_WETH = 300 * 10**18


@dataclass(frozen=True, slots=True)
class DemoTrader:
    name: str
    owner: str
    private_key: str
    wallet: str


# anvil's dev accounts (default mnemonic) that own the demo traders' MarginWallets
DEMO_TRADER_ACCOUNTS = (("alice", 1), ("bob", 2), ("carol", 3))


@dataclass(frozen=True, slots=True)
class DeployedWorld:
    """What `deploy_world` put on a chain: the contracts, the demo traders' funded wallets
    and the operator's inventory wallet, with the dev accounts that act for them."""

    deployment: Deployment
    operator: LocalAccount  # deployer, owner, token minter; swaps on the pool
    traders: list[DemoTrader]
    settler: LocalAccount  # sends settlement batches
    inventory_owner: LocalAccount
    inventory_wallet: str

    def secrets(self) -> dict[str, str]:
        """The keys the gateway config names, by environment variable (anvil dev keys)."""
        return {
            OPERATOR_KEY_ENV: Web3.to_hex(self.operator.key),
            SETTLER_KEY_ENV: Web3.to_hex(self.settler.key),
            INVENTORY_KEY_ENV: Web3.to_hex(self.inventory_owner.key),
        }

    def gateway_config(
        self,
        rpc_url: str,
        *,
        public_rpc_url: str | None,
        extra_venues: list[VenueConfig] | None = None,
    ) -> GatewayConfig:
        """This world as a user's TOML describes it: settlement on the chain at `rpc_url`,
        the internal book and the Uniswap pool; keys by the names `secrets()` gives."""
        d = self.deployment
        assert d.uniswap_router is not None
        return GatewayConfig(
            chain=ChainConfig(
                rpc_url=rpc_url,
                public_rpc_url=public_rpc_url,
                settlement=d.settlement,
                tokens={"WETH": d.weth, "USDC": d.usdc},
                operator_key_env=SETTLER_KEY_ENV,
                inventory_wallet=self.inventory_wallet,
                inventory_key_env=INVENTORY_KEY_ENV,
            ),
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
                *(extra_venues or []),
            ],
        )


@dataclass
class DevnetWorld:
    anvil: Anvil
    deployment: Deployment
    operator: LocalAccount
    traders: list[DemoTrader]
    settler: LocalAccount
    inventory_owner: LocalAccount
    inventory_wallet: str
    extra_venues: list[VenueConfig] = field(default_factory=list)
    services: list[Any] = field(default_factory=list)  # things with .stop()

    @property
    def deployed(self) -> DeployedWorld:
        return DeployedWorld(
            self.deployment,
            self.operator,
            self.traders,
            self.settler,
            self.inventory_owner,
            self.inventory_wallet,
        )

    def gateway_config(self) -> GatewayConfig:
        deployed = self.deployed
        os.environ.update(deployed.secrets())
        os.environ.update(DEVNET_SECRETS)
        return deployed.gateway_config(
            self.anvil.rpc_url, public_rpc_url=self.anvil.rpc_url, extra_venues=self.extra_venues
        )

    def stop(self) -> None:
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                service.stop()
        self.anvil.stop()


def start_chain(state_dir: Path, *, port: int | None = 8545) -> DevnetWorld:
    """Start anvil (on `port` if it is free, else any), deploy everything, fund the demo
    traders' wallets."""
    free = port is not None and port_is_free("127.0.0.1", port)
    anvil = Anvil(AnvilConfig(port=port if free else None)).start()
    try:
        deployed = deploy_world(anvil.rpc_url, state_dir, anvil.dev_accounts())
    except BaseException:
        anvil.stop()
        raise
    return DevnetWorld(
        anvil,
        deployed.deployment,
        deployed.operator,
        deployed.traders,
        deployed.settler,
        deployed.inventory_owner,
        deployed.inventory_wallet,
    )


def deploy_world(rpc_url: str, state_dir: Path, accounts: list[LocalAccount]) -> DeployedWorld:
    """Deploy everything onto the chain at `rpc_url` from anvil's dev `accounts` (the
    deployer is the first; they need ether, not contracts), fund the demo traders' wallets
    and the operator's inventory, and write `deployment.json` into `state_dir`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    w3 = connect(rpc_url)
    operator = Sender(w3, accounts[0])
    deployment = deploy_all(operator, DeployConfig(operators=(accounts[SETTLER_ACCOUNT].address,)))
    deployment.save(state_dir / "deployment.json")
    # the catalogue's options exist on chain too, so that strategies on them settle
    for strike in OPTION_STRIKES:
        for is_call in (True, False):
            register_option(
                operator,
                deployment,
                int(strike * 10**6),
                int(OPTION_EXPIRY.timestamp()),
                is_call,
            )
    # the operator's own inventory: what its AMM swaps (smart routes, hedges) trade from
    tokens.mint(operator, deployment.usdc, operator.address, OPERATOR_USDC)
    tokens.mint(operator, deployment.weth, operator.address, OPERATOR_WETH)
    traders = []
    for name, index in DEMO_TRADER_ACCOUNTS:
        account = accounts[index]
        wallet = create_wallet(operator, deployment, account.address)
        tokens.mint(operator, deployment.usdc, wallet, DEMO_USDC)
        tokens.mint(operator, deployment.weth, wallet, DEMO_WETH)
        traders.append(DemoTrader(name, account.address, Web3.to_hex(account.key), wallet))
    inventory_owner = accounts[INVENTORY_ACCOUNT]
    inventory = create_wallet(operator, deployment, inventory_owner.address)
    tokens.mint(operator, deployment.usdc, inventory, INVENTORY_USDC)
    tokens.mint(operator, deployment.weth, inventory, INVENTORY_WETH)
    return DeployedWorld(
        deployment, accounts[0], traders, accounts[SETTLER_ACCOUNT], inventory_owner, inventory
    )


class ExchangeProcess:
    """A simulated exchange in its own process, as a real exchange would be."""

    def __init__(self, exchange: str, *, seed: int, step_interval: float) -> None:
        self.label = f"simulated {exchange}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.devnet.exchange_sim.server",
                exchange,
                "--seed",
                str(seed),
                "--step-interval",
                str(step_interval),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()  # printed once the port is bound
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"{exchange} simulator did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_exchanges(world: DevnetWorld, *, seed: int = 7, step_interval: float = 1.0) -> None:
    """Binance spot (WETH/USDC) and Deribit (the USDC-margined WETH perpetual).

    Deribit's ETH options are inverse (priced in ETH); until prices are converted to USDC
    they stay out of the consolidated books, which quote options in USDC.
    """
    # here, not at the top: it imports ccxt (seconds), which deploying alone does not need
    from gateway.devnet.exchange_sim.venues import binance_symbol_map

    binance_sim = ExchangeProcess("binance", seed=seed, step_interval=step_interval)
    world.services.append(binance_sim)
    deribit_sim = ExchangeProcess("deribit", seed=seed + 1, step_interval=step_interval)
    world.services.append(deribit_sim)
    world.extra_venues += [
        CcxtVenueConfig(
            kind="ccxt",
            name="binance",
            exchange="binance",
            api_key_env="ISTHMUS_DEVNET_BINANCE_KEY",
            secret_env="ISTHMUS_DEVNET_BINANCE_SECRET",
            url_host=binance_sim.url,
            symbols=binance_symbol_map(),
            maker_bps=binance.SPOT_MARKET.maker_bps,
            taker_bps=binance.SPOT_MARKET.taker_bps,
            options={"fetchMarkets": {"types": ["spot"]}},
            websocket=True,
        ),
        CcxtVenueConfig(
            kind="ccxt",
            name="deribit",
            exchange="deribit",
            api_key_env="ISTHMUS_DEVNET_DERIBIT_KEY",
            secret_env="ISTHMUS_DEVNET_DERIBIT_SECRET",
            url_host=deribit_sim.url,
            symbols={"WETH-PERP": "ETH/USDC:USDC"},
            websocket=True,
        ),
    ]
