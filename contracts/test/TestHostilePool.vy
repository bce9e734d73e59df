# pragma version ~=0.4.3
"""
@title TestHostilePool
@notice Looks like a Uniswap v2 pair but keeps what it is sent and pays `pay_out` of the
        other token (possibly nothing), or tries to re-enter the settlement. Used to show a
        registered hostile pool cannot move value a wallet did not sign. Tests only.
"""

from ethereum.ercs import IERC20

interface ISettlement:
    def settle_expiry(series: bytes32, round_id: uint80): nonpayable

token0: public(address)
token1: public(address)
pay_out: public(uint256)
reenter: public(address)


@deploy
def __init__(token0_: address, token1_: address):
    """
    @notice Creates the fake pair.
    @param token0_ The first token.
    @param token1_ The second token.
    """
    self.token0 = token0_
    self.token1 = token1_


@external
def set_behaviour(pay_out_: uint256, reenter_: address):
    """
    @notice How much to pay back on a swap, and a settlement to re-enter (zero: none).
    @param pay_out_ Amount of the out token sent back.
    @param reenter_ The settlement to call back into.
    """
    self.pay_out = pay_out_
    self.reenter = reenter_


@external
def swap(amount0_out: uint256, amount1_out: uint256, to: address, data: Bytes[32]):
    """
    @notice Pays `pay_out` of whichever token was asked for, whatever it received.
    @param amount0_out Asked amount of token0.
    @param amount1_out Asked amount of token1.
    @param to Recipient.
    @param data Ignored.
    """
    if self.reenter != empty(address):
        extcall ISettlement(self.reenter).settle_expiry(empty(bytes32), 0)
    token: address = self.token0 if amount0_out > 0 else self.token1
    if self.pay_out > 0:
        extcall IERC20(token).transfer(to, self.pay_out)
