"""Structured logs: one JSON object a line, with the request's id and its order's, and no
secret in any line: not the operator token, an API key's secret, a request's HMAC
signature, an order's EIP-712 signature, a session token or a private key, whether the
gateway logged them or a careless line did."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from eth_account import Account
from eth_utils import keccak

from gateway.access.request_signing import SIGNATURE_HEADER, sign_request
from gateway.config import Settings
from gateway.telemetry.logs import REDACTED, UVICORN_LOGGERS, configure_logging
from tests.api.access_clients import (
    KEYS,
    api_key,
    gateway,
    now_ms,
    operator,
    order_body,
    trader_headers,
    wallet,
)
from tests.conftest import ManualClock
from tests.operator_access import OPERATOR_TOKEN, operator_headers

ALICE = wallet(0)
Capture = Callable[..., io.StringIO]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def capture_logs() -> Iterator[Capture]:
    """`capture_logs(**settings)`: the process's logs, configured as `isthmus up` does
    (at DEBUG), into a string; the logging set-up is restored afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    uvicorn = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in UVICORN_LOGGERS
    }

    def capture(**settings: Any) -> io.StringIO:
        stream = io.StringIO()
        config = Settings(operator_token=OPERATOR_TOKEN, **settings)
        configure_logging(config, stream=stream, level=logging.DEBUG)
        return stream

    try:
        yield capture
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, (saved, propagate) in uvicorn.items():
            logging.getLogger(name).handlers[:] = saved
            logging.getLogger(name).propagate = propagate
        structlog.reset_defaults()


def careless_lines(secrets: dict[str, str]) -> None:
    """What a careless change could log: headers, a query string, secrets as fields and
    in an exception's message."""
    stdlib = logging.getLogger("gateway.careless")
    stdlib.info(
        "request headers %s",
        {
            "Authorization": f"Bearer {secrets['operator token']}",
            SIGNATURE_HEADER: secrets["HMAC signature"],
        },
    )
    stdlib.info("session %s, order signed %s", secrets["session token"], secrets["signature"])
    stdlib.warning("loaded key %s", secrets["private key"], extra={"secret": secrets["api secret"]})
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        f"/v1/stream?token={secrets['session token']}",
        "1.1",
        101,
    )
    try:
        raise ValueError(f"refused {secrets['api secret']} for {secrets['operator token']}")
    except ValueError:
        stdlib.exception("signing failed")
    structlog.get_logger("gateway.careless").info(
        "signed",
        signature=secrets["signature"],
        api_key_secret=secrets["api secret"],
        headers={"authorization": f"Bearer {secrets['session token']}"},
        note=f"key {secrets['private key']} sig {secrets['HMAC signature']}",
    )


def test_logs_are_json_lines_with_request_and_order_ids_and_no_secret(
    tmp_path: Path, clock: ManualClock, capture_logs: Capture
) -> None:
    stream = capture_logs()
    secrets: dict[str, str] = {"operator token": OPERATOR_TOKEN, "private key": KEYS[1]}
    with gateway(tmp_path, clock, request_window_seconds=30) as client:
        # the operator's token issues an API key
        key = api_key(client, clock)
        secrets["api secret"] = key.secret
        # the key signs a request (HMAC)
        clock.advance(milliseconds=1)
        headers = sign_request(
            key.key_id, key.secret, "GET", "/v1/orders?limit=5", b"", now_ms=now_ms(clock)
        )
        secrets["HMAC signature"] = headers[SIGNATURE_HEADER]
        assert client.get("/v1/orders?limit=5", headers=headers).status_code == 200
        # a trader signs in with Ethereum, and sends an order signed with its key
        session = trader_headers(client, clock, ALICE)
        secrets["session token"] = session["Authorization"].removeprefix("Bearer ")
        signature = Account.unsafe_sign_hash(keccak(b"an order"), ALICE.key).signature
        secrets["signature"] = "0x" + signature.hex().removeprefix("0x")
        assert len(secrets["signature"]) == 132
        body = order_body(
            ALICE.address,
            1,
            signature={"nonce": "1", "deadline": 2_000_000_000, "signature": secrets["signature"]},
        )
        placed = client.post("/v1/orders", json=body, headers={**session, "X-Request-Id": "req-7"})
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["id"]
        listed = operator(client, "GET", f"/v1/orders/{order_id}")
        assert listed.status_code == 200
        careless_lines(secrets)

    output = stream.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]  # each line is one object
    assert all(isinstance(line, dict) and "timestamp" in line for line in lines)
    for name, secret in secrets.items():
        for form in {secret, secret.lower(), secret.removeprefix("0x")}:
            assert form not in output, f"the {name} was logged"
    assert REDACTED in output
    # the order's request: its id and the order's on its line, the next request's own id
    [order_line] = [line for line in lines if line.get("request_id") == "req-7"]
    assert order_line["order_id"] == order_id
    assert order_line["status_code"] == 201 and order_line["http_route"] == "/v1/orders"
    [read_line] = [line for line in lines if line.get("http_route") == "/v1/orders/{order_id}"]
    assert read_line["request_id"] == listed.headers["X-Request-Id"] != "req-7"
    assert "order_id" not in read_line  # ids end with their request
    careless = [line for line in lines if line.get("logger") == "gateway.careless"]
    assert len(careless) == 5 and all("request_id" not in line for line in careless)
    assert any("Traceback" in line.get("exception", "") for line in careless)


def test_a_transaction_hash_under_its_own_key_is_kept_and_console_logs_are_redacted(
    capture_logs: Capture,
) -> None:
    tx_hash = "0x" + "ab" * 32
    stream = capture_logs(log_format="console")
    log = logging.getLogger("gateway.settlement")
    log.info("batch settled", extra={"tx_hash": tx_hash})
    log.info("operator key %s, token %s", KEYS[2], OPERATOR_TOKEN)
    output = stream.getvalue()
    assert tx_hash in output
    assert KEYS[2] not in output and OPERATOR_TOKEN not in output
    assert output.count(REDACTED) == 2
    # an operator header sent as is would be masked the same way
    assert operator_headers()["Authorization"] not in output
