"""The anvil fixtures of tests/chain, for the test that screens a wallet's on-chain owner."""

from __future__ import annotations

from tests.chain.conftest import anvil_node, deployer, fresh_chain, w3  # noqa: F401
from tests.chain.option_world import world  # noqa: F401
