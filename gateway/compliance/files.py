"""Reading the compliance files; every error names the file, the line or key, and the fix.

Sanctions list (CSV, UTF-8): one address per line as `address,list,reason`; blank lines and
lines starting with `#` are ignored, and so is an optional header line `address,list,reason`.
Quote a reason that holds commas ("..."). Addresses match case-insensitively.

Rules (TOML): the KYC levels, lowest first, each allowing at least what the one below allows,
and the jurisdiction rules:

    [[kyc_levels]]
    name = "basic"
    kinds = ["spot"]                  # spot, perpetual, option
    max_order_notional = "25000"      # quote units, as a string; omit for no limit

    [jurisdictions]
    blocked = ["KP"]                  # ISO 3166 alpha-2
    [jurisdictions.allowed_kinds]
    US = ["spot"]                     # the kinds allowed there; unlisted: all

KYC records (TOML, or JSON of the same shape when the name ends in `.json`):

    [default]                         # optional: for accounts not listed
    level = "basic"
    jurisdiction = "CH"

    [[accounts]]
    address = "0x..."                 # a wallet, or its owner
    level = "full"
    jurisdiction = "GB"               # optional
    label = "alice"                   # optional, for people
"""

from __future__ import annotations

import csv
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from gateway.compliance.rules import (
    JurisdictionRules,
    KycLevel,
    KycLevels,
    KycRecord,
    RulesError,
    SanctionEntry,
    SanctionsList,
    address_key,
)
from gateway.domain.errors import DomainError
from gateway.domain.instruments import InstrumentKind

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
JURISDICTION = re.compile(r"^[A-Z]{2}$")
DEVNET_DIR = Path(__file__).resolve().parent.parent / "devnet" / "compliance"
DEVNET_SANCTIONS = DEVNET_DIR / "sanctions.csv"
DEVNET_RULES = DEVNET_DIR / "rules.toml"
DEVNET_KYC = DEVNET_DIR / "kyc.toml"
_KINDS = ", ".join(kind.value for kind in InstrumentKind)


class ComplianceFileError(DomainError):
    """A compliance file that cannot be used; the lists in force stay as they were."""

    code = "compliance_file_invalid"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ComplianceFileError(f"{path}: cannot read it ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ComplianceFileError(f"{path}: not UTF-8 text") from None


def load_sanctions(path: Path) -> SanctionsList:
    entries: list[SanctionEntry] = []
    lines = _read(path).splitlines()
    for number, row in enumerate(csv.reader(lines), start=1):
        line = lines[number - 1].strip() if number <= len(lines) else ""
        if not line or line.startswith("#"):
            continue
        cells = [cell.strip() for cell in row]
        if [c.lower() for c in cells] == ["address", "list", "reason"]:
            continue
        where = f"{path}:{number}"
        if len(cells) != 3:
            raise ComplianceFileError(
                f"{where}: expected 3 columns address,list,reason and found {len(cells)}"
            )
        address, list_name, reason = cells
        if not ADDRESS.match(address):
            raise ComplianceFileError(
                f"{where}: {address!r} is not an address (0x and 40 hex digits)"
            )
        if not list_name:
            raise ComplianceFileError(f"{where}: the list name is empty")
        entries.append(SanctionEntry(address, list_name, reason))
    return SanctionsList.of(entries)


def _toml_or_json(path: Path) -> dict[str, Any]:
    text = _read(path)
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ComplianceFileError(f"{path}: the top level must be an object")
            return data
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ComplianceFileError(f"{path}: not valid TOML ({error})") from None
    except json.JSONDecodeError as error:
        raise ComplianceFileError(f"{path}: not valid JSON ({error})") from None


def _kinds(value: Any, where: str) -> frozenset[InstrumentKind]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ComplianceFileError(f"{where}: expected a list of instrument kinds ({_KINDS})")
    try:
        return frozenset(InstrumentKind(v) for v in value)
    except ValueError:
        unknown = [v for v in value if v not in {k.value for k in InstrumentKind}]
        raise ComplianceFileError(
            f"{where}: unknown instrument kind {unknown[0]!r} (known: {_KINDS})"
        ) from None


def _notional(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ComplianceFileError(
            f'{where}: write the amount as a string or an integer ("25000.5"), never a float'
        )
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ComplianceFileError(f"{where}: {value!r} is not a decimal number") from None
    if not amount.is_finite() or amount < 0:
        raise ComplianceFileError(f"{where}: must be a non-negative amount, not {value!r}")
    return amount


def _jurisdiction(value: Any, where: str) -> str:
    if not isinstance(value, str) or not JURISDICTION.match(value.upper()):
        raise ComplianceFileError(f'{where}: {value!r} is not an ISO 3166 alpha-2 code like "GB"')
    return value.upper()


@dataclass(frozen=True)
class Rules:
    levels: KycLevels
    jurisdictions: JurisdictionRules


def load_rules(path: Path) -> Rules:
    data = _toml_or_json(path)
    raw_levels = data.get("kyc_levels")
    if not isinstance(raw_levels, list) or not raw_levels:
        raise ComplianceFileError(f"{path}: needs [[kyc_levels]] entries, lowest level first")
    levels = []
    for index, raw in enumerate(raw_levels):
        where = f"{path}: kyc_levels[{index}]"
        if not isinstance(raw, dict):
            raise ComplianceFileError(f"{where}: expected a table")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ComplianceFileError(f"{where}: needs a name")
        unknown = set(raw) - {"name", "kinds", "max_order_notional"}
        if unknown:
            raise ComplianceFileError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        levels.append(
            KycLevel(
                name,
                _kinds(raw.get("kinds", []), f"{where}.kinds"),
                _notional(raw.get("max_order_notional"), f"{where}.max_order_notional"),
            )
        )
    try:
        kyc_levels = KycLevels(tuple(levels))
    except RulesError as error:
        raise ComplianceFileError(f"{path}: {error}") from None
    raw_j = data.get("jurisdictions", {})
    if not isinstance(raw_j, dict):
        raise ComplianceFileError(f"{path}: [jurisdictions] must be a table")
    blocked_raw = raw_j.get("blocked", [])
    if not isinstance(blocked_raw, list):
        raise ComplianceFileError(f"{path}: jurisdictions.blocked must be a list of codes")
    blocked = frozenset(
        _jurisdiction(code, f"{path}: jurisdictions.blocked") for code in blocked_raw
    )
    allowed_raw = raw_j.get("allowed_kinds", {})
    if not isinstance(allowed_raw, dict):
        raise ComplianceFileError(f"{path}: [jurisdictions.allowed_kinds] must be a table")
    allowed = {
        _jurisdiction(code, f"{path}: jurisdictions.allowed_kinds"): _kinds(
            kinds, f"{path}: jurisdictions.allowed_kinds.{code}"
        )
        for code, kinds in allowed_raw.items()
    }
    return Rules(kyc_levels, JurisdictionRules(blocked, allowed))


@dataclass(frozen=True)
class KycRecords:
    by_address: Mapping[str, KycRecord]  # by address_key
    default: KycRecord | None


def _record(raw: Any, where: str, levels: KycLevels | None) -> KycRecord:
    if not isinstance(raw, dict):
        raise ComplianceFileError(f"{where}: expected a table")
    level = raw.get("level")
    if not isinstance(level, str) or not level:
        raise ComplianceFileError(f"{where}: needs a level")
    if levels is not None and levels.get(level) is None:
        names = ", ".join(lv.name for lv in levels.levels)
        raise ComplianceFileError(f"{where}: unknown KYC level {level!r} (the rules have {names})")
    jurisdiction = raw.get("jurisdiction")
    return KycRecord(
        level,
        None if jurisdiction is None else _jurisdiction(jurisdiction, f"{where}.jurisdiction"),
    )


def load_kyc(path: Path, levels: KycLevels | None = None) -> KycRecords:
    """`levels`: when given, every level named must be one of them."""
    data = _toml_or_json(path)
    default = None
    if "default" in data:
        default = _record(data["default"], f"{path}: default", levels)
    raw_accounts = data.get("accounts", [])
    if not isinstance(raw_accounts, list):
        raise ComplianceFileError(f"{path}: accounts must be an array of tables ([[accounts]])")
    records: dict[str, KycRecord] = {}
    for index, raw in enumerate(raw_accounts):
        where = f"{path}: accounts[{index}]"
        address = raw.get("address") if isinstance(raw, dict) else None
        if not isinstance(address, str) or not ADDRESS.match(address):
            raise ComplianceFileError(f"{where}: needs an address (0x and 40 hex digits)")
        key = address_key(address)
        if key in records:
            raise ComplianceFileError(f"{where}: {address} is listed twice")
        records[key] = _record(raw, where, levels)
    return KycRecords(records, default)
