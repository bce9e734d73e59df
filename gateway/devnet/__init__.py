"""The embedded default world: anvil, deployed contracts, simulated exchanges."""
