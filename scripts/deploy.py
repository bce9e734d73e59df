"""ape script: deploy the whole Isthmus set through ape (same result as
``gateway.chain.deploy.deploy_all``, which does it with plain web3.py).

    PATH="$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH" ape run deploy

On the local network (anvil via ape-foundry) the deployer is ape's first test account; on any
other network set ``ISTHMUS_DEPLOYER_ALIAS`` to an ape account alias. The resulting
``Deployment`` is printed as JSON and, if ``ISTHMUS_DEPLOYMENT_OUT`` is set, written there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ape import accounts, chain, networks, project
from ape.contracts import ContractContainer, ContractInstance
from ethpm_types import ContractType

from gateway.chain.artifacts import (
    ContractArtifact,
    safe_artifact,
    uniswap_v2_core,
    uniswap_v2_periphery,
)
from gateway.chain.deploy import DeployConfig, Deployment
from gateway.settlement.eip712 import spot_instrument_id


def _container(artifact: ContractArtifact) -> ContractContainer:
    """An ape container for a published (non-project) artifact such as Uniswap's."""
    contract_type = ContractType.model_validate(
        {
            "contractName": artifact.name,
            "abi": artifact.abi,
            "deploymentBytecode": {"bytecode": "0x" + artifact.bytecode.hex()},
        }
    )
    return ContractContainer(contract_type)


def _deployer() -> Any:
    alias = os.environ.get("ISTHMUS_DEPLOYER_ALIAS")
    if alias:
        return accounts.load(alias)
    if networks.provider.network.name != "local":
        raise SystemExit("set ISTHMUS_DEPLOYER_ALIAS to deploy outside the local network")
    return accounts.test_accounts[0]


def deploy(config: DeployConfig | None = None) -> Deployment:
    config = config or DeployConfig()
    sender = _deployer()
    start_block = chain.blocks.height + 1

    weth: ContractInstance = project.TestWETH.deploy(sender=sender)
    usdc: ContractInstance = project.TestUSDC.deploy(sender=sender)

    aggregator = project.TestAggregator.deploy(
        config.feed_decimals, config.eth_usd_answer, sender=sender
    )
    oracle = project.PriceOracle.deploy(6, config.admin_delay, sender=sender)
    oracle.set_feed(
        weth,
        aggregator,
        config.oracle_max_staleness,
        config.oracle_max_deviation_bps,
        sender=sender,
    )

    settlement = project.Settlement.deploy(
        oracle, usdc, config.admin_delay, config.expiry_grace, sender=sender
    )
    blueprint = sender.declare(project.MarginWallet).contract_address
    factory = project.WalletFactory.deploy(blueprint, settlement, sender=sender)
    settlement.set_factory(factory, sender=sender)
    for operator in (sender.address, *config.operators):
        settlement.set_operator(operator, True, sender=sender)

    # Safe 1.4.1 on the local network only: every public network has the canonical deployments
    safe: dict[str, str | None] = {"singleton": None, "proxy_factory": None, "handler": None}
    if networks.provider.network.name == "local":
        for key, name in (
            ("singleton", "Safe"),
            ("proxy_factory", "SafeProxyFactory"),
            ("handler", "CompatibilityFallbackHandler"),
        ):
            safe[key] = _container(safe_artifact(name)).deploy(sender=sender).address

    uni_factory = _container(uniswap_v2_core("UniswapV2Factory")).deploy(sender, sender=sender)
    router_address = None
    if config.deploy_router:
        router = _container(uniswap_v2_periphery("UniswapV2Router02")).deploy(
            uni_factory, weth, sender=sender
        )
        router_address = router.address
    uni_factory.createPair(weth, usdc, sender=sender)
    pair_address = uni_factory.getPair(weth, usdc)
    pair = _container(uniswap_v2_core("UniswapV2Pair")).at(pair_address)
    weth.mint(pair_address, config.pool_weth, sender=sender)
    usdc.mint(pair_address, config.pool_usdc, sender=sender)
    pair.mint(sender, sender=sender)

    settlement.register_spot(weth, usdc, sender=sender)
    settlement.register_pool(pair_address, sender=sender)
    settlement.set_collateral(weth, config.weth_haircut_bps, sender=sender)
    if config.wallet_seed_units:
        # the factory's seed reserve: each new wallet receives 1 unit of WETH and of USDC
        weth.mint(factory, config.wallet_seed_units, sender=sender)
        usdc.mint(factory, config.wallet_seed_units, sender=sender)
        factory.set_seed_tokens([weth, usdc], sender=sender)

    return Deployment(
        chain_id=chain.chain_id,
        deployer=sender.address,
        block_number=start_block,
        weth=weth.address,
        usdc=usdc.address,
        eth_usd_aggregator=aggregator.address,
        oracle=oracle.address,
        settlement=settlement.address,
        wallet_blueprint=blueprint,
        wallet_factory=factory.address,
        uniswap_factory=uni_factory.address,
        uniswap_router=router_address,
        weth_usdc_pair=pair_address,
        spot_weth_usdc=spot_instrument_id(weth.address, usdc.address),
        safe_singleton=safe["singleton"],
        safe_proxy_factory=safe["proxy_factory"],
        safe_fallback_handler=safe["handler"],
    )


def main() -> None:
    deployment = deploy()
    reserves = _container(uniswap_v2_core("UniswapV2Pair")).at(deployment.weth_usdc_pair)
    print(deployment.to_json())
    r0, r1, _ = reserves.getReserves()
    print(f"# WETH/USDC pair reserves: {r0} / {r1}")
    out = os.environ.get("ISTHMUS_DEPLOYMENT_OUT")
    if out:
        deployment.save(Path(out))
