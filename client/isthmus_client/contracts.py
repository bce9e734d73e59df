"""The contracts as this client sees them: ABIs shipped with the package (no compiler needed;
the gateway's tests check them against the compiled contracts) and web3 handles on them."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from web3 import Web3

ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": name,
        "stateMutability": mutability,
        "inputs": [{"name": n, "type": t} for n, t in inputs],
        "outputs": [{"name": "", "type": output}],
    }
    for name, mutability, inputs, output in (
        ("balanceOf", "view", (("owner", "address"),), "uint256"),
        ("allowance", "view", (("owner", "address"), ("spender", "address")), "uint256"),
        ("decimals", "view", (), "uint8"),
        ("symbol", "view", (), "string"),
        ("transfer", "nonpayable", (("to", "address"), ("amount", "uint256")), "bool"),
        ("approve", "nonpayable", (("spender", "address"), ("amount", "uint256")), "bool"),
    )
]


@cache
def abi(name: str) -> list[dict[str, Any]]:
    """The ABI of `MarginWallet`, `WalletFactory`, `Settlement` or `PriceOracle`."""
    text = resources.files("isthmus_client").joinpath("abi", f"{name}.json").read_text()
    loaded: list[dict[str, Any]] = json.loads(text)
    return loaded


@cache
def web3_for(rpc_url: str, timeout: float = 30.0) -> Web3:
    """One `Web3` per RPC URL for the process."""
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


def contract(w3: Web3, name: str, address: str) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi(name))


def margin_wallet(w3: Web3, address: str) -> Any:
    return contract(w3, "MarginWallet", address)


def settlement(w3: Web3, address: str) -> Any:
    return contract(w3, "Settlement", address)


def wallet_factory(w3: Web3, address: str) -> Any:
    return contract(w3, "WalletFactory", address)


def erc20(w3: Web3, address: str) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=ERC20_ABI)
