"""`ChainWallets` reads a wallet's margin inputs again only when the chain's head moved.

The risk monitor asks for every wallet's state each second: on a quiet chain that is one block
query, not every input again. A new block (a deposit) is read at once, each token's decimals
are read once, and a chain reverted to a snapshot and mined back to the same height is read
again (the head's hash decides, not its number).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from web3 import HTTPProvider, Web3

from gateway.chain import tokens
from gateway.chain.deploy import create_wallet, deploy_all
from gateway.chain.transactions import Sender
from gateway.chain.wallets import ChainWallets

pytestmark = pytest.mark.chain
DECIMALS = "0x313ce567"  # decimals()


class CountingProvider(HTTPProvider):
    """The node as the gateway reaches it, with every request it was sent."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.sent: list[tuple[str, Any]] = []

    def make_request(self, method: Any, params: Any) -> Any:
        self.sent.append((str(method), params))
        return super().make_request(method, params)

    def calls_to(self, selector: str) -> int:
        return sum(
            1
            for method, params in self.sent
            if method == "eth_call" and str(params[0].get("data", "")).startswith(selector)
        )


def test_a_wallet_is_read_again_only_when_the_head_moves(
    fresh_chain: Web3, deployer: Sender
) -> None:
    w3 = fresh_chain
    deployment = deploy_all(deployer)
    owner = list(w3.eth.accounts)[3]
    wallet = create_wallet(deployer, deployment, owner)
    endpoint = getattr(w3.provider, "endpoint_uri", None)
    assert isinstance(endpoint, str)
    provider = CountingProvider(endpoint)
    wallets = ChainWallets(Web3(provider), deployment.settlement, fresh_for_seconds=0)

    def usdc_of(state: Any) -> int:
        return int(state.balance(Web3.to_checksum_address(deployment.usdc)))

    async def scenario() -> None:
        first = await wallets.state(wallet)
        assert first is not None
        assert provider.calls_to(DECIMALS) >= 1  # the first read learns the decimals

        # a quiet chain: the same state, for one block query
        provider.sent.clear()
        again = await wallets.state(wallet)
        assert again is first
        assert [method for method, _ in provider.sent] == ["eth_getBlockByNumber"]

        # a deposit is a new block: read at once, with the decimals already known
        snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
        tokens.mint(deployer, deployment.usdc, wallet, 700 * 10**6)
        provider.sent.clear()
        deposited = await wallets.state(wallet)
        assert deposited is not None and usdc_of(deposited) == usdc_of(first) + 700 * 10**6
        assert provider.calls_to(DECIMALS) == 0
        height = w3.eth.block_number

        # the chain reverted and mined back to the same height with another deposit: the
        # number is the same, the block is not
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
        deployer.reset_nonce()
        tokens.mint(deployer, deployment.usdc, wallet, 300 * 10**6)
        assert w3.eth.block_number == height
        other = await wallets.state(wallet)
        assert other is not None and usdc_of(other) == usdc_of(first) + 300 * 10**6

    asyncio.run(scenario())
