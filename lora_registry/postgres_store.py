"""The adapter store on PostgreSQL, shared by several router replicas."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from database.connection import Database
from lora_registry.errors import AdapterExistsError, RegistryUnavailableError
from lora_registry.spec import AdapterSpec
from lora_registry.store import COLUMNS, FIELDS, _to_row, _to_spec

logger = logging.getLogger(__name__)

T = TypeVar("T")

INSERT = f"INSERT INTO adapters ({', '.join(FIELDS)}) VALUES ({', '.join(['%s'] * len(FIELDS))}) RETURNING id"


class PostgresAdapterStore:
    """`AdapterStore` on PostgreSQL: replicas on one database see each other's adapters at once.

    While the database is unreachable, reads answer from the last adapter list read (a router keeps serving
    the adapters it knew) and writes fail with RegistryUnavailableError (503). After a failure the database
    is tried again only every ``retry_s``, so requests do not each wait for a connection timeout.
    """

    def __init__(self, url: str, *, retry_s: float = 2.0) -> None:
        self._db = Database(url)
        self._retry_s = retry_s
        self._known: dict[str, AdapterSpec] = {}
        self._unreachable_until = 0.0

    def add(self, **fields: Any) -> AdapterSpec:
        return self.add_all([fields])[0]

    def add_all(self, entries: list[dict[str, Any]]) -> list[AdapterSpec]:
        rows = [_to_row(entry) for entry in entries]

        def insert(conn: psycopg.Connection) -> list[AdapterSpec]:
            specs = []
            for row in rows:
                try:
                    returned = conn.execute(INSERT, row).fetchone()
                except psycopg.errors.UniqueViolation:
                    raise AdapterExistsError(row[0]) from None
                assert returned is not None
                specs.append(_to_spec((returned[0], *row)))
            return specs

        # One transaction: a failure, or the process dying half-way, leaves none of the entries stored.
        return self._write(insert)

    def remove(self, name: str) -> AdapterSpec | None:
        def delete(conn: psycopg.Connection) -> tuple | None:
            query = f"DELETE FROM adapters WHERE name = %s RETURNING {COLUMNS}"
            return conn.execute(query, (name,)).fetchone()

        row = self._write(delete)
        return None if row is None else _to_spec(row)

    def get(self, name: str) -> AdapterSpec | None:
        def select(conn: psycopg.Connection) -> tuple | None:
            return conn.execute(f"SELECT {COLUMNS} FROM adapters WHERE name = %s", (name,)).fetchone()

        found, row = self._read(select)
        if not found:
            return self._known.get(name)
        return None if row is None else _to_spec(row)

    def list(self) -> list[AdapterSpec]:
        def select(conn: psycopg.Connection) -> list[tuple]:
            return conn.execute(f"SELECT {COLUMNS} FROM adapters ORDER BY id").fetchall()

        found, rows = self._read(select)
        if not found:
            return list(self._known.values())
        # Found: the query ran, and fetchall() returns a list, never None.
        assert rows is not None
        specs = [_to_spec(row) for row in rows]
        self._known = {spec.name: spec for spec in specs}
        return specs

    def close(self) -> None:
        self._db.close()

    def _read(self, work: Callable[[psycopg.Connection], T]) -> tuple[bool, T | None]:
        """(True, result), or (False, None) when the database is unreachable and what is known must do."""
        if time.monotonic() < self._unreachable_until:
            return False, None
        try:
            return True, self._db.run(work)
        except psycopg.OperationalError as exc:
            self._unreachable(exc)
            if not self._known:
                raise RegistryUnavailableError(f"the registry database is unreachable: {exc}") from None
            return False, None

    def _write(self, work: Callable[[psycopg.Connection], T]) -> T:
        try:
            return self._db.run(work)
        except psycopg.OperationalError as exc:
            self._unreachable(exc)
            raise RegistryUnavailableError(
                f"the registry database is unreachable, nothing was changed: {exc}"
            ) from None

    def _unreachable(self, exc: Exception) -> None:
        if time.monotonic() >= self._unreachable_until:
            logger.error("registry database unreachable (%s); serving the adapters known before", exc)
        self._unreachable_until = time.monotonic() + self._retry_s
