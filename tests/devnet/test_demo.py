"""`isthmus demo` as a person runs it: its own devnet, the hybrid trade, every check passing
(exit 0), and the one settlement transaction named in what it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.chain, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_hybrid_trade_and_every_check_passes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "demo ok" in out
    assert re.search(r"transactions: 1 \(0x[0-9a-f]{64}\)", out), out
    assert "auditor: ok (11 of 11 on-chain fills proven)" in out
    assert "≠" not in out  # no wallet differs from the gateway's fills
