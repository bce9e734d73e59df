# pragma version ~=0.4.3
"""
@title MarginWallet core: the owner and the packed configuration slot
@notice What every part of the wallet reads: who owns it, which Settlement may apply legs,
        and the owner's switches, packed into one slot so that an apply pays one cold read.
"""

OWNER: immutable(address)
OWNER_IS_CONTRACT: immutable(bool)
FACTORY: immutable(address)

# _config packs everything an apply needs into one slot (one cold SLOAD per wallet):
#   bits   0..159  settlement
#   bit       160  paused
#   bit       161  restrict_instruments
#   bit       162  has a max notional (value in `_max_notional`)
#   bit       163  some digest has a partial fill or a cancel flag (fills._filled)
#   bits 164..171  number of open option positions
#   bit       172  min_nonce > 0 (value in `min_nonce_value`, read only then)
#   bits 173..191  nonce window w (nonces 64w .. 64w + 63 are tracked in this slot)
#   bits 192..255  the window's bitmap: bit i set once nonce 64w + i filled in one go
# An order's nonce bit thus lives in the slot every apply already reads: a one-go fill
# pays one warm write (~2,900) instead of a second cold slot (5,000; 22,100 when fresh).
ADDRESS_MASK: constant(uint256) = (1 << 160) - 1
PAUSED_BIT: constant(uint256) = 1 << 160
RESTRICT_BIT: constant(uint256) = 1 << 161
LIMIT_BIT: constant(uint256) = 1 << 162
DIGEST_STATE_BIT: constant(uint256) = 1 << 163
OPEN_SHIFT: constant(uint256) = 164
OPEN_MASK: constant(uint256) = 255 << OPEN_SHIFT
MIN_NONCE_BIT: constant(uint256) = 1 << 172
WINDOW_SHIFT: constant(uint256) = 173
WINDOW_LIMIT: constant(uint256) = 1 << 19  # windows 0 .. 2**19 - 1: nonces below 2**25
BITS_SHIFT: constant(uint256) = 192
LOW_MASK: constant(uint256) = (1 << WINDOW_SHIFT) - 1  # everything below the window

config: uint256
max_notional_value: uint256
min_nonce_value: uint256


@deploy
def __init__(owner_: address, settlement_: address):
    assert owner_ != empty(address), "wallet: zero owner"
    OWNER = owner_
    OWNER_IS_CONTRACT = owner_.is_contract
    FACTORY = msg.sender
    self.config = convert(settlement_, uint256)


@internal
@view
def _owner() -> address:
    return OWNER


@internal
@view
def _owner_is_contract() -> bool:
    return OWNER_IS_CONTRACT


@internal
@view
def _factory() -> address:
    return FACTORY


@internal
@view
def _only_owner():
    assert msg.sender == OWNER, "wallet: not owner"


@internal
@pure
def _settlement_of(config: uint256) -> address:
    return convert(config & ADDRESS_MASK, address)


@internal
@pure
def _open_count(config: uint256) -> uint256:
    return (config & OPEN_MASK) >> OPEN_SHIFT


@internal
@view
def _min_nonce(config: uint256) -> uint256:
    if config & MIN_NONCE_BIT == 0:
        return 0
    return self.min_nonce_value
