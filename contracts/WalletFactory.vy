# pragma version ~=0.4.3
"""
@title WalletFactory
@notice Deploys MarginWallets from an ERC-5202 blueprint, one per owner, and registers each
        with the Settlement contract (which only trades registered wallets).
"""

interface ISettlementRegistry:
    def register_wallet(wallet: address): nonpayable


BLUEPRINT: public(immutable(address))
SETTLEMENT: public(immutable(address))

wallet_of: public(HashMap[address, address])
is_wallet: public(HashMap[address, bool])
wallet_count: public(uint256)

event WalletCreated:
    owner: indexed(address)
    wallet: indexed(address)
    settlement: address


@deploy
def __init__(blueprint: address, settlement: address):
    """
    @notice Creates the factory.
    @param blueprint The MarginWallet blueprint (ERC-5202).
    @param settlement The Settlement contract new wallets trade through.
    """
    BLUEPRINT = blueprint
    SETTLEMENT = settlement


@internal
def _create(owner: address) -> address:
    assert owner != empty(address), "factory: zero owner"
    assert self.wallet_of[owner] == empty(address), "factory: owner has a wallet"
    wallet: address = create_from_blueprint(BLUEPRINT, owner, SETTLEMENT, salt=convert(owner, bytes32))
    self.wallet_of[owner] = wallet
    self.is_wallet[wallet] = True
    self.wallet_count += 1
    extcall ISettlementRegistry(SETTLEMENT).register_wallet(wallet)
    log WalletCreated(owner=owner, wallet=wallet, settlement=SETTLEMENT)
    return wallet


@external
def create_wallet() -> address:
    """
    @notice Deploys the caller's wallet.
    @return address The new wallet.
    """
    return self._create(msg.sender)


@external
def create_wallet_for(owner: address) -> address:
    """
    @notice Deploys `owner`'s wallet (anyone may pay for it; only `owner` controls it).
    @param owner The owner of the new wallet.
    @return address The new wallet.
    """
    return self._create(owner)
