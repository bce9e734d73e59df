"""docker-compose.yml, run without Docker: each service a process on this machine, started with
the command, environment and config that compose gives it, read from the YAML.

anvil runs with the compose service's arguments (the project's node_modules anvil instead of
the one the service installs with npm); the throwaway PostgreSQL stands in for the `postgres`
service, with the user, password and database its environment names; the one-shot `deploy`
service deploys onto anvil and writes the config (run twice: the second finds everything and
does nothing, as after `docker compose restart`); then both replicas come up on that config.
What compose decides alone is replaced in one place, `Machine.here`: service names become
127.0.0.1 with a port of their own, named volumes become directories, and `${...}` is filled
from what a user exports (the operator token). Then: both replicas pass their compose
healthcheck and answer /v1/health, one holds the lease, two demo traders sign WETH/USDC orders
with `isthmus_client` (the keys and wallets `isthmus deploy` printed), one through each
replica, the orders cross and the fill settles on chain, and the auditor finds chain and store
one to one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg
import pytest
import yaml
from isthmus_client import AsyncIsthmus, NonceStore, Signer
from psycopg import sql

from gateway.chain.transactions import connect
from gateway.venues.config import load_config
from tests.integration.exchange_leg import audited
from tests.integration.gateway_process import BYTECODE_CACHE
from tests.operator_access import OPERATOR_TOKEN, operator_headers
from tests.postgres_cluster import PostgresCluster, free_port
from tests.process_output import wait_for_marker
from tests.replicas.lease_holder import wait_for_holder

pytestmark = [pytest.mark.slow, pytest.mark.chain, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
REPLICAS = ("gateway-1", "gateway-2")
# what a user exports before `docker compose up` (compose fills `${...}` from it)
SHELL = {"ISTHMUS_OPERATOR_TOKEN": OPERATOR_TOKEN}
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}")
HOST_PORT = re.compile(r"\b(localhost|127\.0\.0\.1|[a-z][a-z0-9-]*):(\d+)\b")


@dataclass
class Machine:
    """This machine as compose's network: every service is 127.0.0.1 with ports of its own
    (`ports`: (service, container port) -> port here), each named volume a directory."""

    ports: dict[tuple[str, int], int]
    volumes: dict[str, Path]

    def here(self, service: str, value: str) -> str:
        """What `value`, an argument or environment value of `service`, means on this machine.
        Compose fills `${NAME...}` from the user's shell (`$$` is a `$`); then `name:port` of
        a service becomes 127.0.0.1 and that service's port here, `127.0.0.1:port` is the
        service itself (its healthcheck), `localhost:port` a port published on the host (an
        URL for clients on this machine); a bare port the service listens on (ISTHMUS_PORT)
        becomes its port here; a path in one of its named volumes, that volume's directory.
        Everything else stays exactly as compose says."""
        value = INTERPOLATION.sub(_shell_value, value)
        ports = dict(self.ports)
        ports.update({("127.0.0.1", c): p for (s, c), p in self.ports.items() if s == service})
        for name, spec in SERVICES.items():
            for published in spec.get("ports", []):
                host, container = published.split(":")
                if (name, int(container)) in self.ports:
                    ports["localhost", int(host)] = self.ports[name, int(container)]

        def host_port(match: re.Match[str]) -> str:
            found = ports.get((match[1], int(match[2])))
            return match[0] if found is None else f"127.0.0.1:{found}"

        if value.isdigit() and (service, int(value)) in self.ports:
            return str(self.ports[service, int(value)])
        for mount in SERVICES[service].get("volumes", []):
            volume, target = mount.split(":")[:2]
            if volume in self.volumes and (value == target or value.startswith(target + "/")):
                return str(self.volumes[volume]) + value.removeprefix(target)
        return HOST_PORT.sub(host_port, value)

    def command(self, service: str, command: list[str]) -> list[str]:
        return [self.here(service, part) for part in command]

    def environment(self, service: str) -> dict[str, str]:
        """The process environment (PATH as the image sets it, no ISTHMUS_* of the test run's
        own) with the service's compose environment on top."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("ISTHMUS_")}
        inherited["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        # compile the sources once, into a cache of their own (not configuration: speed)
        inherited["PYTHONPYCACHEPREFIX"] = str(BYTECODE_CACHE)
        inherited.pop("PYTHONDONTWRITEBYTECODE", None)
        compose_env = SERVICES[service].get("environment", {})
        return {**inherited, **{k: self.here(service, str(v)) for k, v in compose_env.items()}}


def _shell_value(match: re.Match[str]) -> str:
    if match[0] == "$$":
        return "$"
    if SHELL.get(match["name"]):
        return SHELL[match["name"]]
    if match["op"] == ":?":
        raise ValueError(f"compose refuses to start: {match['arg']}")
    return match["arg"] or ""


@dataclass
class Service:
    """One compose service running here as a process (in a session of its own: its
    children go with it)."""

    name: str
    process: subprocess.Popen[bytes]
    output: deque[str] = field(default_factory=lambda: deque(maxlen=400))

    @classmethod
    def start(cls, machine: Machine, name: str, command: list[str]) -> Service:
        process = subprocess.Popen(
            command,
            env=machine.environment(name),
            cwd=ROOT,  # the image's WORKDIR /app: the project root
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return cls(name, process)

    def wait_for(self, marker: bytes, timeout: float) -> None:
        """Until it prints `marker`, then keep draining its output (a full pipe blocks it)."""
        assert self.process.stdout is not None
        try:
            seen = wait_for_marker(self.process.stdout, marker, timeout)
        except (TimeoutError, RuntimeError) as error:
            raise AssertionError(f"{self.name} did not print {marker!r}: {error}") from None
        self.output.extend(seen.decode(errors="replace").splitlines())
        threading.Thread(target=self._drain, args=(self.process.stdout,), daemon=True).start()

    def _drain(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self.output.append(line.decode(errors="replace"))

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever it left behind


def healthy(machine: Machine, service: str, timeout: float) -> None:
    """Until the service's compose healthcheck passes, run here (a poll, with a deadline)."""
    kind, *test = SERVICES[service]["healthcheck"]["test"]
    assert kind == "CMD"
    command = machine.command(service, test)
    deadline = time.monotonic() + timeout
    while True:
        check = subprocess.run(
            command, env=machine.environment(service), capture_output=True, timeout=30
        )
        if check.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{service} not healthy: {check.stdout!r} {check.stderr!r}")
        time.sleep(0.5)


def compose_database(postgres: PostgresCluster) -> None:
    """The user, password and database the compose `postgres` service creates, created on
    the throwaway cluster (which then stands in for it: only host and port differ)."""
    environment = SERVICES["postgres"]["environment"]
    user, password = environment["POSTGRES_USER"], environment["POSTGRES_PASSWORD"]
    database = environment["POSTGRES_DB"]
    with psycopg.connect(postgres.admin_dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))
        if not connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [user]).fetchone():
            connection.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )
        connection.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(user)
            )
        )


def anvil_command(machine: Machine) -> list[str]:
    """The compose anvil's arguments, given to the project's own anvil (the service's script
    only installs the same npm package first: tests/test_deployment_files.py checks it)."""
    shell, flag, _script, _name, *arguments = SERVICES["anvil"]["command"]
    assert (shell, flag) == ("sh", "-c")
    return [str(ROOT / "node_modules" / ".bin" / "anvil"), *machine.command("anvil", arguments)]


def demo_traders(printed: str) -> dict[str, Signer]:
    """The demo traders `isthmus deploy` printed: each one's key and wallet."""
    found = re.findall(
        r"trader (\w+).*?owner (0x[0-9a-fA-F]{40}).*?wallet (0x[0-9a-fA-F]{40}).*?"
        r"key (0x[0-9a-f]{64})",
        printed,
        re.DOTALL,
    )
    signers = {name: Signer.from_key(key, wallet) for name, owner, wallet, key in found}
    assert {name: signers[name].address for name, *_ in found} == {
        name: owner for name, owner, *_ in found
    }
    return signers


def wait_for_pool(url: str, timeout: float = 60) -> None:
    """Until the consolidated WETH/USDC book has the pool live (the mid that price bands
    are measured from); an HTTP poll for a state, with a deadline."""
    deadline = time.monotonic() + timeout
    book: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/v1/book/WETH/USDC", headers=operator_headers(), timeout=10)
        if response.status_code == 200:
            book = response.json()
            if "uniswap" in book["live_venues"]:
                return
        time.sleep(0.1)
    raise AssertionError(f"the pool never showed in the book: {book}")


@contextlib.contextmanager
def running(services: list[Service]) -> Iterator[list[Service]]:
    try:
        yield services
    finally:
        for service in reversed(services):
            service.stop()


@pytest.mark.timeout(900)
def test_compose_services_as_processes_settle_a_signed_trade(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    ports = {("postgres", 5432): postgres.port, ("anvil", 8545): free_port()}
    for name in REPLICAS:
        [published] = SERVICES[name]["ports"]
        ports[name, int(published.split(":")[1])] = free_port()
    volumes = {name: tmp_path / "volumes" / name for name in COMPOSE["volumes"]}
    machine = Machine(ports, volumes)
    compose_database(postgres)
    figures: dict[str, float] = {}

    with running([]) as started:
        started.append(Service.start(machine, "anvil", anvil_command(machine)))
        healthy(machine, "anvil", timeout=60)

        # the one-shot deploy step, then again as after a restart: the second does nothing
        deploy = machine.command("deploy", SERVICES["deploy"]["command"])
        begun = time.monotonic()
        first = subprocess.run(
            deploy,
            env=machine.environment("deploy"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        figures["deploy_seconds"] = time.monotonic() - begun
        assert first.returncode == 0, first.stdout + first.stderr
        again = subprocess.run(
            deploy,
            env=machine.environment("deploy"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.startswith("already deployed:"), again.stdout
        config_path = Path(deploy[deploy.index("--out") + 1])
        config = load_config(config_path)
        assert config.chain is not None and config.chain.settlement is not None
        traders = demo_traders(first.stdout)

        # the replicas, once deploy completed, each after the replicas it depends on are
        # healthy (compose's depends_on)
        begun = time.monotonic()
        for name in REPLICAS:
            for dependency, condition in SERVICES[name]["depends_on"].items():
                if dependency in REPLICAS:
                    assert condition == {"condition": "service_healthy"}
                    healthy(machine, dependency, timeout=180)
            command = machine.command(name, SERVICES[name]["command"])
            started.append(Service.start(machine, name, command))
            started[-1].wait_for(b"Uvicorn running on", timeout=180)
        for name in REPLICAS:
            healthy(machine, name, timeout=180)
        figures["replicas_up_seconds"] = time.monotonic() - begun

        urls = {name: f"http://127.0.0.1:{ports[name, 8000]}" for name in REPLICAS}
        for url in urls.values():
            health = httpx.get(f"{url}/v1/health", timeout=10)
            assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        database_url = machine.here(
            "gateway-1", SERVICES["gateway-1"]["environment"]["ISTHMUS_DATABASE_URL"]
        )
        assert wait_for_holder(database_url).holder in REPLICAS

        # two demo traders sign on WETH/USDC, one through each replica; the orders cross
        wait_for_pool(urls["gateway-1"])
        begun = time.monotonic()

        async def trade() -> list[Any]:
            async with (
                AsyncIsthmus(urls["gateway-1"], traders["alice"], nonces=NonceStore(None)) as a,
                AsyncIsthmus(urls["gateway-2"], traders["bob"], nonces=NonceStore(None)) as b,
            ):
                sell = await a.place_order("WETH/USDC", "sell", "0.5", price="3000")
                buy = await b.place_order("WETH/USDC", "buy", "0.5", price="3000")
                assert sell.signed and buy.signed
                return [
                    *await a.wait_settled(sell.id, timeout=180),
                    *await b.wait_settled(buy.id, timeout=180),
                ]

        fills = asyncio.run(trade())
        figures["trade_settled_seconds"] = time.monotonic() - begun
        assert len(fills) == 2 and all(f.settlement == "settled" for f in fills), fills

        audited(
            connect(config.chain.rpc_url),
            config.chain.settlement,
            database_url,
            dict(config.chain.tokens),
            len(fills),
        )
        print(" ".join(f"{k}={v:.1f}" for k, v in figures.items()))  # the figures, with -s


def test_machine_maps_only_what_compose_decides(tmp_path: Path) -> None:
    """The one mapping the test above makes: names, ports, volumes, `${...}`; nothing else."""
    machine = Machine(
        {("anvil", 8545): 1111, ("postgres", 5432): 2222, ("gateway-1", 8000): 3333},
        {"config": tmp_path / "config"},
    )
    assert machine.here("deploy", "http://anvil:8545") == "http://127.0.0.1:1111"
    assert machine.here("deploy", "http://localhost:8545") == "http://127.0.0.1:1111"
    assert machine.here("deploy", "/config/gateway.toml") == f"{tmp_path}/config/gateway.toml"
    assert machine.here("anvil", "8545") == "1111"
    assert machine.here("anvil", "31337") == "31337"
    assert machine.here("anvil", "0.0.0.0") == "0.0.0.0"
    env = SERVICES["gateway-1"]["environment"]
    assert machine.here("gateway-1", env["ISTHMUS_DATABASE_URL"]) == (
        "postgresql+psycopg://isthmus:isthmus@127.0.0.1:2222/isthmus"
    )
    assert machine.here("gateway-1", env["ISTHMUS_REPLICA_URL"]) == "http://127.0.0.1:3333"
    assert machine.here("gateway-1", env["ISTHMUS_PORT"]) == "3333"
    assert machine.here("gateway-1", env["ISTHMUS_OPERATOR_TOKEN"]) == OPERATOR_TOKEN
    assert machine.here("gateway-1", "http://127.0.0.1:8000/v1/ready") == (
        "http://127.0.0.1:3333/v1/ready"
    )
    assert machine.here("anvil", '"$$@"') == '"$@"'
    assert machine.here("gateway-1", "x ${UNSET_FOR_SURE:-fallback}") == "x fallback"
    with pytest.raises(ValueError, match="set it"):
        machine.here("gateway-1", "${UNSET_FOR_SURE:?set it}")
