"""The chain fixtures of tests/chain: one anvil per session, a snapshot per test."""

from tests.chain.conftest import anvil_node, deployer, fresh_chain, w3

__all__ = ["anvil_node", "deployer", "fresh_chain", "w3"]
