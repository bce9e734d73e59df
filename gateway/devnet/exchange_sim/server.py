"""Run a simulated exchange on a loopback port, in-process or from the command line.

`SimServer(app).start()` runs uvicorn in a background thread on `127.0.0.1` (port 0 picks a
free one) and returns once the socket accepts connections; `stop()` shuts it down and joins.

    python -m gateway.devnet.exchange_sim.server binance --port 8101 --seed 7 --history-days 2
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import uvicorn

from gateway.devnet.exchange_sim.binance import BinanceSim
from gateway.devnet.exchange_sim.common import SimVenueBase
from gateway.devnet.exchange_sim.deribit import DeribitSim
from gateway.devnet.exchange_sim.history import HistoryConfig

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def make_sim(kind: str, *, seed: int = 1, **kwargs: Any) -> BinanceSim | DeribitSim:
    if kind == "binance":
        return BinanceSim(seed=seed, **kwargs)
    if kind == "deribit":
        return DeribitSim(seed=seed, **kwargs)
    raise ValueError(f"unknown simulated exchange {kind!r}")


class SimServer:
    """One ASGI app served by uvicorn on a background thread.

    The listening socket is bound before the thread starts, so the port is taken without a
    race; `start()` then blocks on one real HTTP request answered by the app."""

    def __init__(self, app: Any, port: int = 0, *, startup_timeout: float = 10.0) -> None:
        self.app = app
        self.port = port
        self.startup_timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> SimServer:
        sock = bind(self.port)
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server

        def run() -> None:
            asyncio.run(server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=run, name=f"sim-{self.port}", daemon=True)
        self._thread.start()
        try:
            httpx.get(self.url + "/", timeout=self.startup_timeout)
        except httpx.HTTPError as error:
            self.stop()
            raise RuntimeError(f"simulated exchange did not start on {self.url}") from error
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bind(port: int = 0) -> socket.socket:
    """A listening loopback socket: connections queue up even before the app serves them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    return sock


async def serve_forever(
    sim: SimVenueBase, app: Any, sock: socket.socket, step_interval: float
) -> None:
    """Serve `app` and step the market maker every `step_interval` seconds (for `make up`)."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="info"))
    if step_interval > 0:
        sim.start_stepping(step_interval)
    try:
        await server.serve(sockets=[sock])
    finally:
        await sim.stop_stepping()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a simulated exchange on loopback.")
    parser.add_argument("exchange", choices=["binance", "deribit"])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--step-interval", type=float, default=1.0, help="seconds between market-maker steps"
    )
    parser.add_argument(
        "--history-days",
        type=float,
        default=HistoryConfig().days,
        help="days of synthetic public trade history to seed (0 for none)",
    )
    args = parser.parse_args(argv)
    sim = make_sim(args.exchange, seed=args.seed, history=HistoryConfig(days=args.history_days))
    sock = bind(args.port)
    print(f"http://{HOST}:{sock.getsockname()[1]}", flush=True)
    asyncio.run(serve_forever(sim, sim.app, sock, args.step_interval))


if __name__ == "__main__":
    main()
