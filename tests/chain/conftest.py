"""Fixtures for anvil-backed chain tests (``@pytest.mark.chain``).

One anvil per test session; tests that need a pristine chain take an ``evm_snapshot`` through
the ``fresh_chain`` fixture and are reverted afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import Web3

from gateway.chain.anvil import Anvil, AnvilConfig, find_anvil_binary
from gateway.chain.transactions import Sender, connect


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[Anvil]:
    find_anvil_binary()  # a missing anvil is a broken set-up: fail, never skip
    node = Anvil(AnvilConfig())
    with node:
        yield node


@pytest.fixture(scope="session")
def w3(anvil_node: Anvil) -> Web3:
    return connect(anvil_node.rpc_url)


@pytest.fixture(scope="session")
def deployer(w3: Web3, anvil_node: Anvil) -> Sender:
    return Sender(w3, anvil_node.dev_accounts()[0])


@pytest.fixture
def fresh_chain(w3: Web3, deployer: Sender) -> Iterator[Web3]:
    """Revert every state change the test makes."""
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield w3
    finally:
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
        deployer.reset_nonce()


from tests.chain.option_world import world  # noqa: E402,F401  (a fixture for this folder)
