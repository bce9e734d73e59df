"""The trader's `MarginWallet` on chain: create it, deposit, withdraw, set the owner's limits,
cancel orders, manage trading keys and, after an option expiry, settle the series without the
operator (the escape hatch).

Every transaction is built here, its gas estimated, signed in this process with the
`Signer`'s key (which never leaves it), sent, and waited for. A transaction the contracts
refuse raises `ChainError` whose `reason` says why in words a trader understands (for
example how much is free to withdraw), with the contract's own revert string in `revert`:

    ops = WalletOps(chain.rpc_url, Signer.from_keystore("owner.json"), chain)
    ops.create()
    ops.deposit("USDC", Decimal("2500"))
    print(ops.show())

Amounts are `Decimal`s in whole tokens, converted to token units exactly: an amount finer
than the token's decimals is refused, never rounded. Notional limits are in the chain's quote
token (the Settlement's option quote token, USDC on the devnet), in which every listed
instrument is quoted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any, Final, cast

from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception, Web3RPCError
from web3.types import TxParams, TxReceipt

from isthmus_client.contracts import ERC20_ABI, abi
from isthmus_client.credentials import Signer
from isthmus_client.errors import ChainError
from isthmus_client.models import ChainInfo
from isthmus_client.signing import OrderMessage, Token

__all__ = [
    "NO_KEY_LIMIT",
    "REVERT_REASONS",
    "KeyView",
    "MarginStatus",
    "OptionPosition",
    "TxResult",
    "WalletOps",
    "WalletView",
]

_MAX_UINT256: Final = (1 << 256) - 1
NO_KEY_LIMIT: Final = (1 << 128) - 1
"""A trading key's `max_notional` on chain meaning "no limit" (`add_key(max_notional=0)`)."""
_MAX_KEY_INSTRUMENTS: Final = 16  # MarginWallet keys._MAX_KEY_INSTRUMENTS
_GAS_MULTIPLIER: Final = 1.25  # estimates can be tight; unused gas is not charged
_GAS_HEADROOM: Final = 20_000
_MAX_FEED_ROUNDS: Final = 10_000  # feed rounds walked back to find the round at expiry
_MAX_MISSING_ROUNDS: Final = 16  # consecutive missing rounds walked past (a longer gap: a phase)
_ERROR_SELECTOR: Final = bytes.fromhex("08c379a0")  # Error(string)
_PANIC_SELECTOR: Final = bytes.fromhex("4e487b71")  # Panic(uint256)

_ROUND_OUTPUTS: Final = [
    {"name": "roundId", "type": "uint80"},
    {"name": "answer", "type": "int256"},
    {"name": "startedAt", "type": "uint256"},
    {"name": "updatedAt", "type": "uint256"},
    {"name": "answeredInRound", "type": "uint80"},
]
_AGGREGATOR_ABI: Final[list[dict[str, Any]]] = [
    {
        "type": "function",
        "name": "latestRoundData",
        "stateMutability": "view",
        "inputs": [],
        "outputs": _ROUND_OUTPUTS,
    },
    {
        "type": "function",
        "name": "getRoundData",
        "stateMutability": "view",
        "inputs": [{"name": "roundId", "type": "uint80"}],
        "outputs": _ROUND_OUTPUTS,
    },
]

REVERT_REASONS: Final[Mapping[str, str]] = {
    # MarginWallet: the owner's operations
    "wallet: not owner": "only the wallet's owner ({owner}) can do this, and {signer} is not",
    "wallet: not owner or key": (
        "only the wallet's owner ({owner}) or one of its active trading keys can cancel its "
        "orders, and {signer} is neither"
    ),
    "wallet: margin": "the wallet would no longer cover the margin of its open option positions",
    "wallet: batch in progress": "the wallet is in the middle of a settlement batch: try again",
    "wallet: transfer failed": "the token refused the transfer",
    "wallet: open positions": (
        "the wallet has open option positions: its Settlement contract cannot change until "
        "they are closed or settled at expiry"
    ),
    "wallet: nonce decreases": (
        "the wallet's minimum nonce can only go up: it is {min_nonce} already"
    ),
    "wallet: bad key": (
        "a trading key must be an address other than zero and other than the wallet's owner"
    ),
    "wallet: key expiry in the past": "a trading key's expiry must be in the future",
    "wallet: key limit too large": (
        "the trading key's maximum notional is too large for the wallet (it keeps 128 bits)"
    ),
    "wallet: zero owner": "a wallet needs an owner",
    # MarginWallet: what it checks when a batch applies a signed order
    "wallet: not settlement": "only the wallet's Settlement contract can do this",
    "wallet: paused": "the wallet's owner has paused trading",
    "wallet: already collected": "the batch applied a leg after collecting the wallet's payments",
    "wallet: instrument not allowed": (
        "the wallet's owner restricts trading to an allow-list, and this instrument is not on it"
    ),
    "wallet: option expired": "the option has expired: it no longer trades",
    "wallet: zero strike": "an option needs a strike above zero",
    "wallet: unknown kind": "the instrument is neither spot nor an option",
    "wallet: bad pair": "a spot pair needs two different tokens",
    "wallet: over max notional": (
        "the order's notional is over the maximum per order the wallet's owner set"
    ),
    "wallet: instrument mismatch": "the instrument is not the one the order was signed for",
    "wallet: limit price": "the fill's price is worse than the order's limit price",
    "wallet: strategy needs two legs": "a strategy needs two legs or more",
    "wallet: leg count": "the fill's legs do not match the strategy's",
    "wallet: zero ratio": "a strategy leg has a ratio of zero",
    "wallet: legs differ in base or quote": "a strategy's legs must share one base and one quote",
    "wallet: not collected": "the batch finished the wallet before collecting from it",
    "wallet: not paid": "the wallet was not paid what the batch owed it",
    "wallet: not expired": "the option series has not expired yet",
    "wallet: expired": "the order's deadline has passed",
    "wallet: nonce cancelled": (
        "the order's nonce is below the wallet's minimum nonce: the owner cancelled it"
    ),
    "wallet: zero fill": "a fill of nothing",
    "wallet: nonce used": "an order with this nonce has filled already (a nonce is single-use)",
    "wallet: cancelled": "the order was cancelled",
    "wallet: overfill": "the fill is larger than what remains of the order",
    "wallet: bad signature": (
        "the signature is neither the owner's nor one of an authorised trading key"
    ),
    "wallet: bad signature v": "the signature's v is neither 27 nor 28",
    "wallet: key expired": "the trading key that signed has expired",
    "wallet: key scope": "the trading key that signed may not trade this instrument",
    "wallet: key max notional": "the order's notional is over the trading key's maximum",
    "wallet: one option quote per wallet": (
        "all of a wallet's open options must settle in one quote token"
    ),
    "wallet: too many positions": "the wallet has the maximum of 16 open option positions",
    # WalletFactory
    "factory: owner has a wallet": "{signer} has a wallet already",
    "factory: zero owner": "a wallet needs an owner",
    "factory: gas for seeding": (
        "the transaction ran short of gas to seed the new wallet: send it with more gas"
    ),
    "factory: not owner": "only the factory's owner can do this",
    # Settlement: the escape hatch at expiry
    "settlement: unknown series": "no such options series is listed on this Settlement",
    "settlement: not expired": "the option series has not expired yet",
    "settlement: already settled": "the option series is settled already",
    "settlement: no such round": "the price feed has no such round",
    "settlement: bad answer": "the price feed's round has no valid (positive) answer",
    "settlement: not the round at expiry": (
        "the round named is not the feed's round at expiry (the first one at or after it)"
    ),
    "settlement: grace period not over": (
        "the feed has no usable round at expiry yet, and the grace period after expiry, after "
        "which the last round before expiry settles the series, is not over"
    ),
    "settlement: not the last round before expiry": (
        "the round named is not the feed's last round before expiry"
    ),
    "settlement: the feed answers": (
        "the series' price feed still answers: the series settles at its price, not unwinds"
    ),
    # Settlement: batches and administration
    "settlement: not operator": "only an operator of the Settlement can submit batches",
    "settlement: unknown instrument": "the instrument is not registered on this Settlement",
    "settlement: unknown wallet": "the wallet was not created by this Settlement's factory",
    "settlement: unknown pool": "the pool is not registered on this Settlement",
    "settlement: token not in pool": "the swap's token is not in the pool",
    "settlement: transfer failed": "a token refused a transfer of the Settlement",
    "settlement: tokens not conserved": "the batch does not balance: tokens would be left over",
    "settlement: option legs unmatched": "the batch's option buys and sells do not match",
    "settlement: no contract signature": "the batch misses a contract owner's signature",
    "settlement: not factory": "only the wallet factory can register a wallet",
    "settlement: factory set": "the Settlement's factory is set already",
    "settlement: bad pair": "a spot pair needs two different, non-zero tokens",
    "settlement: options settle in the option quote": (
        "options settle in the Settlement's option quote token only"
    ),
    "settlement: bad underlying": "the option's underlying must differ from its quote",
    "settlement: zero strike": "an option needs a strike above zero",
    "settlement: expiry in the past": "an option's expiry must be in the future",
    "settlement: no feed for the underlying": "the oracle has no price feed for the underlying",
    "settlement: haircut above 100%": "a collateral haircut is at most 100%",
    "settlement: quote is not haircut collateral": "the option quote token counts in full",
    # PriceOracle (read when the margin counts collateral at oracle price)
    "oracle: no feed": "the oracle has no price feed for this token",
    "oracle: bad answer": "the price feed's answer is not positive",
    "oracle: incomplete round": "the price feed's latest round is incomplete",
    "oracle: answer from the future": "the price feed's answer is dated in the future",
    "oracle: stale": (
        "the price feed's answer is too old: collateral valued at oracle price cannot be "
        "counted until the feed updates"
    ),
    "oracle: deviation": "the price feed's answer moved more than the oracle allows in one round",
    "oracle: zero aggregator": "a price feed needs an aggregator",
    "oracle: zero staleness": "a price feed needs a staleness bound",
    "oracle: deviation above 100%": "a deviation bound is at most 100%",
    # timelocked administration, ownership
    "timelock: already queued": "this change is queued already",
    "timelock: not queued": "this change was not queued",
    "timelock: delay not over": "this change's delay is not over",
    "ownable: caller is not the owner": "only the contract's owner can do this",
    # the ERC-20 tokens (snekmate's, as on the devnet)
    "erc20: transfer amount exceeds balance": "the sender does not hold that much of the token",
    "erc20: insufficient allowance": "the token's allowance is too small",
    "erc20: transfer to the zero address": "a token cannot be sent to the zero address",
}
"""What each revert string of the contracts (and of the devnet's ERC-20s) means, in words.
`{owner}`, `{signer}` and `{min_nonce}` are filled in from the wallet when a transaction
fails; a revert string not in this table is shown as it is."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class TxResult:
    """A confirmed transaction."""

    tx_hash: str
    block_number: int
    gas_used: int


@dataclass(frozen=True, slots=True)
class MarginStatus:
    """`MarginWallet.margin_status()`: the margin rule evaluated now, in the quote token.

    `required` is what the open option positions need, `available` the quote balance plus
    other collateral at oracle price minus its haircut, and `ok` whether the rule holds
    (including that the underlying covering short calls is held). With no open positions
    nothing is required, and `ok` holds."""

    required: Decimal
    available: Decimal
    ok: bool
    quote: str  # the quote token's symbol

    @property
    def free(self) -> Decimal:
        """How far `available` exceeds `required` (0 when it does not)."""
        return max(Decimal(0), self.available - self.required)


@dataclass(frozen=True, slots=True)
class OptionPosition:
    """One open option position of the wallet (European, cash-settled at expiry)."""

    instrument_id: bytes
    underlying: str  # symbol (the address when the chain lists no such token)
    quote: str
    expiry: datetime
    strike: Decimal  # quote per whole underlying
    is_call: bool
    size: Decimal  # in the underlying: long > 0, short < 0


@dataclass(frozen=True, slots=True)
class WalletView:
    """The wallet as the chain sees it now (`WalletOps.show`)."""

    owner: str
    wallet: str
    settlement: str
    balances: dict[str, Decimal]  # by token symbol, for every token the chain lists
    margin_status: MarginStatus
    paused: bool
    max_notional: Decimal | None  # per order, in the quote token; None: no limit (or no key)
    restrict_instruments: bool
    min_nonce: int
    positions: tuple[OptionPosition, ...]


@dataclass(frozen=True, slots=True)
class KeyView:
    """A trading key's scope (`MarginWallet.trading_key`). A key that was never authorised,
    or was revoked (revoking erases the record), has no `expires_at` and is not active."""

    key: str
    expires_at: datetime | None
    all_instruments: bool
    max_notional: Decimal | None  # per order, in the quote token; None: no limit (or no key)
    active: bool
    instruments: dict[bytes, bool]  # for the instruments asked about: on its allow-list?

    @property
    def exists(self) -> bool:
        """Whether the wallet holds a record for the key (authorised, possibly expired)."""
        return self.expires_at is not None


@dataclass(frozen=True, slots=True)
class _FeedRound:
    round_id: int
    answer: int
    updated_at: int


# --------------------------------------------------------------------------- helpers


def _to_units(amount: Decimal | int, decimals: int, what: str) -> int:
    """`amount` (whole tokens) in token units, exactly; refuses floats and finer amounts."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError(f"{what}: pass a Decimal (or an int), not {type(amount).__name__}")
    value = Decimal(amount)
    if not value.is_finite() or value < 0:
        raise ValueError(f"{what}: {amount} is not an amount")
    with localcontext() as context:
        context.prec = 100
        scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{what}: {amount} is finer than the token's {decimals} decimals")
    return int(scaled)


def _from_units(units: int, decimals: int) -> Decimal:
    with localcontext() as context:
        context.prec = 100
        return Decimal(units).scaleb(-decimals)


def _words(amount: Decimal) -> str:
    """An amount as a trader writes it: no exponent, no trailing zeros."""
    with localcontext() as context:
        context.prec = 100
        return format(amount.normalize(), "f")


def _timestamp(moment: datetime | int, what: str) -> int:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError(f"{what}: give the datetime a time zone (e.g. UTC)")
        return int(moment.timestamp())
    if isinstance(moment, bool) or not isinstance(moment, int):
        raise TypeError(f"{what}: pass a datetime or unix seconds")
    return moment


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _revert_string(error: Exception) -> str | None:
    """The revert string a node reported for `error` (None: it reverted without one)."""
    data = getattr(error, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        raw = bytes.fromhex(data[2:]) if len(data) % 2 == 0 else b""
        if raw[:4] == _ERROR_SELECTOR:
            try:
                (text,) = abi_decode(["string"], raw[4:])
                return str(text)
            except Exception:  # malformed revert data: fall back to the message
                pass
        elif raw[:4] == _PANIC_SELECTOR and len(raw) >= 36:
            return f"panic 0x{int.from_bytes(raw[4:36], 'big'):02x}"
        elif len(raw) >= 4:
            return f"custom error 0x{raw.hex()}"
    message = str(getattr(error, "message", None) or error)
    for prefix in ("execution reverted: ", "execution reverted:", "execution reverted"):
        if message.startswith(prefix):
            rest = message[len(prefix) :].strip()
            return rest or None
    return message or None


class _Facts(dict[str, str]):
    """Values for a reason's `{placeholders}`, each read from the chain when first needed."""

    def __init__(self, resolve: Callable[[str], str]) -> None:
        super().__init__()
        self._resolve = resolve

    def __missing__(self, key: str) -> str:
        value = self._resolve(key)
        self[key] = value
        return value


_Explanations = Mapping[str, Callable[[], str]]


# --------------------------------------------------------------------------- operations


class WalletOps:
    """A trader's operations on their `MarginWallet`, sent from `signer`'s key (the wallet's
    owner, for everything but `deposit`, `cancel` (a trading key may) and `settle_expiry`
    (anyone may)).

    `rpc_url` is the chain's JSON-RPC endpoint (the gateway publishes one in `ChainInfo`);
    `chain` is the gateway's `GET /v1/chain`. `progress`, if given, is told what happens to
    each transaction ("sent 0x… waiting for receipt", "confirmed in block N"); a receipt that
    does not come within `receipt_timeout` seconds raises `ChainError` with the hash (the
    transaction may still be mined: look it up before sending it again).

    The wallet is `signer.wallet` if set, else the one the factory created for the signer
    (`create` makes it). Transactions are signed here: the key is never sent anywhere. `w3`
    is the `Web3` connection used, for reads of your own."""

    def __init__(
        self,
        rpc_url: str,
        signer: Signer,
        chain: ChainInfo,
        *,
        progress: Callable[[str], None] | None = None,
        receipt_timeout: float = 120,
    ) -> None:
        self.rpc_url = rpc_url
        self.chain = chain
        self.progress = progress
        self.receipt_timeout = receipt_timeout
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        self._signer = signer
        self._wallet: str | None = (
            None if signer.wallet is None else to_checksum_address(signer.wallet)
        )
        self._checked_chain = False
        self._settlement = self.w3.eth.contract(
            address=to_checksum_address(chain.settlement), abi=abi("Settlement")
        )
        self._factory = self.w3.eth.contract(
            address=to_checksum_address(chain.wallet_factory), abi=abi("WalletFactory")
        )
        self._by_address = {to_checksum_address(t.address): t for t in chain.tokens.values()}
        self._quote: Token | None = None
        self._owner_of: str | None = None

    # ------------------------------------------------------------------ identity

    @property
    def signer(self) -> Signer:
        """The signer, bound to the wallet once it is known (after `create`)."""
        return self._signer

    @property
    def wallet(self) -> str:
        """The wallet's address: the signer's, or the one the factory holds for the signer's
        address. Raises `ChainError` if it has none yet (`create` makes one)."""
        if self._wallet is None:
            found = self._wallet_of(self._signer.address)
            if found is None:
                raise ChainError(
                    f"{self._signer.address} has no wallet on this chain yet: create() makes one"
                )
            self._bind(found)
        assert self._wallet is not None
        return self._wallet

    def create(self) -> str:
        """Create the signer's wallet through the `WalletFactory` (the signer becomes its
        owner), or return the one it has already: one wallet per owner. Binds the signer to
        the wallet and returns its address."""
        owner = self._signer.address
        existing = self._wallet_of(owner)
        if self._wallet is not None and self._wallet != existing:
            raise ChainError(
                f"{owner} signs for the wallet {self._wallet}, which it does not own: create() "
                "makes a key's own wallet (use a Signer without a wallet)"
            )
        if existing is None:
            self._send(self._factory.functions.create_wallet(), f"create a wallet for {owner}")
            existing = self._wallet_of(owner)
            if existing is None:
                raise ChainError(f"the factory recorded no wallet for {owner} after creating it")
        else:
            self._tell(f"{owner} has a wallet already: {existing}")
        self._bind(existing)
        return existing

    # ------------------------------------------------------------------ custody

    def deposit(self, symbol: str, amount: Decimal) -> TxResult:
        """Send `amount` of the token `symbol` from the signer's address to the wallet (an
        ERC-20 transfer: the wallet counts what it holds). Anyone may deposit to a wallet;
        it is checked to be one of the factory's before anything is sent."""
        token = self.chain.token(symbol)
        units = self._units(token, amount, "deposit")
        wallet = self.wallet
        if not self._factory.functions.is_wallet(wallet).call():
            raise ChainError(
                f"{wallet} is not a MarginWallet of this chain's factory: nothing was sent"
            )
        erc20 = self._erc20(token.address)
        sender = self._signer.address

        def short() -> str:
            held = self._amount(token, int(erc20.functions.balanceOf(sender).call()))
            return f"{sender} holds only {_words(held)} {symbol}"

        return self._send(
            erc20.functions.transfer(wallet, units),
            f"deposit {_words(Decimal(amount))} {symbol}",
            {"erc20: transfer amount exceeds balance": short},
        )

    def withdraw(self, symbol: str, amount: Decimal) -> TxResult:
        """Send `amount` of the token `symbol` from the wallet to its owner. Owner only; the
        wallet refuses what it needs for the margin of its open option positions
        (`withdrawable` says how much is free). Works while paused, without the operator."""
        token = self.chain.token(symbol)
        units = self._units(token, amount, "withdraw")
        wallet = self._wallet_contract()

        def over_margin() -> str:
            status = self.margin_status()
            return (
                "the wallet would not cover its margin after this withdrawal: at most "
                f"{_words(self.withdrawable(symbol))} {symbol} is free (its option positions "
                f"require {_words(status.required)} {status.quote}; it has "
                f"{_words(status.available)} {status.quote} "
                "of margin)"
            )

        def over_balance() -> str:
            held = self.balance(symbol)
            free = self.withdrawable(symbol)
            return (
                f"the wallet holds only {_words(held)} {symbol}: at most {_words(free)} "
                f"{symbol} is free"
            )

        return self._send(
            wallet.functions.withdraw(to_checksum_address(token.address), units),
            f"withdraw {_words(Decimal(amount))} {symbol}",
            {
                "wallet: margin": over_margin,
                "erc20: transfer amount exceeds balance": over_balance,
            },
        )

    def balance(self, symbol: str) -> Decimal:
        """The wallet's balance of the token `symbol`."""
        token = self.chain.token(symbol)
        return self._amount(token, self._balance_units(token.address))

    def withdrawable(self, symbol: str) -> Decimal:
        """The most of the token `symbol` the owner can withdraw now: the balance when no
        open option position needs it, else the largest amount after which the wallet still
        meets its margin rule (asked of the wallet itself, so it is exact)."""
        token = self.chain.token(symbol)
        return self._amount(token, self._withdrawable_units(token))

    def show(self) -> WalletView:
        """The wallet now: owner, balances of every listed token, margin status, the owner's
        limits and switches, the minimum nonce and the open option positions."""
        wallet = self._wallet_contract()
        functions = wallet.functions
        limit = int(functions.max_notional().call())
        return WalletView(
            owner=to_checksum_address(functions.owner().call()),
            wallet=self.wallet,
            settlement=to_checksum_address(functions.settlement().call()),
            balances={
                symbol: self._amount(token, self._balance_units(token.address))
                for symbol, token in self.chain.tokens.items()
            },
            margin_status=self.margin_status(),
            paused=bool(functions.paused().call()),
            max_notional=None
            if limit == _MAX_UINT256
            else self._amount(self._quote_token(), limit),
            restrict_instruments=bool(functions.restrict_instruments().call()),
            min_nonce=int(functions.min_nonce().call()),
            positions=self.positions(),
        )

    def margin_status(self) -> MarginStatus:
        """`MarginWallet.margin_status()` in the quote token of the wallet's options (the
        chain's quote token while it has none)."""
        wallet = self._wallet_contract()
        required, available, ok = wallet.functions.margin_status().call()
        quote = self._margin_quote()
        return MarginStatus(
            self._amount(quote, int(required)),
            self._amount(quote, int(available)),
            bool(ok),
            quote.symbol,
        )

    def positions(self) -> tuple[OptionPosition, ...]:
        """The wallet's open option positions."""
        functions = self._wallet_contract().functions
        found: list[OptionPosition] = []
        quote = self._margin_quote()
        for raw_id in functions.open_positions().call():
            instrument = bytes(raw_id)
            underlying, expiry, is_call, strike = functions.option_meta(instrument).call()
            size = int(functions.position(instrument).call())
            base = self._token_at(str(underlying))
            found.append(
                OptionPosition(
                    instrument_id=instrument,
                    underlying=base.symbol,
                    quote=quote.symbol,
                    expiry=datetime.fromtimestamp(int(expiry), UTC),
                    strike=self._amount(quote, int(strike)),
                    is_call=bool(is_call),
                    size=self._amount(base, size),
                )
            )
        return tuple(found)

    # ------------------------------------------------------------------ owner's limits

    def set_max_notional(self, amount: Decimal | int | None) -> TxResult:
        """Set the wallet's maximum notional per order (amount times limit price) in the
        quote token; `None` removes the limit. Owner only."""
        limit = (
            _MAX_UINT256
            if amount is None
            else self._units(self._quote_token(), amount, "max notional")
        )
        return self._send(
            self._wallet_contract().functions.set_max_notional(limit),
            "remove the maximum notional"
            if amount is None
            else f"set the maximum notional to {_words(Decimal(amount))}",
        )

    def set_restrict_instruments(self, restrict: bool) -> TxResult:
        """Switch the allow-list on (only instruments allowed with `allow_instrument` trade)
        or off. Owner only."""
        return self._send(
            self._wallet_contract().functions.set_restrict_instruments(bool(restrict)),
            f"turn the instrument allow-list {'on' if restrict else 'off'}",
        )

    def allow_instrument(self, instrument_id: bytes, allowed: bool) -> TxResult:
        """Put an instrument on the wallet's allow-list or take it off. Owner only."""
        return self._send(
            self._wallet_contract().functions.set_instrument_allowed(
                self._id(instrument_id), bool(allowed)
            ),
            f"{'allow' if allowed else 'disallow'} instrument 0x{bytes(instrument_id).hex()}",
        )

    def instrument_allowed(self, instrument_id: bytes) -> bool:
        """Whether the instrument is on the wallet's allow-list."""
        call = self._wallet_contract().functions.instrument_allowed(self._id(instrument_id))
        return bool(call.call())

    def pause(self) -> TxResult:
        """Stop all trading through the wallet until `unpause` (withdrawals still work).
        Owner only."""
        return self._send(self._wallet_contract().functions.pause(), "pause the wallet")

    def unpause(self) -> TxResult:
        """Resume trading. Owner only."""
        return self._send(self._wallet_contract().functions.unpause(), "unpause the wallet")

    # ------------------------------------------------------------------ cancels and nonces

    def cancel(self, digest: bytes) -> TxResult:
        """Cancel one order or strategy by its EIP-712 digest (`signing.digest`); what
        filled stays filled. The owner or an active trading key may."""
        return self._send(
            self._wallet_contract().functions.cancel(self._id(digest)),
            f"cancel 0x{bytes(digest).hex()}",
        )

    def cancel_below(self, nonce: int) -> TxResult:
        """Cancel every order and strategy whose nonce is below `nonce` (the wallet's new
        minimum nonce, which can only go up). Owner only."""
        return self._send(
            self._wallet_contract().functions.cancel_below(int(nonce)),
            f"cancel every order below nonce {nonce}",
        )

    def min_nonce(self) -> int:
        """Every order or strategy with a nonce below this is cancelled."""
        return int(self._wallet_contract().functions.min_nonce().call())

    def nonce_used(self, nonce: int) -> bool:
        """Whether an order with this nonce filled completely in one go (nonces are
        single-use; a partly filled order is tracked by digest instead)."""
        return bool(self._wallet_contract().functions.nonce_used(int(nonce)).call())

    def is_cancelled(self, digest: bytes) -> bool:
        """Whether the order or strategy with this digest was cancelled by `cancel`."""
        return bool(self._wallet_contract().functions.is_cancelled(self._id(digest)).call())

    def remaining(self, order: OrderMessage) -> int:
        """How much of a signed order can still fill, in base units (0 once filled,
        cancelled, below the minimum nonce or past its deadline)."""
        fields = (
            self._id(order.instrument),
            order.is_buy,
            order.amount,
            order.limit_price,
            order.nonce,
            order.deadline,
        )
        return int(self._wallet_contract().functions.remaining(fields).call())

    # ------------------------------------------------------------------ trading keys

    def add_key(
        self,
        key: str,
        *,
        expires_at: datetime | int,
        all_instruments: bool = True,
        max_notional: Decimal | int = 0,
        instruments: Sequence[bytes] = (),
    ) -> TxResult:
        """Authorise (or re-scope) a trading key: it signs orders and strategies for this
        wallet until `expires_at` (a datetime with a time zone, or unix seconds), on every
        instrument if `all_instruments`, else only on `instruments` (added to its
        allow-list; at most 16 at once), each of at most `max_notional` in the quote token
        (0: no limit). A key never withdraws or changes the wallet. Owner only."""
        if len(instruments) > _MAX_KEY_INSTRUMENTS:
            raise ValueError(
                f"at most {_MAX_KEY_INSTRUMENTS} instruments at once; add more with "
                "allow_key_instrument"
            )
        expiry = _timestamp(expires_at, "expires_at")
        limit = self._units(self._quote_token(), max_notional, "max notional")
        if limit == 0:
            limit = NO_KEY_LIMIT
        elif limit >= NO_KEY_LIMIT:
            raise ValueError(f"max notional {max_notional} is too large for a trading key")
        address = to_checksum_address(key)

        def past() -> str:
            now = int(self.w3.eth.get_block("latest")["timestamp"])
            return (
                f"a trading key's expiry must be in the future: {_iso(expiry)} is not after "
                f"the chain's time {_iso(now)}"
            )

        return self._send(
            self._wallet_contract().functions.authorise_key(
                address,
                expiry,
                bool(all_instruments),
                limit,
                [self._id(instrument) for instrument in instruments],
            ),
            f"authorise trading key {address}",
            {"wallet: key expiry in the past": past},
        )

    def allow_key_instrument(self, key: str, instrument_id: bytes, allowed: bool) -> TxResult:
        """Put an instrument on a trading key's allow-list or take it off. Owner only."""
        address = to_checksum_address(key)
        return self._send(
            self._wallet_contract().functions.set_key_instrument(
                address, self._id(instrument_id), bool(allowed)
            ),
            f"{'allow' if allowed else 'disallow'} trading key {address} "
            f"instrument 0x{bytes(instrument_id).hex()}",
        )

    def revoke_key(self, key: str) -> TxResult:
        """Revoke a trading key at once: none of its signatures settles from now on, orders
        it signed before included. Owner only."""
        address = to_checksum_address(key)
        return self._send(
            self._wallet_contract().functions.revoke_key(address),
            f"revoke trading key {address}",
        )

    def key(self, key: str, instruments: Sequence[bytes] = ()) -> KeyView:
        """A trading key's scope now, and whether each of `instruments` is on its
        allow-list."""
        address = to_checksum_address(key)
        functions = self._wallet_contract().functions
        expiry, all_instruments, limit, active = functions.trading_key(address).call()
        max_notional = (
            None  # no record (never authorised, or revoked), or no limit
            if int(expiry) == 0 or int(limit) == NO_KEY_LIMIT
            else self._amount(self._quote_token(), int(limit))
        )
        return KeyView(
            key=address,
            expires_at=None if int(expiry) == 0 else datetime.fromtimestamp(int(expiry), UTC),
            all_instruments=bool(all_instruments),
            max_notional=max_notional,
            active=bool(active),
            instruments={
                bytes(i): bool(functions.key_instrument_allowed(address, self._id(i)).call())
                for i in instruments
            },
        )

    # ------------------------------------------------------------------ the Settlement

    def check_instrument(self, instrument_id: bytes) -> bool:
        """Whether the instrument is registered on the Settlement (only registered
        instruments settle): check an id computed locally before signing for it."""
        return bool(self._settlement.functions.registered(self._id(instrument_id)).call())

    def settle_expiry(self, underlying: str, quote: str, expiry: datetime | int) -> TxResult:
        """Settle the options series (underlying, quote, expiry) at expiry: the escape hatch
        anyone may send, no operator needed. Every wallet's positions in the series close
        at the price of the feed the series bound when it was listed, at the feed's round at
        expiry (the first round updated at or after it). Once the Settlement's grace period
        has passed with no usable round at expiry, the last round before expiry settles it;
        once twice the grace has passed with a feed that no longer answers, the series
        unwinds at no payoff. Raises `ChainError` saying why when nothing settles it yet."""
        base, quote_token = self.chain.token(underlying), self.chain.token(quote)
        expires = _timestamp(expiry, "expiry")
        settlement = self._settlement.functions
        series_id = bytes(
            settlement.series_id(
                to_checksum_address(base.address), to_checksum_address(quote_token.address), expires
            ).call()
        )
        name = f"the {underlying}/{quote} options series expiring {_iso(expires)}"
        series = settlement.series(series_id).call()
        if int(series[3]) == 0:
            raise ChainError(f"{name} is not listed on this Settlement")
        if settlement.series_settled(series_id).call():
            price = self._amount(quote_token, int(settlement.expiry_price(series_id).call()))
            raise ChainError(f"{name} is settled already, at {_words(price)} {quote}")
        feed = to_checksum_address(series[4])
        grace = int(settlement.EXPIRY_GRACE().call())
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        if now < expires:
            raise ChainError(
                f"{name} cannot settle before it expires; the chain's time is {_iso(now)}"
            )
        fn, what = self._expiry_call(series_id, name, feed, expires, grace, now)
        return self._send(fn, what)

    def _expiry_call(
        self, series_id: bytes, name: str, feed: str, expiry: int, grace: int, now: int
    ) -> tuple[ContractFunction, str]:
        """The call the Settlement accepts now for the series, judging each feed round as
        the contract's `_round` does (a round that reverts, has no update time, or was
        answered in an earlier round does not exist)."""
        aggregator = self.w3.eth.contract(address=to_checksum_address(feed), abi=_AGGREGATOR_ABI)
        at, before, dead = self._rounds_around(aggregator, expiry)
        settlement = self._settlement.functions
        if at is not None and at.answer > 0:
            return (
                settlement.settle_expiry(series_id, at.round_id),
                f"settle {name} at round {at.round_id} (the round at expiry)",
            )
        grace_over = now >= expiry + grace
        if grace_over and before is not None and before.answer > 0:
            following = self._read_round(aggregator, before.round_id + 1)
            if following is None or (following.updated_at >= expiry and following.answer <= 0):
                return (
                    settlement.settle_expiry(series_id, before.round_id),
                    f"settle {name} at round {before.round_id} (the last round before expiry)",
                )
        if dead and now >= expiry + 2 * grace:
            return settlement.unwind_expiry(series_id), f"unwind {name} (its feed is dead)"
        if at is not None:
            why = f"the feed's round at expiry ({at.round_id}) has no valid answer"
        else:
            why = f"the feed {feed} has no usable round at expiry yet"
        if not grace_over:
            why += (
                f"; after the grace period, from {_iso(expiry + grace)}, the last round before "
                "expiry settles it"
            )
        elif dead:
            why += f"; it unwinds at no payoff from {_iso(expiry + 2 * grace)}"
        raise ChainError(f"{name} cannot settle yet: {why}")

    def _rounds_around(
        self, aggregator: Contract, expiry: int
    ) -> tuple[_FeedRound | None, _FeedRound | None, bool]:
        """(the round at expiry, the last round before expiry, whether the feed is dead).

        The round at expiry is the round updated at or after expiry whose previous round was
        updated before it (or, for the feed's first round, is missing): the only one the
        contract accepts. Walks back from the latest round, past a few missing rounds."""
        try:
            latest = aggregator.functions.latestRoundData().call()
        except (Web3Exception, ValueError):
            return None, None, True
        dead = int(latest[1]) <= 0
        round_id = int(latest[0])
        missing = 0
        for _ in range(_MAX_FEED_ROUNDS):
            if round_id < 0:
                break
            found = self._read_round(aggregator, round_id)
            if found is None:
                missing += 1
                if missing > _MAX_MISSING_ROUNDS:
                    break
                round_id -= 1
                continue
            missing = 0
            if found.updated_at < expiry:
                return None, found, dead
            previous = self._read_round(aggregator, round_id - 1) if round_id > 0 else None
            if previous is not None and previous.updated_at < expiry:
                return found, previous, dead
            if previous is None and round_id == 1:
                return found, None, dead
            round_id -= 1
        else:
            raise ChainError(f"more than {_MAX_FEED_ROUNDS} feed rounds since expiry")
        return None, None, dead

    @staticmethod
    def _read_round(aggregator: Contract, round_id: int) -> _FeedRound | None:
        if round_id < 0:
            return None
        try:
            rid, answer, _started, updated, answered_in = aggregator.functions.getRoundData(
                round_id
            ).call()
        except (Web3Exception, ValueError):
            return None
        if int(updated) == 0 or int(answered_in) < int(rid):
            return None
        return _FeedRound(round_id, int(answer), int(updated))

    # ------------------------------------------------------------------ internals: reads

    def _bind(self, wallet: str) -> None:
        self._wallet = to_checksum_address(wallet)
        self._owner_of = None
        self._signer = self._signer.for_wallet(self._wallet)

    def _wallet_of(self, owner: str) -> str | None:
        found = str(self._factory.functions.wallet_of(to_checksum_address(owner)).call())
        return None if int(found, 16) == 0 else to_checksum_address(found)

    def _wallet_contract(self) -> Contract:
        return self.w3.eth.contract(
            address=to_checksum_address(self.wallet), abi=abi("MarginWallet")
        )

    def _erc20(self, address: str) -> Contract:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=ERC20_ABI)

    def _balance_units(self, token_address: str) -> int:
        return int(self._erc20(token_address).functions.balanceOf(self.wallet).call())

    def _token_at(self, address: str) -> Token:
        """The listed token at `address`, or one read from the chain."""
        checksum = to_checksum_address(address)
        token = self._by_address.get(checksum)
        if token is None:
            erc20 = self._erc20(checksum).functions
            try:
                symbol = str(erc20.symbol().call())
            except (Web3Exception, ValueError):
                symbol = checksum
            token = Token(symbol, checksum, int(erc20.decimals().call()))
            self._by_address[checksum] = token
        return token

    def _quote_token(self) -> Token:
        """The Settlement's option quote token: what notionals and margin are counted in."""
        if self._quote is None:
            self._quote = self._token_at(str(self._settlement.functions.option_quote().call()))
        return self._quote

    def _margin_quote(self) -> Token:
        quote = str(self._wallet_contract().functions.option_quote().call())
        return self._quote_token() if int(quote, 16) == 0 else self._token_at(quote)

    def _withdrawable_units(self, token: Token) -> int:
        balance = self._balance_units(token.address)
        if self._can_withdraw(token, balance):
            return balance
        if not self._can_withdraw(token, 0):
            return 0  # the wallet fails its margin already
        ok, refused = 0, balance
        if to_checksum_address(token.address) == to_checksum_address(self._margin_quote().address):
            # the quote counts one for one: the surplus is the guess
            required, available, _ok = self._wallet_contract().functions.margin_status().call()
            guess = min(balance - 1, max(0, int(available) - int(required)))
            if self._can_withdraw(token, guess):
                ok = guess
                if not self._can_withdraw(token, guess + 1):
                    return guess
            else:
                refused = guess
        while refused - ok > 1:  # the margin only worsens as the balance falls
            middle = (ok + refused) // 2
            if self._can_withdraw(token, middle):
                ok = middle
            else:
                refused = middle
        return ok

    def _owner(self) -> str:
        if self._owner_of is None:
            owner = self._wallet_contract().functions.owner().call()
            self._owner_of = to_checksum_address(owner)
        return self._owner_of

    def _can_withdraw(self, token: Token, units: int) -> bool:
        """Whether the owner's `withdraw(token, units)` would succeed now (an eth_call)."""
        functions = self._wallet_contract().functions
        owner = self._owner()
        try:
            functions.withdraw(to_checksum_address(token.address), units).call({"from": owner})
        except ContractLogicError:
            return False
        return True

    def _units(self, token: Token, amount: Decimal | int, what: str) -> int:
        return _to_units(amount, token.decimals, f"{what} ({token.symbol})")

    @staticmethod
    def _amount(token: Token, units: int) -> Decimal:
        return _from_units(units, token.decimals)

    @staticmethod
    def _id(value: bytes) -> bytes:
        raw = bytes(value)
        if len(raw) != 32:
            raise ValueError(f"an instrument id or digest is 32 bytes, not {len(raw)}")
        return raw

    # ------------------------------------------------------------------ internals: sending

    def _tell(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    def _explain(self, revert: str | None, extra: _Explanations | None) -> str:
        if revert is None:
            return "the contract reverted without a reason"
        if extra and revert in extra:
            return extra[revert]()
        template = REVERT_REASONS.get(revert)
        if template is None:
            return revert
        return template.format_map(_Facts(self._fact))

    def _fact(self, name: str) -> str:
        try:
            if name == "owner":
                return self._owner()
            if name == "signer":
                return self._signer.address
            if name == "min_nonce":
                return str(self.min_nonce())
        except (Web3Exception, ValueError, ChainError):
            pass
        return "unknown"

    def _check_chain(self) -> None:
        if self._checked_chain:
            return
        chain_id = int(self.w3.eth.chain_id)
        if chain_id != self.chain.chain_id:
            raise ChainError(
                f"the node at {self.rpc_url} serves chain {chain_id}, but the gateway settles on "
                f"chain {self.chain.chain_id}"
            )
        self._checked_chain = True

    def _send(
        self, fn: ContractFunction, what: str, extra: _Explanations | None = None
    ) -> TxResult:
        """Build, estimate, sign locally, send and wait; every refusal explained."""
        self._check_chain()
        sender = self._signer.address
        tx = self._build(fn, sender)
        try:
            estimate = self.w3.eth.estimate_gas(tx)
        except ContractLogicError as refused:
            revert = _revert_string(refused)
            raise ChainError(
                f"cannot {what}: {self._explain(revert, extra)}", revert=revert
            ) from None
        except Web3RPCError as refused:
            raise ChainError(f"cannot {what}: {self._node_refusal(refused)}") from None
        tx["gas"] = int(estimate * _GAS_MULTIPLIER) + _GAS_HEADROOM
        tx["nonce"] = self.w3.eth.get_transaction_count(self._signer.account.address, "pending")
        signed = self._signer.account.sign_transaction(cast(dict[str, Any], tx))
        try:
            tx_hash = Web3.to_hex(self.w3.eth.send_raw_transaction(signed.raw_transaction))
        except Web3RPCError as refused:
            raise ChainError(f"cannot {what}: {self._node_refusal(refused)}") from None
        self._tell(f"{what}: sent {tx_hash} waiting for receipt")
        receipt = self._wait(tx_hash, what)
        block = int(receipt["blockNumber"])
        if receipt["status"] != 1:
            revert = self._replay(tx, block)
            if revert is None and int(receipt["gasUsed"]) >= int(tx["gas"]):
                reason = f"it ran out of gas ({receipt['gasUsed']} used)"
            else:
                reason = self._explain(revert, extra)
            raise ChainError(
                f"{what} reverted in block {block}: {reason}", revert=revert, tx_hash=tx_hash
            )
        gas_used = int(receipt["gasUsed"])
        self._tell(f"{what}: confirmed in block {block} ({gas_used} gas)")
        return TxResult(tx_hash, block, gas_used)

    def _build(self, fn: ContractFunction, sender: str) -> TxParams:
        params: dict[str, Any] = {"from": sender, "chainId": self.chain.chain_id, "gas": 1}
        latest = self.w3.eth.get_block("latest")
        base_fee = latest.get("baseFeePerGas")
        if base_fee is None:
            params["gasPrice"] = self.w3.eth.gas_price
        else:
            tip = int(self.w3.eth.max_priority_fee)
            params["maxPriorityFeePerGas"] = tip
            params["maxFeePerGas"] = 2 * int(base_fee) + tip
        # a placeholder gas keeps build_transaction from estimating: _send estimates once
        tx = fn.build_transaction(cast(TxParams, params))
        tx.pop("gas", None)
        tx.pop("nonce", None)
        return tx

    def _wait(self, tx_hash: str, what: str) -> TxReceipt:
        try:
            return self.w3.eth.wait_for_transaction_receipt(
                HexBytes(tx_hash), timeout=self.receipt_timeout, poll_latency=0.1
            )
        except TimeExhausted:
            raise ChainError(
                f"{what}: no receipt for {tx_hash} within {self.receipt_timeout:g} s; it may "
                "still be mined: look it up before sending it again",
                tx_hash=tx_hash,
            ) from None

    def _replay(self, tx: TxParams, block: int) -> str | None:
        """The revert string of a mined transaction that reverted, by calling it again on
        the state before its block (None when that call passes or says nothing)."""
        call = {k: v for k, v in dict(tx).items() if k in ("from", "to", "data", "value")}
        try:
            self.w3.eth.call(cast(TxParams, call), block_identifier=max(0, block - 1))
        except ContractLogicError as refused:
            return _revert_string(refused)
        except Web3Exception:
            return None
        return None

    def _node_refusal(self, error: Web3RPCError) -> str:
        message = str(getattr(error, "message", None) or error)
        if "insufficient funds" in message or "exceeds allowance: 0" in message:
            ether = Web3.from_wei(self.w3.eth.get_balance(self._signer.account.address), "ether")
            return (
                f"{self._signer.address} has not enough ETH to pay for gas (it holds {ether} ETH)"
            )
        if "nonce too low" in message:
            return f"another transaction from {self._signer.address} took its nonce: try again"
        return f"the node refused it: {message}"
