"""The devnet's faucet: gas money and test tokens for a key of your own, so that a new trader
can try everything from a fresh key (create a wallet, deposit, trade, withdraw). Devnet only:
it mints with the deployer's key (anvil's first dev account) and sets balances with anvil's
own `anvil_setBalance`."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import dev_accounts
from gateway.chain.deploy import Deployment
from gateway.chain.transactions import Sender, connect

DEFAULT_ETH = Decimal(10)
DEFAULT_WETH = Decimal(20)
DEFAULT_USDC = Decimal(100_000)


@dataclass(frozen=True, slots=True)
class Funded:
    address: str
    eth: Decimal
    weth: Decimal
    usdc: Decimal


def fund(
    rpc_url: str,
    deployment_file: Path,
    address: str,
    *,
    eth: Decimal = DEFAULT_ETH,
    weth: Decimal = DEFAULT_WETH,
    usdc: Decimal = DEFAULT_USDC,
) -> Funded:
    """Give `address` `eth` ether (its balance becomes at least that) and mint it test tokens."""
    w3 = connect(rpc_url)
    deployment = Deployment.load(deployment_file)
    target = Web3.to_checksum_address(address)
    wei = int(eth.scaleb(18))
    if w3.eth.get_balance(target) < wei:
        w3.provider.make_request("anvil_setBalance", [target, hex(wei)])  # type: ignore[arg-type]
    minter = Sender(w3, dev_accounts()[0])  # the deployer: owner and minter of the test tokens
    tokens.mint(minter, deployment.weth, target, int(weth.scaleb(18)))
    tokens.mint(minter, deployment.usdc, target, int(usdc.scaleb(6)))
    return Funded(target, eth, weth, usdc)
