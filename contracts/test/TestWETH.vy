# pragma version ~=0.4.3
"""
@title TestWETH
@notice Test token for the devnet and the contract tests: snekmate's ERC-20 with
        18 decimals. The deployer is owner and minter and may add minters.
@dev Never deploy on a real network.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

exports: erc20.__interface__


@deploy
def __init__():
    """
    @notice Deploys the token with the deployer as owner and minter.
    """
    ownable.__init__()
    erc20.__init__("Test Wrapped Ether", "WETH", 18, "Test Wrapped Ether", "1")
