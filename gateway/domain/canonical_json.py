"""Canonical JSON: sorted keys, no spaces. What the audit chain and request fingerprints hash.

The text is exactly `json.dumps(value, sort_keys=True, separators=(",", ":"),
ensure_ascii=ascii_only)` for JSON values without floats (money is never a float: amounts are
strings or integers). orjson writes it about ten times faster; whatever it cannot write the same
way (an integer past 64 bits, a non-string key, a lone surrogate, a type json refuses, text
outside ASCII when `ascii_only`) goes to `json.dumps`, so the result never depends on which
encoder wrote it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# datetimes and dataclasses go to the fallback, which refuses them as json.dumps always did
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def canonical_json(value: Any, *, ascii_only: bool = False) -> str:
    try:
        text = orjson.dumps(value, option=_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return _json(value, ascii_only)
    if ascii_only and not text.isascii():
        return _json(value, ascii_only)
    return text


def _json(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only)
