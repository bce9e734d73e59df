"""HMAC request signing for API keys, shared by the server, the CLI, tests and the demo.

The signature is hex HMAC-SHA256, keyed by the key's secret, over the bytes
`timestamp + method + path_with_query + body`: the timestamp in unix milliseconds as decimal
text, the method upper-case, the path exactly as sent (with its `?query`, if any), and the
raw body (empty for GET). The server refuses timestamps outside its window and a signature
it has already seen within it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

KEY_HEADER = "X-Isthmus-Key"
TIMESTAMP_HEADER = "X-Isthmus-Timestamp"
SIGNATURE_HEADER = "X-Isthmus-Signature"
# replicas: the replica that passed a request on, and the stream client it did so for
FORWARDED_BY = "X-Isthmus-Forwarded-By"
ON_BEHALF_OF = "X-Isthmus-On-Behalf-Of"


def signing_payload(timestamp_ms: int, method: str, path_with_query: str, body: bytes) -> bytes:
    return f"{timestamp_ms}{method.upper()}{path_with_query}".encode() + body


def request_signature(
    secret: str, timestamp_ms: int, method: str, path_with_query: str, body: bytes
) -> str:
    payload = signing_payload(timestamp_ms, method, path_with_query, body)
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def sign_request(
    key_id: str,
    secret: str,
    method: str,
    path_with_query: str,
    body: bytes = b"",
    *,
    now_ms: int,
) -> dict[str, str]:
    """The headers that authenticate one request; send `body` byte for byte as signed."""
    return {
        KEY_HEADER: key_id,
        TIMESTAMP_HEADER: str(now_ms),
        SIGNATURE_HEADER: request_signature(secret, now_ms, method, path_with_query, body),
    }


# --- FIX logons ---------------------------------------------------------------------------
# A FIX Logon (35=A) proves an API key the same way: Username (553) the key id, Password (554)
# the signature of the method "FIX" and this path, at the Logon's SendingTime (52).


def fix_logon_path(sender_comp_id: str, target_comp_id: str, msg_seq_num: int | str) -> str:
    """The comp ids and MsgSeqNum as the initiator sends them in the Logon's header."""
    return f"/fix/logon/{sender_comp_id}/{target_comp_id}/{msg_seq_num}"


def sending_time_ms(sending_time: str) -> int:
    """SendingTime (52), `YYYYMMDD-HH:MM:SS[.fff...]` in UTC, as unix milliseconds."""
    whole, _, fraction = sending_time.partition(".")
    moment = datetime.strptime(whole, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + int((fraction + "000")[:3])


def fix_logon_signature(
    secret: str, sending_time: str, sender_comp_id: str, target_comp_id: str, msg_seq_num: int | str
) -> str:
    """Password (554) of a Logon with these header fields."""
    path = fix_logon_path(sender_comp_id, target_comp_id, msg_seq_num)
    return request_signature(secret, sending_time_ms(sending_time), "FIX", path, b"")
