"""The isthmus command: audit verification and the order commands against a live app."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from gateway.cli import app
from gateway.store import audit_log
from gateway.store.audit_log import AUDIT_LOG, AuditEntry
from gateway.store.database import create_database_engine, migrate

runner = CliRunner()


def test_verify_log_passes_then_catches_tampering(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = create_database_engine(url)
    migrate(engine)
    from datetime import UTC, datetime

    with engine.begin() as connection:
        audit_log.append(
            connection,
            [AuditEntry("order.accepted", f"o{i}", {"i": i}) for i in range(4)],
            datetime.now(UTC),
        )
    ok = runner.invoke(app, ["audit", "verify-log", "--db", url])
    assert ok.exit_code == 0, ok.output
    assert "4 records" in ok.output
    with engine.begin() as connection:
        connection.execute(update(AUDIT_LOG).where(AUDIT_LOG.c.seq == 2).values(payload='{"i":99}'))
    engine.dispose()
    broken = runner.invoke(app, ["audit", "verify-log", "--db", url, "--json"])
    assert broken.exit_code == 1
    assert '"ok": false' in broken.output
    assert "record 2" in broken.output


def test_empty_database_verifies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = create_database_engine(url)
    migrate(engine)
    engine.dispose()
    result = runner.invoke(app, ["audit", "verify-log", "--db", url])
    assert result.exit_code == 0 and "0 records" in result.output
