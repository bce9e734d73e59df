"""Run the real gateway as a subprocess (the same `isthmus up` a user runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.operator_access import OPERATOR_TOKEN
from tests.postgres_cluster import free_port
from tests.process_output import wait_for_marker

BYTECODE_CACHE = Path(tempfile.gettempdir()) / "isthmus-gateway-pycache"


class GatewayProcess:
    def __init__(
        self,
        database_url: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        config: str | None = None,
    ) -> None:
        self.database_url = database_url
        self.env = env or {}
        # by default only the internal venue: tests of the order service, not the devnet
        self.config = Path(tempfile.mkdtemp(prefix="isthmus-gw-")) / "gateway.toml"
        self.config.write_text(config or '[[venues]]\nkind = "internal"\n')
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        env = {
            **os.environ,
            "ISTHMUS_DATABASE_URL": self.database_url,
            "ISTHMUS_LOG_LEVEL": "info",
            "ISTHMUS_OPERATOR_TOKEN": OPERATOR_TOKEN,
            # restarted many times: compile the sources once, into a cache of its own (not
            # the tree), even where the environment says not to write bytecode (ccxt alone
            # is 40 MB of sources: seconds of every start)
            "PYTHONPYCACHEPREFIX": str(BYTECODE_CACHE),
            **self.env,
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "up",
                "--config",
                str(self.config),
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        self._wait_for_line(b"Uvicorn running on", timeout)

    def _wait_for_line(self, marker: bytes, timeout: float) -> None:
        """Block on the server's log until it says it is ready (no polling, no sleeps)."""
        assert self.process is not None and self.process.stderr is not None
        try:
            wait_for_marker(self.process.stderr, marker, timeout)
        except TimeoutError as error:
            raise TimeoutError(f"gateway not ready: {error}") from None
        except RuntimeError as error:
            raise RuntimeError(f"gateway exited: {error}") from None
        # Keep draining the pipe so a chatty server never blocks on a full pipe.
        import threading

        stderr = self.process.stderr
        # ISTHMUS_TEST_GATEWAY_LOGS=<dir>: keep each process's log there, for a failure's cause
        keep = os.environ.get("ISTHMUS_TEST_GATEWAY_LOGS")
        log_path = (
            None if keep is None else Path(keep) / f"gateway-{self.port}-{self.process.pid}.log"
        )

        def drain() -> None:
            sink = None if log_path is None else log_path.open("wb")
            try:
                for line in iter(stderr.readline, b""):
                    if sink is not None:
                        sink.write(line)
                        sink.flush()
            finally:
                if sink is not None:
                    sink.close()

        threading.Thread(target=drain, daemon=True).start()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what the disk has is what survives."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
