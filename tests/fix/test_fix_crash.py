"""`kill -9` of the gateway in the middle of a FIX session: the desk (QuickFIX's initiator)
reconnects to the restarted gateway, both sides' sequence numbers go on from where they
were (resend requests fill the gaps), and every order the desk sent exists exactly once and
is reported to it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import quickfix as fix

from tests.fix.conftest import ACCOUNT
from tests.fix.initiator import FixInitiator, field, limit_order, printable
from tests.integration.gateway_process import GatewayProcess
from tests.operator_access import operator_headers
from tests.postgres_cluster import free_port

pytestmark = pytest.mark.slow

BEFORE, DURING, AFTER = 30, 10, 5  # orders sent: streaming at the kill, while down, after


def new_order(cl_ord_id: str, price: str) -> fix.Message:
    return limit_order(cl_ord_id, ACCOUNT, "0.1", price)


def stored_orders(gateway: GatewayProcess) -> list[str]:
    """Every client_order_id of the account in the store (one entry per order)."""
    ids: list[str] = []
    cursor = None
    while True:
        params = {"account": ACCOUNT, "limit": "500", **({"cursor": cursor} if cursor else {})}
        page = httpx.get(
            f"{gateway.url}/v1/orders", params=params, headers=operator_headers(), timeout=30
        ).json()
        ids += [order["client_order_id"] for order in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            return ids


def test_kill_9_mid_session_loses_and_duplicates_no_order(tmp_path: Path) -> None:
    fix_port = free_port()
    env = {
        "ISTHMUS_FIX_PORT": str(fix_port),
        "ISTHMUS_FIX_SESSIONS": json.dumps(["DESK1"]),
        "ISTHMUS_FIX_DIR": str(tmp_path / "fix"),
        "ISTHMUS_RISK_ORDERS_PER_SECOND": "100000",
        "ISTHMUS_RISK_ORDER_BURST": "100000",
    }
    gateway = GatewayProcess(f"sqlite:///{tmp_path / 'gateway.db'}", env=env)
    gateway.start()
    try:
        created = httpx.post(
            f"{gateway.url}/v1/api-keys",
            json={
                "role": "protocol",
                "scopes": ["trade", "read", "unsigned"],
                "accounts": [ACCOUNT],
            },
            headers=operator_headers(),
            timeout=30,
        )
        assert created.status_code == 201, created.text
        key = created.json()
        desk = FixInitiator(
            port=fix_port,
            sender_comp_id="DESK1",
            key_id=key["key_id"],
            secret=key["secret"],
            store_dir=tmp_path / "desk",
        )
        with desk:
            desk.wait_logon(30)
            names = [f"k-{n}" for n in range(BEFORE + DURING + AFTER)]
            prices = {name: str(2000 - n) for n, name in enumerate(names)}
            for name in names[:BEFORE]:
                desk.send(new_order(name, prices[name]))
            reported = {field(desk.next_app("8", timeout=30), 11)}  # the stream is flowing
            gateway.kill()  # orders in flight: received, handled, reported, or not yet
            for name in names[BEFORE : BEFORE + DURING]:
                desk.send(new_order(name, prices[name]))  # numbered and kept by the desk
            gateway.start()
            desk.wait_logon(60)
            for name in names[BEFORE + DURING :]:
                desk.send(new_order(name, prices[name]))
            while not reported >= set(names):
                report = desk.next_app("8", timeout=60)
                assert field(report, 150) in ("0", "I"), printable(report)
                reported.add(field(report, 11))
            stored = stored_orders(gateway)
            assert sorted(stored) == sorted(names)  # each once: none lost, none twice
            log = desk.message_log().replace("\x01", "|").splitlines()
            logons = [line for line in log if "|35=A|" in line and "|49=ISTHMUS|" in line]
            assert len(logons) == 2  # before and after the kill
            # the gateway's numbers went on after the restart: it never reset to 1 ...
            assert "|141=Y|" not in logons[1] and "|34=1|" not in logons[1]
            # ... and it asked for what it missed (the orders sent while it was down)
            assert any("|35=2|" in line and "|49=ISTHMUS|" in line for line in log)
    finally:
        gateway.stop()
