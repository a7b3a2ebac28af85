"""The PostgreSQL schema that router replicas share: numbered SQL files, each applied once, in order.

The router's tables are here too, so that the one database has one sequence of versions.
"""

from __future__ import annotations

from importlib import resources

from psycopg import Connection

# Any constant all replicas agree on ("lora" in ASCII), unlikely to be another program's advisory lock.
LOCK_KEY = 0x6C6F7261


def migrate(conn: Connection) -> list[int]:
    """Apply the files not applied yet, all in one transaction; return the versions applied by this call.

    The advisory lock makes replicas starting together take turns: the second one waits for the first to
    commit, then finds nothing left to do.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {version for (version,) in conn.execute("SELECT version FROM schema_migrations")}
        applied: list[int] = []
        for version, script in migrations():
            if version in done:
                continue
            conn.execute(script)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied.append(version)
    return applied


def migrations() -> list[tuple[int, bytes]]:
    """(version, SQL) of every file, oldest first; a file's version is the number its name starts with."""
    files = [f for f in resources.files(__name__).iterdir() if f.name.endswith(".sql")]
    return sorted((int(f.name.split("_", 1)[0]), f.read_bytes()) for f in files)
