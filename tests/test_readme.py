"""The README's quickstarts run as written: each section's ```python blocks, verbatim and in
order, in one fresh Python process per quickstart, against a started devnet (`isthmus up`),
from its directory, as a user runs them in the checkout where `make up` runs. Only the
environment differs: `ISTHMUS_API_URL` names the test's gateway (the README reads it, with
`make up`'s address as the default), and the client keeps its nonces in a temporary
directory instead of the home directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.client.devnet_gateway import DevnetGateway

pytestmark = pytest.mark.chain
README = Path(__file__).resolve().parents[1] / "README.md"
TRADE = "Trade from your own key"
PROTOCOL = "Call it from a protocol"
HASH = r"0x[0-9a-f]{64}"


def python_blocks(markdown: str, heading: str) -> list[str]:
    """The ```python blocks of the `## heading` section, in order (other info strings, such
    as ```sh, are not run)."""
    lines = markdown.splitlines()
    start = lines.index(f"## {heading}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks: list[str] = []
    current: list[str] | None = None
    for line in lines[start:end]:
        if current is None:
            if line.strip() == "```python":
                current = []
        elif line.strip() == "```":
            blocks.append("\n".join(current) + "\n")
            current = None
        else:
            current.append(line)
    assert current is None, f"an unclosed code block under {heading!r}"
    return blocks


def run_quickstart(heading: str, gateway: DevnetGateway, home: Path) -> str:
    """The section's blocks as one script, run where `make up` ran; returns what it printed."""
    script = "\n".join(python_blocks(README.read_text(), heading))
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=gateway.directory,
        env={
            **os.environ,
            "ISTHMUS_API_URL": gateway.url,
            "ISTHMUS_CLIENT_HOME": str(home),
        },
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"{heading}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_each_quickstart_has_its_runnable_blocks() -> None:
    markdown = README.read_text()
    for heading in (TRADE, PROTOCOL):
        blocks = python_blocks(markdown, heading)
        assert len(blocks) >= 3, heading  # the steps, each with its words around it
        first = blocks[0]
        # the gateway's address comes from the environment, with `make up`'s as the default
        assert 'os.environ.get("ISTHMUS_API_URL", "http://127.0.0.1:8000")' in first


def test_trade_from_your_own_key_runs_as_written(
    devnet: DevnetGateway,
    tmp_path: Path,
) -> None:
    out = run_quickstart(TRADE, devnet, tmp_path)
    # two fresh keys in keystores, each with a funded wallet
    for keystore in ("my-key.json", "market-maker.json"):
        assert (devnet.directory / keystore).exists()
        assert re.search(rf"{keystore}: wallet 0x[0-9a-fA-F]{{40}} holds 1000\.\d+ USDC", out)
    # the market's four signed orders rest; the condor fills against them, all or none
    market = r"the market: (buy|sell) WETH-20270326-\d+-[CP] at \d+: accepted"
    assert len(re.findall(market, out)) == 4, out
    assert re.search(r"condor ord_\w+: filled, 1 filled", out), out
    # its four legs settled on chain, in one transaction
    legs = re.findall(rf"  (buy|sell) (WETH-20270326-\d+-[CP]) at (\d+): settled in ({HASH})", out)
    assert sorted((side, symbol, price) for side, symbol, price, _ in legs) == [
        ("buy", "WETH-20270326-2800-P", "270"),
        ("buy", "WETH-20270326-3200-C", "330"),
        ("sell", "WETH-20270326-2500-P", "150"),
        ("sell", "WETH-20270326-3500-C", "230"),
    ], out
    assert len({tx for *_, tx in legs}) == 1, out
    # what was left after paying the net 220 is withdrawn; the condor stays
    withdrawn = re.search(r"withdrew ([\d.]+) USDC; the wallet keeps ([\d.]+) USDC and:", out)
    assert withdrawn is not None, out
    assert Decimal(780) <= Decimal(withdrawn[1]) < Decimal(781), out
    assert Decimal(withdrawn[2]) == 0, out
    positions = re.findall(r"  ([+-]1) WETH (\d+) (call|put)", out)
    assert sorted(positions) == [
        ("+1", "2800", "put"),
        ("+1", "3200", "call"),
        ("-1", "2500", "put"),
        ("-1", "3500", "call"),
    ], out


def test_call_it_from_a_protocol_runs_as_written(
    devnet: DevnetGateway,
    tmp_path: Path,
) -> None:
    out = run_quickstart(PROTOCOL, devnet, tmp_path)
    assert re.search(r"API key key_\w+: quote, read, trade for 0x[0-9a-fA-F]{40}", out), out
    assert re.search(r"average [\d.]+, the user's limit [\d.]+", out), out
    # the user's signed smart sell, submitted by the protocol, filled and settled on chain
    assert re.search(r"order ord_\w+: filled, 0\.5 filled", out), out
    assert "  order.settled: settlement settled" in out, out
    fills = re.findall(rf"  (\w+): ([\d.]+) at ([\d.]+): settled in ({HASH})", out)
    assert fills, out
    assert sum(Decimal(quantity) for _, quantity, _, _ in fills) == Decimal("0.5"), out
