"""The trader's wallet panel in a real browser against the devnet: create a MarginWallet,
deposit and withdraw through the browser wallet (anvil signs and sends), trading keys, and
the chain agreeing with what the page shows. Dev account 4 is a fresh owner; dev account 5
owns a wallet set up from Python with a short put, so that margin is in use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from isthmus_client import Isthmus, Signer, WalletOps
from isthmus_client.contracts import ERC20_ABI, abi
from isthmus_client.models import ChainInfo
from isthmus_client.nonces import NonceStore
from isthmus_client.signing import instrument_id
from playwright.sync_api import Page, expect
from web3 import Web3
from web3.contract import Contract

from gateway.devnet.faucet import fund
from tests.client.devnet_gateway import DevnetGateway
from tests.web.conftest import DEV_ACCOUNTS, OpenPage, screenshot, serious_accessibility_violations

PUT = "WETH-20270326-2800-P"  # dev account 5's wallet sells one: 2,800 USDC of margin
HEDGE = "WETH-20270326-2500-P"  # and may buy one later: a put spread, 300 USDC of margin


@pytest.fixture(scope="module")
def chain(devnet: DevnetGateway) -> ChainInfo:
    return ChainInfo.from_json(devnet.chain())


@pytest.fixture(scope="module")
def w3(rpc_url: str) -> Web3:
    return Web3(Web3.HTTPProvider(rpc_url))


def funded(devnet: DevnetGateway, chain: ChainInfo, signer: Signer, usdc: str) -> WalletOps:
    """`signer`'s wallet (made if it has none) holding `usdc` more USDC, from the faucet."""
    assert chain.rpc_url is not None
    fund(chain.rpc_url, devnet.state / "deployment.json", signer.address)
    ops = WalletOps(chain.rpc_url, signer, chain)
    ops.create()
    ops.deposit("USDC", Decimal(usdc))
    return ops


@dataclass(frozen=True)
class ShortPut:
    signer: Signer  # bound to its wallet
    nonces: NonceStore  # the wallet's order nonces, used once each

    @property
    def owner(self) -> str:
        return self.signer.address

    @property
    def wallet(self) -> str:
        assert self.signer.wallet is not None
        return self.signer.wallet


def trade(devnet: DevnetGateway, chain: ChainInfo, taker: ShortPut, side: str, symbol: str) -> None:
    """`taker` takes one `symbol` from a fresh key's wallet resting the other side; settled."""
    maker = funded(devnet, chain, Signer(Account.create()), "5000")
    other = "sell" if side == "buy" else "buy"
    with (
        Isthmus(devnet.url, maker.signer, nonces=NonceStore(None)) as resting,
        Isthmus(devnet.url, taker.signer, nonces=taker.nonces) as taking,
    ):
        resting.place_order(symbol, other, "1", price="270" if symbol == PUT else "100")
        taken = taking.place_order(symbol, side, "1", price="270" if symbol == PUT else "100")
        fills = taking.wait_settled(taken.id)
    assert [f.settlement for f in fills] == ["settled"]


@pytest.fixture(scope="module")
def short_put(devnet: DevnetGateway, chain: ChainInfo) -> ShortPut:
    """Dev account 5's wallet: 5,000 USDC deposited, then one 2800 put sold to a fresh key's
    wallet on the internal book and settled on chain."""
    me = ShortPut(
        funded(devnet, chain, Signer.from_key(DEV_ACCOUNTS[5][1]), "5000").signer, NonceStore(None)
    )
    trade(devnet, chain, me, "sell", PUT)
    return me


def signed_in(open_page: OpenPage, owner: str, width: str = "laptop") -> Page:
    page = open_page(owner, width=width)
    page.get_by_role("button", name="Connect wallet and sign in").click()
    expect(page.get_by_test_id("signed-in-as")).to_have_text(owner)
    return page


def margin_wallet(w3: Web3, address: str) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi("MarginWallet"))


def balance(w3: Web3, chain: ChainInfo, symbol: str, holder: str) -> int:
    token = w3.eth.contract(
        address=Web3.to_checksum_address(chain.token(symbol).address), abi=ERC20_ABI
    )
    return int(token.functions.balanceOf(Web3.to_checksum_address(holder)).call())


def shown(units: int, decimals: int, symbol: str) -> str:
    """Token units as the page shows them: grouped, exact, no trailing zeros."""
    return f"{Decimal(units).scaleb(-decimals).normalize():,f} {symbol}"


def move_funds(page: Page, kind: str, symbol: str, amount: str) -> None:
    form = page.get_by_role("form", name=kind.capitalize())
    form.get_by_label(f"Token to {kind}").select_option(symbol)
    form.get_by_label(f"Amount to {kind}").fill(amount)
    form.get_by_role("button", name=kind.capitalize()).click()


def test_a_fresh_owner_creates_a_wallet_and_deposits_exact_amounts(
    devnet: DevnetGateway, chain: ChainInfo, w3: Web3, rpc_url: str, open_page: OpenPage
) -> None:
    owner = DEV_ACCOUNTS[4][0]
    factory = w3.eth.contract(
        address=Web3.to_checksum_address(chain.wallet_factory), abi=abi("WalletFactory")
    )
    assert int(factory.functions.wallet_of(owner).call(), 16) == 0, "dev account 4 must be fresh"
    fund(rpc_url, devnet.state / "deployment.json", owner)
    page = signed_in(open_page, owner)

    page.get_by_role("button", name="Create wallet").click()
    address = page.get_by_test_id("wallet-address")
    expect(address).to_have_text(re.compile(r"^0x[0-9a-fA-F]{40}$"))
    wallet = address.inner_text()
    assert factory.functions.wallet_of(owner).call() == wallet
    seeded = {symbol: balance(w3, chain, symbol, wallet) for symbol in ("USDC", "WETH")}

    # finer than the token: refused on the page, nothing sent
    move_funds(page, "deposit", "USDC", "1.1234567")
    expect(page.get_by_role("form", name="Deposit").get_by_role("alert")).to_contain_text(
        "more than 6 decimals"
    )
    assert balance(w3, chain, "USDC", wallet) == seeded["USDC"]

    move_funds(page, "deposit", "USDC", "1234.567891")
    expect(page.get_by_role("form", name="Deposit").get_by_role("status")).to_contain_text(
        "Deposited 1,234.567891 USDC"
    )
    move_funds(page, "deposit", "WETH", "1.000000000000000001")
    expect(page.get_by_role("form", name="Deposit").get_by_role("status")).to_contain_text(
        "Deposited 1.000000000000000001 WETH"
    )

    usdc = seeded["USDC"] + 1_234_567_891
    weth = seeded["WETH"] + 10**18 + 1
    assert balance(w3, chain, "USDC", wallet) == usdc
    assert balance(w3, chain, "WETH", wallet) == weth
    expect(page.get_by_test_id("balance-USDC")).to_have_text(shown(usdc, 6, "USDC"))
    expect(page.get_by_test_id("balance-WETH")).to_have_text(shown(weth, 18, "WETH"))
    # no option position: nothing required, everything free
    expect(page.get_by_test_id("margin-used")).to_have_text("0 USDC")
    expect(page.get_by_test_id("margin-gauge")).to_have_attribute("aria-valuenow", "0")
    expect(page.get_by_test_id("positions")).to_contain_text("No open positions.")


def test_a_withdrawal_beyond_the_free_margin_shows_the_wallets_reason_and_moves_nothing(
    short_put: ShortPut, chain: ChainInfo, w3: Web3, open_page: OpenPage
) -> None:
    required, available, ok = margin_wallet(w3, short_put.wallet).functions.margin_status().call()
    assert required > 0 and ok
    free = available - required
    page = signed_in(open_page, short_put.owner)
    expect(page.get_by_test_id("margin-used")).to_have_text(shown(required, 6, "USDC"))
    expect(page.get_by_test_id("margin-free")).to_have_text(shown(free, 6, "USDC"))
    gauge = page.get_by_test_id("margin-gauge")
    expect(gauge).to_have_attribute("role", "meter")
    expect(gauge).to_have_attribute(
        "aria-valuenow", str(Decimal(required * 10000 // available) / 100)
    )
    expect(page.get_by_test_id("positions")).to_contain_text(PUT)
    expect(page.get_by_test_id("positions")).to_contain_text("-1")

    before = balance(w3, chain, "USDC", short_put.wallet)
    move_funds(page, "withdraw", "USDC", f"{Decimal(free + 10**6).scaleb(-6)}")
    refusal = page.get_by_role("form", name="Withdraw").get_by_role("alert")
    expect(refusal).to_contain_text('the contract says "wallet: margin"')
    expect(refusal).to_contain_text(f"at most {shown(free, 6, 'USDC')} is free")
    assert balance(w3, chain, "USDC", short_put.wallet) == before

    owner_before = balance(w3, chain, "USDC", short_put.owner)
    move_funds(page, "withdraw", "USDC", "1000")
    expect(page.get_by_role("form", name="Withdraw").get_by_role("status")).to_contain_text(
        "Withdrew 1,000 USDC"
    )
    assert balance(w3, chain, "USDC", short_put.wallet) == before - 10**9
    assert balance(w3, chain, "USDC", short_put.owner) == owner_before + 10**9
    expect(page.get_by_test_id("balance-USDC")).to_have_text(shown(before - 10**9, 6, "USDC"))
    expect(page.get_by_test_id("margin-free")).to_have_text(shown(free - 10**9, 6, "USDC"))


def key_record(w3: Web3, wallet: str, key: str) -> tuple[Any, ...]:
    return tuple(margin_wallet(w3, wallet).functions.trading_key(key).call())


def test_a_trading_key_is_added_with_its_scope_then_revoked(
    short_put: ShortPut, chain: ChainInfo, w3: Web3, open_page: OpenPage
) -> None:
    key = Account.create().address
    page = signed_in(open_page, short_put.owner)
    form = page.get_by_role("form", name="Add a trading key")
    form.get_by_label("Trading key address").fill(key)
    form.get_by_label("Maximum notional per order (USDC)").fill("5000.5")
    form.get_by_label("May trade every instrument").uncheck()
    form.get_by_label("WETH/USDC").check()
    form.get_by_label("WETH-20270326-3000-C").check()
    form.get_by_role("button", name="Authorise key").click()
    expect(form.get_by_role("status")).to_contain_text(f"Authorised {key}")

    row = page.get_by_role("row").filter(has=page.get_by_text(key, exact=True))
    expect(row).to_contain_text("WETH/USDC, WETH-20270326-3000-C")
    expect(row).to_contain_text("5,000.5 USDC")
    expect(row).to_contain_text("active")
    expiry, all_instruments, max_notional, active = key_record(w3, short_put.wallet, key)
    now = int(w3.eth.get_block("latest")["timestamp"])
    assert now + 29 * 86_400 < expiry <= now + 31 * 86_400  # the form's default: 30 days
    assert (all_instruments, max_notional, active) == (False, 5_000_500_000, True)
    usdc, weth = chain.token("USDC"), chain.token("WETH")
    spot = instrument_id(0, weth.address, usdc.address)
    allowed = margin_wallet(w3, short_put.wallet).functions.key_instrument_allowed
    assert allowed(key, spot).call() is True

    row.get_by_role("button", name=f"Revoke {key}").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke key").click()
    expect(row).to_have_count(0)
    assert key_record(w3, short_put.wallet, key) == (0, False, 0, False)


def test_the_panel_refreshes_on_the_wallets_fills(
    short_put: ShortPut, devnet: DevnetGateway, chain: ChainInfo, w3: Web3, open_page: OpenPage
) -> None:
    status = margin_wallet(w3, short_put.wallet).functions.margin_status
    page = signed_in(open_page, short_put.owner)
    expect(page.get_by_test_id("margin-used")).to_have_text(shown(status().call()[0], 6, "USDC"))
    expect(page.get_by_test_id("positions")).not_to_contain_text(HEDGE)

    # the fill's events on the stream make the panel read the wallet's risk again (its 10 s
    # poll could too, in the same window: this cannot fail falsely, and fails when the
    # stream's events do not reach the panel unless the poll happens to come first)
    risk = f"/v1/accounts/{short_put.wallet}/risk"
    with page.expect_request(lambda request: risk.lower() in request.url.lower()):
        trade(devnet, chain, short_put, "buy", HEDGE)  # a put spread now
    required = status().call()[0]
    assert required == 300 * 10**6  # short 2800 put, long 2500 put
    expect(page.get_by_test_id("margin-used")).to_have_text(shown(required, 6, "USDC"))
    expect(page.get_by_test_id("positions")).to_contain_text(HEDGE)


@pytest.mark.parametrize("width", ["laptop", "phone"])
def test_the_wallet_panel_fits_the_width_and_has_no_serious_accessibility_violation(
    short_put: ShortPut, open_page: OpenPage, width: str
) -> None:
    page = signed_in(open_page, short_put.owner, width)
    expect(page.get_by_test_id("positions")).to_contain_text(PUT)
    expect(page.get_by_test_id("trading-keys").get_by_role("table")).to_be_visible()
    overflow = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
    assert overflow <= 0
    screenshot(page, f"trader-wallet-{width}")
    assert serious_accessibility_violations(page) == []
