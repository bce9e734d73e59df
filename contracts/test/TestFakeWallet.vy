# pragma version ~=0.4.3
"""
@title TestFakeWallet
@notice Pretends to be a MarginWallet: accepts any leg without a signature and pays nothing.
        Used to show a batch with it cannot take value from genuine wallets. Tests only.
"""

from ..lib import orders

applied: public(uint256)

event Applied:
    count: uint256


@external
def apply_order(f: orders.OrderFill, ins: orders.Instrument, last: bool, pay_to: address) -> (bytes32, bool):
    """
    @notice Accepts the leg, pays nothing.
    @param f The fill.
    @param ins The instrument.
    @param last Ignored.
    @param pay_to Ignored (it pays nobody).
    @return bytes32 A made-up digest.
    @return bool Never asks for finish.
    """
    self.applied += 1
    log Applied(count=self.applied)
    return keccak256(abi_encode(f.order.nonce)), False


@external
def finish():
    """
    @notice Does nothing.
    """
    pass
