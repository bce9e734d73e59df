"""The running screen: the wallet's owner is screened too, orders are valued as the pre-trade
checks value them, and an order screened before a listing cannot reach the book after it."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.compliance.files import DEVNET_KYC, DEVNET_RULES
from gateway.compliance.provider import FileKycProvider
from gateway.compliance.rules import ComplianceRefused
from gateway.compliance.screening import ComplianceScreen, ComplianceSources, order_notional
from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.errors import DomainError
from gateway.domain.instruments import EuropeanOption, Instrument
from gateway.domain.orders import Leg, OrderSpec, OrderType, Side, TimeInForce
from gateway.oms.order_facts import request_hash
from gateway.runtime import Runtime

WALLET = "0x1111111111111111111111111111111111111111"
OWNER = "0x2222222222222222222222222222222222222222"
NOT_A_WALLET = "0x3333333333333333333333333333333333333333"
CATALOGUE = devnet_catalogue()


class Mids:
    """Reference prices as the pre-trade validator gives them: a mid per instrument."""

    def __init__(self, mids: dict[str, Decimal]) -> None:
        self.mids = mids

    def reference_price(self, instrument: Instrument) -> Decimal | None:
        return self.mids.get(instrument.symbol)

    def underlying_price(self, instrument: Instrument) -> Decimal | None:
        mid = self.mids.get("WETH/USDC")
        if mid is None and isinstance(instrument, EuropeanOption):
            return instrument.strike
        return mid


async def owner_of(wallet: str) -> str:
    """What the chain answers for MarginWallet.owner(): a table of the wallets it knows."""
    if wallet.lower() == WALLET:
        return OWNER
    raise DomainError(f"{wallet} is not a MarginWallet", code="invalid_signature")


def spec(account: str = WALLET, **changes: object) -> OrderSpec:
    values: dict[str, object] = {
        "account": account,
        "client_order_id": "c1",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": Decimal(2),
        "instrument": "WETH/USDC",
        "price": Decimal(3000),
    }
    values.update(changes)
    return OrderSpec(**values)  # type: ignore[arg-type]


def screen_with(tmp_path: Path, sanctions: str, kyc: str | None = None) -> ComplianceScreen:
    (tmp_path / "s.csv").write_text(sanctions)
    kyc_path = DEVNET_KYC
    if kyc is not None:
        kyc_path = tmp_path / "k.toml"
        kyc_path.write_text(kyc)
    return ComplianceScreen(
        ComplianceSources(tmp_path / "s.csv", DEVNET_RULES),
        FileKycProvider(kyc_path),
        CATALOGUE,
        Mids({"WETH/USDC": Decimal(3000)}),
        owners=owner_of,
    )


def test_a_listed_owner_bars_its_wallet(tmp_path: Path) -> None:
    async def main() -> None:
        screen = screen_with(tmp_path, f"{OWNER.upper().replace('0X', '0x')},OFAC,owner\n")
        await screen.reload()
        decision = await screen.screen(spec())
        assert decision.code == "address_sanctioned"
        assert decision.payload()["addresses_screened"] == [WALLET, OWNER]
        assert screen.barred(WALLET) and screen.barred(OWNER)
        status = await screen.status(WALLET)
        assert status["owner"] == OWNER and status["sanctioned"]
        # an account the chain does not know as a wallet is screened alone
        alone = await screen.screen(spec(NOT_A_WALLET))
        assert alone.allowed and alone.payload()["addresses_screened"] == [NOT_A_WALLET]

    asyncio.run(main())


def test_a_wallet_without_a_record_uses_its_owners(tmp_path: Path) -> None:
    kyc = f'[[accounts]]\naddress = "{OWNER}"\nlevel = "basic"\njurisdiction = "CH"\n'

    async def main() -> None:
        screen = screen_with(tmp_path, "", kyc)
        await screen.reload()
        assert (await screen.screen(spec())).allowed  # 6000 of spot at basic
        refused = await screen.screen(spec(instrument="WETH-PERP", price=Decimal("3000.05")))
        assert refused.code == "kyc_insufficient"
        assert (await screen.screen(spec(NOT_A_WALLET))).code == "kyc_required"  # no default

    asyncio.run(main())


def test_orders_are_valued_like_the_pre_trade_checks() -> None:
    mids = Mids({"WETH/USDC": Decimal("3000"), "WETH-PERP": Decimal("3001")})
    assert order_notional(spec(), CATALOGUE, mids) == Decimal(6000)
    market = spec(order_type=OrderType.MARKET, price=None, time_in_force=TimeInForce.IOC)
    assert order_notional(market, CATALOGUE, mids) == Decimal(6000)
    perp_market = spec(
        instrument="WETH-PERP",
        order_type=OrderType.MARKET,
        price=None,
        time_in_force=TimeInForce.IOC,
    )
    assert order_notional(perp_market, CATALOGUE, mids) == Decimal(6002)
    assert order_notional(perp_market, CATALOGUE, Mids({})) is None  # nothing to value it by
    option = spec(instrument="WETH-20270326-3500-C", price=Decimal(50))
    assert order_notional(option, CATALOGUE, mids) == Decimal(6000)  # the underlying, not premium
    straddle = spec(
        instrument=None,
        price=Decimal(200),
        legs=(
            Leg("WETH-20270326-3000-C", Side.BUY, 1),
            Leg("WETH-20270326-3000-P", Side.BUY, 2),
        ),
    )
    assert order_notional(straddle, CATALOGUE, mids) == Decimal(2 * 3000 + 4 * 3000)


def test_an_order_screened_before_a_listing_cannot_reach_the_book_after_it(
    tmp_path: Path,
) -> None:
    sanctions = tmp_path / "s.csv"
    sanctions.write_text("# nobody yet\n")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'g.db'}", sanctions_file=sanctions)

    async def main() -> None:
        rt = Runtime.build(settings)
        await rt.start(expiry_interval=None, monitor=False, algos=False, reconcile_interval=None)
        try:
            late = spec(WALLET, side=Side.SELL)
            assert (await rt.compliance.screen(late)).allowed  # screened while not listed
            sanctions.write_text(f"{WALLET},OFAC,listed meanwhile\n")
            await rt.compliance.reload()
            with pytest.raises(ComplianceRefused) as caught:
                await rt.book.place(late, request_hash(late))
            assert caught.value.code == "address_sanctioned"
            assert rt.book.accounts() == set()
        finally:
            await rt.stop()

    asyncio.run(main())


def test_an_address_that_is_no_wallet_is_asked_of_the_chain_once_a_while(
    tmp_path: Path,
) -> None:
    """Each order of an account that is no wallet used to ask the node again (a few calls
    per order); the answer is now kept for a while, a wallet's owner for good."""
    asked: list[str] = []

    async def counting_owner_of(wallet: str) -> str:
        asked.append(wallet)
        return await owner_of(wallet)

    async def main() -> None:
        screen = screen_with(tmp_path, "")
        screen._owners = counting_owner_of
        await screen.reload()
        for n in range(5):
            await screen.screen(spec(NOT_A_WALLET, client_order_id=f"n{n}"))
            await screen.screen(spec(WALLET, client_order_id=f"w{n}"))
        assert asked == [NOT_A_WALLET, WALLET]
        assert await screen.owner(WALLET) == OWNER and await screen.owner(NOT_A_WALLET) is None

    asyncio.run(main())
