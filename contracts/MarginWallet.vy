# pragma version ~=0.4.3
"""
@title MarginWallet
@notice One trader's wallet. It holds the owner's collateral (real ERC-20 balances) and option
        positions, and it enforces, for every leg that its allowed Settlement contract asks it to
        apply: the signature of its owner (EOA with low-s, or EIP-1271 for a contract owner such
        as a Safe) or of a trading key within its scope, the deadline, the remaining fill of the
        order (partial fills tracked), the limit price, cancellations and the owner's own
        limits. After each batch it verifies that every token it was owed arrived and that it
        still meets the margin rule (contracts/README.md).
@dev Deployed by WalletFactory from a blueprint, one per owner. The EIP-712 domain is
     ("Isthmus", "1", chain id, this wallet), so a signature is valid for one wallet on one
     chain only. Split by concept: wallet/core (owner, packed config), wallet/keys
     (signatures and trading keys), wallet/fills (fill accounting, cancels),
     wallet/positions (positions and margin); this file holds custody, the owner's switches
     and the batch protocol with the Settlement.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

from snekmate.utils import eip712_domain_separator as eip712

from .lib import orders
from .wallet import core
from .wallet import keys
from .wallet import fills
from .wallet import positions

initializes: eip712
initializes: core
initializes: keys[core := core]
initializes: fills[core := core, keys := keys]
initializes: positions[core := core]

exports: (
    eip712.eip712Domain,
    keys.authorise_key,
    keys.set_key_instrument,
    keys.revoke_key,
    keys.trading_key,
    keys.key_instrument_allowed,
    fills.filled,
    fills.is_cancelled,
    fills.nonce_used,
    fills.min_nonce,
    fills.cancel,
    fills.cancel_below,
    positions.position,
    positions.option_quote,
    positions.open_positions,
    positions.option_meta,
    positions.margin_status,
)


interface IMarginView:
    def margin_status() -> (uint256, uint256, bool): view


MAX_TOKENS: constant(uint256) = 8  # tokens one wallet may touch in one batch

# owner's allow-list (used when restrict_instruments is on)
instrument_allowed: public(HashMap[bytes32, bool])

# per-batch state (EIP-1153 transient storage)
# bits 0..7: 0 idle, 1 applying, 2 collected; bits 8..167: the single-leg fast path's one
# token owed (one transient word for both: finish reads and clears them together)
_t_stage: transient(uint256)
_t_tokens: transient(DynArray[address, MAX_TOKENS])
_t_net: transient(HashMap[address, int256])  # >0: the wallet is owed; <0: it pays
_t_snap: transient(HashMap[address, uint256])  # balance after collect, for tokens owed
# the single-leg fast path: the balance the token owed (in `_t_stage`) must reach
_t_in_target: transient(uint256)

STAGE_IDLE: constant(uint256) = 0
STAGE_APPLYING: constant(uint256) = 1
STAGE_COLLECTED: constant(uint256) = 2
STAGE_MASK: constant(uint256) = 255
IN_TOKEN_SHIFT: constant(uint256) = 8


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
    @param owner_ The owner (an EOA, or a contract that implements EIP-1271, e.g. a Safe).
    @param settlement_ The Settlement contract allowed to apply signed legs.
    """
    core.__init__(owner_, settlement_)
    eip712.__init__("Isthmus", "1")
    log SettlementChanged(settlement=settlement_)


# --------------------------------------------------------------------------- views

@external
@view
def owner() -> address:
    """
    @notice The wallet's owner.
    @return address The owner.
    """
    return core._owner()


@external
@view
def factory() -> address:
    """
    @notice The factory that deployed this wallet.
    @return address The factory.
    """
    return core._factory()


@external
@view
def settlement() -> address:
    """
    @notice The only Settlement contract allowed to apply legs.
    @return address The settlement contract.
    """
    return core._settlement_of(core.config)


@external
@view
def paused() -> bool:
    """
    @notice Whether the owner has paused trading.
    @return bool True when paused.
    """
    return core.config & core.PAUSED_BIT != 0


@external
@view
def restrict_instruments() -> bool:
    """
    @notice Whether only instruments on the owner's allow-list may trade.
    @return bool True when restricted.
    """
    return core.config & core.RESTRICT_BIT != 0


@external
@view
def max_notional() -> uint256:
    """
    @notice The owner's maximum notional per order in quote units (max uint256: no limit).
    @return uint256 The limit.
    """
    if core.config & core.LIMIT_BIT == 0:
        return max_value(uint256)
    return core.max_notional_value


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
def remaining(o: orders.Order) -> uint256:
    """
    @notice How much of an order can still fill (0 when filled, cancelled, below the
            cancelled nonce or past its deadline).
    @param o The order.
    @return uint256 Remaining base units.
    """
    return fills._remaining(eip712._hash_typed_data_v4(orders.hash_order_struct(o)), o.nonce, o.amount, o.deadline)


# --------------------------------------------------------------------------- owner

@internal
@view
def _not_in_batch():
    assert self._t_stage == STAGE_IDLE, "wallet: batch in progress"


@external
@nonreentrant
def withdraw(token: address, amount: uint256):
    """
    @notice Sends `amount` of `token` to the owner; reverts if the wallet would then break
            the margin rule. Works while paused and without the operator. Owner only (never
            a trading key).
    @param token The ERC-20 token.
    @param amount Amount in token units.
    """
    core._only_owner()
    self._not_in_batch()
    owner: address = core._owner()
    assert extcall IERC20(token).transfer(owner, amount, default_return_value=True), "wallet: transfer failed"
    positions._check_margin()
    log Withdrawn(token=token, to=owner, amount=amount)


@external
def set_settlement(settlement_: address):
    """
    @notice Changes the Settlement contract allowed to apply legs. Only with no open option
            positions (they are owed by / to the current settlement).
    @param settlement_ The new settlement contract.
    """
    core._only_owner()
    self._not_in_batch()
    config: uint256 = core.config
    assert config & core.OPEN_MASK == 0, "wallet: open positions"
    core.config = (config & ~core.ADDRESS_MASK) | convert(settlement_, uint256)
    log SettlementChanged(settlement=settlement_)


@external
def pause():
    """
    @notice Stops all trading through this wallet until `unpause`.
    """
    core._only_owner()
    core.config = core.config | core.PAUSED_BIT
    log PausedChanged(paused=True)


@external
def unpause():
    """
    @notice Resumes trading.
    """
    core._only_owner()
    core.config = core.config & ~core.PAUSED_BIT
    log PausedChanged(paused=False)


@external
def set_max_notional(limit: uint256):
    """
    @notice Sets the maximum notional per order in quote units (order: amount * limit_price
            / 10**base_decimals; strategy: amount * |limit_net_price| / 10**base_decimals).
    @param limit The limit; max uint256 means no limit.
    """
    core._only_owner()
    if limit == max_value(uint256):
        core.config = core.config & ~core.LIMIT_BIT
    else:
        core.config = core.config | core.LIMIT_BIT
        core.max_notional_value = limit
    log MaxNotionalChanged(max_notional=limit)


@external
def set_restrict_instruments(restrict: bool):
    """
    @notice When on, only instruments on the allow-list (`set_instrument_allowed`) trade.
    @param restrict On or off.
    """
    core._only_owner()
    if restrict:
        core.config = core.config | core.RESTRICT_BIT
    else:
        core.config = core.config & ~core.RESTRICT_BIT
    log RestrictInstrumentsChanged(restrict=restrict)


@external
def set_instrument_allowed(instrument: bytes32, allowed: bool):
    """
    @notice Adds or removes an instrument on the owner's allow-list.
    @param instrument The instrument id.
    @param allowed Whether it may trade (when restrict_instruments is on).
    """
    core._only_owner()
    self.instrument_allowed[instrument] = allowed
    log InstrumentAllowed(instrument=instrument, allowed=allowed)


# --------------------------------------------------------------------------- settlement

@internal
@view
def _check_settlement() -> uint256:
    config: uint256 = core.config
    assert msg.sender == core._settlement_of(config), "wallet: not settlement"
    assert config & core.PAUSED_BIT == 0, "wallet: paused"
    return config


@internal
def _begin() -> bool:
    stage: uint256 = self._t_stage
    if stage == STAGE_IDLE:
        self._t_stage = STAGE_APPLYING
        return True
    assert stage == STAGE_APPLYING, "wallet: already collected"
    return False


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
    if config & core.RESTRICT_BIT != 0:
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
def _apply_leg(ins: orders.Instrument, id: bytes32, is_buy: bool, amount: uint256, quote: uint256):
    if ins.kind == orders.KIND_SPOT:
        if is_buy:
            self._book(ins.base, convert(amount, int256))
        else:
            self._book(ins.base, -convert(amount, int256))
    elif is_buy:
        positions._apply_position(id, ins, convert(amount, int256))
    else:
        positions._apply_position(id, ins, -convert(amount, int256))
    if is_buy:
        self._book(ins.quote, -convert(quote, int256))
    else:
        self._book(ins.quote, convert(quote, int256))


@internal
def _pay_to(token: address, to: address, amount: uint256):
    if amount > 0:
        assert extcall IERC20(token).transfer(to, amount, default_return_value=True), "wallet: transfer failed"


@internal
def _expect(token: address, amount: uint256):
    """
    @dev The single-leg fast path: marks the batch collected and, when something is owed,
         records the token (same transient word) and the balance it must reach.
    """
    if amount > 0:
        self._t_stage = STAGE_COLLECTED | (convert(token, uint256) << IN_TOKEN_SHIFT)
        self._t_in_target = staticcall IERC20(token).balanceOf(self) + amount
    else:
        self._t_stage = STAGE_COLLECTED


@internal
def _collect():
    self._t_stage = STAGE_COLLECTED
    for token: address in self._t_tokens:
        net: int256 = self._t_net[token]
        if net < 0:
            assert extcall IERC20(token).transfer(msg.sender, convert(-net, uint256), default_return_value=True), "wallet: transfer failed"
        elif net > 0:
            self._t_snap[token] = staticcall IERC20(token).balanceOf(self)


@internal
@view
def _check_owner_notional(config: uint256, notional: uint256):
    if config & core.LIMIT_BIT != 0:
        assert notional <= core.max_notional_value, "wallet: over max notional"


@external
def apply_order(f: orders.OrderFill, ins: orders.Instrument, last: bool, pay_to: address) -> (bytes32, bool):
    """
    @notice Applies one signed order's fill (Settlement only, inside `settle`): checks the
            signature (owner or trading key in scope; sig.v = 0: the contract owner's
            EIP-1271 signature, read back from the Settlement's `contract_signature()`), deadline, cancellation, remaining
            size, limit price and owner limits, books the token flows and option position.
            With `last` (the wallet's last leg of the batch) it then sends its net outflow of
            each token to the Settlement and snapshots the balance of each token it is owed.
            With `pay_to` (a spot trade the Settlement pairs with its counter-order) it pays
            its side straight to the counterparty's wallet and keeps no batch state: the
            Settlement checks that the counterparty paid this wallet in the same pair. A
            wallet with open option positions then checks its margin at once if it was paid
            first (`last`), else asks for `finish` after the counterparty paid.
    @param f The signed order, its fill (base units) and the quote amount for that fill.
    @param ins The instrument's preimage (must hash to the order's instrument id).
    @param last Netted: whether this is the wallet's last leg in the batch. Paired: whether
           the counterparty has already paid.
    @param pay_to The counterparty's wallet for a paired spot trade; empty otherwise.
    @return bytes32 The order digest.
    @return bool Whether the Settlement must call `finish` after the pair (paired only).
    """
    config: uint256 = self._check_settlement()
    stage: uint256 = self._t_stage
    first: bool = stage == STAGE_IDLE
    if pay_to != empty(address):
        # a paired trade is whole in itself: never inside a netted batch of this wallet
        self._not_in_batch()
    elif first:
        self._t_stage = STAGE_APPLYING
    else:
        assert stage == STAGE_APPLYING, "wallet: already collected"
    o: orders.Order = f.order
    id: bytes32 = empty(bytes32)
    unit: uint256 = 0
    id, unit = self._check_instrument(config, ins)
    assert id == o.instrument, "wallet: instrument mismatch"
    digest: bytes32 = eip712._hash_typed_data_v4(orders.hash_order_struct(o))
    signer: address = empty(address)
    scope: uint256 = 0
    signer, scope = keys._signer(digest, f.sig)
    if config & core.LIMIT_BIT != 0 or scope != 0:
        # only a capped owner or a trading key pays for the notional
        notional: uint256 = o.amount * o.limit_price // unit
        self._check_owner_notional(config, notional)
        if scope != 0:
            keys._check_key_instrument(signer, scope, id)
            keys._check_key_notional(scope, notional)
    fills._consume(config, digest, o.nonce, o.amount, o.deadline, f.fill)
    # a buyer never pays more than fill * limit / unit, a seller never receives less
    if o.is_buy:
        assert f.quote <= f.fill * o.limit_price // unit, "wallet: limit price"
    else:
        assert f.quote >= f.fill * o.limit_price // unit, "wallet: limit price"
    if pay_to != empty(address):
        assert ins.kind == orders.KIND_SPOT, "wallet: not spot"
        if o.is_buy:
            self._pay_to(ins.quote, pay_to, f.quote)
        else:
            self._pay_to(ins.base, pay_to, f.fill)
        if config & core.OPEN_MASK == 0:
            return digest, False
        if last:
            # the counterparty paid first: the margin rule sees the whole trade
            self._check_margin_view()
            return digest, False
        # paid before being paid: the Settlement calls `finish` once the counterparty paid
        self._t_stage = STAGE_COLLECTED
        return digest, True
    if last and first and ins.kind == orders.KIND_SPOT:
        # the wallet's only leg in the batch: settle its two token flows directly (the
        # snapshot first: base != quote, so paying one out leaves the other's balance)
        if o.is_buy:
            self._expect(ins.base, f.fill)
            self._pay_to(ins.quote, msg.sender, f.quote)
        else:
            self._expect(ins.quote, f.quote)
            self._pay_to(ins.base, msg.sender, f.fill)
        return digest, False
    self._apply_leg(ins, id, o.is_buy, f.fill, f.quote)
    if last:
        self._collect()
    return digest, False


@external
def apply_strategy(f: orders.StrategyFill, ins: DynArray[orders.Instrument, orders.MAX_LEGS], last: bool) -> bytes32:
    """
    @notice Applies one signed strategy's fill (Settlement only): all legs together, leg i
            moving fill * ratio_i base units, with net quote (buys minus sells) at most
            fill * limit_net_price / 10**base_decimals. All legs share one base and quote.
            A trading key must be allowed every leg's instrument.
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
    signer: address = empty(address)
    scope: uint256 = 0
    signer, scope = keys._signer(digest, f.sig)
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
        if scope != 0:
            keys._check_key_instrument(signer, scope, id)
        if leg.is_buy:
            net += convert(f.quotes[i], int256)
        else:
            net -= convert(f.quotes[i], int256)
        self._apply_leg(ins[i], id, leg.is_buy, f.fill * leg.ratio, f.quotes[i])
    if config & core.LIMIT_BIT != 0 or scope != 0:
        notional: uint256 = s.amount * convert(abs(s.limit_net_price), uint256) // unit
        self._check_owner_notional(config, notional)
        if scope != 0:
            keys._check_key_notional(scope, notional)
    fills._consume(config, digest, s.nonce, s.amount, s.deadline, f.fill)
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
    stage: uint256 = self._t_stage
    assert stage & STAGE_MASK == STAGE_COLLECTED, "wallet: not collected"
    in_token: address = convert(stage >> IN_TOKEN_SHIFT, address)
    if in_token != empty(address):
        # single-leg fast path
        assert staticcall IERC20(in_token).balanceOf(self) >= self._t_in_target, "wallet: not paid"
    else:
        for token: address in self._t_tokens:
            net: int256 = self._t_net[token]
            if net > 0:
                assert staticcall IERC20(token).balanceOf(self) >= self._t_snap[token] + convert(net, uint256), "wallet: not paid"
                self._t_snap[token] = 0
            self._t_net[token] = 0
        self._t_tokens = []
    self._t_stage = STAGE_IDLE
    if core.config & core.OPEN_MASK != 0:
        self._check_margin_view()


@internal
@view
def _check_margin_view():
    # through a static self-call: keeps the margin code's large memory frame out of the
    # caller's (every spot-only wallet would pay ~5,000 gas of memory otherwise)
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
            owed, it returns its credit (rounded down) for the Settlement to pay. Price 0:
            the series unwound without a price (its feed is dead); positions close at zero.
    @param underlying The series' underlying token.
    @param quote The series' quote token.
    @param expiry The series' expiry.
    @param price The settlement price, quote units per whole underlying (0: unwind).
    @return (paid_quote, paid_underlying, credit)
    """
    assert msg.sender == core._settlement_of(core.config), "wallet: not settlement"
    self._not_in_batch()
    assert block.timestamp >= convert(expiry, uint256), "wallet: not expired"
    unit: uint256 = 10**convert(staticcall IERC20Detailed(underlying).decimals(), uint256)
    total: int256 = positions._close_series(underlying, quote, expiry, price)
    paid_quote: uint256 = 0
    paid_underlying: uint256 = 0
    credit: uint256 = 0
    if total < 0:
        owed: uint256 = (convert(-total, uint256) + unit - 1) // unit
        balance: uint256 = staticcall IERC20(quote).balanceOf(self)
        paid_quote = min(owed, balance)
        self._pay_to(quote, msg.sender, paid_quote)
        rest: uint256 = owed - paid_quote
        if rest > 0:
            paid_underlying = (rest * unit + price - 1) // price
            self._pay_to(underlying, msg.sender, paid_underlying)
    elif total > 0:
        credit = convert(total, uint256) // unit
    log SeriesSettled(underlying=underlying, expiry=expiry, price=price, paid_quote=paid_quote, paid_underlying=paid_underlying, credit=credit)
    return paid_quote, paid_underlying, credit
