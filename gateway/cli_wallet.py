"""`isthmus wallet`, `isthmus keystore` and `isthmus devnet`: a trader's MarginWallet from the
terminal, and signed orders (`isthmus orders submit --sign`).

These commands speak through `isthmus_client`, as any trader's program does: the gateway's
public API for the chain, the instruments and the orders, and the chain itself for the wallet.
The key comes from an encrypted keystore file (`--keystore`, or ISTHMUS_KEYSTORE), its password
from ISTHMUS_KEYSTORE_PASSWORD (scripts) or a hidden prompt on a terminal; a raw key is never
an argument (it would stay in the shell's history and in the process list). Transactions are
signed in this process and waited for; each step shows as it happens (a spinner on a terminal,
one line per step elsewhere). A refusal prints its reason and exits 1.

Requests to the gateway are authenticated as the other commands' are (an API key from
ISTHMUS_API_KEY_ID / ISTHMUS_API_KEY_SECRET, else the operator token) and, with neither, by a
Sign-In with Ethereum session of the keystore's key.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.status import Status
from rich.table import Table

from gateway.cli_output import Output

if TYPE_CHECKING:
    from isthmus_client import Isthmus, Signer, WalletOps
    from isthmus_client.credentials import ApiKey, OperatorToken
    from isthmus_client.models import ChainInfo, Order
    from isthmus_client.signing import Instrument
    from isthmus_client.wallet import KeyView, TxResult, WalletView

wallet_app = typer.Typer(
    help="Your MarginWallet on chain: create, deposit, withdraw, limits, trading keys, cancels "
    "and the escape hatch, signed with your keystore's key.",
    no_args_is_help=True,
)
key_app = typer.Typer(
    help="Trading keys: keys that sign orders for the wallet, within a scope, and never withdraw.",
    no_args_is_help=True,
)
wallet_app.add_typer(key_app, name="key")
keystore_app = typer.Typer(
    help="Encrypted keystore files (the geth / eth-account format) for your keys.",
    no_args_is_help=True,
)
devnet_app = typer.Typer(help="Helpers for the embedded devnet.", no_args_is_help=True)

console = Output()  # results and refusals, as the other commands print them
KEYSTORE_ENV = "ISTHMUS_KEYSTORE"
PASSWORD_ENV = "ISTHMUS_KEYSTORE_PASSWORD"
DEFAULT_API = "http://127.0.0.1:8000"
DEVNET_TOKEN_FILE = Path(".isthmus/devnet/operator-token")  # `isthmus up` writes it there
DEVNET_DEPLOYMENT = Path(".isthmus/devnet/deployment.json")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_PRIVATE_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


# --------------------------------------------------------------------------- options


def _address_option(value: str | None) -> str | None:
    if value is None:
        return None
    return checksum(value)


def checksum(value: str) -> str:
    """`value` as an EIP-55 address; a usage error (exit 2) if it is none."""
    from eth_utils import is_address, to_checksum_address

    if not is_address(value):
        raise typer.BadParameter(f"{value!r} is not an address (0x and 40 hex digits)")
    return str(to_checksum_address(value))


KeystoreOption = Annotated[
    Path,
    typer.Option(
        "--keystore",
        envvar=KEYSTORE_ENV,
        help="The key's encrypted keystore (password: ISTHMUS_KEYSTORE_PASSWORD, or asked)",
        show_default=False,
    ),
]
WalletOption = Annotated[
    str | None,
    typer.Option(
        "--wallet",
        callback=_address_option,
        help="The wallet (default: the key's own); a trading key names the wallet it signs for",
    ),
]
RpcOption = Annotated[
    str | None,
    typer.Option("--rpc", help="The chain's JSON-RPC URL (default: the gateway's /v1/chain)"),
]
ApiOption = Annotated[
    str,
    typer.Option("--api-url", "--api", envvar="ISTHMUS_API_URL", help="Gateway base URL"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]


# --------------------------------------------------------------------------- failures


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[red]{escape(message)}[/]")
    raise typer.Exit(code)


@contextmanager
def failures() -> Iterator[None]:
    """What the client raises, printed as the other commands print errors: the chain's
    refusal in words, the gateway's error with its code; exit 1 (2: nothing to talk to)."""
    from isthmus_client.errors import ApiError, ChainError, IsthmusError, TransportError

    try:
        yield
    except ChainError as error:
        sent = f" (transaction {error.tx_hash})" if error.tx_hash else ""
        # anvil's answer to a gas estimate from an address without ether
        broke = (
            " (does the key hold ETH for gas?)" if "exceeds allowance: 0" in error.reason else ""
        )
        fail(error.reason + broke + sent)
    except ApiError as error:
        field = f" ({error.field})" if error.field else ""
        console.print(f"[red]{escape(error.error_code)}[/]: {escape(error.message)}{field}")
        raise typer.Exit(1) from None
    except TransportError as error:
        fail(f"cannot reach the gateway: {error}", 2)
    except IsthmusError as error:  # SigningRefused, no signer, no such instrument...
        fail(str(error))
    except KeyError as error:  # ChainInfo.token: no such token on this chain
        fail(str(error.args[0]) if error.args else repr(error))
    except ValueError as error:  # an amount finer than the token's decimals, NotSignable...
        fail(str(error))
    except OSError as error:  # the node: connection refused, timed out
        fail(f"cannot reach the chain: {error}", 2)


# --------------------------------------------------------------------------- keys


def keystore_password(path: Path, *, confirm: bool = False) -> str:
    """ISTHMUS_KEYSTORE_PASSWORD, else asked on the terminal (hidden); without either there
    is no password to use."""
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        fail(f"the keystore {path} needs its password: set {PASSWORD_ENV} (no terminal to ask)", 2)
    answer: str = typer.prompt(
        f"Password of the keystore {path}", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return answer


def load_signer(keystore: Path, wallet: str | None = None) -> Signer:
    """The keystore's key, signing for `wallet` (default: the key's own wallet)."""
    from isthmus_client import Signer

    if not keystore.is_file():
        fail(f"no keystore at {keystore}", 2)
    password = keystore_password(keystore)
    try:
        return Signer.from_keystore(keystore, password, wallet)
    except (ValueError, KeyError, TypeError) as error:
        reason = "wrong password" if "MAC mismatch" in str(error) else "not a keystore"
        fail(f"cannot open the keystore {keystore}: {reason}")


def configured_credential() -> ApiKey | OperatorToken | None:
    """The credential every command sends: an API key (ISTHMUS_API_KEY_ID and
    ISTHMUS_API_KEY_SECRET), else the operator token (ISTHMUS_OPERATOR_TOKEN, or the devnet's
    file); None without either."""
    from isthmus_client import ApiKey, OperatorToken

    key_id, secret = os.environ.get("ISTHMUS_API_KEY_ID"), os.environ.get("ISTHMUS_API_KEY_SECRET")
    if key_id and secret:
        return ApiKey(key_id, secret)
    token = os.environ.get("ISTHMUS_OPERATOR_TOKEN")
    if not token and DEVNET_TOKEN_FILE.exists():
        token = DEVNET_TOKEN_FILE.read_text().strip()
    return OperatorToken(token) if token else None


def open_client(api: str, signer: Signer | None, rpc: str | None = None) -> Isthmus:
    """The client: requests authenticated by the configured credential, else by a SIWE
    session of `signer`; orders signed by `signer`."""
    from isthmus_client import Isthmus

    return Isthmus(api, configured_credential() or signer, signer=signer, rpc_url=rpc)


# --------------------------------------------------------------------------- progress


class Progress:
    """WalletOps' progress callback: each step as a line, under a spinner on a terminal that
    says what is being waited for."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self._status: Status | None = None

    def __enter__(self) -> Progress:
        if self.out.is_terminal:
            self._status = self.out.status("reading the chain")
            self._status.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def __call__(self, message: str) -> None:
        self.out.print(escape(message), highlight=False)
        if self._status is not None:
            self._status.update(escape(message))


def progress_console(as_json: bool) -> Output:
    """Steps go to stdout, or to stderr when stdout carries JSON."""
    return Output(stderr=True) if as_json else console


@dataclass
class Session:
    """One command's client, key, chain and wallet operations."""

    isthmus: Isthmus
    signer: Signer
    chain: ChainInfo
    ops: WalletOps
    progress: Progress

    @property
    def wallet(self) -> str:
        from isthmus_client.errors import ChainError

        try:
            return self.ops.wallet
        except ChainError:
            fail(f"{self.signer.address} has no wallet yet: `isthmus wallet create` makes one")

    def instrument_id(self, symbol: str) -> bytes:
        """An instrument's on-chain id, from its symbol (or given as 0x and 64 hex digits)."""
        if re.fullmatch(r"0x[0-9a-fA-F]{64}", symbol):
            return bytes.fromhex(symbol[2:])
        instrument: Instrument = self.isthmus.instrument(symbol)
        return instrument.onchain_id(self.chain.tokens)

    def chain_time(self) -> int:
        return int(self.ops.w3.eth.get_block("latest")["timestamp"])


@contextmanager
def wallet_session(
    keystore: Path, wallet: str | None, rpc: str | None, api: str, as_json: bool
) -> Iterator[Session]:
    signer = load_signer(keystore, wallet)
    with (
        failures(),
        open_client(api, signer, rpc) as isthmus,
        Progress(progress_console(as_json)) as progress,
    ):
        chain: ChainInfo = isthmus.chain()
        ops: WalletOps = isthmus.wallet(rpc_url=rpc, progress=progress)
        yield Session(isthmus, signer, chain, ops, progress)


# --------------------------------------------------------------------------- output


def words(amount: Decimal) -> str:
    """An amount as a trader writes it: no exponent, no trailing zeros."""
    with localcontext() as context:
        context.prec = 100
        return format(amount.normalize(), "f")


def parse_amount(text: str, what: str = "amount", *, zero: bool = False) -> Decimal:
    """A positive amount (or zero, if `zero`) written as a decimal number."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a number", param_hint=what) from None
    if not value.is_finite() or value < 0 or (value == 0 and not zero):
        raise typer.BadParameter(f"{text} is not above zero", param_hint=what)
    return value


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def tx_json(result: TxResult) -> dict[str, Any]:
    return {"tx_hash": result.tx_hash, "block_number": result.block_number, "gas": result.gas_used}


def wallet_json(view: WalletView, free: dict[str, Decimal]) -> dict[str, Any]:
    margin = view.margin_status
    return {
        "wallet": view.wallet,
        "owner": view.owner,
        "settlement": view.settlement,
        "balances": {symbol: words(amount) for symbol, amount in view.balances.items()},
        "withdrawable": {symbol: words(amount) for symbol, amount in free.items()},
        "margin": {
            "quote": margin.quote,
            "required": words(margin.required),
            "available": words(margin.available),
            "free": words(margin.free),
            "ok": margin.ok,
        },
        "limits": limits_json(view),
        "min_nonce": view.min_nonce,
        "positions": [
            {
                "instrument_id": "0x" + p.instrument_id.hex(),
                "underlying": p.underlying,
                "quote": p.quote,
                "expiry": iso(p.expiry),
                "strike": words(p.strike),
                "right": "call" if p.is_call else "put",
                "size": words(p.size),
            }
            for p in view.positions
        ],
    }


def limits_json(view: WalletView) -> dict[str, Any]:
    return {
        "paused": view.paused,
        "max_notional": None if view.max_notional is None else words(view.max_notional),
        "restrict_instruments": view.restrict_instruments,
    }


def limits_lines(view: WalletView) -> list[str]:
    quote = view.margin_status.quote
    cap = "none" if view.max_notional is None else f"{words(view.max_notional)} {quote}"
    return [
        f"trading: {'[red]paused[/]' if view.paused else '[green]active[/]'}",
        f"max notional per order: {cap}",
        "instrument allow-list: " + ("on" if view.restrict_instruments else "off (all trade)"),
    ]


def print_wallet(view: WalletView, free: dict[str, Decimal]) -> None:
    console.print(f"wallet [bold]{view.wallet}[/]  owner {view.owner}", highlight=False)
    balances = Table(title="Balances")
    for column in ("token", "balance", "free to withdraw"):
        balances.add_column(column, justify="left" if column == "token" else "right")
    for symbol, amount in view.balances.items():
        balances.add_row(symbol, words(amount), words(free[symbol]))
    console.print(balances)
    margin = view.margin_status
    if view.positions:
        rule = "[green]passes[/]" if margin.ok else "[red]fails[/]"
        console.print(
            f"margin ({margin.quote}): required {words(margin.required)}, available "
            f"{words(margin.available)}, free collateral {words(margin.free)}; the rule {rule}",
            highlight=False,
        )
    else:
        console.print("margin: nothing required (no open option positions)")
    for line in limits_lines(view):
        console.print(line, highlight=False)
    console.print(f"min nonce: {view.min_nonce} (orders below it are cancelled)", highlight=False)
    if not view.positions:
        console.print("no open option positions")
        return
    positions = Table(title="Open option positions")
    for column in ("underlying", "expiry", "strike", "right", "size"):
        positions.add_column(column, justify="right" if column in ("strike", "size") else "left")
    for p in view.positions:
        positions.add_row(
            p.underlying,
            iso(p.expiry),
            f"{words(p.strike)} {p.quote}",
            "call" if p.is_call else "put",
            words(p.size),
        )
    console.print(positions)


def print_done(what: str, result: TxResult) -> None:
    console.print(
        f"{escape(what)} (transaction {result.tx_hash}, block {result.block_number})",
        highlight=False,
    )


# --------------------------------------------------------------------------- wallet


@wallet_app.command("create")
def wallet_create(
    keystore: KeystoreOption,
    rpc: RpcOption = None,
    api: ApiOption = DEFAULT_API,
    as_json: AsJson = False,
) -> None:
    """Create the key's MarginWallet (one per owner; the existing one if it has it)."""
    from isthmus_client.errors import ChainError

    with wallet_session(keystore, None, rpc, api, as_json) as s:
        try:
            existing: str | None = s.ops.wallet
        except ChainError:
            existing = None
        wallet = s.ops.create()
    if as_json:
        print_json({"wallet": wallet, "owner": s.signer.address, "created": existing is None})
        return
    made = "created" if existing is None else "exists already"
    console.print(f"wallet [bold]{wallet}[/] {made} (owner {s.signer.address})", highlight=False)


@wallet_app.command("deposit")
def wallet_deposit(
    symbol: Annotated[str, typer.Argument(help="Token symbol, e.g. USDC")],
    amount: Annotated[str, typer.Argument(help="Whole tokens, e.g. 1000 or 2.5")],
    keystore: KeystoreOption,
    wallet: WalletOption = None,
    rpc: RpcOption = None,
    api: ApiOption = DEFAULT_API,
    as_json: AsJson = False,
) -> None:
    """Send tokens from the key's address into the wallet."""
    value = parse_amount(amount)
    with wallet_session(keystore, wallet, rpc, api, as_json) as s:
        target = s.wallet
        result = s.ops.deposit(symbol, value)
        balance = s.ops.balance(symbol)
    if as_json:
        print_json(
            {
                "wallet": target,
                "symbol": symbol,
                "amount": words(value),
                "balance": words(balance),
                **tx_json(result),
            }
        )
        return
    print_done(
        f"deposited {words(value)} {symbol} into {target}: it holds {words(balance)}", result
    )


@wallet_app.command("withdraw")
def wallet_withdraw(
    symbol: Annotated[str, typer.Argument(help="Token symbol, e.g. USDC")],
    amount: Annotated[str, typer.Argument(help="Whole tokens, or `all` for all that is free")],
    keystore: KeystoreOption,
    wallet: WalletOption = None,
    rpc: RpcOption = None,
    api: ApiOption = DEFAULT_API,
    as_json: AsJson = False,
) -> None:
    """Send tokens from the wallet to its owner (owner only; what open option positions need
    for margin stays). Works while paused, without the operator."""
    value = None if amount == "all" else parse_amount(amount)
    with wallet_session(keystore, wallet, rpc, api, as_json) as s:
        source = s.wallet
        if value is None:
            value = s.ops.withdrawable(symbol)
            if value == 0:
                fail(f"nothing of {symbol} is free to withdraw from {source}")
        result = s.ops.withdraw(symbol, value)
        balance = s.ops.balance(symbol)
    if as_json:
        print_json(
            {
                "wallet": source,
                "symbol": symbol,
                "amount": words(value),
                "balance": words(balance),
                **tx_json(result),
            }
        )
        return
    print_done(f"withdrew {words(value)} {symbol} from {source}: it holds {words(balance)}", result)


@wallet_app.command("show")
def wallet_show(
    keystore: KeystoreOption,
    wallet: WalletOption = None,
    rpc: RpcOption = None,
    api: ApiOption = DEFAULT_API,
    as_json: AsJson = False,
) -> None:
    """The wallet as the chain sees it: balances and what is free to withdraw, margin, the
    owner's limits, the minimum nonce and the open option positions."""
    with wallet_session(keystore, wallet, rpc, api, as_json) as s:
        s.wallet  # noqa: B018 (a clear message when the key has no wallet)
        view = s.ops.show()
        free = {symbol: s.ops.withdrawable(symbol) for symbol in view.balances}
    if as_json:
        print_json(wallet_json(view, free))
    else:
        print_wallet(view, free)


@wallet_app.command("limits")
def wallet_limits(
    keystore: KeystoreOption,
    max_notional: Annotated[
        str | None,
        typer.Option(help="Maximum notional per order in the quote token; `none` removes it"),
    ] = None,
    restrict: Annotated[
        bool | None,
        typer.Option("--restrict/--no-restrict", help="Trade only allow-listed instruments"),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Put an instrument (symbol) on the allow-list; repeatable"),
    ] = None,
    disallow: Annotated[
        list[str] | None,
        typer.Option("--disallow", help="Take an instrument off the allow-list; repeatable"),
    ] = None,
    pause: Annotated[
        bool | None, typer.Option("--pause/--unpause", help="Stop or resume all trading")
    ] = None,
    wallet: WalletOption = None,
    rpc: RpcOption = None,
    api: ApiOption = DEFAULT_API,
    as_json: AsJson = False,
) -> None:
    """Show the owner's limits on the wallet, or change them (owner only; each change is a
    transaction the wallet enforces on every fill)."""
    cap: Decimal | None = None
    if max_notional is not None and max_notional.lower() != "none":
        cap = parse_amount(max_notional, "--max-notional")
    with wallet_session(keystore, wallet, rpc, api, as_json) as s:
        s.wallet  # noqa: B018
        sent: list[TxResult] = []
        if max_notional is not None:
            sent.append(s.ops.set_max_notional(cap))
        if restrict is not None:
            sent.append(s.ops.set_restrict_instruments(restrict))
        for symbols, allowed in ((allow or [], True), (disallow or [], False)):
            for symbol in symbols:
                ident = s.instrument_id(symbol)
                if allowed and not s.ops.check_instrument(ident):
                    fail(f"{symbol} (0x{ident.hex()}) is not registered on the Settlement")
                sent.append(s.ops.allow_instrument(ident, allowed))
        if pause is not None:
            sent.append(s.ops.pause() if pause else s.ops.unpause())
        view = s.ops.show()
        listed: dict[str, Instrument] = s.isthmus.instruments()
        ids = {symbol: _on_chain(instrument, s) for symbol, instrument in listed.items()}
        allowed_now = [
            symbol for symbol, ident in ids.items() if ident and s.ops.instrument_allowed(ident)
        ]
    if as_json:
        print_json(
            {
                "wallet": view.wallet,
                **limits_json(view),
                "allowed_instruments": allowed_now,
                "transactions": [tx_json(r) for r in sent],
            }
        )
        return
    console.print(f"limits of wallet [bold]{view.wallet}[/]", highlight=False)
    for line in limits_lines(view):
        console.print(line, highlight=False)
    console.print("allow-listed: " + (", ".join(allowed_now) or "none"), highlight=False)


def _on_chain(instrument: Instrument, s: Session) -> bytes:
    """The instrument's on-chain id (empty for one that does not trade on chain)."""
    from isthmus_client.signing import NotSignable

    try:
        return instrument.onchain_id(s.chain.tokens)
    except NotSignable:
        return b""


# --------------------------------------------------------------------------- trading keys


def parse_moment(text: str, now: int) -> int:
    """Unix seconds from `30d` / `12h` / `90m` (from the chain's time), an ISO date or time
    (UTC unless it says otherwise), or unix seconds."""
    found = _DURATION.match(text.strip())
    if found:
        return now + int(found[1]) * _SECONDS[found[2]]
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (30d, 12h) nor a date/time (2026-12-31T12:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def print_key(view: KeyView, names: dict[bytes, str], quote: str) -> None:
    if not view.exists:
        console.print(f"trading key {view.key}: not authorised (or revoked)", highlight=False)
        return
    assert view.expires_at is not None
    state = "[green]active[/]" if view.active else "[red]inactive[/]"
    cap = "no limit" if view.max_notional is None else f"{words(view.max_notional)} {quote}"
    scope = (
        "every instrument"
        if view.all_instruments
        else ", ".join(names[i] for i, ok in view.instruments.items() if ok) or "no instrument"
    )
    console.print(
        f"trading key {view.key} {state} until {iso(view.expires_at)}; max notional per "
        f"order {cap}; trades {scope}",
        highlight=False,
    )


def key_json(view: KeyView, names: dict[bytes, str]) -> dict[str, Any]:
    return {
        "key": view.key,
        "active": view.active,
        "expires_at": None if view.expires_at is None else iso(view.expires_at),
        "all_instruments": view.all_instruments,
        "max_notional": None
        if view.max_notional is None or not view.exists
        else words(view.max_notional),
        "instruments": [names[i] for i, ok in view.instruments.items() if ok],
    }


KeyAddress = Annotated[
    str, typer.Argument(help="The trading key's address (never its private key)")
]


@key_app.command("add")
def key_add(
    key: KeyAddress,
    keystore: KeystoreOption,
    expires: Annotated[
        str, typer.Option(help="Until when: 30d, 12h, 90m, or a date/time (2026-12-31T12:00Z)")
    ],
    max_notional: Annotated[
        str | None, typer.Option(help="Maximum notional per order in the quote token")
    ] = None,
    instrument: Annotated[
        list[str] | None,
        typer.Option("--instrument", help="Only this instrument (repeatable); default: all"),
    ] = None,
    wallet: WalletOption = None,
    rpc: RpcOption = None,
    api: ApiOption = DEFAULT_API,
    as_json: AsJson = False,
) -> None:
    """Authorise (or re-scope) a trading key: it signs orders for the wallet until it
    expires, within its instruments and maximum notional; it can never withdraw."""
    address = checksum(key)
    cap = Decimal(0) if max_notional is None else parse_amount(max_notional, "--max-notional")
    with wallet_session(keystore, wallet, rpc, api, as_json) as s:
        s.wallet  # noqa: B018
        names = {s.instrument_id(symbol): symbol for symbol in instrument or []}
        result = s.ops.add_key(
            address,
            expires_at=parse_moment(expires, s.chain_time()),
            all_instruments=not names,
            max_notional=cap,
            instruments=list(names),
        )
        view = s.ops.key(address, list(names))
        quote = s.ops.margin_status().quote
    if as_json:
        print_json({**key_json(view, names), **tx_json(result)})
        return
    print_key(view, names, quote)
    print_done("authorised", result)


@key_app.command("revoke")
def key_revoke(
    key: KeyAddress,
    keystore: KeystoreOption,
    wallet: WalletOption = None,
    rpc: RpcOption = None,
    api: ApiOption = DEFAULT_API,
    as_json: AsJson = False,
) -> None:
    """Revoke a trading key at once: none of its signatures settles from now on."""
    address = checksum(key)
    with wallet_session(keystore, wallet, rpc, api, as_json) as s:
        s.wallet  # noqa: B018
        result = s.ops.revoke_key(address)
        view = s.ops.key(address)
    if as_json:
        print_json({**key_json(view, {}), **tx_json(result)})
        return
    print_done(f"revoked trading key {address}", result)


@key_app.command("show")
def key_show(
    key: KeyAddress,
    keystore: KeystoreOption,
    instrument: Annotated[
        list[str] | None,
        typer.Option("--instrument", help="Also say whether the key may trade this instrument"),
    ] = None,
    wallet: WalletOption = None,
    rpc: RpcOption = None,
    api: ApiOption = DEFAULT_API,
    as_json: AsJson = False,
) -> None:
    """A trading key's scope now."""
    address = checksum(key)
    with wallet_session(keystore, wallet, rpc, api, as_json) as s:
        s.wallet  # noqa: B018
        names = {s.instrument_id(symbol): symbol for symbol in instrument or []}
        view = s.ops.key(address, list(names))
        quote = s.ops.margin_status().quote
    if as_json:
        print_json(key_json(view, names))
    else:
        print_key(view, names, quote)


# --------------------------------------------------------------------------- cancels


@wallet_app.command("cancel")
def wallet_cancel(
    keystore: KeystoreOption,
    order_id: Annotated[
        str | None,
        typer.Argument(
            metavar="ORDER_ID", help="A signed order's id at the gateway", show_default=False
        ),
    ] = None,
    digest: Annotated[
        str | None, typer.Option(help="Cancel the order or strategy with this EIP-712 digest")
    ] = None,
    below: Annotated[
        int | None,
        typer.Option(min=1, help="Cancel every order and strategy whose nonce is below this"),
    ] = None,
    chain_only: Annotated[
        bool,
        typer.Option(
            "--chain-only", help="Do not also cancel the orders at the gateway (by id, --below)"
        ),
    ] = False,
    wallet: WalletOption = None,
    rpc: RpcOption = None,
    api: ApiOption = DEFAULT_API,
    as_json: AsJson = False,
) -> None:
    """Cancel signed orders on chain, where no operator can undo it: one by its id at the
    gateway or by its digest, or every one below a nonce (owner only). What filled stays
    filled. Orders cancelled so are cancelled at the gateway too, unless --chain-only."""
    if sum(x is not None for x in (order_id, digest, below)) != 1:
        raise typer.BadParameter("give one of ORDER_ID, --digest or --below")
    if digest is not None and not re.fullmatch(r"0x[0-9a-fA-F]{64}", digest):
        raise typer.BadParameter("a digest is 0x and 64 hex digits", param_hint="--digest")
    report: dict[str, Any] = {}
    with wallet_session(keystore, wallet, rpc, api, as_json) as s:
        if order_id is not None:
            order: Order = s.isthmus.get_order(order_id)
            order_digest = _signed_digest(s, order)
            s.ops = _for_wallet(s, order.account)
            result = s.ops.cancel(order_digest)
            report = {"order_id": order.id, "digest": "0x" + order_digest.hex()}
            at_gateway = [order] if order.is_open else []
        elif digest is not None:
            s.wallet  # noqa: B018
            result = s.ops.cancel(bytes.fromhex(digest[2:]))
            report, at_gateway = {"digest": digest.lower()}, []
        else:
            assert below is not None
            target = s.wallet
            result = s.ops.cancel_below(below)
            s.isthmus.aio.nonces.skip_to(s.chain.chain_id, target, below)
            report = {"below": below, "min_nonce": s.ops.min_nonce()}
            at_gateway = [] if chain_only else _open_below(s, target, below)
        report = {"wallet": s.ops.wallet, **report, **tx_json(result)}
        if not chain_only and at_gateway:
            report["cancelled_at_gateway"] = _cancel_at_gateway(s, at_gateway)
    if as_json:
        print_json(report)
        return
    if order_id is not None:
        what = f"cancelled order {order_id} (digest {report['digest']}) on chain"
    elif digest is not None:
        what = f"cancelled digest {report['digest']} on chain"
    else:
        what = f"cancelled every order below nonce {below} on chain"
    print_done(what, result)
    for cancelled in report.get("cancelled_at_gateway", []):
        console.print(f"cancelled at the gateway: {cancelled}", highlight=False)


def _for_wallet(s: Session, wallet: str) -> WalletOps:
    """The session's operations, for `wallet` (an order's account) if the key's is another."""
    from isthmus_client import WalletOps
    from isthmus_client.errors import ChainError

    try:
        if s.ops.wallet == wallet:
            return s.ops
    except ChainError:
        pass  # a trading key has no wallet of its own
    return WalletOps(s.ops.rpc_url, s.signer.for_wallet(wallet), s.chain, progress=s.progress)


def _signed_digest(s: Session, order: Order) -> bytes:
    """The EIP-712 digest the wallet knows the order by, rebuilt from the order's own fields
    and its signed nonce and deadline, and checked against its signature."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    from isthmus_client.contracts import margin_wallet
    from isthmus_client.signing import digest, order_message, strategy_message, typed_data

    signed = order.raw.get("signed")
    if not signed:
        fail(
            f"order {order.id} is not signed: it has nothing on chain to cancel "
            "(`isthmus orders cancel` cancels it at the gateway)"
        )
    if order.price is None:
        fail(f"order {order.id} has no limit price: it cannot have been signed")
    nonce, deadline = int(signed["nonce"]), int(signed["deadline"])
    message: Any
    if order.instrument is not None:
        message = order_message(
            s.isthmus.instrument(order.instrument),
            s.chain.tokens,
            side=order.side,
            quantity=order.quantity,
            price=order.price,
            nonce=nonce,
            deadline=deadline,
        )
    else:
        message = strategy_message(
            [(s.isthmus.instrument(leg.instrument), leg.side, leg.ratio) for leg in order.legs],
            s.chain.tokens,
            side=order.side,
            quantity=order.quantity,
            price=order.price,
            nonce=nonce,
            deadline=deadline,
        )
    data = typed_data(message, s.chain.chain_id, order.account)
    signer = str(
        Account.recover_message(encode_typed_data(full_message=data), signature=signed["signature"])
    )
    owner = str(margin_wallet(s.ops.w3, order.account).functions.owner().call())
    if signer.lower() != owner.lower() and not _for_wallet(s, order.account).key(signer).exists:
        fail(
            f"order {order.id}: its fields no longer match what was signed (the signature is "
            f"neither the owner's nor a trading key's); cancel it with --digest or --below"
        )
    return digest(data)


def _open_below(s: Session, wallet: str, nonce: int) -> list[Order]:
    """The wallet's open signed orders at the gateway with a nonce below `nonce`."""
    return [
        order
        for order in s.isthmus.iter_orders(account=wallet)
        if order.is_open and order.raw.get("signed") and int(order.raw["signed"]["nonce"]) < nonce
    ]


def _cancel_at_gateway(s: Session, orders: Sequence[Order]) -> list[str]:
    """Cancel at the gateway what the chain cancelled already, so that it is not matched
    only to fail at settlement; a refusal here is a warning (the chain's cancel holds)."""
    from isthmus_client.errors import IsthmusError

    try:
        items = s.isthmus.cancel_orders([order.id for order in orders])
    except IsthmusError as error:
        console.print(f"[yellow]the gateway did not cancel them too:[/] {escape(str(error))}")
        return []
    done: list[str] = []
    for item in items:
        if item.error is not None:
            console.print(f"[yellow]the gateway did not cancel one:[/] {escape(str(item.error))}")
        elif item.order is not None:
            done.append(item.order.id)
    return done


# --------------------------------------------------------------------------- the escape hatch


@wallet_app.command("exit")
def wallet_exit(
    keystore: KeystoreOption,
    underlying: Annotated[
        str | None, typer.Option(help="Settle this underlying's series (with --expiry)")
    ] = None,
    expiry: Annotated[
        str | None,
        typer.Option(help="The series' expiry: a date (2027-03-26) or a time (…T08:00Z)"),
    ] = None,
    quote: Annotated[
        str | None, typer.Option(help="The series' quote token (default: the wallet's)")
    ] = None,
    wallet: WalletOption = None,
    rpc: RpcOption = None,
    api: ApiOption = DEFAULT_API,
    as_json: AsJson = False,
) -> None:
    """Leave without the operator: settle expired option series at their feed's price (the
    one given, or every expired series the wallet holds), then withdraw everything free to
    the owner. Positions that have not expired keep their margin in the wallet."""
    from isthmus_client.contracts import settlement

    if (underlying is None) != (expiry is None):
        raise typer.BadParameter("give --underlying and --expiry together (or neither)")
    with wallet_session(keystore, wallet, rpc, api, as_json) as s:
        source = s.wallet
        quote_symbol = quote or s.ops.margin_status().quote
        now = s.chain_time()
        if underlying is not None and expiry is not None:
            series = {(underlying, quote_symbol, _series_expiry(s, underlying, expiry))}
        else:
            series = {
                (p.underlying, p.quote, int(p.expiry.timestamp()))
                for p in s.ops.positions()
                if int(p.expiry.timestamp()) <= now
            }
        contract = settlement(s.ops.w3, s.chain.settlement).functions
        settled: list[dict[str, Any]] = []
        for base, quote_of, expires in sorted(series):
            name = f"{base}/{quote_of} {iso(datetime.fromtimestamp(expires, UTC))}"
            series_id = contract.series_id(
                s.chain.token(base).address, s.chain.token(quote_of).address, expires
            ).call()
            if contract.series_settled(series_id).call():
                s.progress(f"{name} is settled already")
                settled.append({"series": name, "settled_already": True})
                continue
            settled.append(
                {"series": name, **tx_json(s.ops.settle_expiry(base, quote_of, expires))}
            )
        withdrawn: dict[str, str] = {}
        sent: list[dict[str, Any]] = []
        for symbol in s.chain.tokens:
            free = s.ops.withdrawable(symbol)
            if free > 0:
                sent.append({"symbol": symbol, **tx_json(s.ops.withdraw(symbol, free))})
                withdrawn[symbol] = words(free)
        remaining = {symbol: words(s.ops.balance(symbol)) for symbol in s.chain.tokens}
        later = [p for p in s.ops.positions() if int(p.expiry.timestamp()) > now]
    report = {
        "wallet": source,
        "settled": settled,
        "withdrawn": withdrawn,
        "withdrawals": sent,
        "remaining": remaining,
        "open_positions": len(later),
    }
    if as_json:
        print_json(report)
        return
    if not settled:
        console.print("no expired option series to settle")
    for entry in settled:
        state = "settled already" if entry.get("settled_already") else "settled"
        console.print(f"{entry['series']}: {state}", highlight=False)
    moved = ", ".join(f"{amount} {symbol}" for symbol, amount in withdrawn.items())
    console.print(f"withdrew {moved or 'nothing'} from {source} to its owner", highlight=False)
    left = ", ".join(f"{a} {sym}" for sym, a in remaining.items() if Decimal(a) != 0)
    if later:
        console.print(
            f"{len(later)} option positions expire later: their margin stays ({left})",
            highlight=False,
        )
    elif left:
        console.print(f"left in the wallet: {left}", highlight=False)


def _series_expiry(s: Session, underlying: str, text: str) -> int:
    """The series' expiry in unix seconds: as given with a time, or for a date the expiry
    of the listed options on `underlying` that expire that day."""
    if "T" in text or text.isdigit():
        return parse_moment(text, 0)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date (2027-03-26)", param_hint="--expiry"
        ) from None
    listed: dict[str, Instrument] = s.isthmus.instruments()
    times = {
        i.expiry
        for i in listed.values()
        if i.kind == "option" and i.base == underlying and i.expiry and i.expiry.date() == day
    }
    if len(times) != 1:
        found = ", ".join(sorted(iso(t) for t in times)) or "none is listed"
        fail(f"which {underlying} expiry on {day}? give its time ({found})", 2)
    return int(times.pop().timestamp())


# --------------------------------------------------------------------------- signed orders


def submit_signed(
    api: str,
    keystore: Path | None,
    wallet: str | None,
    *,
    account: str,
    instrument: str,
    side: str,
    quantity: str,
    price: str | None,
    order_type: str,
    time_in_force: str,
    route: str = "direct",
    client_order_id: str | None,
) -> dict[str, Any]:
    """`isthmus orders submit --sign`: the order signed here (EIP-712) with the keystore's
    key, the wallet's owner or a trading key of it, and submitted; its JSON."""
    if keystore is None:
        fail(f"--sign needs the key: give --keystore (or set {KEYSTORE_ENV})", 2)
    account = checksum(account)
    if wallet is not None and checksum(wallet) != account:
        fail(f"--wallet {wallet} is not the order's account {account}", 2)
    if price is None or order_type != "limit":
        fail("a signed order is a limit order: give --price (and no other --type)", 2)
    signer = load_signer(keystore, account)
    with failures(), open_client(api, signer) as isthmus:
        order: Order = isthmus.place_order(
            instrument,
            side,
            quantity,
            price=price,
            account=account,
            client_order_id=client_order_id,
            time_in_force=time_in_force,
            route=route,
            sign=True,
        )
    return order.raw


# --------------------------------------------------------------------------- keystores


OutOption = Annotated[
    Path, typer.Option("--out", help="The keystore file to write (it must not exist)")
]


def _refuse_existing(out: Path) -> None:
    if out.exists():
        fail(f"{out} exists already: choose another file (nothing was written)", 2)


@keystore_app.command("new")
def keystore_new(out: OutOption, as_json: AsJson = False) -> None:
    """A fresh key in a new encrypted keystore (the password twice, or from
    ISTHMUS_KEYSTORE_PASSWORD)."""
    from isthmus_client import Signer

    _refuse_existing(out)
    address = Signer.new_keystore(out, keystore_password(out, confirm=True))
    _print_keystore(address, out, as_json)


@keystore_app.command("import")
def keystore_import(out: OutOption, as_json: AsJson = False) -> None:
    """Encrypt an existing key into a new keystore. The key is read from a hidden prompt on
    a terminal, else from the first line of stdin: never from the command line."""
    from isthmus_client import Signer

    _refuse_existing(out)
    if sys.stdin.isatty():
        raw: str = typer.prompt("Private key (hidden)", hide_input=True, err=True)
    else:
        raw = sys.stdin.readline()
    key = raw.strip()
    if not _PRIVATE_KEY.fullmatch(key):
        fail("that is not a private key (64 hex digits, with or without 0x): nothing was written")
    try:
        address = Signer.new_keystore(out, keystore_password(out, confirm=True), key)
    except ValueError:
        fail("that is not a valid private key: nothing was written")
    _print_keystore(address, out, as_json)


def _print_keystore(address: str, out: Path, as_json: bool) -> None:
    if as_json:
        print_json({"address": address, "keystore": str(out)})
    else:
        console.print(f"key [bold]{address}[/] in {out} (encrypted)", highlight=False)


# --------------------------------------------------------------------------- devnet


@devnet_app.command("faucet")
def devnet_faucet(
    address: Annotated[str, typer.Argument(help="The address to fund")],
    deployment: Annotated[
        Path, typer.Option(help="The devnet's deployment file")
    ] = DEVNET_DEPLOYMENT,
    eth: Annotated[str, typer.Option(help="Ether for gas (at least this much)")] = "10",
    weth: Annotated[str, typer.Option(help="WETH to mint")] = "20",
    usdc: Annotated[str, typer.Option(help="USDC to mint")] = "100000",
    rpc: RpcOption = None,
    api: ApiOption = DEFAULT_API,
    as_json: AsJson = False,
) -> None:
    """Devnet only: gas money and test tokens for a key of your own."""
    from gateway.devnet.faucet import fund

    target = checksum(address)
    amounts = {
        name: parse_amount(value, f"--{name}", zero=True)
        for name, value in (("eth", eth), ("weth", weth), ("usdc", usdc))
    }
    if not deployment.is_file():
        fail(f"no devnet deployment at {deployment} (run `isthmus up` here, or --deployment)", 2)
    with failures():
        if rpc is None:
            with open_client(api, None) as isthmus:
                chain: ChainInfo = isthmus.chain()
            rpc = chain.rpc_url
            if rpc is None:
                fail("the gateway publishes no RPC URL: give --rpc", 2)
        with Progress(progress_console(as_json)) as progress:
            progress(f"funding {target} on {rpc}")
            try:
                funded = fund(rpc, deployment, target, **amounts)
            except Exception as error:  # not anvil, not the devnet's tokens, a dead node
                fail(f"the faucet failed (devnet only): {error}")
    report = {
        "address": funded.address,
        "eth": words(funded.eth),
        "weth": words(funded.weth),
        "usdc": words(funded.usdc),
    }
    if as_json:
        print_json(report)
    else:
        console.print(
            f"funded {funded.address}: {report['eth']} ETH, {report['weth']} WETH, "
            f"{report['usdc']} USDC",
            highlight=False,
        )
