"""Sortable unique ids: 48 bits of milliseconds then 80 random bits, Crockford base32."""

from __future__ import annotations

import base64
import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# RFC 4648 base32 digit -> the Crockford digit of the same value
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())


def new_id(prefix: str) -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{encode_128(value)}"


def encode_128(value: int) -> str:
    """26 Crockford digits of a 128-bit value (130 bits, the top two zero), most
    significant first. Shifted to 160 bits so the C base32 encoder takes whole groups
    (once per order, the digit loop cost more than the rest of the id)."""
    digits = base64.b32encode((value << 30).to_bytes(20, "big"))[:26]
    return digits.translate(_TO_CROCKFORD).decode()
