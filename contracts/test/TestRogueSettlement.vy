# pragma version ~=0.4.3
"""
@title TestRogueSettlement
@notice A buggy or hostile settlement contract: it drives a wallet's apply / finish calls
        without paying what the wallet is owed. Used to show the wallet protects itself.
        Tests only.
"""

from ..lib import orders

interface IWallet:
    def apply_order(f: orders.OrderFill, ins: orders.Instrument, last: bool, pay_to: address) -> (bytes32, bool): nonpayable
    def finish(): nonpayable


@external
def apply_then_finish(wallet: address, f: orders.OrderFill, ins: orders.Instrument):
    """
    @notice Applies one fill (the wallet pays its outflow here) and finishes without paying.
    @param wallet The wallet.
    @param f The signed fill.
    @param ins The instrument preimage.
    """
    extcall IWallet(wallet).apply_order(f, ins, True, empty(address))
    extcall IWallet(wallet).finish()


@external
def apply_twice(wallet: address, f: orders.OrderFill, ins: orders.Instrument):
    """
    @notice Applies a fill after the wallet already collected.
    @param wallet The wallet.
    @param f The signed fill.
    @param ins The instrument preimage.
    """
    extcall IWallet(wallet).apply_order(f, ins, True, empty(address))
    extcall IWallet(wallet).apply_order(f, ins, True, empty(address))
