"""The compliance rules, pure: sanctions, jurisdictions, KYC levels and one decision function.

`screen(facts, ...)` checks, in this order, and stops at the first refusal:

=====================  ==================================================================
code                   refused because
=====================  ==================================================================
address_sanctioned     the account (wallet) or its owner is on a sanctions list
jurisdiction_blocked   the account's jurisdiction is blocked, or does not allow the kind
                       of instrument (e.g. no perpetuals there)
kyc_required           the account has no KYC record, or its level allows no trading
kyc_insufficient       its level allows some trading, but not this instrument kind or
                       this order's notional
=====================  ==================================================================

No I/O here: the lists and records are loaded by `gateway.compliance.files` and the
provider, and the decision is recorded by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gateway.domain.errors import DomainError
from gateway.domain.instruments import InstrumentKind

SANCTIONED = "address_sanctioned"
JURISDICTION_BLOCKED = "jurisdiction_blocked"
KYC_REQUIRED = "kyc_required"
KYC_INSUFFICIENT = "kyc_insufficient"
CODES = (SANCTIONED, JURISDICTION_BLOCKED, KYC_REQUIRED, KYC_INSUFFICIENT)


def address_key(address: str) -> str:
    """Addresses compare case-insensitively: checksum casing is presentation only."""
    return address.strip().lower()


@dataclass(frozen=True, slots=True)
class SanctionEntry:
    address: str  # as listed
    list_name: str  # e.g. "OFAC SDN"
    reason: str


@dataclass(frozen=True)
class SanctionsList:
    entries: Mapping[str, SanctionEntry] = field(default_factory=dict)  # by address_key

    @classmethod
    def of(cls, entries: Iterable[SanctionEntry]) -> SanctionsList:
        # a later line for the same address wins: it is the newer listing
        return cls({address_key(e.address): e for e in entries})

    def match(self, address: str) -> SanctionEntry | None:
        return self.entries.get(address_key(address))

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and address_key(address) in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def added_since(self, older: SanctionsList) -> frozenset[str]:
        """Addresses (keys) listed here and not in `older`."""
        return frozenset(self.entries.keys() - older.entries.keys())


@dataclass(frozen=True, slots=True)
class KycLevel:
    """What an account at this level may trade. `max_order_notional` None: no limit."""

    name: str
    kinds: frozenset[InstrumentKind]
    max_order_notional: Decimal | None = None

    def covers(self, other: KycLevel) -> bool:
        """Whether this level allows at least everything `other` allows."""
        if not other.kinds:
            return True  # allows nothing: its notional limit never applies
        if not other.kinds <= self.kinds:
            return False
        if self.max_order_notional is None:
            return True
        return (
            other.max_order_notional is not None
            and other.max_order_notional <= self.max_order_notional
        )


class RulesError(ValueError):
    """Rules that contradict themselves (the loaders turn it into a file error)."""


@dataclass(frozen=True)
class KycLevels:
    """Levels lowest first; each must allow at least what the one below allows, so that a
    higher level never allows less (checked on construction)."""

    levels: tuple[KycLevel, ...]

    def __post_init__(self) -> None:
        if not self.levels:
            raise RulesError("at least one KYC level is needed")
        names = [level.name for level in self.levels]
        if len(set(names)) != len(names):
            raise RulesError(f"KYC level names repeat: {names}")
        for lower, higher in zip(self.levels, self.levels[1:], strict=False):
            if not higher.covers(lower):
                raise RulesError(
                    f"KYC level {higher.name!r} allows less than {lower.name!r} below it"
                )

    def get(self, name: str) -> KycLevel | None:
        return next((level for level in self.levels if level.name == name), None)

    def rank(self, name: str) -> int:
        return [level.name for level in self.levels].index(name)

    @property
    def lowest(self) -> KycLevel:
        return self.levels[0]


@dataclass(frozen=True)
class JurisdictionRules:
    """Jurisdictions are ISO 3166 alpha-2 codes (upper case). `allowed_kinds` restricts the
    instrument kinds in the jurisdictions it names; the others allow every kind."""

    blocked: frozenset[str] = frozenset()
    allowed_kinds: Mapping[str, frozenset[InstrumentKind]] = field(default_factory=dict)

    def kinds_in(self, jurisdiction: str | None) -> frozenset[InstrumentKind]:
        if jurisdiction is not None and jurisdiction.upper() in self.blocked:
            return frozenset()
        if jurisdiction is None:
            return frozenset(InstrumentKind)
        return self.allowed_kinds.get(jurisdiction.upper(), frozenset(InstrumentKind))


@dataclass(frozen=True, slots=True)
class KycRecord:
    """What the KYC provider knows of one address."""

    level: str
    jurisdiction: str | None = None


@dataclass(frozen=True)
class CompliancePolicy:
    sanctions: SanctionsList
    jurisdictions: JurisdictionRules
    levels: KycLevels


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What screening looks at. `owner` is the wallet's owner when known; `notional` is the
    order's exposure in quote (None when it cannot be priced)."""

    account: str
    kinds: frozenset[InstrumentKind]
    instruments: tuple[str, ...]
    notional: Decimal | None
    owner: str | None = None
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class ScreeningDecision:
    allowed: bool
    code: str | None  # one of CODES when refused
    reason: str
    facts: OrderFacts
    kyc: KycRecord | None  # the record used (the account's, else its owner's)
    sanctioned: tuple[SanctionEntry, ...] = ()

    def payload(self) -> dict[str, Any]:
        """The facts checked, as JSON (decimals as strings) for the audit log."""
        facts = self.facts
        return {
            "allowed": self.allowed,
            "code": self.code,
            "reason": self.reason,
            "account": facts.account,
            "owner": facts.owner,
            "client_order_id": facts.client_order_id,
            "addresses_screened": screened_addresses(facts),
            "instruments": list(facts.instruments),
            "kinds": sorted(kind.value for kind in facts.kinds),
            "notional": None if facts.notional is None else str(facts.notional),
            "jurisdiction": None if self.kyc is None else self.kyc.jurisdiction,
            "kyc_level": None if self.kyc is None else self.kyc.level,
            "sanctioned": [
                {"address": e.address, "list": e.list_name, "reason": e.reason}
                for e in self.sanctioned
            ],
        }


def screened_addresses(facts: OrderFacts) -> list[str]:
    return [facts.account] if facts.owner is None else [facts.account, facts.owner]


def sanctioned_entries(
    sanctions: SanctionsList, addresses: Iterable[str]
) -> tuple[SanctionEntry, ...]:
    return tuple(entry for a in addresses if (entry := sanctions.match(a)) is not None)


def screen(
    facts: OrderFacts, policy: CompliancePolicy, record: KycRecord | None
) -> ScreeningDecision:
    """Decide whether an order may be accepted; `record` is the account's KYC record (or
    its owner's), None when the provider knows neither."""

    def refused(code: str, reason: str) -> ScreeningDecision:
        return ScreeningDecision(False, code, reason, facts, record)

    hits = sanctioned_entries(policy.sanctions, screened_addresses(facts))
    if hits:
        first = hits[0]
        return ScreeningDecision(
            False,
            SANCTIONED,
            f"{first.address} is on the sanctions list {first.list_name!r}: {first.reason}",
            facts,
            record,
            hits,
        )
    level = None if record is None else policy.levels.get(record.level)
    if record is None or level is None:
        what = "no KYC record" if record is None else f"unknown KYC level {record.level!r}"
        return refused(KYC_REQUIRED, f"account {facts.account} has {what}")
    jurisdiction = record.jurisdiction
    if jurisdiction is not None and jurisdiction.upper() in policy.jurisdictions.blocked:
        return refused(JURISDICTION_BLOCKED, f"jurisdiction {jurisdiction} is blocked")
    not_there = facts.kinds - policy.jurisdictions.kinds_in(jurisdiction)
    if not_there:
        kinds = ", ".join(sorted(k.value for k in not_there))
        return refused(JURISDICTION_BLOCKED, f"{kinds} may not be traded from {jurisdiction}")
    if not level.kinds:
        return refused(KYC_REQUIRED, f"KYC level {level.name!r} allows no trading")
    not_allowed = facts.kinds - level.kinds
    if not_allowed:
        kinds = ", ".join(sorted(k.value for k in not_allowed))
        return refused(KYC_INSUFFICIENT, f"KYC level {level.name!r} does not allow {kinds}")
    limit = level.max_order_notional
    if limit is not None:
        if facts.notional is None:
            return refused(
                KYC_INSUFFICIENT,
                f"KYC level {level.name!r} limits the notional to {limit} and this order "
                "cannot be priced",
            )
        if facts.notional > limit:
            return refused(
                KYC_INSUFFICIENT,
                f"order notional {facts.notional:f} exceeds {limit} allowed at KYC level "
                f"{level.name!r}",
            )
    return ScreeningDecision(True, None, "allowed", facts, record)


def account_status(
    account: str, owner: str | None, policy: CompliancePolicy, record: KycRecord | None
) -> dict[str, Any]:
    """What an account may trade now (for the operator's status view)."""
    hits = sanctioned_entries(policy.sanctions, [account] if owner is None else [account, owner])
    level = None if record is None else policy.levels.get(record.level)
    jurisdiction = None if record is None else record.jurisdiction
    blocked = jurisdiction is not None and jurisdiction.upper() in policy.jurisdictions.blocked
    if hits or level is None or blocked:
        kinds: frozenset[InstrumentKind] = frozenset()
    else:
        kinds = level.kinds & policy.jurisdictions.kinds_in(jurisdiction)
    return {
        "account": account,
        "owner": owner,
        "sanctioned": bool(hits),
        "sanctions": [
            {"address": e.address, "list": e.list_name, "reason": e.reason} for e in hits
        ],
        "jurisdiction": jurisdiction,
        "jurisdiction_blocked": blocked,
        "kyc_level": None if record is None else record.level,
        "may_trade": sorted(kind.value for kind in kinds),
        "max_order_notional": (
            None
            if level is None or level.max_order_notional is None or not kinds
            else str(level.max_order_notional)
        ),
    }


class ComplianceRefused(DomainError):
    """An order screening refused; `code` is the decision's (403 at the API)."""

    code = "compliance_refused"

    def __init__(self, decision: ScreeningDecision) -> None:
        assert decision.code is not None
        super().__init__(decision.reason, field="account", code=decision.code)
        self.decision = decision
