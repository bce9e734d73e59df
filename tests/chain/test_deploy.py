"""The full deploy on a fresh anvil: every address has code, the pool holds the seed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from web3 import Web3

from gateway.chain import tokens, uniswap
from gateway.chain.anvil import Anvil
from gateway.chain.deploy import (
    DeployConfig,
    Deployment,
    create_wallet,
    deploy_all,
    factory_contract,
    oracle_contract,
    register_option,
    settlement_contract,
    wallet_contract,
)
from gateway.chain.paths import project_root
from gateway.chain.safe import safe_contract
from gateway.chain.transactions import Sender, connect

pytestmark = pytest.mark.chain


def test_deploy_on_fresh_anvil() -> None:
    config = DeployConfig()
    with Anvil() as node:
        w3 = connect(node.rpc_url)
        deployment = deploy_all(Sender(w3, node.dev_accounts()[0]), config)

        for name, value in deployment.to_dict().items():
            if isinstance(value, str) and len(value) == 42 and name != "deployer":
                assert w3.eth.get_code(Web3.to_checksum_address(value)), f"{name} has no code"
        # ERC-5202 blueprint preamble: 0xFE71 00
        assert bytes(w3.eth.get_code(deployment.wallet_blueprint))[:3] == b"\xfe\x71\x00"

        settlement = settlement_contract(w3, deployment)
        assert settlement.functions.factory().call() == deployment.wallet_factory
        assert settlement.functions.is_operator(deployment.deployer).call()
        assert settlement.functions.registered(deployment.spot_weth_usdc).call()
        assert settlement.functions.pool_registered(deployment.weth_usdc_pair).call()
        assert settlement.functions.option_quote().call() == deployment.usdc
        assert (
            settlement.functions.instrument_id(
                0, deployment.weth, deployment.usdc, 0, 0, False
            ).call()
            == deployment.spot_weth_usdc
        )
        factory = factory_contract(w3, deployment)
        assert factory.functions.BLUEPRINT().call() == deployment.wallet_blueprint
        assert factory.functions.SETTLEMENT().call() == deployment.settlement
        # 3,000 USD with 8 feed decimals -> 3,000 USDC (6 decimals) per whole WETH
        oracle = oracle_contract(w3, deployment)
        assert oracle.functions.price(deployment.weth).call() == 3_000 * 10**6

        reserves = uniswap.get_reserves(w3, deployment.weth_usdc_pair)
        assert reserves.of(deployment.weth) == config.pool_weth
        assert reserves.of(deployment.usdc) == config.pool_usdc
        assert {reserves.token0, reserves.token1} == {deployment.weth, deployment.usdc}
        uni_factory = uniswap.factory_contract(w3, deployment.uniswap_factory)
        assert (
            uni_factory.functions.getPair(deployment.weth, deployment.usdc).call()
            == deployment.weth_usdc_pair
        )
        assert tokens.balance_of(w3, deployment.usdc, deployment.weth_usdc_pair) == config.pool_usdc

        # admin changes wait out the configured delay; expiry fallbacks the configured grace
        assert settlement.functions.DELAY().call() == config.admin_delay == 300
        assert settlement.functions.EXPIRY_GRACE().call() == config.expiry_grace == 3600
        assert oracle.functions.DELAY().call() == config.admin_delay
        # Safe 1.4.1, so that a Safe can own a wallet on the devnet
        assert deployment.safe is not None
        assert safe_contract(w3, deployment.safe.singleton).functions.VERSION().call() == "1.4.1"

        assert Deployment.from_json(deployment.to_json()) == deployment
        # a file written before the Safe fields existed still loads (without them)
        older = {k: v for k, v in deployment.to_dict().items() if not k.startswith("safe_")}
        assert Deployment.from_dict(older).safe is None
        assert Deployment.from_dict(older).settlement == deployment.settlement


def test_pool_swaps_at_the_seeded_price() -> None:
    """A real swap through the published pair pays out getAmountOut exactly."""
    with Anvil() as node:
        w3 = connect(node.rpc_url)
        sender = Sender(w3, node.dev_accounts()[0])
        d = deploy_all(sender)
        trader = Web3.to_checksum_address(node.dev_accounts()[1].address)
        r = uniswap.get_reserves(w3, d.weth_usdc_pair)
        usdc_in = 3_000 * 10**6
        expected = uniswap.amount_out(usdc_in, r.of(d.usdc), r.of(d.weth))
        tokens.mint(sender, d.usdc, d.weth_usdc_pair, usdc_in)
        pair = uniswap.pair_contract(w3, d.weth_usdc_pair)
        out0, out1 = (expected, 0) if r.token0 == d.weth else (0, expected)
        sender.transact(pair.functions.swap(out0, out1, trader, b""))
        assert tokens.balance_of(w3, d.weth, trader) == expected
        assert 99 * 10**16 < expected < 10**18


def test_wallets_and_options_after_deploy(w3: Web3, deployer: Sender, fresh_chain: Web3) -> None:
    deployment = deploy_all(deployer)
    owner = "0x" + "42" * 20
    wallet = create_wallet(deployer, deployment, owner)
    assert create_wallet(deployer, deployment, owner) == wallet  # idempotent
    contract = wallet_contract(w3, wallet)
    assert contract.functions.owner().call() == Web3.to_checksum_address(owner)
    assert contract.functions.settlement().call() == deployment.settlement
    assert settlement_contract(w3, deployment).functions.is_wallet(wallet).call()

    expiry = int(w3.eth.get_block("latest")["timestamp"]) + 30 * 86400
    call_id = register_option(deployer, deployment, 3_200 * 10**6, expiry, True)
    assert settlement_contract(w3, deployment).functions.registered(call_id).call()


@pytest.mark.slow
def test_ape_script_deploys_the_same_world(tmp_path: Path) -> None:
    """``ape run deploy`` (ape + ape-foundry, on a fresh anvil) yields the same addresses as
    the web3.py deploy from the same first dev account on a fresh chain."""
    root = project_root()
    ape = root / ".venv" / "bin" / "ape"
    assert ape.exists(), "ape is a pinned dependency: make setup installs it"
    out = tmp_path / "deployment.json"
    native = [str(d) for d in sorted(root.glob("node_modules/@foundry-rs/anvil-*/bin"))]
    bins = [str(root / ".venv" / "bin"), *native, str(root / "node_modules" / ".bin")]
    # ape-foundry connects to the anvil started here (APE_FOUNDRY_HOST) instead of starting
    # its own: it gives its own process a fixed 20 s to answer, which a loaded CI machine
    # missed even with the native binary first on PATH
    with Anvil() as ape_node:
        env = {
            **os.environ,
            "PATH": ":".join([*bins, os.environ["PATH"]]),
            "ISTHMUS_DEPLOYMENT_OUT": str(out),
            "APE_FOUNDRY_HOST": ape_node.rpc_url,
        }
        done = subprocess.run(
            [str(ape), "run", "deploy"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    via_ape = Deployment.load(out)

    with Anvil() as node:
        via_web3 = deploy_all(Sender(connect(node.rpc_url), node.dev_accounts()[0]))
    assert via_ape == via_web3
