"""Devnet ERC-20s (``contracts/test/TestWETH.vy``, ``TestUSDC.vy``): deploy, mint, balances.

Both are snekmate ERC-20s whose deployer is owner and minter; ``mint`` must be sent by a minter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from web3 import Web3
from web3.contract import Contract

from gateway.chain.artifacts import ContractArtifact, compile_contract
from gateway.chain.transactions import Sender, bind


@dataclass(frozen=True, slots=True)
class TokenSpec:
    contract: str  # contract name under contracts/
    symbol: str
    decimals: int


WETH: Final = TokenSpec("TestWETH", "WETH", 18)
USDC: Final = TokenSpec("TestUSDC", "USDC", 6)


def token_artifact(spec: TokenSpec = USDC) -> ContractArtifact:
    return compile_contract(spec.contract)


def deploy_token(sender: Sender, spec: TokenSpec) -> Contract:
    """Deploy a test token; the sender becomes its owner and minter."""
    return sender.deploy(token_artifact(spec))


def token(w3: Web3, address: str) -> Contract:
    """Any ERC-20 at ``address`` (the test tokens' ABI is a superset of ERC-20's)."""
    return bind(w3, token_artifact(USDC), address)


def mint(minter: Sender, token_address: str, to: str, amount: int) -> None:
    contract = token(minter.w3, token_address)
    minter.transact(contract.functions.mint(Web3.to_checksum_address(to), amount))


def balance_of(w3: Web3, token_address: str, owner: str) -> int:
    contract = token(w3, token_address)
    value: int = contract.functions.balanceOf(Web3.to_checksum_address(owner)).call()
    return value
