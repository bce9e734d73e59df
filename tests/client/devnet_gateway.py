"""A real `isthmus up` on the devnet, as a trader finds it: anvil, the contracts, the pool, the
simulated exchanges and the gateway, in a process of their own (in a temporary directory, on
free ports). The client tests speak to it only as clients do: HTTP, the stream, the chain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from tests.postgres_cluster import free_port
from tests.process_output import wait_for_marker

ROOT = Path(__file__).resolve().parents[2]
# anvil's dev accounts 1..3: the devnet's demo traders alice, bob and carol (well-known keys)
DEMO_KEYS = {
    "alice": "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "bob": "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "carol": "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
}


@dataclass
class DevnetGateway:
    directory: Path
    port: int = field(default_factory=free_port)
    chain_port: int = field(default_factory=free_port)
    fix_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    output: str = ""
    log: deque[str] = field(default_factory=lambda: deque(maxlen=2000))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> Path:
        return self.directory / ".isthmus" / "devnet"

    @property
    def operator_token(self) -> str:
        return (self.state / "operator-token").read_text().strip()

    @property
    def deployment(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.state / "deployment.json").read_text())
        return loaded

    def chain(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{self.url}/v1/chain", timeout=30).json()
        return answer

    def demo_wallet(self, name: str) -> str:
        """The demo trader's MarginWallet (the gateway printed it when it came up)."""
        for line in self.output.splitlines():
            if f"trader {name}" in line:
                break
        else:
            raise KeyError(name)
        after = self.output[self.output.index(f"trader {name}") :]
        wallet_at = after.index("wallet ") + len("wallet ")
        return after[wallet_at : wallet_at + 42]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ISTHMUS_DATABASE_URL": f"sqlite:///{self.directory / 'devnet.db'}",
            # a port of its own: two devnets starting at once would both find 8545 free
            "ISTHMUS_DEVNET_CHAIN_PORT": str(self.chain_port),
            "ISTHMUS_FIX_PORT": str(self.fix_port),  # the devnet's 9878 is one per machine
            "COLUMNS": "250",
            "PYTHONPATH": str(ROOT),
            "PATH": f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def start(self, timeout: float = 240) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "up", "--port", str(self.port)],
            cwd=self.directory,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        try:
            self.output = wait_for_marker(
                self.process.stdout, b"Uvicorn running on", timeout
            ).decode(errors="replace")
        except (TimeoutError, RuntimeError):
            self.process.kill()
            raise
        # keep reading what it prints: a full pipe would block the gateway's next log line
        threading.Thread(target=self._drain, args=(self.process.stdout,), daemon=True).start()

    def _drain(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self.log.append(line.decode(errors="replace"))

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
        self.process = None
