# pragma version ~=0.4.3
"""
@title WalletFactory
@notice Deploys MarginWallets from an ERC-5202 blueprint, one per owner, and registers each
        with the Settlement contract (which only trades registered wallets).
        Gas: the factory may hold a small reserve of a list of tokens its owner sets; each new
        wallet receives 1 base unit of each listed token the reserve still has. The wallet's
        balance slot of that token is then non-zero, so its first trade in the token writes
        a dirty slot (2,900 gas) instead of a fresh one (20,000): the cost moves to wallet
        creation. The unit is the wallet owner's like any other balance (withdrawable,
        counted in margin). An empty reserve, or a token whose transfer fails, is skipped:
        it never makes wallet creation revert.
"""

from ethereum.ercs import IERC20

interface ISettlementRegistry:
    def register_wallet(wallet: address): nonpayable


MAX_SEED_TOKENS: constant(uint256) = 8
# gas each seeding transfer receives (a transfer to a fresh recipient costs ~30,000-50,000,
# proxied tokens included); creation needs at least this much left before each, so a seed
# never fails for want of the caller's gas (eth_estimateGas cannot find a limit that skips it)
SEED_GAS: constant(uint256) = 100_000

BLUEPRINT: public(immutable(address))
SETTLEMENT: public(immutable(address))
OWNER: public(immutable(address))

wallet_of: public(HashMap[address, address])
is_wallet: public(HashMap[address, bool])
wallet_count: public(uint256)
seed_tokens: public(DynArray[address, MAX_SEED_TOKENS])

event WalletCreated:
    owner: indexed(address)
    wallet: indexed(address)
    settlement: address

event SeedTokensSet:
    tokens: DynArray[address, MAX_SEED_TOKENS]


@deploy
def __init__(blueprint: address, settlement: address):
    """
    @notice Creates the factory; the deployer is its owner (who may only set the seed tokens).
    @param blueprint The MarginWallet blueprint (ERC-5202).
    @param settlement The Settlement contract new wallets trade through.
    """
    BLUEPRINT = blueprint
    SETTLEMENT = settlement
    OWNER = msg.sender


@external
def set_seed_tokens(tokens: DynArray[address, MAX_SEED_TOKENS]):
    """
    @notice Sets the tokens of which each new wallet receives 1 base unit from the factory's
            own balance (a gas measure: see the contract notice). Fund the factory by
            transferring tokens to it; a token it holds none of is skipped. Owner only.
    @param tokens The tokens (at most 8); an empty list stops seeding.
    """
    assert msg.sender == OWNER, "factory: not owner"
    self.seed_tokens = tokens
    log SeedTokensSet(tokens=tokens)


@internal
def _seed(wallet: address):
    for token: address in self.seed_tokens:
        assert msg.gas > SEED_GAS + SEED_GAS // 63 + 5_000, "factory: gas for seeding"
        # outcome ignored: an empty reserve or a failing token skips the unit
        success: bool = False
        response: Bytes[32] = b""
        success, response = raw_call(
            token,
            abi_encode(wallet, convert(1, uint256), method_id=method_id("transfer(address,uint256)")),
            max_outsize=32,
            gas=SEED_GAS,
            revert_on_failure=False,
        )


@internal
def _create(owner: address) -> address:
    assert owner != empty(address), "factory: zero owner"
    assert self.wallet_of[owner] == empty(address), "factory: owner has a wallet"
    wallet: address = create_from_blueprint(BLUEPRINT, owner, SETTLEMENT, salt=convert(owner, bytes32))
    self.wallet_of[owner] = wallet
    self.is_wallet[wallet] = True
    self.wallet_count += 1
    extcall ISettlementRegistry(SETTLEMENT).register_wallet(wallet)
    self._seed(wallet)
    log WalletCreated(owner=owner, wallet=wallet, settlement=SETTLEMENT)
    return wallet


@external
def create_wallet() -> address:
    """
    @notice Deploys the caller's wallet (seeded with 1 unit of each seed token in reserve).
    @return address The new wallet.
    """
    return self._create(msg.sender)


@external
def create_wallet_for(owner: address) -> address:
    """
    @notice Deploys `owner`'s wallet (anyone may pay for it; only `owner` controls it),
            seeded with 1 unit of each seed token in reserve.
    @param owner The owner of the new wallet.
    @return address The new wallet.
    """
    return self._create(owner)
