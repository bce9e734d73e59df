"""Live risk of accounts and of the operator's whole book, for the API and the monitor.

Positions come from the exposure ledger (every recorded fill), collateral from the account's
on-chain wallet when a chain is configured plus the cash of fills not settled yet, market
inputs from the consolidated books. The numeric work runs in a worker thread so the event
loop keeps serving orders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Protocol

from gateway.domain.clock import Clock
from gateway.domain.errors import DomainError
from gateway.domain.fills import Fill
from gateway.domain.instruments import EuropeanOption, InstrumentCatalogue, InstrumentKind
from gateway.domain.market import VenueKind
from gateway.domain.orders import OrderSpec, OrderType, Side
from gateway.domain.positions import Position
from gateway.risk.account_risk import AccountRiskReport, RiskSettings, account_risk, risk_positions
from gateway.risk.exposure import AccountExposure, ExposureLedger, WorkingOrder
from gateway.risk.liquidation import CollateralHolding, wallet_margin_calls
from gateway.risk.market_view import MarketView, PriceHistory
from gateway.risk.portfolio import RiskPosition
from gateway.risk.pretrade import MarginVerdict, PreTradeRejected, PreTradeValidator
from gateway.risk.wallet_margin import Fill as WalletFill
from gateway.risk.wallet_margin import (
    FillRejected,
    MarginReverts,
    MarginStatus,
    MissingState,
    OptionFill,
    SpotFill,
    WalletState,
    margin_after_fills,
)
from gateway.venues.protocol import Venue

log = logging.getLogger("gateway.risk")


class WalletSource(Protocol):
    """Accounts' on-chain wallets: collateral, the contract's margin status, and the last
    state read (what the pre-trade margin projection works from without waiting)."""

    async def collateral(self, account: str) -> list[CollateralHolding]: ...

    async def margin_status(self, account: str) -> MarginStatus | None: ...

    def cached_state(self, account: str) -> WalletState | None: ...

    async def state(self, account: str) -> WalletState | None:
        """The wallet's state, read again unless the last read is fresh enough."""
        ...

    def token(self, symbol: str) -> str | None:
        """The token address of an asset symbol, None when it has none on chain."""
        ...

    def symbol(self, token: str) -> str:
        """The symbol of a token address (the address itself when unknown)."""
        ...


class WalletMarginProjection:
    """The pre-trade margin check: the on-chain rule (the Python mirror, bit for bit) applied
    to the wallet's last read state after hypothetical fills at limit prices. An order passes
    only if the wallet passes both with this order alone and with every working order of the
    account filled too. Perpetuals do not settle on chain and are left to the cross-margin
    view."""

    def __init__(self, wallets: WalletSource, catalogue: InstrumentCatalogue) -> None:
        self.wallets = wallets
        self.catalogue = catalogue

    def _fills(
        self, quantities: list[tuple[str, Decimal]], price: Decimal | None
    ) -> list[WalletFill] | None:
        fills: list[WalletFill] = []
        for symbol, quantity in quantities:
            instrument = self.catalogue.get(symbol)
            if instrument.kind is InstrumentKind.PERPETUAL:
                continue
            base = self.wallets.token(instrument.base.symbol)
            quote = self.wallets.token(instrument.quote.symbol)
            if base is None or quote is None or price is None:
                return None  # not on this chain, or no price to project with
            amount = int(abs(quantity) * 10**instrument.base.decimals)
            exact = abs(quantity) * price * 10**instrument.quote.decimals
            is_buy = quantity > 0
            # what the wallet pays is rounded up, what it receives down (as settlement does)
            quote_amount = int(exact.to_integral_value(ROUND_CEILING if is_buy else ROUND_FLOOR))
            if isinstance(instrument, EuropeanOption):
                fills.append(
                    OptionFill(
                        base,
                        int(instrument.expires_at.timestamp()),
                        int(instrument.strike * 10**instrument.quote.decimals),
                        instrument.right.value == "call",
                        is_buy,
                        amount,
                        quote_amount,
                    )
                )
            else:
                fills.append(SpotFill(base, quote, is_buy, amount, quote_amount))
        return fills

    def status_after(
        self, state: WalletState, legs: Sequence[tuple[str, Decimal, Decimal]]
    ) -> MarginStatus | None:
        """The on-chain rule once `legs` (symbol, signed quantity, price) settle; None when a
        leg has no on-chain form or the wallet would refuse the fills."""
        fills: list[WalletFill] = []
        for symbol, quantity, price in legs:
            more = self._fills([(symbol, quantity)], price)
            if more is None:
                return None
            fills += more
        try:
            # nothing on chain changes (perpetuals only): the rule as it stands
            return margin_after_fills(state, fills) if fills else state.margin_status()
        except (FillRejected, MarginReverts, MissingState):
            return None

    def margin_after(
        self, spec: OrderSpec, working: Sequence[WorkingOrder]
    ) -> MarginVerdict | None:
        state = self.wallets.cached_state(spec.account)
        if state is None:
            return None
        own = self._fills(_leg_quantities(spec), spec.price)
        if own is None or not own:
            return None
        worst: MarginVerdict | None = None
        try:
            alone = margin_after_fills(state, own)
            worst = MarginVerdict(alone.required, alone.available, alone.ok)
            everything = list(own)
            for order in working:
                more = self._fills(order.leg_quantities(), order.price)
                if more:
                    everything += more
            together = margin_after_fills(state, everything)
        except (FillRejected, MarginReverts, MissingState) as error:
            return MarginVerdict(0, 0, False, reason=f"the wallet would refuse it: {error}")
        if alone.ok and not together.ok:
            worst = MarginVerdict(together.required, together.available, False)
        return worst


@dataclass(frozen=True, slots=True)
class WhatIf:
    before: AccountRiskReport
    after: AccountRiskReport
    rejection: PreTradeRejected | None  # what the pre-trade check would say now
    fill_prices: dict[str, Decimal]  # the price assumed for each instrument's fill


class RiskView:
    def __init__(
        self,
        catalogue: InstrumentCatalogue,
        ledger: ExposureLedger,
        market: MarketView,
        history: PriceHistory,
        clock: Clock,
        *,
        pre_trade: PreTradeValidator | None = None,
        wallets: WalletSource | None = None,
        venues: Sequence[Venue] = (),
        settings: RiskSettings | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.ledger = ledger
        self.market = market
        self.history = history
        self.clock = clock
        self.pre_trade = pre_trade
        self.wallets = wallets
        self.venues = list(venues)
        self.settings = settings or RiskSettings()

    # -- inputs ---------------------------------------------------------------------------

    async def collateral_of(
        self, account: str, exposure: AccountExposure | None
    ) -> tuple[list[CollateralHolding], MarginStatus | None]:
        held: list[CollateralHolding] = []
        status = None
        if self.wallets is not None:
            held = await self.wallets.collateral(account)
            status = await self.wallets.margin_status(account)
        if exposure is not None:
            for asset, amount in sorted(exposure.unsettled_cash.items()):
                if amount:
                    held.append(
                        CollateralHolding(asset, amount, _underlying_of(asset, self.market))
                    )
        return held, status

    async def _report(
        self,
        positions: list[RiskPosition],
        collateral: list[CollateralHolding],
        onchain: MarginStatus | None,
        settings: RiskSettings,
        at: datetime,
    ) -> AccountRiskReport:
        market = self.market.snapshot(at)
        columns = self.market.underlyings()
        returns = self.history.daily_log_returns(columns)
        return await asyncio.to_thread(
            account_risk,
            positions,
            collateral,
            market,
            history=returns,
            history_columns=columns,
            onchain=onchain,
            settings=settings,
        )

    # -- reports --------------------------------------------------------------------------

    async def account(
        self, address: str, settings: RiskSettings | None = None
    ) -> AccountRiskReport:
        exposure = self.ledger.peek(address)
        positions = risk_positions(exposure.positions if exposure else {}, self.catalogue)
        collateral, onchain = await self.collateral_of(address, exposure)
        report = await self._report(
            positions, collateral, onchain, settings or self.settings, self.clock.now()
        )
        state = None if self.wallets is None else self.wallets.cached_state(address)
        if state is None or not state.positions:
            return report
        try:
            calls = wallet_margin_calls(state)
        except (MarginReverts, MissingState, ValueError) as error:
            log.warning("margin calls of %s: %s", address, error)
            return report
        assert self.wallets is not None
        named = {self.wallets.symbol(token): call for token, call in calls.items()}
        return replace(report, margin_calls=named)

    async def what_if(self, spec: OrderSpec, settings: RiskSettings | None = None) -> WhatIf:
        """Risk now and if `spec` filled completely at its limit price (market: the mid)."""
        settings = settings or self.settings
        rejection = None
        if self.pre_trade is not None:
            try:
                self.pre_trade.check(spec, dry_run=True)
            except PreTradeRejected as rejected:
                rejection = rejected
        exposure = self.ledger.peek(spec.account)
        held = dict(exposure.positions) if exposure else {}
        now = self.clock.now()
        prices = self._fill_prices(spec)
        cash: dict[str, Decimal] = dict(exposure.unsettled_cash) if exposure else {}
        for symbol, quantity in _leg_quantities(spec):
            instrument = self.catalogue.get(symbol)
            side_fill = Fill(
                "what-if",
                "what-if",
                spec.account,
                symbol,
                Side.BUY if quantity > 0 else Side.SELL,
                abs(quantity),
                prices[symbol],
                Decimal(0),
                "what-if",
                now,
            )
            held[symbol] = (held.get(symbol) or Position(spec.account, symbol)).apply(side_fill)
            if instrument.kind is not InstrumentKind.PERPETUAL:
                asset = instrument.quote.symbol
                cash[asset] = cash.get(asset, Decimal(0)) - quantity * prices[symbol]
        before = await self.account(spec.account, settings)
        wallet_collateral: list[CollateralHolding] = []
        onchain = None
        if self.wallets is not None:
            wallet_collateral = await self.wallets.collateral(spec.account)
            state = await self.wallets.state(spec.account)
            if state is not None:  # the contract's rule once the proposal settles (the mirror)
                onchain = WalletMarginProjection(self.wallets, self.catalogue).status_after(
                    state,
                    [
                        (symbol, quantity, prices[symbol])
                        for symbol, quantity in _leg_quantities(spec)
                    ],
                )
        collateral = wallet_collateral + [
            CollateralHolding(asset, amount, _underlying_of(asset, self.market))
            for asset, amount in sorted(cash.items())
            if amount
        ]
        after = await self._report(
            risk_positions(held, self.catalogue), collateral, onchain, settings, now
        )
        return WhatIf(before, after, rejection, prices)

    def _fill_prices(self, spec: OrderSpec) -> dict[str, Decimal]:
        prices: dict[str, Decimal] = {}
        for symbol, _ in _leg_quantities(spec):
            if spec.instrument is not None and spec.order_type in (
                OrderType.LIMIT,
                OrderType.STOP_LIMIT,
            ):
                assert spec.price is not None
                prices[symbol] = spec.price
                continue
            mid = self.market.prices.mid(symbol)
            if mid is None:
                raise DomainError(
                    f"no consolidated mid for {symbol} to price the fill",
                    code="no_reference_price",
                    field="instrument" if spec.instrument else "legs",
                )
            prices[symbol] = mid
        return prices

    async def operator_book(self, settings: RiskSettings | None = None) -> AccountRiskReport:
        """Every account's positions on the gateway plus the operator's CEX positions and
        balances, as one book (the operator is the counterparty of none of the former, but
        its hedges and inventory sit on the venues: this is the total it must watch)."""
        positions: list[RiskPosition] = []
        for address in self.ledger.accounts():
            exposure = self.ledger.peek(address)
            if exposure is not None:
                positions += risk_positions(exposure.positions, self.catalogue)
        collateral: list[CollateralHolding] = []
        for venue in self.venues:
            if venue.kind is not VenueKind.CEX:
                continue
            try:
                for held in await venue.fetch_positions():
                    if held.instrument in self.catalogue and held.quantity:
                        positions.append(
                            RiskPosition.of(
                                self.catalogue.get(held.instrument),
                                held.quantity,
                                entry_price=held.average_price or Decimal(0),
                                venue=venue.name,
                            )
                        )
                for asset, balance in (await venue.fetch_balances()).items():
                    if balance.total:
                        collateral.append(
                            CollateralHolding(
                                f"{venue.name}:{asset}",
                                balance.total,
                                _underlying_of(asset, self.market),
                            )
                        )
            except Exception as error:  # one venue down must not hide the rest of the book
                log.warning("operator book: %s unavailable: %s", venue.name, error)
        return await self._report(
            positions, collateral, None, settings or self.settings, self.clock.now()
        )


def _underlying_of(asset: str, market: MarketView) -> str | None:
    """Quote-like assets count at face value; others at their underlying's price."""
    return asset if asset in market.underlyings() else None


def _leg_quantities(spec: OrderSpec) -> list[tuple[str, Decimal]]:
    sign = spec.side.sign
    if spec.instrument is not None:
        return [(spec.instrument, sign * spec.quantity)]
    return [(leg.instrument, sign * leg.side.sign * leg.ratio * spec.quantity) for leg in spec.legs]
