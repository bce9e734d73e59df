"""Deploy the whole Isthmus contract set with web3.py.

Order: test tokens (WETH, USDC) → test aggregator (WETH/USD) + PriceOracle → Settlement →
MarginWallet blueprint + WalletFactory (wired into Settlement) → Uniswap v2 factory and router
(published artifacts) + a WETH/USDC pair seeded with liquidity → the WETH/USDC spot instrument,
the pool and WETH as haircut collateral registered in Settlement; the deployer is operator.
The Safe 1.4.1 singleton, proxy factory and fallback handler are deployed after the factory
(so that a Safe can own a wallet, as on a real network). Last, the factory's seed reserve:
the deployer mints ``wallet_seed_units`` of WETH and USDC to the factory and lists both, so that
each new wallet starts with 1 base unit of each (its first trade then writes non-zero balance
slots instead of fresh ones). Returns a :class:`Deployment`.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract

from gateway.chain import tokens, uniswap
from gateway.chain.artifacts import ContractArtifact, compile_contract
from gateway.chain.safe import SafeInfrastructure, deploy_safe_infrastructure
from gateway.chain.transactions import Sender, bind
from gateway.settlement.eip712 import option_instrument_id, spot_instrument_id

# base units of each seed token WalletFactory gives a new wallet while its reserve lasts
WALLET_SEED_UNIT = 1


@dataclass(frozen=True, slots=True)
class DeployConfig:
    """What to seed. All amounts are integers in token units (prices: quote units per whole
    base unit, aggregator answers: the feed's own decimals)."""

    # Chainlink-style WETH/USD feed: 8 decimals, 3,000.00000000
    feed_decimals: int = 8
    eth_usd_answer: int = 3_000 * 10**8
    oracle_max_staleness: int = 7 * 24 * 3600  # seconds: devnet clocks jump
    oracle_max_deviation_bps: int = 0  # 0: no deviation bound
    weth_haircut_bps: int = 2_000  # WETH counts as margin collateral at 80%
    # WETH/USDC pool: 1,000 WETH against 3,000,000 USDC (3,000 USDC per WETH).
    pool_weth: int = 1_000 * 10**18
    pool_usdc: int = 3_000_000 * 10**6
    deploy_router: bool = True
    operators: tuple[str, ...] = ()  # in addition to the deployer
    # seconds a queued admin change (feed replacement, collateral haircut) waits: short on
    # the devnet so tests and demos can wait it out, days on a real network
    admin_delay: int = 300
    # seconds after expiry before a series may settle at the last round before expiry (its
    # feed has no round at expiry); twice this before it may unwind at no payoff
    expiry_grace: int = 3600
    # base units of WETH and of USDC the factory holds to give each new wallet 1 unit of each
    # (a gas measure: the wallet's first trade writes non-zero balance slots); 0: no seeding
    wallet_seed_units: int = 10**6


@dataclass(frozen=True, slots=True)
class Deployment:
    """Addresses of one deployed Isthmus world (plus the ids the gateway needs)."""

    chain_id: int
    deployer: ChecksumAddress
    block_number: int  # first block that may contain Isthmus events
    weth: ChecksumAddress
    usdc: ChecksumAddress
    eth_usd_aggregator: ChecksumAddress
    oracle: ChecksumAddress
    settlement: ChecksumAddress
    wallet_blueprint: ChecksumAddress
    wallet_factory: ChecksumAddress
    uniswap_factory: ChecksumAddress
    uniswap_router: ChecksumAddress | None
    weth_usdc_pair: ChecksumAddress
    spot_weth_usdc: bytes  # instrument id
    # Safe 1.4.1 (None: not deployed with this world, e.g. a file written before they were;
    # a real network has the canonical deployments)
    safe_singleton: ChecksumAddress | None = None
    safe_proxy_factory: ChecksumAddress | None = None
    safe_fallback_handler: ChecksumAddress | None = None

    @property
    def safe(self) -> SafeInfrastructure | None:
        """The Safe contracts of this world, if it has them."""
        if (
            self.safe_singleton is None
            or self.safe_proxy_factory is None
            or self.safe_fallback_handler is None
        ):
            return None
        return SafeInfrastructure(
            self.safe_singleton, self.safe_proxy_factory, self.safe_fallback_handler
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self)
        for key, value in data.items():
            if isinstance(value, bytes):
                data[key] = "0x" + value.hex()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Deployment:
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in raw and f.default is not MISSING:
                continue  # a field added later: files written before it still load
            value = raw[f.name]
            if f.name == "spot_weth_usdc":
                value = bytes.fromhex(str(value).removeprefix("0x"))
            elif isinstance(value, str) and value.startswith("0x") and len(value) == 42:
                value = Web3.to_checksum_address(value)
            kwargs[f.name] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        return cls.from_dict(json.loads(text))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())

    @classmethod
    def load(cls, path: Path) -> Deployment:
        return cls.from_json(path.read_text())


# ---------------------------------------------------------------------------
# Artifacts and bound contracts
# ---------------------------------------------------------------------------


def artifact(name: str) -> ContractArtifact:
    """A project contract by name (``MarginWallet``, ``Settlement``, ``TestAggregator``…)."""
    return compile_contract(name)


def settlement_contract(w3: Web3, deployment: Deployment) -> Contract:
    return bind(w3, artifact("Settlement"), deployment.settlement)


def factory_contract(w3: Web3, deployment: Deployment) -> Contract:
    return bind(w3, artifact("WalletFactory"), deployment.wallet_factory)


def oracle_contract(w3: Web3, deployment: Deployment) -> Contract:
    return bind(w3, artifact("PriceOracle"), deployment.oracle)


def aggregator_contract(w3: Web3, deployment: Deployment) -> Contract:
    return bind(w3, artifact("TestAggregator"), deployment.eth_usd_aggregator)


def wallet_contract(w3: Web3, wallet: str) -> Contract:
    return bind(w3, artifact("MarginWallet"), wallet)


# ---------------------------------------------------------------------------
# Deploy
# ---------------------------------------------------------------------------


def deploy_all(sender: Sender, config: DeployConfig | None = None) -> Deployment:
    """Deploy everything from ``sender`` (who becomes owner, operator and token minter)."""
    config = config or DeployConfig()
    w3 = sender.w3
    start_block = w3.eth.block_number + 1

    weth = tokens.deploy_token(sender, tokens.WETH)
    usdc = tokens.deploy_token(sender, tokens.USDC)

    aggregator = sender.deploy(
        artifact("TestAggregator"), config.feed_decimals, config.eth_usd_answer
    )
    oracle = sender.deploy(artifact("PriceOracle"), tokens.USDC.decimals, config.admin_delay)
    sender.transact(
        oracle.functions.set_feed(
            weth.address,
            aggregator.address,
            config.oracle_max_staleness,
            config.oracle_max_deviation_bps,
        )
    )

    settlement = sender.deploy(
        artifact("Settlement"),
        oracle.address,
        usdc.address,
        config.admin_delay,
        config.expiry_grace,
    )
    blueprint = sender.deploy_blueprint(artifact("MarginWallet"))
    factory = sender.deploy(artifact("WalletFactory"), blueprint, settlement.address)
    sender.transact(settlement.functions.set_factory(factory.address))
    for operator in (sender.address, *config.operators):
        sender.transact(settlement.functions.set_operator(Web3.to_checksum_address(operator), True))
    # before Uniswap, whose seeding takes a different number of transactions in the ape
    # script: both then give the Safe contracts the same addresses
    safe = deploy_safe_infrastructure(sender)

    uni = uniswap.deploy_uniswap_v2(sender, weth=weth.address if config.deploy_router else None)
    pair = uniswap.get_or_create_pair(sender, uni.factory, weth.address, usdc.address)
    tokens.mint(sender, weth.address, sender.address, config.pool_weth)
    tokens.mint(sender, usdc.address, sender.address, config.pool_usdc)
    uniswap.add_liquidity(
        sender, pair, weth.address, config.pool_weth, usdc.address, config.pool_usdc
    )

    sender.transact(settlement.functions.register_spot(weth.address, usdc.address))
    sender.transact(settlement.functions.register_pool(pair))
    sender.transact(settlement.functions.set_collateral(weth.address, config.weth_haircut_bps))
    if config.wallet_seed_units:
        seed_wallets(sender, factory, (weth.address, usdc.address), config.wallet_seed_units)

    return Deployment(
        chain_id=w3.eth.chain_id,
        deployer=sender.address,
        block_number=start_block,
        weth=weth.address,
        usdc=usdc.address,
        eth_usd_aggregator=aggregator.address,
        oracle=oracle.address,
        settlement=settlement.address,
        wallet_blueprint=blueprint,
        wallet_factory=factory.address,
        uniswap_factory=uni.factory,
        uniswap_router=uni.router,
        weth_usdc_pair=pair,
        spot_weth_usdc=spot_instrument_id(weth.address, usdc.address),
        safe_singleton=safe.singleton,
        safe_proxy_factory=safe.proxy_factory,
        safe_fallback_handler=safe.fallback_handler,
    )


def seed_wallets(
    owner: Sender, factory: Contract, token_addresses: tuple[str, ...], units: int
) -> None:
    """Mint ``units`` of each token to the factory (``owner`` must be the tokens' minter and
    the factory's owner) and list them: each new wallet then receives 1 unit of each."""
    for token in token_addresses:
        tokens.mint(owner, token, factory.address, units)
    owner.transact(
        factory.functions.set_seed_tokens([Web3.to_checksum_address(t) for t in token_addresses])
    )


def register_option(
    owner: Sender, deployment: Deployment, strike: int, expiry: int, is_call: bool
) -> bytes:
    """List a European WETH/USDC option in Settlement; returns its instrument id."""
    settlement = settlement_contract(owner.w3, deployment)
    owner.transact(
        settlement.functions.register_option(
            deployment.weth, deployment.usdc, strike, expiry, is_call
        )
    )
    return option_instrument_id(deployment.weth, deployment.usdc, strike, expiry, is_call)


def create_wallet(payer: Sender, deployment: Deployment, owner: str) -> ChecksumAddress:
    """Deploy ``owner``'s MarginWallet through the factory (anyone may pay); idempotent."""
    factory = factory_contract(payer.w3, deployment)
    owner_address = Web3.to_checksum_address(owner)
    existing: str = factory.functions.wallet_of(owner_address).call()
    if int(existing, 16) == 0:
        payer.transact(factory.functions.create_wallet_for(owner_address))
        existing = factory.functions.wallet_of(owner_address).call()
    return Web3.to_checksum_address(existing)
