# pragma version ~=0.4.3
"""
@title Isthmus order types and EIP-712 struct hashing
@notice The structs fixed in docs/onchain-types.md and their `hashStruct`, plus the
        instrument id. Pure functions, no state: import it and call.
"""

# A strategy has at most this many legs.
MAX_LEGS: constant(uint256) = 8

KIND_SPOT: constant(uint8) = 0
KIND_OPTION: constant(uint8) = 1

ORDER_TYPEHASH: constant(bytes32) = keccak256(
    "Order(bytes32 instrument,bool is_buy,uint256 amount,uint256 limit_price,uint256 nonce,uint64 deadline)"
)
LEG_TYPEHASH: constant(bytes32) = keccak256("Leg(bytes32 instrument,bool is_buy,uint256 ratio)")
STRATEGY_TYPEHASH: constant(bytes32) = keccak256(
    "Strategy(Leg[] legs,uint256 amount,int256 limit_net_price,uint256 nonce,uint64 deadline)Leg(bytes32 instrument,bool is_buy,uint256 ratio)"
)


struct Order:
    instrument: bytes32
    is_buy: bool
    amount: uint256
    limit_price: uint256
    nonce: uint256
    deadline: uint64


struct Leg:
    instrument: bytes32
    is_buy: bool
    ratio: uint256


struct Strategy:
    legs: DynArray[Leg, MAX_LEGS]
    amount: uint256
    limit_net_price: int256
    nonce: uint256
    deadline: uint64


# The preimage of an instrument id.
struct Instrument:
    kind: uint8
    base: address
    quote: address
    strike: uint256
    expiry: uint64
    is_call: bool


# A 65-byte signature r || s || v, passed as three words (v in {27, 28}, s <= n/2).
struct Signature:
    v: uint8
    r: bytes32
    s: bytes32


# One signed order and how much of it this batch fills (Settlement -> wallet).
struct OrderFill:
    order: Order
    sig: Signature
    fill: uint256  # base units
    quote: uint256  # quote units paid (buy) or received (sell) for `fill`


# One signed strategy and how much of it this batch fills (Settlement -> wallet).
struct StrategyFill:
    strategy: Strategy
    sig: Signature
    fill: uint256  # strategy units (leg i moves fill * ratio_i base units)
    quotes: DynArray[uint256, MAX_LEGS]  # per leg: quote paid (buy leg) or received (sell leg)


@internal
@pure
def hash_order_struct(o: Order) -> bytes32:
    """
    @dev `hashStruct(Order)`.
    """
    return keccak256(
        abi_encode(ORDER_TYPEHASH, o.instrument, o.is_buy, o.amount, o.limit_price, o.nonce, o.deadline)
    )


@internal
@pure
def hash_strategy_struct(s: Strategy) -> bytes32:
    """
    @dev `hashStruct(Strategy)`; the `Leg[]` member is keccak of the concatenated leg hashes.
    """
    hashes: DynArray[bytes32, MAX_LEGS] = []
    for leg: Leg in s.legs:
        hashes.append(keccak256(abi_encode(LEG_TYPEHASH, leg.instrument, leg.is_buy, leg.ratio)))
    # abi_encode of a lone dynamic array is (offset, length, items...): skip the 64-byte head.
    packed: Bytes[320] = abi_encode(hashes)
    legs_hash: bytes32 = keccak256(slice(packed, 64, 32 * len(hashes)))
    return keccak256(
        abi_encode(STRATEGY_TYPEHASH, legs_hash, s.amount, s.limit_net_price, s.nonce, s.deadline)
    )


@internal
@pure
def instrument_id(i: Instrument) -> bytes32:
    """
    @dev keccak256(abi.encode(uint8 kind, address base, address quote, uint256 strike,
         uint64 expiry, bool is_call)).
    """
    return keccak256(abi_encode(i.kind, i.base, i.quote, i.strike, i.expiry, i.is_call))


@internal
@pure
def series_id(underlying: address, quote: address, expiry: uint64) -> bytes32:
    """
    @dev The options series (one underlying, quote and expiry): keccak256(abi.encode(
         address underlying, address quote, uint64 expiry)).
    """
    return keccak256(abi_encode(underlying, quote, expiry))
