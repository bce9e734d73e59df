"""GET /v1/chain's content, read from a deployed Settlement: what clients sign for, and the
RPC URL and block explorer the operator publishes (never the gateway's own RPC URL)."""

from __future__ import annotations

import asyncio

import pytest
from isthmus_client.models import ChainInfo
from pydantic import ValidationError
from web3 import Web3

from gateway.chain.deploy import deploy_all
from gateway.chain.directory import ChainDirectory
from gateway.chain.transactions import Sender
from gateway.venues.config import ChainConfig

pytestmark = pytest.mark.chain


def test_the_directory_publishes_the_explorer_the_operator_configured(
    fresh_chain: Web3, deployer: Sender
) -> None:
    d = deploy_all(deployer)
    config = ChainConfig(
        rpc_url="http://node.internal:8545/secret-key",
        settlement=d.settlement,
        tokens={"USDC": d.usdc, "WETH": d.weth},
        public_rpc_url="https://rpc.example",
        explorer_url="https://explorer.example/mainnet",
    )
    directory = ChainDirectory(
        fresh_chain,
        d.settlement,
        dict(config.tokens),
        config.public_rpc_url,
        config.explorer_url,
    )
    described = asyncio.run(directory.describe())
    assert described["explorer_url"] == "https://explorer.example/mainnet"
    assert described["rpc_url"] == "https://rpc.example"
    assert "secret-key" not in str(described)
    assert described["tokens"]["USDC"]["decimals"] == 6
    info = ChainInfo.from_json(described)
    assert info.transaction_url("0xabc") == "https://explorer.example/mainnet/tx/0xabc"
    assert ChainInfo.from_json({**described, "explorer_url": None}).transaction_url("0x1") is None


@pytest.mark.parametrize(
    "url", ["explorer.example", "https://explorer.example/", "https://a b", "javascript:alert(1)"]
)
def test_an_explorer_url_that_would_not_make_a_link_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        ChainConfig(rpc_url="http://127.0.0.1:8545", explorer_url=url)
