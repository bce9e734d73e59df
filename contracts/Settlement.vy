# pragma version ~=0.4.3
"""
@title Settlement
@notice Coordinates batches of signed fills between MarginWallets and Uniswap v2 pairs, all
        or nothing, and is the central counterparty of the options it lists. Only registered
        operators submit batches. Each wallet verifies its own legs (signature, fill, limits);
        this contract checks that the batch is balanced: every token collected equals every
        token paid (wallets and pools), and every option bought equals every option sold, so
        the operator can only move what signatures cover.
@dev settle(batch):
     0. hash and check the batch's instruments once; note each wallet's last item and this
        contract's balance of every token the batch can move;
     1. apply: every order / strategy fill is applied by its wallet (which verifies it); on
        its last item a wallet sends its net outflow of each token here;
     2. interactions: AMM swaps (transfer in, `swap` out to here);
     3. pay: every wallet's net inflow per token is sent to it;
     4. finish: every wallet checks it was paid, then its margin.
     Then this contract's token balances must equal those before the batch, and every option
     bought must have been sold.
     settle_pairs(batch): spot trades between two wallets, each wallet paying the other
     directly; this contract checks that both were paid.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

from snekmate.auth import ownable

from .lib import orders
from .lib import timelock

initializes: ownable
initializes: timelock[ownable := ownable]

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    ownable.renounce_ownership,
    timelock.DELAY,
    timelock.change_eta,
    timelock.cancel_change,
)


MAX_ORDERS: constant(uint256) = 64
MAX_PAIRS: constant(uint256) = MAX_ORDERS // 2
MAX_STRATEGIES: constant(uint256) = 8
MAX_SWAPS: constant(uint256) = 8
MAX_BATCH_INSTRUMENTS: constant(uint256) = 16
MAX_WALLETS: constant(uint256) = 72
MAX_BATCH_TOKENS: constant(uint256) = 16
MAX_BATCH_OPTIONS: constant(uint256) = 64
MAX_SERIES_WALLETS: constant(uint256) = 256
MAX_COLLATERAL: constant(uint256) = 8
BPS: constant(uint256) = 10_000
MAX_CONTRACT_SIGS: constant(uint256) = 8
MAX_CONTRACT_SIG: constant(uint256) = 520  # MarginWallet keys.MAX_CONTRACT_SIG
MAX_OPEN: constant(uint256) = 16  # MarginWallet positions.MAX_OPEN
MAX_INPUT_TOKENS: constant(uint256) = 1 + MAX_OPEN + MAX_COLLATERAL
SET_COLLATERAL: constant(bytes32) = keccak256("set_collateral")


interface IMarginWallet:
    def apply_order(f: orders.OrderFill, ins: orders.Instrument, last: bool, pay_to: address) -> (bytes32, bool): nonpayable
    def apply_strategy(f: orders.StrategyFill, ins: DynArray[orders.Instrument, orders.MAX_LEGS], last: bool) -> bytes32: nonpayable
    def finish(): nonpayable
    def settle_series(underlying: address, quote: address, expiry: uint64, price: uint256) -> (uint256, uint256, uint256): nonpayable
    def open_positions() -> DynArray[bytes32, MAX_OPEN]: view
    def option_meta(id: bytes32) -> (address, uint64, bool, uint256): view
    def position(id: bytes32) -> int256: view
    def option_quote() -> address: view
    def settlement() -> address: view

struct OracleFeed:
    aggregator: address
    feed_decimals: uint8
    max_staleness: uint256
    max_deviation_bps: uint256

interface IPriceOracle:
    def price(asset: address) -> uint256: view
    def feeds(asset: address) -> OracleFeed: view
    def scale(answer: int256, feed_decimals: uint8) -> uint256: view

interface IAggregator:
    def getRoundData(round_id: uint80) -> (uint80, int256, uint256, uint256, uint80): view
    def latestRoundData() -> (uint80, int256, uint256, uint256, uint80): view

interface IUniswapV2Pair:
    def token0() -> address: view
    def token1() -> address: view
    def swap(amount0Out: uint256, amount1Out: uint256, to: address, data: Bytes[32]): nonpayable


# One signed order and its fill in this batch. The order's instrument is
# batch.instruments[instrument]; the wallet rebuilds the signed Order from these fields.
struct OrderItem:
    wallet: address
    instrument: uint256  # index into Batch.instruments
    is_buy: bool
    amount: uint256
    limit_price: uint256
    nonce: uint256
    deadline: uint64
    sig: orders.Signature
    fill: uint256  # base units
    quote: uint256  # quote units paid (buy) / received (sell)

struct LegItem:
    instrument: uint256  # index into Batch.instruments
    is_buy: bool
    ratio: uint256
    quote: uint256  # quote units this leg pays (buy) / receives (sell) in this fill

# One signed strategy and its fill (strategy units) in this batch.
struct StrategyItem:
    wallet: address
    legs: DynArray[LegItem, orders.MAX_LEGS]
    amount: uint256
    limit_net_price: int256
    nonce: uint256
    deadline: uint64
    sig: orders.Signature
    fill: uint256

# One side of a paired spot trade: `wallet`'s signed order, on the pair's instrument and side
# (buy for `Pair.buy`, sell for `Pair.sell`), filled for the pair's fill and quote.
struct PairSide:
    wallet: address
    amount: uint256
    limit_price: uint256
    nonce: uint256
    deadline: uint64
    sig: orders.Signature

# One spot trade between two wallets: the buyer pays `quote` to the seller, the seller pays
# `fill` base units to the buyer. The instrument, fill and quote are written once for both.
struct Pair:
    instrument: uint256  # index into PairBatch.instruments (a spot instrument)
    fill: uint256  # base units
    quote: uint256  # quote units
    buy: PairSide
    sell: PairSide

struct PairBatch:
    batch_id: uint256
    instruments: DynArray[orders.Instrument, MAX_BATCH_INSTRUMENTS]
    pairs: DynArray[Pair, MAX_PAIRS]
    signatures: DynArray[Bytes[MAX_CONTRACT_SIG], MAX_CONTRACT_SIGS]  # as in Batch

struct Swap:
    pair: address  # a registered Uniswap v2 pair
    token_in: address
    amount_in: uint256
    amount_out: uint256

struct Batch:
    batch_id: uint256
    instruments: DynArray[orders.Instrument, MAX_BATCH_INSTRUMENTS]  # preimages, each registered
    orders: DynArray[OrderItem, MAX_ORDERS]
    strategies: DynArray[StrategyItem, MAX_STRATEGIES]
    swaps: DynArray[Swap, MAX_SWAPS]
    # contract owners' EIP-1271 signatures (e.g. a Safe's); an item whose sig.v is 0 carries
    # the index of its signature here in sig.r
    signatures: DynArray[Bytes[MAX_CONTRACT_SIG], MAX_CONTRACT_SIGS]

struct Series:
    underlying: address
    quote: address
    expiry: uint64
    unit: uint256  # 10**underlying_decimals; 0: unknown series
    feed: address  # the aggregator bound at registration: the expiry price is its round at expiry
    feed_decimals: uint8

struct OpenPosition:
    id: bytes32
    underlying: address
    expiry: uint64
    strike: uint256
    is_call: bool
    size: int256

struct CollateralInput:
    token: address
    unit: uint256
    haircut_bps: uint256
    price: uint256  # 0: the oracle refuses a price now (margin_status would revert)

struct MarginInputs:
    settlement: address
    option_quote: address
    positions: DynArray[OpenPosition, MAX_OPEN]
    balances: DynArray[uint256, MAX_INPUT_TOKENS]  # balance of each of `tokens`
    tokens: DynArray[address, MAX_INPUT_TOKENS]  # option quote, underlyings, collateral
    collateral: DynArray[CollateralInput, MAX_COLLATERAL]


ORACLE: immutable(address)
OPTION_QUOTE: immutable(address)
# how long after expiry a series may settle at the last round before expiry (the feed has no
# round at expiry), or unwind at no payoff (the feed no longer answers)
EXPIRY_GRACE: public(immutable(uint256))

factory: public(address)
is_operator: public(HashMap[address, bool])
is_wallet: public(HashMap[address, bool])
registered: public(HashMap[bytes32, bool])
instruments: public(HashMap[bytes32, orders.Instrument])
pool_registered: public(HashMap[address, bool])
series: public(HashMap[bytes32, Series])
_series_wallets: HashMap[bytes32, DynArray[address, MAX_SERIES_WALLETS]]
in_series: public(HashMap[bytes32, HashMap[address, bool]])
series_settled: public(HashMap[bytes32, bool])
expiry_price: public(HashMap[bytes32, uint256])
haircut_bps: public(HashMap[address, uint256])
_collateral: DynArray[address, MAX_COLLATERAL]
collateral_unit: public(HashMap[address, uint256])  # 10**decimals; 0: not collateral

# per-batch bookkeeping (transient; cleared before settle returns)
_t_last: transient(HashMap[address, uint256])  # 1 + index of the wallet's last item (0: unseen)
_t_tokens: transient(DynArray[address, MAX_BATCH_TOKENS])
_t_token_start: transient(HashMap[address, uint256])  # 1 + this contract's balance before the batch
_t_net: transient(HashMap[address, HashMap[address, int256]])  # wallet -> token -> net owed
_t_options: transient(DynArray[bytes32, MAX_BATCH_OPTIONS])
_t_option_net: transient(HashMap[bytes32, int256])  # bought minus sold
_t_contract_sig: transient(Bytes[MAX_CONTRACT_SIG])  # the contract-signed item being applied


# One applied order, or one strategy leg (in the strategy's digest, legs in order). The digest
# names the wallet (its EIP-712 domain is the wallet) and the signed order; the batch id is
# BatchSettled's in the same transaction. Nothing here repeats what those say (bench/gas.py).
event Fill:
    digest: indexed(bytes32)
    amount: uint256  # base units
    quote: uint256  # quote units paid (buy) / received (sell)

# One paired trade (settle_pairs): the two orders' digests and the trade, in one log where two
# `Fill`s would repeat the amounts (bench/gas.py). Its token movements are the two wallet to
# wallet `Transfer` logs just before it.
event Traded:
    buy: bytes32  # the buy order's digest
    sell: bytes32  # the sell order's digest
    amount: uint256  # base units
    quote: uint256  # quote units

event StrategyFilled:
    batch_id: indexed(uint256)
    wallet: indexed(address)
    digest: indexed(bytes32)
    fill: uint256  # strategy units
    net_quote: int256  # paid (>0) or received (<0)

event SwapExecuted:
    batch_id: indexed(uint256)
    pair: indexed(address)
    token_in: address
    amount_in: uint256
    token_out: address
    amount_out: uint256

event BatchSettled:
    batch_id: indexed(uint256)
    operator: indexed(address)
    orders: uint256
    strategies: uint256
    swaps: uint256

event ExpirySettled:
    series: indexed(bytes32)
    round_id: uint80  # 0: unwound without a price
    price: uint256
    updated_at: uint256
    collected_quote: uint256
    collected_underlying: uint256
    paid_quote: uint256
    paid_underlying: uint256

event ExpiryPaid:
    series: indexed(bytes32)
    wallet: indexed(address)
    quote: uint256
    underlying: uint256

event OperatorSet:
    operator: indexed(address)
    allowed: bool

event FactorySet:
    factory: indexed(address)

event WalletRegistered:
    wallet: indexed(address)

event InstrumentRegistered:
    id: indexed(bytes32)
    kind: uint8
    base: indexed(address)
    quote: address
    strike: uint256
    expiry: uint64
    is_call: bool

event PoolRegistered:
    pair: indexed(address)

event CollateralSet:
    token: indexed(address)
    haircut_bps: uint256

event SeriesRegistered:
    series: indexed(bytes32)
    underlying: indexed(address)
    expiry: uint64
    feed: address


@deploy
def __init__(oracle_: address, option_quote_: address, delay: uint256, expiry_grace: uint256):
    """
    @notice Creates the settlement contract.
    @param oracle_ The PriceOracle used at expiry and for haircut collateral.
    @param option_quote_ The token every listed option settles in (USDC).
    @param delay Seconds a queued admin change waits before it can apply.
    @param expiry_grace Seconds after expiry before the fallbacks of `settle_expiry` and
           `unwind_expiry` open.
    """
    ownable.__init__()
    timelock.__init__(delay)
    ORACLE = oracle_
    OPTION_QUOTE = option_quote_
    EXPIRY_GRACE = expiry_grace


# --------------------------------------------------------------------------- views

@external
@view
def oracle() -> address:
    """
    @notice The price oracle.
    @return address The PriceOracle.
    """
    return ORACLE


@external
@view
def option_quote() -> address:
    """
    @notice The quote token of every listed option.
    @return address The token.
    """
    return OPTION_QUOTE


@external
@pure
def instrument_id(kind: uint8, base: address, quote: address, strike: uint256, expiry: uint64, is_call: bool) -> bytes32:
    """
    @notice keccak256(abi.encode(kind, base, quote, strike, expiry, is_call)).
    @param kind 0 spot, 1 European option.
    @param base Base token (options: the underlying).
    @param quote Quote token.
    @param strike Options: quote units per whole underlying; spot: 0.
    @param expiry Options: unix seconds; spot: 0.
    @param is_call Options: call or put; spot: false.
    @return bytes32 The instrument id.
    """
    return orders.instrument_id(orders.Instrument(kind=kind, base=base, quote=quote, strike=strike, expiry=expiry, is_call=is_call))


@external
@pure
def series_id(underlying: address, quote: address, expiry: uint64) -> bytes32:
    """
    @notice keccak256(abi.encode(underlying, quote, expiry)): one options series.
    @param underlying The underlying token.
    @param quote The quote token.
    @param expiry Unix seconds.
    @return bytes32 The series id.
    """
    return orders.series_id(underlying, quote, expiry)


@external
@view
def series_wallets(series_: bytes32) -> DynArray[address, MAX_SERIES_WALLETS]:
    """
    @notice Every wallet that traded an option of the series.
    @param series_ The series id.
    @return DynArray The wallets.
    """
    return self._series_wallets[series_]


@external
@view
def collateral_tokens() -> DynArray[address, MAX_COLLATERAL]:
    """
    @notice Tokens that count as margin collateral at oracle price minus a haircut.
    @return DynArray The tokens.
    """
    return self._collateral


@external
@view
def collateral_value(token: address, amount: uint256) -> uint256:
    """
    @notice Margin value of `amount` of a collateral token: amount * price / 10**decimals *
            (10000 - haircut_bps) / 10000, rounded down; 0 for a token that is not collateral.
    @param token The collateral token.
    @param amount Amount in token units.
    @return uint256 Value in option-quote units.
    """
    unit: uint256 = self.collateral_unit[token]
    if unit == 0 or amount == 0:
        return 0
    price: uint256 = staticcall IPriceOracle(ORACLE).price(token)
    return amount * price // unit * (BPS - self.haircut_bps[token]) // BPS


# --------------------------------------------------------------------------- admin

@external
def set_operator(operator: address, allowed: bool):
    """
    @notice Adds or removes an operator (who may submit batches). Owner only.
    @param operator The operator address.
    @param allowed Whether it may submit.
    """
    ownable._check_owner()
    self.is_operator[operator] = allowed
    log OperatorSet(operator=operator, allowed=allowed)


@external
def set_factory(factory_: address):
    """
    @notice Sets the WalletFactory whose wallets may trade. Owner only, once.
    @param factory_ The factory.
    """
    ownable._check_owner()
    assert self.factory == empty(address), "settlement: factory set"
    self.factory = factory_
    log FactorySet(factory=factory_)


@external
def register_wallet(wallet: address):
    """
    @notice Records a wallet deployed by the factory. Factory only.
    @param wallet The new MarginWallet.
    """
    assert msg.sender == self.factory, "settlement: not factory"
    self.is_wallet[wallet] = True
    log WalletRegistered(wallet=wallet)


@external
def register_spot(base: address, quote: address) -> bytes32:
    """
    @notice Lists a spot pair. Owner only.
    @param base Base token.
    @param quote Quote token.
    @return bytes32 The instrument id.
    """
    ownable._check_owner()
    assert base != quote and base != empty(address) and quote != empty(address), "settlement: bad pair"
    ins: orders.Instrument = orders.Instrument(kind=orders.KIND_SPOT, base=base, quote=quote, strike=0, expiry=0, is_call=False)
    return self._register(ins)


@external
def register_option(underlying: address, quote: address, strike: uint256, expiry: uint64, is_call: bool) -> bytes32:
    """
    @notice Lists a European cash-settled option (and its series). Owner only.
    @param underlying The underlying token.
    @param quote The quote token; must be the option quote token.
    @param strike Quote units per whole underlying.
    @param expiry Unix seconds, in the future.
    @param is_call Call or put.
    @return bytes32 The instrument id.
    """
    ownable._check_owner()
    assert quote == OPTION_QUOTE, "settlement: options settle in the option quote"
    assert underlying != quote and underlying != empty(address), "settlement: bad underlying"
    assert strike > 0, "settlement: zero strike"
    assert convert(expiry, uint256) > block.timestamp, "settlement: expiry in the past"
    sid: bytes32 = orders.series_id(underlying, quote, expiry)
    if self.series[sid].unit == 0:
        # the series binds the oracle's feed now: a later feed change never reaches it
        feed: OracleFeed = staticcall IPriceOracle(ORACLE).feeds(underlying)
        assert feed.aggregator != empty(address), "settlement: no feed for the underlying"
        unit: uint256 = 10**convert(staticcall IERC20Detailed(underlying).decimals(), uint256)
        self.series[sid] = Series(underlying=underlying, quote=quote, expiry=expiry, unit=unit, feed=feed.aggregator, feed_decimals=feed.feed_decimals)
        log SeriesRegistered(series=sid, underlying=underlying, expiry=expiry, feed=feed.aggregator)
    ins: orders.Instrument = orders.Instrument(kind=orders.KIND_OPTION, base=underlying, quote=quote, strike=strike, expiry=expiry, is_call=is_call)
    return self._register(ins)


@internal
def _register(ins: orders.Instrument) -> bytes32:
    id: bytes32 = orders.instrument_id(ins)
    if not self.registered[id]:
        self.registered[id] = True
        self.instruments[id] = ins
        log InstrumentRegistered(id=id, kind=ins.kind, base=ins.base, quote=ins.quote, strike=ins.strike, expiry=ins.expiry, is_call=ins.is_call)
    return id


@external
def register_pool(pair: address):
    """
    @notice Allows a Uniswap v2 pair as a batch interaction. Owner only.
    @param pair The pair.
    """
    ownable._check_owner()
    self.pool_registered[pair] = True
    log PoolRegistered(pair=pair)


@external
def queue_collateral(token: address, haircut_bps_: uint256) -> bytes32:
    """
    @notice Queues a change of an existing collateral token's haircut; `set_collateral` with
            the same arguments applies it after the delay. Owner only. A higher haircut can
            fail wallets' margin (blocking withdrawals), a lower one weakens what covers the
            shorts, so both wait; 10000 removes the token's value (deregistration).
    @param token The collateral token.
    @param haircut_bps_ The new haircut in basis points.
    @return bytes32 The change id.
    """
    return timelock._queue(SET_COLLATERAL, abi_encode(token, haircut_bps_))


@external
def set_collateral(token: address, haircut_bps_: uint256):
    """
    @notice Makes a token count as margin collateral at oracle price minus `haircut_bps_`.
            Owner only. Adding a token applies at once (it can only add value to the wallets
            that hold it); changing an existing token's haircut must have been queued with
            `queue_collateral` and waited out the delay. A haircut of 10000 makes it worthless.
    @param token The token (it needs an oracle feed).
    @param haircut_bps_ The haircut in basis points.
    """
    if self.collateral_unit[token] == 0:
        ownable._check_owner()
    else:
        timelock._apply(SET_COLLATERAL, abi_encode(token, haircut_bps_))
    assert haircut_bps_ <= BPS, "settlement: haircut above 100%"
    assert token != OPTION_QUOTE, "settlement: quote is not haircut collateral"
    if self.collateral_unit[token] == 0:
        self._collateral.append(token)
        self.collateral_unit[token] = 10**convert(staticcall IERC20Detailed(token).decimals(), uint256)
    self.haircut_bps[token] = haircut_bps_
    log CollateralSet(token=token, haircut_bps=haircut_bps_)


# --------------------------------------------------------------------------- settle

@internal
def _book(wallet: address, token: address, delta: int256):
    # delta > 0: the wallet receives (this contract pays it)
    self._t_net[wallet][token] += delta


@internal
def _register_token(token: address):
    if self._t_token_start[token] == 0:
        self._t_token_start[token] = 1 + staticcall IERC20(token).balanceOf(self)
        self._t_tokens.append(token)


@internal
def _leg(wallet: address, digest: bytes32, ins: orders.Instrument, id: bytes32, is_buy: bool, amount: uint256, quote: uint256):
    a: int256 = convert(amount, int256)
    q: int256 = convert(quote, int256)
    if not is_buy:
        a = -a
        q = -q
    if ins.kind == orders.KIND_SPOT:
        self._book(wallet, ins.base, a)
    else:
        assert self.is_wallet[wallet], "settlement: unknown wallet"
        if self._t_option_net[id] == 0:
            if id not in self._t_options:
                self._t_options.append(id)
        self._t_option_net[id] += a
        sid: bytes32 = orders.series_id(ins.base, ins.quote, ins.expiry)
        if not self.in_series[sid][wallet]:
            self.in_series[sid][wallet] = True
            self._series_wallets[sid].append(wallet)
    self._book(wallet, ins.quote, -q)
    log Fill(digest=digest, amount=amount, quote=quote)


@internal
def _hold_contract_sig(signatures: DynArray[Bytes[MAX_CONTRACT_SIG], MAX_CONTRACT_SIGS], sig: orders.Signature):
    # the wallet being applied reads it back (contract_signature) to ask its owner (EIP-1271)
    index: uint256 = convert(sig.r, uint256)
    assert index < len(signatures), "settlement: no contract signature"
    self._t_contract_sig = signatures[index]


@external
@view
def contract_signature() -> Bytes[MAX_CONTRACT_SIG]:
    """
    @notice During `settle`: the contract owner's signature of the item being applied (the
            item's sig.v is 0 and sig.r its index in `Batch.signatures`); empty otherwise.
    @return Bytes The signature bytes.
    """
    return self._t_contract_sig


@external
@nonreentrant
def settle(batch: Batch):
    """
    @notice Settles a batch atomically (operators only): applies every order and strategy
            fill through its wallet, runs the AMM swaps, pays every wallet its net inflow,
            and has every touched wallet check payment and margin. Reverts entirely if any
            leg, swap, transfer or check fails, or if the batch does not balance exactly.
    @param batch The batch: id (for the audit trail), the instruments it trades (preimages),
           order fills, strategy fills and swaps (see docs/onchain-types.md).
    """
    assert self.is_operator[msg.sender], "settlement: not operator"
    batch_id: uint256 = batch.batch_id
    n_orders: uint256 = len(batch.orders)
    n_strategies: uint256 = len(batch.strategies)

    # 0. instruments (hashed and checked once) and each wallet's last item
    # every token the batch can move, with this contract's balance before anything moves
    ids: DynArray[bytes32, MAX_BATCH_INSTRUMENTS] = []
    for ins: orders.Instrument in batch.instruments:
        id: bytes32 = orders.instrument_id(ins)
        assert self.registered[id], "settlement: unknown instrument"
        ids.append(id)
        if ins.kind == orders.KIND_SPOT:
            self._register_token(ins.base)
        self._register_token(ins.quote)

    swap_out: DynArray[address, MAX_SWAPS] = []
    for sw: Swap in batch.swaps:
        assert self.pool_registered[sw.pair], "settlement: unknown pool"
        t0: address = staticcall IUniswapV2Pair(sw.pair).token0()
        t1: address = staticcall IUniswapV2Pair(sw.pair).token1()
        if sw.token_in == t0:
            swap_out.append(t1)
        else:
            assert sw.token_in == t1, "settlement: token not in pool"
            swap_out.append(t0)
        self._register_token(t0)
        self._register_token(t1)
    # Spot legs need no wallet-registry check: whatever a wallet contract does, the batch only
    # settles if this contract's balances end exactly where they started and every genuine
    # wallet received what it is owed. Option legs do (see _leg): the CCP needs solvent shorts.
    wallets: DynArray[address, MAX_WALLETS] = []
    for i: uint256 in range(MAX_ORDERS):
        if i >= n_orders:
            break
        w: address = batch.orders[i].wallet
        if self._t_last[w] == 0:
            wallets.append(w)
        self._t_last[w] = i + 1
    for j: uint256 in range(MAX_STRATEGIES):
        if j >= n_strategies:
            break
        w: address = batch.strategies[j].wallet
        if self._t_last[w] == 0:
            wallets.append(w)
        self._t_last[w] = MAX_ORDERS + j + 1

    # 1. apply (each wallet verifies its legs; on its last one it pays its net outflows here)
    for i: uint256 in range(MAX_ORDERS):
        if i >= n_orders:
            break
        item: OrderItem = batch.orders[i]
        ins: orders.Instrument = batch.instruments[item.instrument]
        id: bytes32 = ids[item.instrument]
        fill: orders.OrderFill = orders.OrderFill(
            order=orders.Order(instrument=id, is_buy=item.is_buy, amount=item.amount, limit_price=item.limit_price, nonce=item.nonce, deadline=item.deadline),
            sig=item.sig,
            fill=item.fill,
            quote=item.quote,
        )
        if item.sig.v == 0:
            self._hold_contract_sig(batch.signatures, item.sig)
        digest: bytes32 = empty(bytes32)
        deferred: bool = False
        digest, deferred = extcall IMarginWallet(item.wallet).apply_order(fill, ins, self._t_last[item.wallet] == i + 1, empty(address))
        self._leg(item.wallet, digest, ins, id, item.is_buy, item.fill, item.quote)

    for j: uint256 in range(MAX_STRATEGIES):
        if j >= n_strategies:
            break
        item: StrategyItem = batch.strategies[j]
        legs: DynArray[orders.Leg, orders.MAX_LEGS] = []
        leg_ins: DynArray[orders.Instrument, orders.MAX_LEGS] = []
        quotes: DynArray[uint256, orders.MAX_LEGS] = []
        net: int256 = 0
        for leg: LegItem in item.legs:
            legs.append(orders.Leg(instrument=ids[leg.instrument], is_buy=leg.is_buy, ratio=leg.ratio))
            leg_ins.append(batch.instruments[leg.instrument])
            quotes.append(leg.quote)
            if leg.is_buy:
                net += convert(leg.quote, int256)
            else:
                net -= convert(leg.quote, int256)
        fill: orders.StrategyFill = orders.StrategyFill(
            strategy=orders.Strategy(legs=legs, amount=item.amount, limit_net_price=item.limit_net_price, nonce=item.nonce, deadline=item.deadline),
            sig=item.sig,
            fill=item.fill,
            quotes=quotes,
        )
        if item.sig.v == 0:
            self._hold_contract_sig(batch.signatures, item.sig)
        digest: bytes32 = extcall IMarginWallet(item.wallet).apply_strategy(fill, leg_ins, self._t_last[item.wallet] == MAX_ORDERS + j + 1)
        for leg: LegItem in item.legs:
            self._leg(item.wallet, digest, batch.instruments[leg.instrument], ids[leg.instrument], leg.is_buy, item.fill * leg.ratio, leg.quote)
        log StrategyFilled(batch_id=batch_id, wallet=item.wallet, digest=digest, fill=item.fill, net_quote=net)

    # 2. interactions
    for k: uint256 in range(MAX_SWAPS):
        if k >= len(batch.swaps):
            break
        sw: Swap = batch.swaps[k]
        token_out: address = swap_out[k]
        out0: uint256 = 0
        out1: uint256 = 0
        if convert(token_out, uint256) < convert(sw.token_in, uint256):
            out0 = sw.amount_out  # Uniswap v2 sorts token0 < token1
        else:
            out1 = sw.amount_out
        assert extcall IERC20(sw.token_in).transfer(sw.pair, sw.amount_in, default_return_value=True), "settlement: transfer failed"
        extcall IUniswapV2Pair(sw.pair).swap(out0, out1, self, b"")
        log SwapExecuted(batch_id=batch_id, pair=sw.pair, token_in=sw.token_in, amount_in=sw.amount_in, token_out=token_out, amount_out=sw.amount_out)

    # 3. pay
    tokens: DynArray[address, MAX_BATCH_TOKENS] = self._t_tokens
    for w: address in wallets:
        for t: address in tokens:
            net: int256 = self._t_net[w][t]
            if net != 0:
                self._t_net[w][t] = 0
                if net > 0:
                    assert extcall IERC20(t).transfer(w, convert(net, uint256), default_return_value=True), "settlement: transfer failed"

    # 4. finish
    for w: address in wallets:
        extcall IMarginWallet(w).finish()
        self._t_last[w] = 0

    # the batch must balance exactly
    # the batch must balance exactly: this contract ends with what it started with
    for t: address in tokens:
        assert staticcall IERC20(t).balanceOf(self) + 1 == self._t_token_start[t], "settlement: tokens not conserved"
        self._t_token_start[t] = 0
    for id: bytes32 in self._t_options:
        assert self._t_option_net[id] == 0, "settlement: option legs unmatched"
    self._t_options = []
    self._t_tokens = []
    log BatchSettled(batch_id=batch_id, operator=msg.sender, orders=len(batch.orders), strategies=len(batch.strategies), swaps=len(batch.swaps))


@external
@nonreentrant
def settle_pairs(batch: PairBatch):
    """
    @notice Settles a batch of spot trades between wallets atomically (operators only). For
            each pair the buyer's wallet verifies its signed order and pays the quote straight
            to the seller's wallet, then the seller's wallet verifies its own and pays the fill
            straight to the buyer's; this contract checks that each was paid. Nothing passes
            through this contract. Reverts entirely if any check or transfer fails.
    @param batch The batch: id (for the audit trail), the spot instruments it trades
           (preimages), the pairs and the contract owners' signatures (see
           docs/onchain-types.md).
    """
    assert self.is_operator[msg.sender], "settlement: not operator"
    ids: DynArray[bytes32, MAX_BATCH_INSTRUMENTS] = []
    for ins: orders.Instrument in batch.instruments:
        assert ins.kind == orders.KIND_SPOT, "settlement: not spot"
        id: bytes32 = orders.instrument_id(ins)
        assert self.registered[id], "settlement: unknown instrument"
        ids.append(id)
    for p: Pair in batch.pairs:
        ins: orders.Instrument = batch.instruments[p.instrument]
        id: bytes32 = ids[p.instrument]
        buyer: address = p.buy.wallet
        seller: address = p.sell.wallet
        assert buyer != seller, "settlement: one wallet on both sides"
        quote_before: uint256 = staticcall IERC20(ins.quote).balanceOf(seller)
        base_before: uint256 = staticcall IERC20(ins.base).balanceOf(buyer)
        # the buyer first: it pays before it is paid, so a buyer with option positions checks
        # its margin in `finish` below; the seller, paid first, checks it inside its apply
        if p.buy.sig.v == 0:
            self._hold_contract_sig(batch.signatures, p.buy.sig)
        buy_digest: bytes32 = empty(bytes32)
        check_buyer: bool = False
        buy_digest, check_buyer = extcall IMarginWallet(buyer).apply_order(
            orders.OrderFill(
                order=orders.Order(instrument=id, is_buy=True, amount=p.buy.amount, limit_price=p.buy.limit_price, nonce=p.buy.nonce, deadline=p.buy.deadline),
                sig=p.buy.sig,
                fill=p.fill,
                quote=p.quote,
            ),
            ins,
            False,
            seller,
        )
        if p.sell.sig.v == 0:
            self._hold_contract_sig(batch.signatures, p.sell.sig)
        sell_digest: bytes32 = empty(bytes32)
        check_seller: bool = False
        sell_digest, check_seller = extcall IMarginWallet(seller).apply_order(
            orders.OrderFill(
                order=orders.Order(instrument=id, is_buy=False, amount=p.sell.amount, limit_price=p.sell.limit_price, nonce=p.sell.nonce, deadline=p.sell.deadline),
                sig=p.sell.sig,
                fill=p.fill,
                quote=p.quote,
            ),
            ins,
            True,
            buyer,
        )
        assert staticcall IERC20(ins.quote).balanceOf(seller) >= quote_before + p.quote, "settlement: not paid"
        assert staticcall IERC20(ins.base).balanceOf(buyer) >= base_before + p.fill, "settlement: not paid"
        if check_buyer:
            # the buyer holds option positions: its margin, now that it was paid
            extcall IMarginWallet(buyer).finish()
        log Traded(buy=buy_digest, sell=sell_digest, amount=p.fill, quote=p.quote)
    log BatchSettled(batch_id=batch.batch_id, operator=msg.sender, orders=2 * len(batch.pairs), strategies=0, swaps=0)


# --------------------------------------------------------------------------- expiry

@internal
@view
def _round(feed: address, round_id: uint80) -> (bool, int256, uint256):
    """
    @dev (exists, answer, updatedAt) of a feed round; a round the feed cannot return (it
         reverts, or is incomplete or empty) does not exist.
    """
    ok: bool = False
    ret: Bytes[160] = b""
    ok, ret = raw_call(feed, abi_encode(round_id, method_id=method_id("getRoundData(uint80)")), max_outsize=160, is_static_call=True, revert_on_failure=False)
    if not ok or len(ret) != 160:
        return False, 0, 0
    rid: uint80 = 0
    answer: int256 = 0
    started: uint256 = 0
    updated: uint256 = 0
    answered_in: uint80 = 0
    rid, answer, started, updated, answered_in = abi_decode(ret, (uint80, int256, uint256, uint256, uint80))
    if updated == 0 or answered_in < rid:
        return False, 0, 0
    return True, answer, updated


@internal
def _close_series(series_: bytes32, s: Series, round_id: uint80, price: uint256, updated_at: uint256):
    """
    @dev Closes every wallet's positions in the series at `price` (0: no payoff), collects
         what shorts owe (quote first, then underlying) and pays longs (quote first, then
         underlying). Debts round up and credits down, so it never pays more than it
         collected.
    """
    self.series_settled[series_] = True
    self.expiry_price[series_] = price
    wallets: DynArray[address, MAX_SERIES_WALLETS] = self._series_wallets[series_]
    credits: DynArray[uint256, MAX_SERIES_WALLETS] = []
    collected_q: uint256 = 0
    collected_u: uint256 = 0
    for w: address in wallets:
        pq: uint256 = 0
        pu: uint256 = 0
        c: uint256 = 0
        pq, pu, c = extcall IMarginWallet(w).settle_series(s.underlying, s.quote, s.expiry, price)
        collected_q += pq
        collected_u += pu
        credits.append(c)
    pool_q: uint256 = collected_q
    pool_u: uint256 = collected_u
    for i: uint256 in range(MAX_SERIES_WALLETS):
        if i >= len(wallets):
            break
        c: uint256 = credits[i]
        if c == 0:
            continue
        pay_q: uint256 = min(c, pool_q)
        pool_q -= pay_q
        pay_u: uint256 = (c - pay_q) * s.unit // price
        pool_u -= pay_u
        if pay_q > 0:
            assert extcall IERC20(s.quote).transfer(wallets[i], pay_q, default_return_value=True), "settlement: transfer failed"
        if pay_u > 0:
            assert extcall IERC20(s.underlying).transfer(wallets[i], pay_u, default_return_value=True), "settlement: transfer failed"
        log ExpiryPaid(series=series_, wallet=wallets[i], quote=pay_q, underlying=pay_u)
    log ExpirySettled(series=series_, round_id=round_id, price=price, updated_at=updated_at, collected_quote=collected_q, collected_underlying=collected_u, paid_quote=collected_q - pool_q, paid_underlying=collected_u - pool_u)


@external
@nonreentrant
def settle_expiry(series_: bytes32, round_id: uint80):
    """
    @notice Settles an options series at expiry; anyone may call (the owner's escape hatch
            needs no operator). The price is the round at expiry of the feed the series bound
            when it was registered: `round_id` must be updated at or after expiry and its
            previous round before it, so no caller can pick a later, more convenient answer.
            If the feed has no usable round at expiry once `EXPIRY_GRACE` has passed, the last
            round before expiry settles it instead (the round at expiry is missing or has no
            valid answer). Closes every wallet's positions in the series, collects what shorts
            owe and pays longs.
    @param series_ The series id.
    @param round_id The feed's round at expiry (or, after the grace period with no usable
           round at expiry, its last round before expiry).
    """
    s: Series = self.series[series_]
    assert s.unit != 0, "settlement: unknown series"
    expiry: uint256 = convert(s.expiry, uint256)
    assert block.timestamp >= expiry, "settlement: not expired"
    assert not self.series_settled[series_], "settlement: already settled"
    exists: bool = False
    answer: int256 = 0
    updated: uint256 = 0
    exists, answer, updated = self._round(s.feed, round_id)
    assert exists, "settlement: no such round"
    assert answer > 0, "settlement: bad answer"
    if updated >= expiry:
        # the round at expiry: the first one updated at or after it
        prev_exists: bool = False
        prev_answer: int256 = 0
        prev_updated: uint256 = 0
        if round_id > 0:
            prev_exists, prev_answer, prev_updated = self._round(s.feed, round_id - 1)
        # a missing previous round is accepted only for the feed's first round: a gap could
        # otherwise make a later round look like the first one at expiry
        assert (prev_exists and prev_updated < expiry) or (not prev_exists and round_id == 1), "settlement: not the round at expiry"
    else:
        # the last round before expiry, only once the grace period has passed without a
        # usable round at expiry
        assert block.timestamp >= expiry + EXPIRY_GRACE, "settlement: grace period not over"
        next_exists: bool = False
        next_answer: int256 = 0
        next_updated: uint256 = 0
        next_exists, next_answer, next_updated = self._round(s.feed, round_id + 1)
        assert not next_exists or (next_updated >= expiry and next_answer <= 0), "settlement: not the last round before expiry"
    price: uint256 = staticcall IPriceOracle(ORACLE).scale(answer, s.feed_decimals)
    self._close_series(series_, s, round_id, price, updated)


@external
@nonreentrant
def unwind_expiry(series_: bytes32):
    """
    @notice Unwinds a series whose bound feed no longer answers (its latest round reverts or
            is not positive) once twice `EXPIRY_GRACE` has passed after expiry, so that the
            price fallbacks of `settle_expiry` had a whole grace period first: every position
            closes at no payoff and all collateral is free again. Anyone may call; funds are
            never locked forever by a dead feed.
    @param series_ The series id.
    """
    s: Series = self.series[series_]
    assert s.unit != 0, "settlement: unknown series"
    assert block.timestamp >= convert(s.expiry, uint256) + 2 * EXPIRY_GRACE, "settlement: grace period not over"
    assert not self.series_settled[series_], "settlement: already settled"
    ok: bool = False
    ret: Bytes[160] = b""
    ok, ret = raw_call(s.feed, method_id("latestRoundData()"), max_outsize=160, is_static_call=True, revert_on_failure=False)
    if ok and len(ret) == 160:
        rid: uint80 = 0
        answer: int256 = 0
        started: uint256 = 0
        updated: uint256 = 0
        answered_in: uint80 = 0
        rid, answer, started, updated, answered_in = abi_decode(ret, (uint80, int256, uint256, uint256, uint80))
        assert answer <= 0, "settlement: the feed answers"
    self._close_series(series_, s, 0, 0, 0)


# --------------------------------------------------------------------------- risk view

@external
@view
def margin_inputs(wallet: address) -> MarginInputs:
    """
    @notice Everything the margin rule of `wallet` reads, in one call (for the off-chain risk
            mirror): its settlement, option quote, open positions with their metadata in
            open-list order, its balance of the option quote, of each underlying and of each
            collateral token, and this contract's collateral tokens with unit, haircut and
            oracle price (0 where the oracle refuses one now).
    @param wallet The MarginWallet.
    @return MarginInputs The inputs.
    """
    quote: address = staticcall IMarginWallet(wallet).option_quote()
    out: MarginInputs = MarginInputs(settlement=staticcall IMarginWallet(wallet).settlement(), option_quote=quote, positions=[], balances=[], tokens=[], collateral=[])
    if quote != empty(address):
        out.tokens.append(quote)
    ids: DynArray[bytes32, MAX_OPEN] = staticcall IMarginWallet(wallet).open_positions()
    for id: bytes32 in ids:
        underlying: address = empty(address)
        expiry: uint64 = 0
        is_call: bool = False
        strike: uint256 = 0
        underlying, expiry, is_call, strike = staticcall IMarginWallet(wallet).option_meta(id)
        out.positions.append(OpenPosition(id=id, underlying=underlying, expiry=expiry, strike=strike, is_call=is_call, size=staticcall IMarginWallet(wallet).position(id)))
        if underlying not in out.tokens:
            out.tokens.append(underlying)
    for token: address in self._collateral:
        if token not in out.tokens:
            out.tokens.append(token)
        ok: bool = False
        ret: Bytes[32] = b""
        ok, ret = raw_call(ORACLE, abi_encode(token, method_id=method_id("price(address)")), max_outsize=32, is_static_call=True, revert_on_failure=False)
        price: uint256 = 0
        if ok and len(ret) == 32:
            price = convert(ret, uint256)
        out.collateral.append(CollateralInput(token=token, unit=self.collateral_unit[token], haircut_bps=self.haircut_bps[token], price=price))
    for token: address in out.tokens:
        out.balances.append(staticcall IERC20(token).balanceOf(wallet))
    return out
