"""Persistence: SQLModel tables, repositories, migrations and the hash-chained audit log."""
