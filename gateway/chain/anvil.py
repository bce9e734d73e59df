"""A local anvil node as a managed subprocess.

The binary comes from the npm package ``@foundry-rs/anvil`` in the project's
``node_modules/.bin``; ``ISTHMUS_ANVIL_BIN`` (or the ``binary`` argument) overrides it.
``start()`` picks a free port, launches anvil and polls ``eth_chainId`` until the node answers;
``stop()`` terminates it (SIGTERM, then SIGKILL of its own process group if needed).

anvil moves all but its newest block states to disk and leaves them there when it stops (at
its default ``~/.foundry/anvil/tmp`` they filled a 250 GB disk over a day of test runs). So
each node gets its own ``--cache-path`` under :func:`state_cache_root`, named after the
process that started it; ``stop()`` removes it, and a start removes those whose process died.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self

from eth_account import Account
from eth_account.signers.local import LocalAccount

from gateway.chain.paths import project_root

ANVIL_BIN_ENV: Final = "ISTHMUS_ANVIL_BIN"
DEFAULT_MNEMONIC: Final = "test test test test test test test test test test test junk"
DEFAULT_CHAIN_ID: Final = 31337


class AnvilError(RuntimeError):
    """anvil could not be found, did not start, or exited unexpectedly."""


def state_cache_root() -> Path:
    """Where the nodes this machine starts keep their past block states, one folder each."""
    return Path(tempfile.gettempdir()) / "isthmus-anvil-states"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_state_caches(root: Path | None = None) -> list[Path]:
    """Remove the state folders whose starting process is gone (killed before its ``stop()``);
    the ones removed."""
    root = state_cache_root() if root is None else root
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in root.iterdir():
            owner = entry.name.split("-", 1)[0]
            if owner.isdigit() and not _process_alive(int(owner)):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def find_anvil_binary(binary: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the anvil executable: explicit argument, then ``$ISTHMUS_ANVIL_BIN``, then
    ``<project root>/node_modules/.bin/anvil``."""
    candidate = binary if binary is not None else os.environ.get(ANVIL_BIN_ENV)
    path = Path(candidate) if candidate else project_root() / "node_modules" / ".bin" / "anvil"
    if not path.exists():
        raise AnvilError(
            f"anvil not found at {path}; run `npm ci` in the project root or set {ANVIL_BIN_ENV}"
        )
    if not os.access(path, os.X_OK):
        raise AnvilError(f"anvil at {path} is not executable")
    return path


def _group_running(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running (zombies waiting for init to
    reap them do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: a live group id is all we can see
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()  # state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def port_is_free(host: str, port: int) -> bool:
    """Nothing listens on it. Probed with SO_REUSEADDR, as anvil binds: connections of a
    stopped node left in TIME_WAIT do not keep a restarted one from its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def rpc_call(url: str, method: str, params: Sequence[Any] = (), timeout: float = 2.0) -> Any:
    """One JSON-RPC call over HTTP with the standard library (no web3 needed)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise AnvilError(f"{method} failed: {reply['error']}")
    return reply["result"]


@dataclass(frozen=True, slots=True)
class AnvilConfig:
    """How to launch anvil. ``port=None`` picks a free port."""

    binary: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    chain_id: int = DEFAULT_CHAIN_ID
    accounts: int = 10
    balance_ether: int = 10_000
    mnemonic: str = DEFAULT_MNEMONIC
    block_time: int | None = None
    gas_limit: int | None = None
    code_size_limit: int | None = None
    state_path: str | None = None  # --state: load at start if present, dump on stop
    # --cache-path for past block states; None: a folder of this node's own, removed on stop
    cache_path: str | None = None
    extra_args: tuple[str, ...] = ()
    startup_timeout: float = 30.0


class Anvil:
    """A running (or startable) anvil node.

    Use as a context manager::

        with Anvil() as node:
            w3 = Web3(Web3.HTTPProvider(node.rpc_url))
    """

    def __init__(self, config: AnvilConfig | None = None) -> None:
        self.config = config or AnvilConfig()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None
        self._state_cache: Path | None = None  # the folder this object made, removed on stop

    # -- lifecycle ---------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def port(self) -> int:
        if self._port is None:
            raise AnvilError("anvil is not started")
        return self._port

    @property
    def state_cache(self) -> Path | None:
        """The folder of past block states this node was given (None when not started)."""
        if self.config.cache_path is not None:
            return Path(self.config.cache_path)
        return self._state_cache

    @property
    def rpc_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def command(self, port: int) -> list[str]:
        cfg = self.config
        args = [
            str(find_anvil_binary(cfg.binary)),
            "--host",
            cfg.host,
            "--port",
            str(port),
            "--chain-id",
            str(cfg.chain_id),
            "--accounts",
            str(cfg.accounts),
            "--balance",
            str(cfg.balance_ether),
            "--mnemonic",
            cfg.mnemonic,
            "--color",
            "never",
        ]
        if cfg.block_time is not None:
            args += ["--block-time", str(cfg.block_time)]
        if cfg.gas_limit is not None:
            args += ["--gas-limit", str(cfg.gas_limit)]
        if cfg.code_size_limit is not None:
            args += ["--code-size-limit", str(cfg.code_size_limit)]
        if cfg.state_path is not None:
            args += ["--state", cfg.state_path]
        cache = cfg.cache_path if cfg.cache_path is not None else self._state_cache
        if cache is not None:
            args += ["--cache-path", str(cache)]
        args += list(cfg.extra_args)
        return args

    def start(self) -> Self:
        """Launch anvil and block until it answers ``eth_chainId`` (or raise)."""
        if self.running:
            return self
        if self.config.port is not None and not port_is_free(self.config.host, self.config.port):
            raise AnvilError(f"port {self.config.port} on {self.config.host} is already in use")
        attempts = 1 if self.config.port is not None else 3
        last_error: AnvilError | None = None
        for _ in range(attempts):
            port = self.config.port if self.config.port is not None else free_port(self.config.host)
            try:
                self._launch(port)
                return self
            except AnvilError as exc:  # e.g. the port was taken between probe and bind
                last_error = exc
                self.stop()
        assert last_error is not None
        raise last_error

    def _launch(self, port: int) -> None:
        if self.config.cache_path is None:
            sweep_state_caches()
            root = state_cache_root()
            root.mkdir(parents=True, exist_ok=True)
            self._state_cache = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
        self._log = tempfile.TemporaryFile(prefix="anvil-", suffix=".log")  # noqa: SIM115
        self._process = subprocess.Popen(
            self.command(port),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() can reap the wrapper's child
        )
        self._port = port
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout
        delay = 0.02
        while True:
            process = self._process
            assert process is not None
            if process.poll() is not None:
                raise AnvilError(
                    f"anvil exited with code {process.returncode} before answering:\n"
                    + self.log_tail()
                )
            try:
                chain_id = int(rpc_call(self.rpc_url, "eth_chainId", timeout=1.0), 16)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
                chain_id = None
            if chain_id is not None:
                if process.poll() is not None:  # someone else answers on this port
                    raise AnvilError(f"port {self.port} is taken:\n{self.log_tail()}")
                if chain_id != self.config.chain_id:
                    raise AnvilError(
                        f"node at {self.rpc_url} reports chain id {chain_id}, "
                        f"expected {self.config.chain_id} (port clash?)"
                    )
                return
            if time.monotonic() > deadline:
                raise AnvilError(
                    f"anvil did not answer on {self.rpc_url} within "
                    f"{self.config.startup_timeout}s:\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate anvil gracefully (SIGTERM, so ``--state`` is dumped); idempotent.

        The npm wrapper forwards SIGTERM to the native binary but exits without waiting for
        it, so the whole process group we created is signalled and waited for; whatever is
        still running after ``timeout`` gets SIGKILL.
        """
        process = self._process
        if process is not None:
            pgid = process.pid  # start_new_session: the group id is the pid we started
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
            while _group_running(pgid) and time.monotonic() < deadline:
                time.sleep(0.01)
            if _group_running(pgid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
            self._process = None
        if self._state_cache is not None:
            shutil.rmtree(self._state_cache, ignore_errors=True)
            self._state_cache = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, max_bytes: int = 4000) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - max_bytes))
        return self._log.read().decode(errors="replace")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self.stop(timeout=1.0)

    # -- dev accounts ------------------------------------------------------

    def dev_accounts(self) -> list[LocalAccount]:
        """The accounts anvil funds at genesis, with their private keys (derived from the
        configured mnemonic on ``m/44'/60'/0'/0/i``, like anvil does)."""
        return dev_accounts(self.config.mnemonic, self.config.accounts)


def dev_accounts(mnemonic: str = DEFAULT_MNEMONIC, count: int = 10) -> list[LocalAccount]:
    """Accounts derived from ``mnemonic`` on the default path, as anvil and hardhat derive them."""
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)
    ]
