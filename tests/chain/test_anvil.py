"""The anvil process wrapper: start on a free port, answer RPC, stop cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.chain.anvil import (
    Anvil,
    AnvilConfig,
    AnvilError,
    dev_accounts,
    find_anvil_binary,
    rpc_call,
    state_cache_root,
    sweep_state_caches,
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


def test_past_states_live_in_the_nodes_own_folder_and_leave_with_it() -> None:
    """anvil keeps only recent block states in memory and writes the rest to disk, where it
    leaves them; the folder is the node's own and ``stop()`` removes it."""
    with Anvil() as node:
        folder = node.state_cache
        assert folder is not None and folder.parent == state_cache_root()
        assert folder.name.startswith(f"{os.getpid()}-")
        rpc_call(node.rpc_url, "anvil_mine", ["0x300"])
        assert any(folder.iterdir())  # 768 blocks: the older states went to disk
        # ...and a past block's state is still answered, from there
        first = dev_accounts(count=1)[0].address
        assert int(rpc_call(node.rpc_url, "eth_getBalance", [first, "0x1"]), 16) > 0
    assert not folder.exists()


def test_a_start_sweeps_the_folders_of_processes_that_died(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f"{int(finished.stdout)}-abc"
    alive = tmp_path / f"{os.getpid()}-def"
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "0xstate.json").write_text("{}")
    assert sweep_state_caches(tmp_path) == [dead]
    assert not dead.exists() and alive.exists()
