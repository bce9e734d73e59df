"""SQLite is one process only: a second `isthmus up` on the same file, or `--replica` on
SQLite, is refused with a clear message, and the first keeps serving."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.gateway_process import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]


def _up(config: Path, database_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "up", "--config", str(config), "--port", "1", *extra],
        env={"ISTHMUS_DATABASE_URL": database_url, "COLUMNS": "250", "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_a_second_gateway_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'one.db'}"
    first = GatewayProcess(database_url)
    first.start()
    try:
        second = _up(first.config, database_url)
        assert second.returncode == 2
        assert "SQLite is one process only" in second.stdout, second.stdout + second.stderr
        assert f"pid {first.process.pid}" in second.stdout  # type: ignore[union-attr]
        assert httpx.get(f"{first.url}/v1/health").status_code == 200  # the first goes on
    finally:
        first.stop()
    # once the first has stopped, the file is free again
    again = GatewayProcess(database_url)
    again.start()
    again.stop()


def test_replica_on_sqlite_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[[venues]]\nkind = "internal"\n')
    refused = _up(config, f"sqlite:///{tmp_path / 'one.db'}", "--replica")
    assert refused.returncode == 2
    assert "replicas need PostgreSQL" in refused.stdout, refused.stdout + refused.stderr
