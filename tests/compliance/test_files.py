"""The compliance files: the documented formats load; every mistake gets a message that
names the file, the line or key, and what is wrong."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.compliance.files import (
    DEVNET_KYC,
    DEVNET_RULES,
    DEVNET_SANCTIONS,
    ComplianceFileError,
    load_kyc,
    load_rules,
    load_sanctions,
)
from gateway.compliance.rules import KycRecord
from gateway.domain.instruments import InstrumentKind

A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sanctions_csv_with_comments_header_and_quoted_reasons(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        "# a comment\n\naddress,list,reason\n"
        f'{A.lower()},OFAC SDN,"mixer, laundering"\n'
        "  # indented comment\n"
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC,EU,\n",
    )
    sanctions = load_sanctions(path)
    assert len(sanctions) == 2
    entry = sanctions.match(A.upper().replace("0X", "0x"))
    assert entry is not None and entry.list_name == "OFAC SDN"
    assert entry.reason == "mixer, laundering"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0x12,OFAC,short\n", r"s\.csv:1: '0x12' is not an address"),
        (f"# c\n{A},OFAC\n", r"s\.csv:2: expected 3 columns address,list,reason and found 2"),
        (f"{A},,reason\n", r"s\.csv:1: the list name is empty"),
        (f"{A},OFAC,a,b\n", r"found 4"),
    ],
)
def test_sanctions_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ComplianceFileError, match=message) as caught:
        load_sanctions(write(tmp_path, "s.csv", text))
    assert caught.value.code == "compliance_file_invalid"


def test_a_missing_or_binary_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ComplianceFileError, match=r"nope\.csv: cannot read it"):
        load_sanctions(tmp_path / "nope.csv")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ComplianceFileError, match="not UTF-8"):
        load_sanctions(binary)


RULES = """
[[kyc_levels]]
name = "none"

[[kyc_levels]]
name = "basic"
kinds = ["spot"]
max_order_notional = "25000.5"

[[kyc_levels]]
name = "full"
kinds = ["spot", "option", "perpetual"]

[jurisdictions]
blocked = ["kp"]
[jurisdictions.allowed_kinds]
US = ["spot"]
"""


def test_rules_load(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, "r.toml", RULES))
    assert [level.name for level in rules.levels.levels] == ["none", "basic", "full"]
    basic = rules.levels.get("basic")
    assert basic is not None and basic.max_order_notional == Decimal("25000.5")
    assert rules.jurisdictions.blocked == {"KP"}
    assert rules.jurisdictions.kinds_in("us") == {InstrumentKind.SPOT}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('"25000.5"', "25000.5"), r"kyc_levels\[1\]\.max_order_notional: .*never a float"),
        (('"25000.5"', '"lots"'), r"'lots' is not a decimal number"),
        (('"25000.5"', '"-1"'), r"non-negative"),
        (('kinds = ["spot"]', 'kinds = ["bond"]'), r"unknown instrument kind 'bond'"),
        (
            ('name = "full"\nkinds = ["spot", "option", "perpetual"]', 'name = "full"\nkinds = []'),
            r"'full' allows less than 'basic'",
        ),
        (('blocked = ["kp"]', 'blocked = ["Korea"]'), r"'Korea' is not an ISO 3166"),
        (('name = "none"', 'name = "none"\ncolour = "red"'), r"unknown key 'colour'"),
        (("[jurisdictions]", "[jurisdictions"), r"not valid TOML"),
    ],
)
def test_rules_errors(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = RULES.replace(*change)
    assert text != RULES
    with pytest.raises(ComplianceFileError, match=message):
        load_rules(write(tmp_path, "r.toml", text))


def test_rules_need_levels(tmp_path: Path) -> None:
    with pytest.raises(ComplianceFileError, match=r"needs \[\[kyc_levels\]\]"):
        load_rules(write(tmp_path, "r.toml", "[jurisdictions]\nblocked = []\n"))


def test_kyc_records_in_toml_and_json(tmp_path: Path) -> None:
    levels = load_rules(write(tmp_path, "r.toml", RULES)).levels
    toml = write(
        tmp_path,
        "k.toml",
        f'[default]\nlevel = "none"\n\n[[accounts]]\naddress = "{A}"\nlevel = "basic"\n'
        'jurisdiction = "gb"\nlabel = "alice"\n',
    )
    records = load_kyc(toml, levels)
    assert records.default == KycRecord("none")
    assert records.by_address[A.lower()] == KycRecord("basic", "GB")
    as_json = write(tmp_path, "k.json", json.dumps({"accounts": [{"address": A, "level": "full"}]}))
    assert load_kyc(as_json, levels).by_address[A.lower()] == KycRecord("full")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            f'[[accounts]]\naddress = "{A}"\nlevel = "gold"\n',
            r"accounts\[0\]: unknown KYC level 'gold' \(the rules have none, basic, full\)",
        ),
        (
            f'[[accounts]]\naddress = "{A}"\nlevel = "full"\n'
            f'[[accounts]]\naddress = "{A.lower()}"\nlevel = "full"\n',
            r"accounts\[1\]: .* is listed twice",
        ),
        ('[[accounts]]\naddress = "alice"\nlevel = "full"\n', r"accounts\[0\]: needs an address"),
        (f'[[accounts]]\naddress = "{A}"\n', r"accounts\[0\]: needs a level"),
        (
            '[default]\nlevel = "full"\njurisdiction = "Narnia"\n',
            r"default\.jurisdiction: 'Narnia'",
        ),
    ],
)
def test_kyc_errors(tmp_path: Path, body: str, message: str) -> None:
    levels = load_rules(write(tmp_path, "r.toml", RULES)).levels
    with pytest.raises(ComplianceFileError, match=message):
        load_kyc(write(tmp_path, "k.toml", body), levels)


def test_the_devnet_samples_load_and_agree() -> None:
    rules = load_rules(DEVNET_RULES)
    records = load_kyc(DEVNET_KYC, rules.levels)
    sanctions = load_sanctions(DEVNET_SANCTIONS)
    assert len(sanctions) == 1
    traders = {
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",  # alice
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",  # bob
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906",  # carol
    }
    for owner in traders:
        record = records.by_address[owner.lower()]
        assert record.level == "full"
        assert rules.jurisdictions.kinds_in(record.jurisdiction) == set(InstrumentKind)
        assert owner not in sanctions
