# pragma version ~=0.4.3
"""
@title MarginWallet fill accounting
@notice How much of each signed order or strategy has filled, and what the owner cancelled.
        An order filled completely in one go sets one bit: in the config slot while its nonce
        is in the wallet's current window of 64 (nonces below 2**25 used roughly in order),
        else in `_nonce_bitmap[nonce >> 8]` (256 orders per slot); one filled in parts records
        its cumulative fill by digest. Nonces are single-use per wallet.
"""

from . import core
from . import keys

uses: core
uses: keys

CANCELLED: constant(uint256) = 1 << 255  # flag bit in `_filled`
FILL_MASK: constant(uint256) = CANCELLED - 1

# digest -> cumulative fill of an order filled in parts, with CANCELLED as flag bit.
_filled: HashMap[bytes32, uint256]
# nonce >> 8 -> bitmap: bit (nonce & 255) is set once an order with that nonce filled
# completely in one go (no `_filled` write for it), for nonces outside the config slot's
# window; a window's bits move here when a later window replaces it.
_nonce_bitmap: HashMap[uint256, uint256]


event Cancelled:
    digest: indexed(bytes32)
    by: indexed(address)

event CancelledBelow:
    nonce: uint256


@external
@view
def filled(digest: bytes32) -> uint256:
    """
    @notice Cumulative fill recorded for a digest that was filled in parts. An order filled
            completely in one go is recorded in the nonce bitmap instead (see `nonce_used`).
    @param digest The order or strategy digest.
    @return uint256 The recorded partial fill.
    """
    return self._filled[digest] & FILL_MASK


@external
@view
def is_cancelled(digest: bytes32) -> bool:
    """
    @notice Whether this digest was cancelled.
    @param digest The order or strategy digest.
    @return bool True when cancelled.
    """
    return self._filled[digest] & CANCELLED != 0


@external
@view
def nonce_used(nonce: uint256) -> bool:
    """
    @notice Whether an order with this nonce filled completely in one go.
    @param nonce The nonce.
    @return bool True when used.
    """
    return self._nonce_is_used(core.config, nonce)


@external
@view
def min_nonce() -> uint256:
    """
    @notice Every order or strategy with a nonce below this is cancelled.
    @return uint256 The minimum nonce.
    """
    return core._min_nonce(core.config)


@external
def cancel(digest: bytes32):
    """
    @notice Cancels one order or strategy by digest (what was filled stays filled). The
            owner or an active trading key: a cancel can only stop trading, never move value,
            so a market maker's hot key may pull its quotes.
    @param digest The EIP-712 digest.
    """
    if msg.sender != core._owner():
        assert keys._is_active_key(msg.sender), "wallet: not owner or key"
    self._filled[digest] = self._filled[digest] | CANCELLED
    core.config = core.config | core.DIGEST_STATE_BIT
    log Cancelled(digest=digest, by=msg.sender)


@external
def cancel_below(nonce: uint256):
    """
    @notice Cancels every order and strategy whose nonce is below `nonce`. Owner only.
    @param nonce The new minimum nonce; must not decrease.
    """
    core._only_owner()
    config: uint256 = core.config
    assert nonce >= core._min_nonce(config), "wallet: nonce decreases"
    core.min_nonce_value = nonce
    core.config = config | core.MIN_NONCE_BIT
    log CancelledBelow(nonce=nonce)


@internal
@view
def _nonce_is_used(config: uint256, nonce: uint256) -> bool:
    window: uint256 = nonce >> 6
    if window == (config >> core.WINDOW_SHIFT) & (core.WINDOW_LIMIT - 1):
        return config & (1 << (core.BITS_SHIFT + (nonce & 63))) != 0
    return self._nonce_bitmap[nonce >> 8] & (1 << (nonce & 255)) != 0


@internal
@view
def _remaining(digest: bytes32, nonce: uint256, amount: uint256, deadline: uint64) -> uint256:
    if block.timestamp > convert(deadline, uint256) or nonce < core._min_nonce(core.config):
        return 0
    if self._nonce_is_used(core.config, nonce):
        return 0
    f: uint256 = self._filled[digest]
    if f & CANCELLED != 0 or f >= amount:
        return 0
    return amount - f


@internal
def _consume(config: uint256, digest: bytes32, nonce: uint256, amount: uint256, deadline: uint64, fill: uint256):
    assert block.timestamp <= convert(deadline, uint256), "wallet: expired"
    assert nonce >= core._min_nonce(config), "wallet: nonce cancelled"
    assert fill > 0, "wallet: zero fill"
    assert not self._nonce_is_used(config, nonce), "wallet: nonce used"
    prev: uint256 = 0
    if config & core.DIGEST_STATE_BIT != 0:
        # only wallets that ever filled in parts or cancelled a digest pay this read
        prev = self._filled[digest]
        assert prev & CANCELLED == 0, "wallet: cancelled"
    total: uint256 = prev + fill
    assert total <= amount, "wallet: overfill"
    if prev == 0 and fill == amount:
        # filled completely in one go: one bit instead of a fresh 32-byte slot
        self._use_nonce(config, nonce)
    else:
        self._filled[digest] = total
        if config & core.DIGEST_STATE_BIT == 0:
            core.config = core.config | core.DIGEST_STATE_BIT
    # the fill is logged by Settlement's Fill event (wallet, digest, amount, quote)


@internal
def _use_nonce(config: uint256, nonce: uint256):
    """
    @dev Sets the nonce's bit (checked unused). In the config slot when the nonce is in the
         current window or a later one below WINDOW_LIMIT (a later window first moves the
         current window's bits to `_nonce_bitmap`); else in `_nonce_bitmap`.
    """
    window: uint256 = nonce >> 6
    current: uint256 = (config >> core.WINDOW_SHIFT) & (core.WINDOW_LIMIT - 1)
    if window < core.WINDOW_LIMIT and window >= current:
        # re-read: an earlier leg of this apply may have changed the config (cheap, warm)
        c: uint256 = core.config
        if window > current:
            bits: uint256 = c >> core.BITS_SHIFT
            if bits != 0:
                self._nonce_bitmap[current >> 2] |= bits << ((current & 3) << 6)
            c = (c & core.LOW_MASK) | (window << core.WINDOW_SHIFT)
        core.config = c | (1 << (core.BITS_SHIFT + (nonce & 63)))
    else:
        self._nonce_bitmap[nonce >> 8] |= 1 << (nonce & 255)
