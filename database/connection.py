"""The connection to the shared PostgreSQL database: one per process, reopened after it broke."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from database.migrations import migrate

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Without a bound, connecting to an unreachable server waits for the OS's TCP timeout (minutes), holding the
# lock that every caller, the event loop's thread included, waits on. A URL's own connect_timeout wins.
CONNECT_TIMEOUT_S = 5


class Database:
    """One connection shared by all threads, one transaction at a time, reopened after it broke (e.g. the
    server restarted): an outage fails the calls made during it, not those after. Applies the migrations."""

    def __init__(self, url: str) -> None:
        # Any: they reach connect() as keywords, which the checker cannot tell apart from its own options.
        self._params: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, **conninfo_to_dict(url)}
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self.run(migrate)

    def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """``work(conn)`` in one transaction: committed if it returns, rolled back if it raises."""
        with self._lock:
            conn = self._begin()
            try:
                result = work(conn)
            except BaseException:
                if not conn.closed:
                    conn.rollback()
                raise
            conn.commit()
            return result

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def _begin(self) -> psycopg.Connection:
        # A connection that broke while idle fails at BEGIN, before any of the work was sent: replacing it
        # then is safe for every kind of work. One that breaks later fails that call (a COMMIT may have
        # arrived: repeating a write could report it as a conflict) and is replaced by the next call.
        if self._conn is not None and not self._conn.closed:
            try:
                self._conn.execute("BEGIN")
                return self._conn
            except psycopg.OperationalError:
                if not self._conn.broken:
                    raise
                logger.warning("the PostgreSQL connection broke; opening a new one")
        # Autocommit, so that no transaction is left open between calls; BEGIN above opens each one.
        self._conn = psycopg.connect(**self._params, autocommit=True)
        self._conn.execute("BEGIN")
        return self._conn
