"""The pure compliance rules: sanctions, jurisdictions, KYC levels and the decision."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.compliance.rules import (
    JURISDICTION_BLOCKED,
    KYC_INSUFFICIENT,
    KYC_REQUIRED,
    SANCTIONED,
    CompliancePolicy,
    JurisdictionRules,
    KycLevel,
    KycLevels,
    KycRecord,
    OrderFacts,
    RulesError,
    SanctionEntry,
    SanctionsList,
    account_status,
    screen,
)
from gateway.domain.instruments import InstrumentKind

SPOT, PERP, OPTION = InstrumentKind.SPOT, InstrumentKind.PERPETUAL, InstrumentKind.OPTION
WALLET = "0x1111111111111111111111111111111111111111"
OWNER = "0x2222222222222222222222222222222222222222"
LISTED = "0xAbCdEf0123456789abcdef0123456789ABCDEF01"

LEVELS = KycLevels(
    (
        KycLevel("none", frozenset()),
        KycLevel("basic", frozenset({SPOT}), Decimal(25_000)),
        KycLevel("full", frozenset(InstrumentKind)),
    )
)
JURISDICTIONS = JurisdictionRules(frozenset({"KP"}), {"US": frozenset({SPOT})})


def policy(*listed: str) -> CompliancePolicy:
    sanctions = SanctionsList.of(SanctionEntry(a, "TEST", "sample") for a in listed)
    return CompliancePolicy(sanctions, JURISDICTIONS, LEVELS)


def facts(
    kinds: frozenset[InstrumentKind] = frozenset({SPOT}),
    notional: Decimal | None = Decimal(1_000),
    owner: str | None = None,
    account: str = WALLET,
) -> OrderFacts:
    return OrderFacts(account, kinds, ("X",), notional, owner=owner)


FULL = KycRecord("full", "CH")


def test_an_account_in_good_standing_is_allowed_and_the_facts_are_kept() -> None:
    decision = screen(facts(notional=Decimal("1000.5")), policy(), FULL)
    assert decision.allowed and decision.code is None
    payload = decision.payload()
    assert payload["allowed"] is True
    assert payload["addresses_screened"] == [WALLET]
    assert payload["notional"] == "1000.5"  # money stays exact text
    assert payload["kyc_level"] == "full" and payload["jurisdiction"] == "CH"


def test_a_sanctioned_wallet_or_owner_is_refused_first() -> None:
    by_wallet = screen(facts(account=LISTED), policy(LISTED), FULL)
    assert not by_wallet.allowed and by_wallet.code == SANCTIONED
    by_owner = screen(facts(owner=LISTED), policy(LISTED), FULL)
    assert by_owner.code == SANCTIONED
    assert by_owner.payload()["addresses_screened"] == [WALLET, LISTED]
    assert by_owner.payload()["sanctioned"] == [
        {"address": LISTED, "list": "TEST", "reason": "sample"}
    ]
    # sanctions come before any KYC question
    assert screen(facts(owner=LISTED), policy(LISTED), None).code == SANCTIONED


def test_jurisdiction_blocked_outright_or_for_a_kind() -> None:
    assert screen(facts(), policy(), KycRecord("full", "KP")).code == JURISDICTION_BLOCKED
    us = KycRecord("full", "US")
    assert screen(facts(), policy(), us).allowed
    refused = screen(facts(kinds=frozenset({SPOT, PERP})), policy(), us)
    assert refused.code == JURISDICTION_BLOCKED and "perpetual" in refused.reason


def test_kyc_required_and_insufficient() -> None:
    assert screen(facts(), policy(), None).code == KYC_REQUIRED
    assert screen(facts(), policy(), KycRecord("none", "CH")).code == KYC_REQUIRED
    assert screen(facts(), policy(), KycRecord("platinum", "CH")).code == KYC_REQUIRED
    basic = KycRecord("basic", "CH")
    assert screen(facts(notional=Decimal(25_000)), policy(), basic).allowed
    assert screen(facts(notional=Decimal("25000.01")), policy(), basic).code == KYC_INSUFFICIENT
    assert screen(facts(kinds=frozenset({OPTION})), policy(), basic).code == KYC_INSUFFICIENT
    # a limit cannot be checked on an order that cannot be priced: refused, not waved through
    assert screen(facts(notional=None), policy(), basic).code == KYC_INSUFFICIENT
    assert screen(facts(notional=None), policy(), FULL).allowed


def test_levels_that_allow_less_higher_up_are_refused() -> None:
    with pytest.raises(RulesError, match="allows less"):
        KycLevels((KycLevel("a", frozenset({SPOT, PERP})), KycLevel("b", frozenset({SPOT}))))
    with pytest.raises(RulesError, match="allows less"):
        KycLevels(
            (
                KycLevel("a", frozenset({SPOT}), Decimal(10)),
                KycLevel("b", frozenset({SPOT}), Decimal(5)),
            )
        )
    with pytest.raises(RulesError, match="allows less"):
        KycLevels((KycLevel("a", frozenset({SPOT})), KycLevel("b", frozenset({SPOT}), Decimal(5))))
    with pytest.raises(RulesError, match="repeat"):
        KycLevels((KycLevel("a", frozenset()), KycLevel("a", frozenset())))


def test_account_status_says_what_it_may_trade() -> None:
    status = account_status(WALLET, None, policy(), KycRecord("basic", "US"))
    assert status["may_trade"] == ["spot"] and status["max_order_notional"] == "25000"
    assert not status["sanctioned"]
    us_full = account_status(WALLET, None, policy(), KycRecord("full", "US"))
    assert us_full["may_trade"] == ["spot"] and us_full["max_order_notional"] is None
    listed = account_status(WALLET, LISTED, policy(LISTED), FULL)
    assert listed["sanctioned"] and listed["may_trade"] == []
    assert account_status(WALLET, None, policy(), None)["may_trade"] == []


# -- invariants ---------------------------------------------------------------------------

addresses = st.text("0123456789abcdef", min_size=40, max_size=40).map(lambda h: "0x" + h)


def cased(address: str, flips: list[bool]) -> str:
    return "0x" + "".join(
        c.upper() if flip else c for c, flip in zip(address[2:], flips, strict=False)
    )


@given(addresses, st.lists(st.booleans(), min_size=40, max_size=40), st.booleans())
def test_addresses_match_whatever_their_case(
    address: str, flips: list[bool], as_owner: bool
) -> None:
    listed = policy(cased(address, flips[::-1]))
    asked = cased(address, flips)
    assert asked in listed.sanctions
    decision = screen(facts(owner=asked) if as_owner else facts(account=asked), listed, FULL)
    assert decision.code == SANCTIONED


kinds_sets = st.frozensets(st.sampled_from(list(InstrumentKind)))
limits = st.none() | st.integers(0, 10**9).map(Decimal)


@st.composite
def monotonic_levels(draw: st.DrawFn) -> KycLevels:
    """Random levels, each adding kinds and raising (or removing) the notional limit."""
    count = draw(st.integers(1, 5))
    kinds: frozenset[InstrumentKind] = frozenset()
    limit: Decimal | None = Decimal(draw(st.integers(0, 1000)))
    levels = []
    for n in range(count):
        kinds = kinds | draw(kinds_sets)
        if limit is not None:
            limit = draw(st.none() | st.integers(int(limit), int(limit) + 10**6).map(Decimal))
        levels.append(KycLevel(f"l{n}", kinds, limit))
    return KycLevels(tuple(levels))


@given(
    monotonic_levels(),
    st.frozensets(st.sampled_from(list(InstrumentKind)), min_size=1),
    st.none() | st.integers(0, 2 * 10**6).map(Decimal),
    st.data(),
)
def test_a_higher_kyc_level_never_allows_less(
    levels: KycLevels,
    kinds: frozenset[InstrumentKind],
    notional: Decimal | None,
    data: st.DataObject,
) -> None:
    rules = CompliancePolicy(SanctionsList(), JurisdictionRules(), levels)
    low = data.draw(st.integers(0, len(levels.levels) - 1))
    high = data.draw(st.integers(low, len(levels.levels) - 1))
    order = facts(kinds=kinds, notional=notional)
    lower = screen(order, rules, KycRecord(levels.levels[low].name))
    higher = screen(order, rules, KycRecord(levels.levels[high].name))
    if lower.allowed:
        assert higher.allowed
    assert levels.levels[high].covers(levels.levels[low])


@given(st.lists(st.tuples(kinds_sets, limits), min_size=2, max_size=4))
def test_any_levels_accepted_are_monotonic(
    raw: list[tuple[frozenset[InstrumentKind], Decimal | None]],
) -> None:
    levels = [KycLevel(f"l{n}", kinds, limit) for n, (kinds, limit) in enumerate(raw)]
    try:
        accepted = KycLevels(tuple(levels))
    except RulesError:
        return
    for lower, higher in zip(accepted.levels, accepted.levels[1:], strict=False):
        assert lower.kinds <= higher.kinds or not lower.kinds
