"""The anvil process wrapper: start on a free port, answer RPC, stop cleanly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.chain.anvil import (
    Anvil,
    AnvilConfig,
    AnvilError,
    dev_accounts,
    find_anvil_binary,
    rpc_call,
)

pytestmark = pytest.mark.chain


def test_start_answers_and_stop_releases() -> None:
    node = Anvil(AnvilConfig(chain_id=4242))
    with node:
        assert node.running
        assert int(rpc_call(node.rpc_url, "eth_chainId"), 16) == 4242
        accounts = rpc_call(node.rpc_url, "eth_accounts")
        assert [a.lower() for a in accounts[:3]] == [
            acct.address.lower() for acct in dev_accounts(count=3)
        ]
        pid = node.pid
        url = node.rpc_url
    assert not node.running
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError):
        rpc_call(url, "eth_chainId", timeout=0.5)
    node.stop()  # idempotent


def test_two_nodes_get_distinct_ports() -> None:
    with Anvil() as a, Anvil() as b:
        assert a.port != b.port
        assert rpc_call(a.rpc_url, "eth_blockNumber") == "0x0"
        assert rpc_call(b.rpc_url, "eth_blockNumber") == "0x0"


def test_binary_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISTHMUS_ANVIL_BIN", "/nonexistent/anvil")
    with pytest.raises(AnvilError):
        find_anvil_binary()
    with pytest.raises(AnvilError):
        Anvil().start()


def test_bad_arguments_fail_fast() -> None:
    node = Anvil(AnvilConfig(extra_args=("--no-such-flag",), startup_timeout=10))
    with pytest.raises(AnvilError, match="exited"):
        node.start()
    assert not node.running


def test_state_survives_a_restart(tmp_path: Path) -> None:
    """Graceful stop dumps ``--state``; the next start loads it."""
    state = tmp_path / "anvil-state.json"
    config = AnvilConfig(state_path=str(state))
    with Anvil(config) as node:
        rpc_call(node.rpc_url, "anvil_mine", ["0x5"])
        assert int(rpc_call(node.rpc_url, "eth_blockNumber"), 16) == 5
    assert state.exists()
    with Anvil(config) as node:
        assert int(rpc_call(node.rpc_url, "eth_blockNumber"), 16) == 5


def test_fixed_port_in_use_is_refused() -> None:
    with Anvil() as first:
        with pytest.raises(AnvilError, match="in use"):
            Anvil(AnvilConfig(port=first.port)).start()
        assert rpc_call(first.rpc_url, "eth_chainId") == hex(31337)
