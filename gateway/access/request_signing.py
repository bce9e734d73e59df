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
