# pragma version ~=0.4.3
"""
@title MarginWallet
@notice One trader's wallet. It holds the owner's collateral (real ERC-20 balances) and option
        positions, and it enforces, for every leg that its allowed Settlement contract asks it to
        apply: the owner's EIP-712 signature (EOA with low-s, or EIP-1271 for a contract owner),
        the deadline, the remaining fill of the order (partial fills tracked), the limit price,
        cancellations and the owner's own limits. After each batch it verifies that every token
        it was owed arrived and that it still meets the margin rule (contracts/README.md).
@dev Deployed by WalletFactory from a blueprint, one per owner. The EIP-712 domain is
     ("Isthmus", "1", chain id, this wallet), so a signature is valid for one wallet on one
     chain only.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator as eip712
from snekmate.utils import signature_checker

from .lib import orders
from .lib import margin

initializes: eip712

exports: eip712.eip712Domain


interface IMarginView:
    def margin_status() -> (uint256, uint256, bool): view

interface ISettlementCollateral:
    def collateral_tokens() -> DynArray[address, MAX_COLLATERAL]: view
    def collateral_value(token: address, amount: uint256) -> uint256: view


MAX_OPEN: constant(uint256) = 16  # open option positions per wallet
MAX_TOKENS: constant(uint256) = 8  # tokens one wallet may touch in one batch
MAX_COLLATERAL: constant(uint256) = 8
CANCELLED: constant(uint256) = 1 << 255  # flag bit in `_filled`
FILL_MASK: constant(uint256) = CANCELLED - 1

# _config packs everything an apply needs into one slot (one cold SLOAD per wallet):
#   bits   0..159  settlement
#   bit       160  paused
#   bit       161  restrict_instruments
#   bit       162  has a max notional (value in `_max_notional`)
#   bit       163  some digest has a partial fill or a cancel flag in `_filled`
#   bits 164..171  number of open option positions
#   bits 172..255  min_nonce (cancel_below)
ADDRESS_MASK: constant(uint256) = (1 << 160) - 1
EXPIRY_MASK: constant(uint256) = (1 << 64) - 1
PAUSED_BIT: constant(uint256) = 1 << 160
RESTRICT_BIT: constant(uint256) = 1 << 161
LIMIT_BIT: constant(uint256) = 1 << 162
DIGEST_STATE_BIT: constant(uint256) = 1 << 163
OPEN_SHIFT: constant(uint256) = 164
OPEN_MASK: constant(uint256) = 255 << OPEN_SHIFT
NONCE_SHIFT: constant(uint256) = 172
MAX_MIN_NONCE: constant(uint256) = (1 << 84) - 1

OWNER: immutable(address)
OWNER_IS_CONTRACT: immutable(bool)
FACTORY: immutable(address)

_config: uint256
_max_notional: uint256
# digest -> cumulative fill of an order filled in parts, with CANCELLED as flag bit.
_filled: HashMap[bytes32, uint256]
# nonce >> 8 -> bitmap: bit (nonce & 255) is set once an order with that nonce filled
# completely in one go (no `_filled` write for it).
nonce_bitmap: public(HashMap[uint256, uint256])
# owner's allow-list (used when restrict_instruments is on)
instrument_allowed: public(HashMap[bytes32, bool])

# option positions: instrument -> signed size in underlying base units
position: public(HashMap[bytes32, int256])
_open: HashMap[uint256, bytes32]  # index < open count -> instrument
# instrument -> underlying | expiry << 160 | is_call << 224
_option_meta: HashMap[bytes32, uint256]
_option_strike: HashMap[bytes32, uint256]
# the quote token all this wallet's options settle in (fixed while positions are open)
option_quote: public(address)

# per-batch state (EIP-1153 transient storage)
_t_stage: transient(uint256)  # 0 idle, 1 applying, 2 collected
_t_tokens: transient(DynArray[address, MAX_TOKENS])
_t_net: transient(HashMap[address, int256])  # >0: the wallet is owed; <0: it pays
_t_snap: transient(HashMap[address, uint256])  # balance after collect, for tokens owed
# the single-leg fast path: the one token owed and the balance it must reach
_t_in_token: transient(address)
_t_in_target: transient(uint256)

STAGE_IDLE: constant(uint256) = 0
STAGE_APPLYING: constant(uint256) = 1
STAGE_COLLECTED: constant(uint256) = 2


event Deposited:
    token: indexed(address)
    sender: indexed(address)
    amount: uint256

event Withdrawn:
    token: indexed(address)
    to: indexed(address)
    amount: uint256

event SettlementChanged:
    settlement: indexed(address)

event PausedChanged:
    paused: bool

event MaxNotionalChanged:
    max_notional: uint256

event InstrumentAllowed:
    instrument: indexed(bytes32)
    allowed: bool

event RestrictInstrumentsChanged:
    restrict: bool

event Cancelled:
    digest: indexed(bytes32)

event CancelledBelow:
    nonce: uint256

event PositionChanged:
    instrument: indexed(bytes32)
    size: int256

event SeriesSettled:
    underlying: indexed(address)
    expiry: indexed(uint64)
    price: uint256
    paid_quote: uint256
    paid_underlying: uint256
    credit: uint256


@deploy
def __init__(owner_: address, settlement_: address):
    """
    @notice Creates the wallet of `owner_`, trading through `settlement_`.
    @param owner_ The owner (an EOA, or a contract that implements EIP-1271).
    @param settlement_ The Settlement contract allowed to apply signed legs.
    """
    assert owner_ != empty(address), "wallet: zero owner"
    OWNER = owner_
    OWNER_IS_CONTRACT = owner_.is_contract
    FACTORY = msg.sender
    eip712.__init__("Isthmus", "1")
    self._config = convert(settlement_, uint256)
    log SettlementChanged(settlement=settlement_)


# --------------------------------------------------------------------------- views

@external
@view
def owner() -> address:
    """
    @notice The wallet's owner.
    @return address The owner.
    """
    return OWNER


@external
@view
def factory() -> address:
    """
    @notice The factory that deployed this wallet.
    @return address The factory.
    """
    return FACTORY


@external
@view
def settlement() -> address:
    """
    @notice The only Settlement contract allowed to apply legs.
    @return address The settlement contract.
    """
    return convert(self._config & ADDRESS_MASK, address)


@external
@view
def paused() -> bool:
    """
    @notice Whether the owner has paused trading.
    @return bool True when paused.
    """
    return self._config & PAUSED_BIT != 0


@external
@view
def restrict_instruments() -> bool:
    """
    @notice Whether only instruments on the owner's allow-list may trade.
    @return bool True when restricted.
    """
    return self._config & RESTRICT_BIT != 0


@external
@view
def max_notional() -> uint256:
    """
    @notice The owner's maximum notional per order in quote units (max uint256: no limit).
    @return uint256 The limit.
    """
    if self._config & LIMIT_BIT == 0:
        return max_value(uint256)
    return self._max_notional


@external
@view
def min_nonce() -> uint256:
    """
    @notice Every order or strategy with a nonce below this is cancelled.
    @return uint256 The minimum nonce.
    """
    return self._config >> NONCE_SHIFT


@external
@view
def domain_separator() -> bytes32:
    """
    @notice The EIP-712 domain separator ("Isthmus", "1", chain id, this wallet).
    @return bytes32 The domain separator.
    """
    return eip712._domain_separator_v4()


@external
@view
def hash_order(o: orders.Order) -> bytes32:
    """
    @notice The full EIP-712 digest of an order for this wallet.
    @param o The order.
    @return bytes32 keccak256(0x1901 || domain separator || hashStruct(order)).
    """
    return eip712._hash_typed_data_v4(orders.hash_order_struct(o))


@external
@view
def hash_strategy(s: orders.Strategy) -> bytes32:
    """
    @notice The full EIP-712 digest of a strategy for this wallet.
    @param s The strategy.
    @return bytes32 keccak256(0x1901 || domain separator || hashStruct(strategy)).
    """
    return eip712._hash_typed_data_v4(orders.hash_strategy_struct(s))


@external
@view
def filled(digest: bytes32) -> uint256:
    """
    @notice Cumulative fill recorded for a digest that was filled in parts. An order filled
            completely in one go is recorded in the nonce bitmap instead (see `nonce_used`,
            `remaining`).
    @param digest The order or strategy digest.
    @return uint256 The recorded partial fill.
    """
    return self._filled[digest] & FILL_MASK


@external
@view
def is_cancelled(digest: bytes32) -> bool:
    """
    @notice Whether the owner cancelled this digest.
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
    return self.nonce_bitmap[nonce >> 8] & (1 << (nonce & 255)) != 0


@external
@view
def remaining(o: orders.Order) -> uint256:
    """
    @notice How much of an order can still fill (0 when filled, cancelled, below the
            cancelled nonce or past its deadline).
    @param o The order.
    @return uint256 Remaining base units.
    """
    return self._remaining(eip712._hash_typed_data_v4(orders.hash_order_struct(o)), o.nonce, o.amount, o.deadline)


@external
@view
def remaining_strategy(s: orders.Strategy) -> uint256:
    """
    @notice How much of a strategy can still fill, in strategy units.
    @param s The strategy.
    @return uint256 Remaining strategy units.
    """
    return self._remaining(eip712._hash_typed_data_v4(orders.hash_strategy_struct(s)), s.nonce, s.amount, s.deadline)


@external
@view
def open_positions() -> DynArray[bytes32, MAX_OPEN]:
    """
    @notice The option instruments in which this wallet has a non-zero position.
    @return DynArray The instrument ids.
    """
    return self._open_ids((self._config & OPEN_MASK) >> OPEN_SHIFT)


@external
@view
def margin_status() -> (uint256, uint256, bool):
    """
    @notice The margin rule evaluated now: quote required by the option portfolio, quote
            available (quote balance plus haircut collateral), and whether it holds
            (including the underlying cover of short calls).
    @return (required, available, ok)
    """
    return self._margin(self._config)


# --------------------------------------------------------------------------- owner

@internal
@view
def _only_owner():
    assert msg.sender == OWNER, "wallet: not owner"


@internal
@view
def _not_in_batch():
    assert self._t_stage == STAGE_IDLE, "wallet: batch in progress"


@external
@nonreentrant
def deposit(token: address, amount: uint256):
    """
    @notice Pulls `amount` of `token` from the caller (who approved this wallet). Plain
            ERC-20 transfers to the wallet are deposits too.
    @param token The ERC-20 token.
    @param amount Amount in token units.
    """
    assert extcall IERC20(token).transferFrom(msg.sender, self, amount, default_return_value=True), "wallet: transfer failed"
    log Deposited(token=token, sender=msg.sender, amount=amount)


@external
@nonreentrant
def withdraw(token: address, amount: uint256):
    """
    @notice Sends `amount` of `token` to the owner; reverts if the wallet would then break
            the margin rule. Works while paused and without the operator.
    @param token The ERC-20 token.
    @param amount Amount in token units.
    """
    self._only_owner()
    self._not_in_batch()
    assert extcall IERC20(token).transfer(OWNER, amount, default_return_value=True), "wallet: transfer failed"
    self._check_margin(self._config)
    log Withdrawn(token=token, to=OWNER, amount=amount)


@external
def set_settlement(settlement_: address):
    """
    @notice Changes the Settlement contract allowed to apply legs. Only with no open option
            positions (they are owed by / to the current settlement).
    @param settlement_ The new settlement contract.
    """
    self._only_owner()
    self._not_in_batch()
    config: uint256 = self._config
    assert config & OPEN_MASK == 0, "wallet: open positions"
    self._config = (config & ~ADDRESS_MASK) | convert(settlement_, uint256)
    log SettlementChanged(settlement=settlement_)


@external
def pause():
    """
    @notice Stops all trading through this wallet until `unpause`.
    """
    self._only_owner()
    self._config = self._config | PAUSED_BIT
    log PausedChanged(paused=True)


@external
def unpause():
    """
    @notice Resumes trading.
    """
    self._only_owner()
    self._config = self._config & ~PAUSED_BIT
    log PausedChanged(paused=False)


@external
def set_max_notional(limit: uint256):
    """
    @notice Sets the maximum notional per order in quote units (order: amount * limit_price
            / 10**base_decimals; strategy: amount * |limit_net_price| / 10**base_decimals).
    @param limit The limit; max uint256 means no limit.
    """
    self._only_owner()
    if limit == max_value(uint256):
        self._config = self._config & ~LIMIT_BIT
    else:
        self._config = self._config | LIMIT_BIT
        self._max_notional = limit
    log MaxNotionalChanged(max_notional=limit)


@external
def set_restrict_instruments(restrict: bool):
    """
    @notice When on, only instruments on the allow-list (`set_instrument_allowed`) trade.
    @param restrict On or off.
    """
    self._only_owner()
    if restrict:
        self._config = self._config | RESTRICT_BIT
    else:
        self._config = self._config & ~RESTRICT_BIT
    log RestrictInstrumentsChanged(restrict=restrict)


@external
def set_instrument_allowed(instrument: bytes32, allowed: bool):
    """
    @notice Adds or removes an instrument on the owner's allow-list.
    @param instrument The instrument id.
    @param allowed Whether it may trade (when restrict_instruments is on).
    """
    self._only_owner()
    self.instrument_allowed[instrument] = allowed
    log InstrumentAllowed(instrument=instrument, allowed=allowed)


@external
def cancel(digest: bytes32):
    """
    @notice Cancels one order or strategy by digest (what was filled stays filled).
    @param digest The EIP-712 digest.
    """
    self._only_owner()
    self._filled[digest] = self._filled[digest] | CANCELLED
    self._config = self._config | DIGEST_STATE_BIT
    log Cancelled(digest=digest)


@external
def cancel_below(nonce: uint256):
    """
    @notice Cancels every order and strategy whose nonce is below `nonce`.
    @param nonce The new minimum nonce; must not decrease (at most 2**84 - 1).
    """
    self._only_owner()
    config: uint256 = self._config
    assert nonce >= config >> NONCE_SHIFT, "wallet: nonce decreases"
    assert nonce <= MAX_MIN_NONCE, "wallet: nonce too large"
    self._config = (config & ((1 << NONCE_SHIFT) - 1)) | (nonce << NONCE_SHIFT)
    log CancelledBelow(nonce=nonce)


# --------------------------------------------------------------------------- settlement

@internal
@view
def _remaining(digest: bytes32, nonce: uint256, amount: uint256, deadline: uint64) -> uint256:
    if block.timestamp > convert(deadline, uint256) or nonce < self._config >> NONCE_SHIFT:
        return 0
    if self.nonce_bitmap[nonce >> 8] & (1 << (nonce & 255)) != 0:
        return 0
    f: uint256 = self._filled[digest]
    if f & CANCELLED != 0 or f >= amount:
        return 0
    return amount - f


@internal
@view
def _check_settlement() -> uint256:
    config: uint256 = self._config
    assert msg.sender == convert(config & ADDRESS_MASK, address), "wallet: not settlement"
    assert config & PAUSED_BIT == 0, "wallet: paused"
    return config


@internal
@view
def _verify(digest: bytes32, sig: orders.Signature):
    assert sig.v == 27 or sig.v == 28, "wallet: bad signature v"
    if OWNER_IS_CONTRACT:
        signature: Bytes[65] = concat(sig.r, sig.s, convert(sig.v, bytes1))
        assert signature_checker._is_valid_ERC1271_signature_now(OWNER, digest, signature), "wallet: bad signature"
    else:
        # rejects s > n/2 (EIP-2) and a zero recovery
        signer: address = ecdsa._try_recover_vrs(digest, convert(sig.v, uint256), convert(sig.r, uint256), convert(sig.s, uint256))
        assert signer == OWNER, "wallet: bad signature"


@internal
def _consume(config: uint256, digest: bytes32, nonce: uint256, amount: uint256, deadline: uint64, fill: uint256):
    assert block.timestamp <= convert(deadline, uint256), "wallet: expired"
    assert nonce >= config >> NONCE_SHIFT, "wallet: nonce cancelled"
    assert fill > 0, "wallet: zero fill"
    word: uint256 = nonce >> 8
    bit: uint256 = 1 << (nonce & 255)
    bits: uint256 = self.nonce_bitmap[word]
    assert bits & bit == 0, "wallet: nonce used"
    prev: uint256 = 0
    if config & DIGEST_STATE_BIT != 0:
        # only wallets that ever filled in parts or cancelled a digest pay this read
        prev = self._filled[digest]
        assert prev & CANCELLED == 0, "wallet: cancelled"
    total: uint256 = prev + fill
    assert total <= amount, "wallet: overfill"
    if prev == 0 and fill == amount:
        # filled completely in one go: one bit instead of a fresh 32-byte slot
        self.nonce_bitmap[word] = bits | bit
    else:
        self._filled[digest] = total
        if config & DIGEST_STATE_BIT == 0:
            self._config = self._config | DIGEST_STATE_BIT
    # the fill is logged by Settlement's Fill event (wallet, digest, amount, quote)


@internal
def _begin():
    stage: uint256 = self._t_stage
    if stage == STAGE_IDLE:
        self._t_stage = STAGE_APPLYING
    else:
        assert stage == STAGE_APPLYING, "wallet: already collected"


@internal
def _book(token: address, delta: int256):
    prev: int256 = self._t_net[token]
    if prev == 0:
        if token not in self._t_tokens:
            self._t_tokens.append(token)
    self._t_net[token] = prev + delta


@internal
def _check_instrument(config: uint256, ins: orders.Instrument) -> (bytes32, uint256):
    """
    @dev Hashes the preimage and checks the owner's limits; returns (id, 10**base_decimals).
    """
    id: bytes32 = orders.instrument_id(ins)
    if config & RESTRICT_BIT != 0:
        assert self.instrument_allowed[id], "wallet: instrument not allowed"
    if ins.kind == orders.KIND_OPTION:
        assert block.timestamp < convert(ins.expiry, uint256), "wallet: option expired"
        assert ins.strike > 0, "wallet: zero strike"
    else:
        assert ins.kind == orders.KIND_SPOT, "wallet: unknown kind"
        assert ins.base != ins.quote, "wallet: bad pair"
    decimals: uint256 = convert(staticcall IERC20Detailed(ins.base).decimals(), uint256)
    return id, 10**decimals


@internal
@view
def _open_ids(count: uint256) -> DynArray[bytes32, MAX_OPEN]:
    ids: DynArray[bytes32, MAX_OPEN] = []
    for i: uint256 in range(MAX_OPEN):
        if i >= count:
            break
        ids.append(self._open[i])
    return ids


@internal
def _apply_position(id: bytes32, ins: orders.Instrument, delta: int256):
    config: uint256 = self._config
    count: uint256 = (config & OPEN_MASK) >> OPEN_SHIFT
    if self.option_quote != ins.quote:
        assert count == 0, "wallet: one option quote per wallet"
        self.option_quote = ins.quote
    prev: int256 = self.position[id]
    new: int256 = prev + delta
    self.position[id] = new
    if prev == 0:
        assert count < MAX_OPEN, "wallet: too many positions"
        self._open[count] = id
        self._config = (config & ~OPEN_MASK) | ((count + 1) << OPEN_SHIFT)
        if self._option_strike[id] == 0:
            self._option_meta[id] = convert(ins.base, uint256) | (convert(ins.expiry, uint256) << 160) | (convert(ins.is_call, uint256) << 224)
            self._option_strike[id] = ins.strike
    elif new == 0:
        self._remove_open(id)
    log PositionChanged(instrument=id, size=new)


@internal
def _remove_open(id: bytes32):
    config: uint256 = self._config
    n: uint256 = (config & OPEN_MASK) >> OPEN_SHIFT
    for i: uint256 in range(MAX_OPEN):
        if i >= n:
            break
        if self._open[i] == id:
            if i != n - 1:
                self._open[i] = self._open[n - 1]
            self._open[n - 1] = empty(bytes32)
            self._config = (config & ~OPEN_MASK) | ((n - 1) << OPEN_SHIFT)
            return


@internal
def _apply_leg(ins: orders.Instrument, id: bytes32, is_buy: bool, amount: uint256, quote: uint256):
    if ins.kind == orders.KIND_SPOT:
        if is_buy:
            self._book(ins.base, convert(amount, int256))
        else:
            self._book(ins.base, -convert(amount, int256))
    elif is_buy:
        self._apply_position(id, ins, convert(amount, int256))
    else:
        self._apply_position(id, ins, -convert(amount, int256))
    if is_buy:
        self._book(ins.quote, -convert(quote, int256))
    else:
        self._book(ins.quote, convert(quote, int256))


@internal
def _pay_out(token: address, amount: uint256):
    if amount > 0:
        assert extcall IERC20(token).transfer(msg.sender, amount, default_return_value=True), "wallet: transfer failed"


@internal
def _expect(token: address, amount: uint256):
    if amount > 0:
        self._t_in_token = token
        self._t_in_target = staticcall IERC20(token).balanceOf(self) + amount


@internal
def _collect():
    self._t_stage = STAGE_COLLECTED
    for token: address in self._t_tokens:
        net: int256 = self._t_net[token]
        if net < 0:
            assert extcall IERC20(token).transfer(msg.sender, convert(-net, uint256), default_return_value=True), "wallet: transfer failed"
        elif net > 0:
            self._t_snap[token] = staticcall IERC20(token).balanceOf(self)


@external
def apply_order(f: orders.OrderFill, ins: orders.Instrument, last: bool) -> bytes32:
    """
    @notice Applies one signed order's fill (Settlement only, inside `settle`): checks the
            signature, deadline, cancellation, remaining size, limit price and owner limits,
            books the token flows and option position. With `last` (the wallet's last leg of
            the batch) it then sends its net outflow of each token to the Settlement and
            snapshots the balance of each token it is owed.
    @param f The signed order, its fill (base units) and the quote amount for that fill.
    @param ins The instrument's preimage (must hash to the order's instrument id).
    @param last Whether this is the wallet's last leg in the batch.
    @return bytes32 The order digest.
    """
    config: uint256 = self._check_settlement()
    stage: uint256 = self._t_stage
    first: bool = stage == STAGE_IDLE
    if first:
        self._t_stage = STAGE_APPLYING
    else:
        assert stage == STAGE_APPLYING, "wallet: already collected"
    o: orders.Order = f.order
    id: bytes32 = empty(bytes32)
    unit: uint256 = 0
    id, unit = self._check_instrument(config, ins)
    assert id == o.instrument, "wallet: instrument mismatch"
    digest: bytes32 = eip712._hash_typed_data_v4(orders.hash_order_struct(o))
    self._verify(digest, f.sig)
    if config & LIMIT_BIT != 0:
        assert o.amount * o.limit_price // unit <= self._max_notional, "wallet: over max notional"
    self._consume(config, digest, o.nonce, o.amount, o.deadline, f.fill)
    # a buyer never pays more than fill * limit / unit, a seller never receives less
    if o.is_buy:
        assert f.quote <= f.fill * o.limit_price // unit, "wallet: limit price"
    else:
        assert f.quote >= f.fill * o.limit_price // unit, "wallet: limit price"
    if last and first and ins.kind == orders.KIND_SPOT:
        # the wallet's only leg in the batch: settle its two token flows directly
        self._t_stage = STAGE_COLLECTED
        if o.is_buy:
            self._pay_out(ins.quote, f.quote)
            self._expect(ins.base, f.fill)
        else:
            self._pay_out(ins.base, f.fill)
            self._expect(ins.quote, f.quote)
        return digest
    self._apply_leg(ins, id, o.is_buy, f.fill, f.quote)
    if last:
        self._collect()
    return digest


@external
def apply_strategy(f: orders.StrategyFill, ins: DynArray[orders.Instrument, orders.MAX_LEGS], last: bool) -> bytes32:
    """
    @notice Applies one signed strategy's fill (Settlement only): all legs together, leg i
            moving fill * ratio_i base units, with net quote (buys minus sells) at most
            fill * limit_net_price / 10**base_decimals. All legs share one base and quote.
    @param f The signed strategy, its fill (strategy units) and the quote amount of each leg.
    @param ins The preimage of each leg's instrument, in leg order.
    @param last Whether this is the wallet's last leg in the batch (see apply_order).
    @return bytes32 The strategy digest.
    """
    config: uint256 = self._check_settlement()
    self._begin()
    s: orders.Strategy = f.strategy
    n: uint256 = len(s.legs)
    assert n >= 2, "wallet: strategy needs two legs"
    assert len(ins) == n and len(f.quotes) == n, "wallet: leg count"
    digest: bytes32 = eip712._hash_typed_data_v4(orders.hash_strategy_struct(s))
    self._verify(digest, f.sig)
    base: address = ins[0].base
    quote: address = ins[0].quote
    unit: uint256 = 0
    net: int256 = 0
    for i: uint256 in range(orders.MAX_LEGS):
        if i >= n:
            break
        leg: orders.Leg = s.legs[i]
        assert leg.ratio > 0, "wallet: zero ratio"
        assert ins[i].base == base and ins[i].quote == quote, "wallet: legs differ in base or quote"
        id: bytes32 = empty(bytes32)
        id, unit = self._check_instrument(config, ins[i])
        assert id == leg.instrument, "wallet: instrument mismatch"
        if leg.is_buy:
            net += convert(f.quotes[i], int256)
        else:
            net -= convert(f.quotes[i], int256)
        self._apply_leg(ins[i], id, leg.is_buy, f.fill * leg.ratio, f.quotes[i])
    if config & LIMIT_BIT != 0:
        limit_abs: uint256 = convert(abs(s.limit_net_price), uint256)
        assert s.amount * limit_abs // unit <= self._max_notional, "wallet: over max notional"
    self._consume(config, digest, s.nonce, s.amount, s.deadline, f.fill)
    # net * unit <= fill * limit_net_price, exactly (signed)
    assert net * convert(unit, int256) <= convert(f.fill, int256) * s.limit_net_price, "wallet: limit price"
    if last:
        self._collect()
    return digest


@external
def finish():
    """
    @notice Settlement only, last step of a batch: checks that every token the wallet is owed
            arrived, then the margin rule; clears the batch state.
    """
    self._check_settlement()
    assert self._t_stage == STAGE_COLLECTED, "wallet: not collected"
    in_token: address = self._t_in_token
    if in_token != empty(address):
        # single-leg fast path
        assert staticcall IERC20(in_token).balanceOf(self) >= self._t_in_target, "wallet: not paid"
        self._t_in_token = empty(address)
    else:
        for token: address in self._t_tokens:
            net: int256 = self._t_net[token]
            if net > 0:
                assert staticcall IERC20(token).balanceOf(self) >= self._t_snap[token] + convert(net, uint256), "wallet: not paid"
                self._t_snap[token] = 0
            self._t_net[token] = 0
        self._t_tokens = []
    self._t_stage = STAGE_IDLE
    if self._config & OPEN_MASK != 0:
        # through a static self-call: keeps the margin code's large memory frame out of
        # this function's (every spot-only wallet would pay ~5,000 gas of memory otherwise)
        required: uint256 = 0
        available: uint256 = 0
        ok: bool = False
        required, available, ok = staticcall IMarginView(self).margin_status()
        assert ok, "wallet: margin"


@external
def settle_series(underlying: address, quote: address, expiry: uint64, price: uint256) -> (uint256, uint256, uint256):
    """
    @notice Settlement only, at expiry: closes every position of the series (underlying,
            quote, expiry) at `price`. If the wallet owes, it pays ceil(owed) to the
            Settlement in quote, the rest in underlying at `price` (rounded up); if it is
            owed, it returns its credit (rounded down) for the Settlement to pay.
    @param underlying The series' underlying token.
    @param quote The series' quote token.
    @param expiry The series' expiry.
    @param price The settlement price, quote units per whole underlying.
    @return (paid_quote, paid_underlying, credit)
    """
    assert msg.sender == convert(self._config & ADDRESS_MASK, address), "wallet: not settlement"
    self._not_in_batch()
    assert price > 0, "wallet: zero price"
    assert block.timestamp >= convert(expiry, uint256), "wallet: not expired"
    unit: uint256 = 10**convert(staticcall IERC20Detailed(underlying).decimals(), uint256)
    total: int256 = 0
    if quote == self.option_quote:
        ids: DynArray[bytes32, MAX_OPEN] = self._open_ids((self._config & OPEN_MASK) >> OPEN_SHIFT)
        for id: bytes32 in ids:
            meta: uint256 = self._option_meta[id]
            if convert(meta & ADDRESS_MASK, address) != underlying or convert((meta >> 160) & EXPIRY_MASK, uint64) != expiry:
                continue
            size: int256 = self.position[id]
            strike: uint256 = self._option_strike[id]
            if (meta >> 224) & 1 == 1:
                if price > strike:
                    total += size * convert(price - strike, int256)
            elif strike > price:
                total += size * convert(strike - price, int256)
            self.position[id] = 0
            self._remove_open(id)
            log PositionChanged(instrument=id, size=0)
    paid_quote: uint256 = 0
    paid_underlying: uint256 = 0
    credit: uint256 = 0
    if total < 0:
        owed: uint256 = (convert(-total, uint256) + unit - 1) // unit
        balance: uint256 = staticcall IERC20(quote).balanceOf(self)
        paid_quote = min(owed, balance)
        if paid_quote > 0:
            assert extcall IERC20(quote).transfer(msg.sender, paid_quote, default_return_value=True), "wallet: transfer failed"
        rest: uint256 = owed - paid_quote
        if rest > 0:
            paid_underlying = (rest * unit + price - 1) // price
            assert extcall IERC20(underlying).transfer(msg.sender, paid_underlying, default_return_value=True), "wallet: insolvent"
    elif total > 0:
        credit = convert(total, uint256) // unit
    log SeriesSettled(underlying=underlying, expiry=expiry, price=price, paid_quote=paid_quote, paid_underlying=paid_underlying, credit=credit)
    return paid_quote, paid_underlying, credit


# --------------------------------------------------------------------------- margin

@internal
@view
def _margin(config: uint256) -> (uint256, uint256, bool):
    count: uint256 = (config & OPEN_MASK) >> OPEN_SHIFT
    if count == 0:
        return 0, 0, True
    ids: DynArray[bytes32, MAX_OPEN] = self._open_ids(count)
    # group the open positions by series (underlying, expiry)
    series_keys: DynArray[uint256, MAX_OPEN] = []
    groups: DynArray[DynArray[margin.OptionPosition, MAX_OPEN], MAX_OPEN] = []
    for id: bytes32 in ids:
        meta: uint256 = self._option_meta[id]
        key: uint256 = meta & ((1 << 224) - 1)
        p: margin.OptionPosition = margin.OptionPosition(strike=self._option_strike[id], is_call=(meta >> 224) & 1 == 1, size=self.position[id])
        found: bool = False
        for g: uint256 in range(MAX_OPEN):
            if g >= len(series_keys):
                break
            if series_keys[g] == key:
                groups[g].append(p)
                found = True
                break
        if not found:
            series_keys.append(key)
            groups.append([p])
    required: uint256 = 0
    cover_tokens: DynArray[address, MAX_OPEN] = []
    cover_amounts: DynArray[uint256, MAX_OPEN] = []
    for g: uint256 in range(MAX_OPEN):
        if g >= len(series_keys):
            break
        underlying: address = convert(series_keys[g] & ADDRESS_MASK, address)
        unit: uint256 = 10**convert(staticcall IERC20Detailed(underlying).decimals(), uint256)
        req: uint256 = 0
        cover: uint256 = 0
        req, cover = margin.series_requirement(groups[g], unit)
        required += req
        if cover > 0:
            found: bool = False
            for c: uint256 in range(MAX_OPEN):
                if c >= len(cover_tokens):
                    break
                if cover_tokens[c] == underlying:
                    cover_amounts[c] += cover
                    found = True
                    break
            if not found:
                cover_tokens.append(underlying)
                cover_amounts.append(cover)
    # short calls must be covered by underlying held
    for c: uint256 in range(MAX_OPEN):
        if c >= len(cover_tokens):
            break
        if staticcall IERC20(cover_tokens[c]).balanceOf(self) < cover_amounts[c]:
            return required, 0, False
    quote: address = self.option_quote
    available: uint256 = staticcall IERC20(quote).balanceOf(self)
    if available >= required:
        return required, available, True
    # other collateral counts at oracle price with the settlement's per-asset haircut
    settlement: address = convert(config & ADDRESS_MASK, address)
    tokens: DynArray[address, MAX_COLLATERAL] = staticcall ISettlementCollateral(settlement).collateral_tokens()
    for token: address in tokens:
        if token == quote:
            continue
        balance: uint256 = staticcall IERC20(token).balanceOf(self)
        for c: uint256 in range(MAX_OPEN):
            if c >= len(cover_tokens):
                break
            if cover_tokens[c] == token:
                balance -= cover_amounts[c]
                break
        if balance > 0:
            available += staticcall ISettlementCollateral(settlement).collateral_value(token, balance)
    return required, available, available >= required


@internal
@view
def _check_margin(config: uint256):
    required: uint256 = 0
    available: uint256 = 0
    ok: bool = False
    required, available, ok = self._margin(config)
    assert ok, "wallet: margin"
