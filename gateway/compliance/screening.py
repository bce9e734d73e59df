"""The compliance screen of a running gateway: the lists in force, the KYC provider, and the
order facts screening needs (kinds, notional, the wallet's owner).

Reload is all or nothing: every file is read and checked before anything changes. Then,
under the internal book's lock (no order can match or rest in between), the new lists take
effect and every resting order of a barred account (sanctioned, or its owner is) is
cancelled with the reason `compliance`; the reload returns once those cancels are committed.
The book's admission hook refuses a barred account's order that was screened before the
reload and reached the book after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from gateway.compliance.files import load_rules, load_sanctions
from gateway.compliance.provider import KycProvider
from gateway.compliance.rules import (
    SANCTIONED,
    CompliancePolicy,
    ComplianceRefused,
    OrderFacts,
    ScreeningDecision,
    account_status,
    address_key,
    sanctioned_entries,
    screen,
)
from gateway.domain.errors import DomainError
from gateway.domain.instruments import EuropeanOption, Instrument, InstrumentCatalogue
from gateway.domain.orders import Order, OrderSpec, OrderType
from gateway.oms.internal_book import InternalBook

log = logging.getLogger("gateway.compliance")
COMPLIANCE_CANCEL_REASON = "compliance"
NOT_A_WALLET_TTL = 60.0  # seconds an address the chain said is no wallet is taken as none
OwnerLookup = Callable[[str], Awaitable[str]]


class Pricing(Protocol):
    """Reference prices (the pre-trade validator's) to value an order."""

    def reference_price(self, instrument: Instrument) -> Decimal | None: ...

    def underlying_price(self, instrument: Instrument) -> Decimal | None: ...


@dataclass(frozen=True)
class ComplianceSources:
    sanctions: Path
    rules: Path


@dataclass(frozen=True)
class ReloadReport:
    sanctioned_addresses: int
    kyc_records: int
    newly_sanctioned: tuple[str, ...]
    cancelled_orders: tuple[str, ...]


def order_notional(
    spec: OrderSpec, catalogue: InstrumentCatalogue, pricing: Pricing
) -> Decimal | None:
    """Exposure in quote, as the pre-trade checks value it: quantity times the limit price
    (the mid for market and stop orders) for spot and perpetuals, times the underlying's
    price for options, summed over legs. None when a price is missing."""

    def value(instrument: Instrument, quantity: Decimal, price: Decimal | None) -> Decimal | None:
        if isinstance(instrument, EuropeanOption):
            underlying = pricing.underlying_price(instrument)
            return None if underlying is None else quantity * underlying
        if getattr(instrument, "inverse", False):
            return quantity * getattr(instrument, "contract_size", Decimal(1))
        return None if price is None else quantity * price

    if spec.instrument is not None:
        instrument = catalogue.get(spec.instrument)
        price = spec.price
        if spec.order_type in (OrderType.MARKET, OrderType.STOP) or price is None:
            price = pricing.reference_price(instrument)
        return value(instrument, spec.quantity, price)
    total = Decimal(0)
    for leg in spec.legs:
        instrument = catalogue.get(leg.instrument)
        leg_value = value(
            instrument, spec.quantity * leg.ratio, pricing.reference_price(instrument)
        )
        if leg_value is None:
            return None
        total += leg_value
    return total


class ComplianceScreen:
    def __init__(
        self,
        sources: ComplianceSources,
        provider: KycProvider,
        catalogue: InstrumentCatalogue,
        pricing: Pricing,
        owners: OwnerLookup | None = None,
    ) -> None:
        self.sources = sources
        self.provider = provider
        self._catalogue = catalogue
        self._pricing = pricing
        self._owners = owners
        self._known_owners: dict[str, str] = {}  # wallet key -> owner, as the chain said
        self._not_wallets: dict[str, float] = {}  # address key -> until when it is taken so
        self._policy: CompliancePolicy | None = None
        self._book: InternalBook | None = None
        self._reloading = asyncio.Lock()

    @property
    def policy(self) -> CompliancePolicy:
        if self._policy is None:
            raise DomainError(
                "the compliance lists are not loaded yet", code="compliance_not_ready"
            )
        return self._policy

    def attach(self, book: InternalBook) -> None:
        """Guard the internal book: a barred account's order never enters it."""
        self._book = book
        book.admission = self._admit_on_book

    # -- screening ----------------------------------------------------------------------------

    async def owner(self, account: str) -> str | None:
        """The wallet's owner when a chain can tell (cached: an owner never changes)."""
        key = address_key(account)
        if key in self._known_owners:
            return self._known_owners[key]
        if self._owners is None:
            return None
        if self._not_wallets.get(key, 0.0) > time.monotonic():
            return None
        try:
            owner = await self._owners(account)
        except DomainError:
            # not a wallet on this chain: the account alone is screened. Asked again only
            # after a while (a wallet can be deployed at an address later), not per order:
            # each ask is a few calls to the node.
            self._not_wallets[key] = time.monotonic() + NOT_A_WALLET_TTL
            return None
        self._known_owners[key] = owner
        return owner

    def facts(self, spec: OrderSpec, owner: str | None) -> OrderFacts:
        instruments = (
            (spec.instrument,)
            if spec.instrument is not None
            else tuple(leg.instrument for leg in spec.legs)
        )
        return OrderFacts(
            account=spec.account,
            kinds=frozenset(self._catalogue.get(symbol).kind for symbol in instruments),
            instruments=instruments,
            notional=order_notional(spec, self._catalogue, self._pricing),
            owner=owner,
            client_order_id=spec.client_order_id,
        )

    async def screen(self, spec: OrderSpec) -> ScreeningDecision:
        policy = self.policy
        owner = await self.owner(spec.account)
        facts = self.facts(spec, owner)
        addresses = [spec.account] if owner is None else [spec.account, owner]
        record = await self.provider.record(addresses)
        return screen(facts, policy, record)

    def barred(self, account: str) -> bool:
        """Sanctioned, by itself or through its known owner (synchronous: the book's hook)."""
        policy = self._policy
        if policy is None:
            return False
        owner = self._known_owners.get(address_key(account))
        return account in policy.sanctions or (owner is not None and owner in policy.sanctions)

    def _admit_on_book(self, spec: OrderSpec) -> None:
        if not self.barred(spec.account):
            return
        owner = self._known_owners.get(address_key(spec.account))
        facts = OrderFacts(
            spec.account,
            frozenset(),
            (spec.instrument,) if spec.instrument else tuple(leg.instrument for leg in spec.legs),
            None,
            owner,
            spec.client_order_id,
        )
        hits = sanctioned_entries(
            self.policy.sanctions, [spec.account, *([owner] if owner else [])]
        )
        raise ComplianceRefused(
            ScreeningDecision(
                False,
                SANCTIONED,
                f"{hits[0].address} was listed on {hits[0].list_name!r} while the order was on "
                "its way to the book",
                facts,
                None,
                hits,
            )
        )

    async def status(self, account: str) -> dict[str, Any]:
        policy = self.policy
        owner = await self.owner(account)
        record = await self.provider.record([account] if owner is None else [account, owner])
        return account_status(account, owner, policy, record)

    # -- reload -------------------------------------------------------------------------------

    def _read_files(self) -> CompliancePolicy:
        rules = load_rules(self.sources.rules)
        sanctions = load_sanctions(self.sources.sanctions)
        return CompliancePolicy(sanctions, rules.jurisdictions, rules.levels)

    async def reload(self) -> ReloadReport:
        async with self._reloading:
            policy = await asyncio.to_thread(self._read_files)
            kyc_records = await self.provider.reload(policy.levels)
            previous = self._policy
            keys = (
                policy.sanctions.entries.keys()
                if previous is None
                else policy.sanctions.added_since(previous.sanctions)
            )
            added = tuple(sorted(policy.sanctions.entries[key].address for key in keys))
            cancelled: list[Order] = []
            book = self._book
            if book is None:
                self._policy = policy
            else:
                # owners of the wallets on the book, so that a listed owner bars its wallets
                for account in book.accounts():
                    with contextlib.suppress(Exception):
                        await self.owner(account)

                def switch() -> None:
                    self._policy = policy

                cancelled = await book.cancel_accounts(
                    self.barred, reason=COMPLIANCE_CANCEL_REASON, before=switch
                )
            if cancelled:
                log.warning(
                    "compliance reload cancelled %d resting orders of sanctioned accounts",
                    len(cancelled),
                )
            return ReloadReport(
                len(policy.sanctions),
                kyc_records,
                added,
                tuple(order.id for order in cancelled),
            )
