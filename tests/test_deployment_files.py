"""docker-compose.yml cannot run here (no Docker engine), so check what can be checked
without running it: its services' commands, settings and keys are ones the gateway has, and
the image has what they need. tests/replicas/test_compose_without_docker.py runs them."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from web3 import Web3

from gateway.chain.anvil import dev_accounts
from gateway.chain.artifacts import UNISWAP_V2_CORE
from gateway.config import Settings
from gateway.devnet.existing_chain import config_toml
from gateway.devnet.world import (
    INVENTORY_ACCOUNT,
    INVENTORY_KEY_ENV,
    OPERATOR_KEY_ENV,
    SETTLER_ACCOUNT,
    SETTLER_KEY_ENV,
)
from gateway.venues.config import (
    CcxtVenueConfig,
    ChainConfig,
    GatewayConfig,
    InternalVenueConfig,
    UniswapPoolConfig,
    UniswapV2VenueConfig,
    load_config,
)

ROOT = Path(__file__).resolve().parents[1]


REPLICAS = ("gateway-1", "gateway-2")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_a_deploy_step_and_two_replicas_on_real_settings() -> None:
    services = compose()["services"]
    expected = {"postgres", "anvil", "deploy", *REPLICAS}
    # prometheus scrapes the replicas where deploy/prometheus.yml says
    assert set(services) == expected | {"prometheus"}
    # the keys the config `isthmus deploy` writes names: anvil's dev keys, as it deploys
    accounts = dev_accounts()
    keys = {
        OPERATOR_KEY_ENV: Web3.to_hex(accounts[0].key),
        SETTLER_KEY_ENV: Web3.to_hex(accounts[SETTLER_ACCOUNT].key),
        INVENTORY_KEY_ENV: Web3.to_hex(accounts[INVENTORY_ACCOUNT].key),
    }
    known = {f"ISTHMUS_{name.upper()}" for name in Settings.model_fields}
    out = _option(services["deploy"]["command"], "--out")
    assert services["deploy"]["command"][:2] == ["isthmus", "deploy"]
    assert _option(services["deploy"]["command"], "--rpc-url") == "http://anvil:8545"
    assert services["deploy"]["restart"] == "no"
    host_ports = set()
    for name in REPLICAS:
        replica = services[name]
        assert replica["command"] == ["isthmus", "up", "--replica", "--config", out]
        # replicas start together: the schema migration takes a lock of its own
        assert replica["depends_on"] == {
            "deploy": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
        }
        environment = replica["environment"]
        settings_env = {k: v for k, v in environment.items() if k not in keys}
        assert set(settings_env) <= known, set(settings_env) - known
        assert {k: environment[k] for k in keys} == keys
        settings = Settings(
            **{k.removeprefix("ISTHMUS_").lower(): v for k, v in settings_env.items()}
        )
        assert settings.database_url.startswith("postgresql+psycopg://")
        assert settings.replica_id == name
        assert settings.replica_url == f"http://{name}:{settings.port}"
        [mapping] = replica["ports"]
        host_port, container_port = mapping.split(":")
        assert int(container_port) == settings.port
        host_ports.add(host_port)
        assert f"http://127.0.0.1:{settings.port}/v1/ready" in replica["healthcheck"]["test"][-1]
        # the file the deploy step writes, in the volume it writes it to
        volume = next(v for v in replica["volumes"] if out.startswith(v.split(":")[1] + "/"))
        assert f"{volume.split(':')[0]}:{volume.split(':')[1]}" in services["deploy"]["volumes"]
    assert host_ports == {"8000", "8001"}
    assert "isthmus up" in (ROOT / "Makefile").read_text()


def test_compose_anvil_is_the_version_the_project_pins() -> None:
    anvil = compose()["services"]["anvil"]
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["@foundry-rs/anvil"]
    shell, flag, script, *_ = anvil["command"]
    assert (shell, flag) == ("sh", "-c")
    assert f"npm install --no-audit --no-fund @foundry-rs/anvil@{pinned} " in script
    assert script.endswith('exec node_modules/.bin/anvil "$$@"')


def test_prometheus_scrapes_the_replicas_compose_runs() -> None:
    services = compose()["services"]
    [mount] = services["prometheus"]["volumes"]
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    [job] = config["scrape_configs"]
    [targets] = job["static_configs"]
    ports = {name: services[name]["environment"]["ISTHMUS_PORT"] for name in REPLICAS}
    assert set(targets["targets"]) == {f"{name}:{port}" for name, port in ports.items()}


def test_the_image_runs_the_config_and_has_the_artifacts_the_deploy_step_needs() -> None:
    """No anvil in the image: its gateway runs on the config `isthmus deploy` writes, and
    both find the published builds in node_modules and the compiled contracts in .build."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    services = compose()["services"]
    replica = services[REPLICAS[0]]["command"]
    assert f"CMD {json.dumps([c for c in replica if c != '--replica'])}" in lines
    assert any("uv sync --frozen" in line for line in lines)
    for package in (UNISWAP_V2_CORE[0], "@safe-global"):
        assert f"COPY --from=web /build/node_modules/{package} ./node_modules/{package}" in lines
    web_stage = lines[: next(i for i, line in enumerate(lines) if "AS gateway" in line)]
    assert any(line.startswith("RUN npm ci") for line in web_stage)
    compiled = next(i for i, line in enumerate(lines) if "compile_all()" in line)
    assert lines.index("COPY contracts ./contracts") < compiled
    assert lines[compiled].startswith("RUN ")
    assert ".build" in (ROOT / ".dockerignore").read_text().split()


def test_the_config_isthmus_deploy_writes_reads_back_as_written(tmp_path: Path) -> None:
    address = "0x" + "ab" * 20
    config = GatewayConfig(
        chain=ChainConfig(
            rpc_url="http://anvil:8545",
            public_rpc_url="http://localhost:8545",
            settlement=address,
            tokens={"WETH": address, "USDC": address},
            operator_key_env=SETTLER_KEY_ENV,
            inventory_wallet=address,
            inventory_key_env=INVENTORY_KEY_ENV,
            settlement_batch_age_ms=250,
        ),
        venues=[
            InternalVenueConfig(kind="internal", taker_bps=Decimal("2.5")),
            UniswapV2VenueConfig(
                kind="uniswap_v2",
                router=address,
                trader_key_env=OPERATOR_KEY_ENV,
                pools=[
                    UniswapPoolConfig(
                        instrument="WETH/USDC",
                        pair=address,
                        base=address,
                        quote=address,
                        base_decimals=18,
                        quote_decimals=6,
                    )
                ],
            ),
            CcxtVenueConfig(
                kind="ccxt",
                name="binance",
                exchange="binance",
                symbols={"WETH/USDC": "ETH/USDC"},
                options={"fetchMarkets": {"types": ["spot"]}, "note": 'a "quoted" \\ é'},
                websocket=True,
            ),
        ],
    )
    path = tmp_path / "gateway.toml"
    path.write_text(config_toml(config))
    assert load_config(path) == config


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_image_has_every_path_dependency_before_it_syncs() -> None:
    """`uv sync` installs the path dependencies (isthmus-client) with the others: their
    sources must be in the image before the first sync, or the build fails."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    sources = project["tool"]["uv"]["sources"]
    paths = [source["path"] for source in sources.values() if "path" in source]
    assert paths == ["client"]
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    first_sync = next(i for i, line in enumerate(lines) if "uv sync" in line)
    for path in paths:
        copied = [i for i, line in enumerate(lines) if line.startswith(f"COPY {path} ")]
        assert copied and copied[0] < first_sync, f"COPY {path} before the first uv sync"


def test_the_image_builds_the_web_app_from_what_its_web_stage_copies() -> None:
    """The web stage copies `web/` and whatever its sources import from outside it (the ABIs
    isthmus-client ships); the gateway stage takes the built app to where Settings looks."""
    import re

    lines = (ROOT / "Dockerfile").read_text().splitlines()
    web_stage = lines[
        next(i for i, line in enumerate(lines) if line.startswith("FROM ") and "AS web" in line) :
    ]
    web_stage = web_stage[
        : next(i for i, line in enumerate(web_stage[1:], 1) if line.startswith("FROM "))
    ]
    copied = [line.split()[1] for line in web_stage if line.startswith("COPY ")]
    outside = set()
    for source in (ROOT / "web" / "src").rglob("*.js"):
        for target in re.findall(r'from "(\.[^"]+)"', source.read_text()):
            resolved = (source.parent / target).resolve().relative_to(ROOT)
            if resolved.parts[0] != "web":
                outside.add(resolved)
    assert outside, "the app imports the shipped ABIs"
    for path in outside:
        assert any(str(path).startswith(c.rstrip("/")) for c in copied), f"{path} not copied"
    assert "COPY --from=web /build/web/dist ./web/dist" in lines
    assert Settings().web_dir == ROOT / "web" / "dist"
