"""Hot-path statements run straight on the database driver's cursor.

SQLAlchemy's `Connection.execute` builds an execution context per call (parameter
compilation, result set-up, events): about 40 to 80 µs for a one-row insert on this
machine, where the driver itself takes a few. The order path runs five or six statements per
commit, so that overhead was most of the writer's time before the commit. A
`DriverStatement` compiles its Core statement once per dialect (and per set of columns for
an insert), converts each bound value with the column's own type for that dialect (the same
conversion `execute` applies, so rows read back identically), and runs on the cursor of the
connection's current transaction. Only plain statements qualify: no expanding parameters, no
result processing (callers of `fetch_one` read columns whose driver value is the value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

Converter = Callable[[Any], Any]
_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the bound names, in the order a positional driver takes them
    converters: tuple[Converter | None, ...]
    fixed: tuple[Any, ...]  # a literal's own value (`id == 1`), else _REQUIRED
    positional: bool

    def bind(self, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = []
        for name, convert, fixed in zip(self.names, self.converters, self.fixed, strict=True):
            value = params[name] if fixed is _REQUIRED else params.get(name, fixed)
            values.append(value if convert is None or value is None else convert(value))
        if self.positional:
            return tuple(values)
        return dict(zip(self.names, values, strict=True))


class DriverStatement:
    """A Core statement compiled once per dialect and run on the driver's cursor."""

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._compiled: dict[tuple[str, str, str, tuple[str, ...]], _Compiled] = {}

    def _for(self, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
        # per driver and parameter style too: the SQL text and its placeholders depend on both
        cache_key = (dialect.name, dialect.driver, dialect.paramstyle, keys)
        found = self._compiled.get(cache_key)
        if found is not None:
            return found
        # for_executemany: no implicit RETURNING of a new row's key (nobody reads it here)
        compiled = self._statement.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=list(keys) or None, for_executemany=True
        )
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        if any(bind.expanding for bind in binds.values()):
            raise ValueError("a DriverStatement takes no expanding parameters")
        names = tuple(compiled.positiontup) if dialect.positional else tuple(binds)
        converters = tuple(
            binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )
        fixed = tuple(
            _REQUIRED if binds[name].required else binds[name].effective_value for name in names
        )
        for name, value in zip(names, fixed, strict=True):
            if keys and name not in keys and (value is _REQUIRED or callable(value)):
                # an insert's column default computed at execution: the caller must give it
                raise ValueError(f"a DriverStatement needs a value for {name}")
        made = _Compiled(compiled.string, names, converters, fixed, dialect.positional)
        self._compiled[cache_key] = made
        return made

    def executemany(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run once per row (all rows share the first row's keys); returns the rows changed."""
        if not rows:
            return 0
        dialect = connection.dialect
        compiled = self._for(dialect, tuple(rows[0]))
        cursor = _cursor(connection)
        try:
            if len(rows) == 1:
                cursor.execute(compiled.sql, compiled.bind(rows[0]))
            else:
                cursor.executemany(compiled.sql, [compiled.bind(row) for row in rows])
            return int(cursor.rowcount)
        except dialect.loaded_dbapi.Error as error:
            raise _wrapped(dialect, compiled.sql, error) from error
        finally:
            cursor.close()

    def execute(self, connection: Connection, params: Mapping[str, Any] | None = None) -> int:
        """Run once; returns the rows changed."""
        return self.executemany(connection, [params or {}])

    def fetch_one(
        self, connection: Connection, params: Mapping[str, Any] | None = None
    ) -> tuple[Any, ...] | None:
        """Run a query; its first row as the driver returns it, or None."""
        dialect = connection.dialect
        compiled = self._for(dialect, ())
        cursor = _cursor(connection)
        try:
            cursor.execute(compiled.sql, compiled.bind(params or {}))
            row = cursor.fetchone()
            return None if row is None else tuple(row)
        except dialect.loaded_dbapi.Error as error:
            raise _wrapped(dialect, compiled.sql, error) from error
        finally:
            cursor.close()


def _wrapped(dialect: Dialect, sql: str, error: Exception) -> Exception:
    """The driver's error as SQLAlchemy's (`IntegrityError`, `OperationalError`, ...), which
    is what callers catch, as if `execute` had run the statement."""
    return DBAPIError.instance(sql, None, error, dialect.loaded_dbapi.Error, dialect=dialect)


def _cursor(connection: Connection) -> Any:
    # the DBAPI connection inside the caller's transaction: its statements commit with it
    return connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
