"""The data dictionary the acceptor validates against: QuickFIX's FIX44.xml (shipped in the
`quickfix-py` wheel under `<prefix>/share/quickfix`) with Isthmus's custom fields
(`isthmus_fields.xml`) added to their messages."""

from __future__ import annotations

import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

CUSTOM_FIELDS = Path(__file__).with_name("isthmus_fields.xml")


def quickfix_fix44() -> Path:
    """Where the wheel put FIX44.xml: the environment's data directory."""
    for base in (sysconfig.get_path("data"), sys.prefix, sys.base_prefix):
        candidate = Path(base) / "share" / "quickfix" / "FIX44.xml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("FIX44.xml is not installed (the quickfix-py package ships it)")


def build_dictionary(target: Path) -> Path:
    """Write FIX44.xml plus the custom fields to `target` and return it."""
    base = ET.parse(quickfix_fix44())
    root = base.getroot()
    extra = ET.parse(CUSTOM_FIELDS).getroot()
    fields = root.find("fields")
    assert fields is not None
    for field in extra.iterfind("fields/field"):
        fields.append(field)
    messages = {m.get("name"): m for m in root.iterfind("messages/message")}
    for message in extra.iterfind("messages/message"):
        into = messages[message.get("name")]
        for field in message:
            into.append(field)
    target.parent.mkdir(parents=True, exist_ok=True)
    base.write(target, encoding="UTF-8", xml_declaration=True)
    return target
