"""Engine creation and schema migration for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).parent / "migrations"


def create_database_engine(url: str, *, for_writes: bool = True) -> Engine:
    """An engine for either backend. On SQLite, writers take the lock at BEGIN (IMMEDIATE)
    and readers do not (deferred), so in WAL mode reads never wait for the writer."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, for_writes=for_writes)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite_engine(url: str, *, for_writes: bool) -> Engine:
    memory = ":memory:" in url or url in ("sqlite://", "sqlite:///")
    if not memory:
        path = Path(url.split("sqlite:///", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        # The driver's own transaction handling is off so that we can BEGIN IMMEDIATE below.
        connect_args={"check_same_thread": False, "isolation_level": None, "timeout": 30},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the client hears "accepted".
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock at BEGIN: avoids deadlocks from read-then-write upgrades. On
        # the driver itself: `exec_driver_sql` cost every commit ~40 µs of SQLAlchemy.
        connection.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if for_writes else "BEGIN")

    return engine


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


# pg_advisory_lock key: replicas starting together on an empty PostgreSQL database migrate it
# one at a time (the second finds it at head); without it both create `alembic_version`
MIGRATION_LOCK = 0x15_7A_05


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (the only way tables are created)."""
    if engine.dialect.name != "postgresql":
        command.upgrade(alembic_config(engine), "head")
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()
        try:
            command.upgrade(alembic_config(engine), "head")
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
