"""The trader's trading panel in a real browser: orders signed (EIP-712) by the browser wallet
over a payload the page builds itself, matched on the devnet's internal book, settled on
chain; the strategy builder's payoff and margin; the API's refusals shown as they come.

The page's trader is anvil's dev account 6; account 7 is the counterparty, placing its
orders from Python with `isthmus_client`. Both get fresh wallets here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from eth_account import Account
from isthmus_client import Isthmus, Signer, WalletOps
from isthmus_client.models import ChainInfo
from isthmus_client.nonces import NonceStore
from isthmus_client.strategies import iron_condor
from playwright.sync_api import Page, Route, expect
from web3 import Web3

from gateway.devnet.faucet import fund
from tests.client.devnet_gateway import DevnetGateway
from tests.web.conftest import (
    DEV_ACCOUNTS,
    OpenPage,
    screenshot,
    serious_accessibility_violations,
)

TRADER, COUNTERPARTY = DEV_ACCOUNTS[6], DEV_ACCOUNTS[7]
EXPIRY = "20270326"
CONDOR = (2500, 2800, 3200, 3500)
# the counterparty's two-sided quotes on each leg: mids that net to 220 for the condor, wide
# enough (±50) that the condor crosses only the counterparty's condor, never the legs
LEG_MIDS = {"2500-P": 150, "2800-P": 270, "3200-C": 330, "3500-C": 230}
TX_HASH = re.compile(r"^0x[0-9a-f]{64}$")
# the panel's elements that reach past the screen's right edge (outside any box that scrolls)
WIDER_THAN_THE_SCREEN = """(selector) => {
  const inScroller = (e) => e.closest(".trading-scroll") && !e.classList.contains("trading-scroll");
  return [...document.querySelectorAll(`${selector} *`)]
    .filter((e) => !inScroller(e) && e.getBoundingClientRect().right > innerWidth + 0.5)
    .map((e) => `${e.tagName.toLowerCase()}.${e.className} ${e.getBoundingClientRect().right}`);
}"""


@dataclass
class World:
    chain: ChainInfo
    trader: WalletOps
    counterparty: Isthmus
    operator: httpx.Client


@pytest.fixture(scope="module")
def world(devnet: DevnetGateway) -> Iterator[World]:
    chain = ChainInfo.from_json(devnet.chain())
    assert chain.rpc_url is not None
    wallets = []
    for address, key in (TRADER, COUNTERPARTY):
        fund(chain.rpc_url, devnet.state / "deployment.json", address)
        ops = WalletOps(chain.rpc_url, Signer(Account.from_key(key)), chain)
        ops.create()
        ops.deposit("USDC", Decimal(20_000))
        ops.deposit("WETH", Decimal(2))
        wallets.append(ops)
    trader, counterparty = wallets
    operator = httpx.Client(
        base_url=devnet.url,
        headers={"authorization": f"Bearer {devnet.operator_token}"},
        timeout=30,
    )
    market = Isthmus(devnet.url, counterparty.signer, nonces=NonceStore(None))
    yield World(chain, trader, market, operator)
    # the devnet is shared by the session's suites: the quotes left resting here would fill
    # another suite's orders (a later test's fresh maker selling a put at 100 met this buy)
    assert counterparty.signer.wallet is not None
    market.cancel_orders(account=counterparty.signer.wallet)
    market.close()
    operator.close()


def signed_in(open_page: OpenPage, width: str = "laptop") -> Page:
    page = open_page(TRADER[0], width=width)
    page.get_by_role("button", name="Connect wallet and sign in").click()
    expect(page.get_by_test_id("signed-in-as")).to_have_text(TRADER[0])
    expect(page.get_by_test_id("trading")).to_be_visible()
    return page


def fill_row(page: Page, instrument: str) -> Any:
    return page.get_by_test_id("fills").locator("tbody tr", has_text=instrument)


def test_a_signed_limit_order_fills_against_the_book_and_settles_on_chain(
    world: World, open_page: OpenPage
) -> None:
    book = world.operator.get("/v1/book/WETH/USDC").json()
    price = Decimal(book["mid"]).quantize(Decimal("0.01"))
    quantity = Decimal("0.1234")
    resting = world.counterparty.place_order("WETH/USDC", "sell", str(quantity), price=str(price))
    assert resting.status == "accepted"
    weth_before = world.trader.balance("WETH")
    usdc_before = world.trader.balance("USDC")

    page = signed_in(open_page)
    page.get_by_test_id("instrument-picker").select_option("WETH/USDC")
    ticket = page.get_by_test_id("order-ticket")
    expect(page.get_by_test_id("book")).to_contain_text("internal")  # the resting order's venue
    ticket.get_by_label("Price (USDC").fill(str(price))
    ticket.get_by_label("Quantity (WETH").fill(str(quantity))
    expect(ticket.get_by_test_id("ticket-what-if-verdict")).to_contain_text("would accept")
    ticket.get_by_role("button", name="Sign and place buy").click()

    expect(page.get_by_test_id("ticket-placed")).to_contain_text("filled", timeout=60_000)
    row = fill_row(page, "WETH/USDC").filter(has_text=f"{quantity} WETH")
    settled = row.get_by_test_id("settled-tx")
    expect(settled).to_have_text(TX_HASH, timeout=90_000)
    tx_hash = settled.inner_text()

    assert world.chain.rpc_url is not None
    receipt = Web3(Web3.HTTPProvider(world.chain.rpc_url)).eth.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    order_id = page.get_by_test_id("ticket-placed").locator(".mono").inner_text()
    fills = world.operator.get(f"/v1/orders/{order_id}/fills").json()
    assert [(f["quantity"], f["settlement"], f["tx_hash"]) for f in fills] == [
        (str(quantity), "settled", tx_hash)
    ]
    fee = sum(Decimal(f["fee"]) for f in fills)
    assert world.trader.balance("WETH") - weth_before == quantity
    assert usdc_before - world.trader.balance("USDC") == quantity * price + fee
    # where the operator publishes a block explorer (GET /v1/chain `explorer_url`; the devnet
    # has none), the settled fill links to its transaction there
    explorer = "https://explorer.example/mainnet"

    def with_explorer(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "explorer_url": explorer})

    page.route("**/v1/chain", with_explorer)
    page.reload()
    link = fill_row(page, "WETH/USDC").filter(has_text=tx_hash).get_by_role("link")
    expect(link).to_have_attribute("href", f"{explorer}/tx/{tx_hash}")


def test_an_iron_condor_is_built_signed_and_settled_against_a_mirrored_condor(
    world: World, open_page: OpenPage
) -> None:
    for side, offset in (("buy", -50), ("sell", 50)):  # buys first: the calls get covered
        for leg, mid in LEG_MIDS.items():
            world.counterparty.place_order(
                f"WETH-{EXPIRY}-{leg}", side, "1", price=str(mid + offset)
            )
    mirrored = world.counterparty.place_strategy(
        iron_condor("WETH", EXPIRY, *CONDOR), "buy", "1", price="220"
    )
    assert mirrored.status == "accepted"

    page = signed_in(open_page)
    expect(page.get_by_test_id("margin-used")).to_have_text("0 USDC")
    builder = page.get_by_test_id("strategy-builder")
    builder.get_by_label("Preset").select_option("condor")
    for label, strike in zip(
        ("Put wing", "Put body", "Call body", "Call wing"), CONDOR, strict=True
    ):
        builder.get_by_label(label).select_option(str(strike))
    expect(builder.get_by_test_id("strategy-legs")).to_contain_text(f"WETH-{EXPIRY}-3500-C")
    expect(builder.get_by_test_id("net-mid")).to_contain_text("220 USDC")
    builder.get_by_role("radio", name="Sell").check()
    builder.get_by_label("Net price per unit").fill("220")
    builder.get_by_label("Quantity (WETH)").fill("1")

    # the short condor collects 220 and can lose 300 - 220 at expiry; its legs lock 300
    expect(builder.get_by_test_id("strategy-net")).to_contain_text("You receive 220 USDC")
    expect(builder.get_by_test_id("max-profit")).to_have_text("220 USDC")
    expect(builder.get_by_test_id("max-loss")).to_have_text("80 USDC")
    expect(builder.get_by_test_id("legs-collateral")).to_contain_text("300 USDC")
    expect(builder.get_by_test_id("payoff-chart").locator("canvas").first).to_be_visible()
    verdict = builder.get_by_test_id("strategy-what-if-verdict")
    expect(verdict).to_contain_text("would accept", timeout=60_000)
    expect(builder.get_by_test_id("strategy-what-if-margin")).to_contain_text("USDC")
    # the contract's own rule once the condor settles: the wallet would need its 300 locked
    expect(builder.get_by_test_id("strategy-what-if-onchain")).to_contain_text("needs 300 USDC")
    builder.get_by_role("button", name="Sign and place the iron condor").click()

    expect(builder.get_by_test_id("strategy-placed")).to_contain_text("filled", timeout=60_000)
    for leg in LEG_MIDS:
        settled = fill_row(page, f"WETH-{EXPIRY}-{leg}").get_by_test_id("settled-tx")
        expect(settled).to_have_text(TX_HASH, timeout=90_000)
    hashes = {
        fill_row(page, f"WETH-{EXPIRY}-{leg}").get_by_test_id("settled-tx").inner_text()
        for leg in LEG_MIDS
    }
    assert len(hashes) == 1  # all four legs in one settlement transaction

    sizes = {(int(p.strike), p.is_call): p.size for p in world.trader.positions() if p.size != 0}
    assert sizes == {(2500, False): 1, (2800, False): -1, (3200, True): -1, (3500, True): 1}
    positions = page.get_by_test_id("positions")
    for leg in LEG_MIDS:
        expect(positions).to_contain_text(f"WETH-{EXPIRY}-{leg}", timeout=60_000)
    expect(page.get_by_test_id("margin-used")).to_have_text("300 USDC", timeout=60_000)


def test_an_order_the_api_refuses_shows_its_message_and_code(
    world: World, open_page: OpenPage
) -> None:
    page = signed_in(open_page)
    page.get_by_test_id("instrument-picker").select_option("WETH/USDC")
    ticket = page.get_by_test_id("order-ticket")
    ticket.get_by_label("Price (USDC").fill("90000")
    ticket.get_by_label("Quantity (WETH").fill("0.01")
    # the what-if says so before signing, and the API's answer after
    expect(ticket.get_by_test_id("ticket-what-if-verdict")).to_contain_text("price_outside_band")
    ticket.get_by_role("button", name="Sign and place buy").click()
    error = ticket.get_by_test_id("ticket-error")
    expect(error.get_by_role("alert")).to_contain_text("(price_outside_band)")
    expect(error).to_contain_text("band")
    expect(page.get_by_test_id("ticket-placed")).to_have_count(0)


@pytest.mark.parametrize("width", ["laptop", "phone"])
def test_the_panel_and_the_builder_at_both_widths_without_serious_violations(
    world: World, open_page: OpenPage, width: str
) -> None:
    page = signed_in(open_page, width)
    page.get_by_test_id("instrument-picker").select_option("WETH/USDC")
    expect(page.get_by_test_id("depth-chart").locator("canvas").first).to_be_visible()
    expect(page.get_by_test_id("book")).to_contain_text("binance")
    page.get_by_test_id("order-ticket").scroll_into_view_if_needed()
    screenshot(page, f"trader-trading-{width}")
    builder = page.get_by_test_id("strategy-builder")
    builder.get_by_label("Net price per unit").fill("220")
    expect(builder.get_by_test_id("max-loss")).to_be_visible()
    builder.scroll_into_view_if_needed()
    screenshot(page, f"trader-strategy-{width}")
    assert page.evaluate(WIDER_THAN_THE_SCREEN, '[data-testid="trading"]') == []
    assert serious_accessibility_violations(page) == []  # the whole trader screen
