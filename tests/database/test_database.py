"""What only the PostgreSQL store has: migrations that replicas share, and a connection that comes back.
(The behaviours every store has run on PostgreSQL too, in test_store.py.)"""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from database import Database
from database.migrations import migrate, migrations
from lora_registry import SqliteAdapterStore, open_adapter_store
from lora_registry.errors import RegistryUnavailableError
from lora_registry.postgres_store import PostgresAdapterStore
from tests.lora_registry.test_store import add
from tests.postgres import PostgresCluster


def applied_versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def test_migrations_apply_once_in_order(postgres: PostgresCluster) -> None:
    url = postgres.create_database()
    every = [version for version, _ in migrations()]
    assert every == sorted(every) and every[:2] == [1, 2]
    with psycopg.connect(url) as conn:
        assert migrate(conn) == every
        assert migrate(conn) == []
    assert applied_versions(url) == every


def test_replicas_starting_together_migrate_once(postgres: PostgresCluster) -> None:
    url = postgres.create_database()
    barrier = threading.Barrier(4)
    results: list[list[int]] = []

    def replica() -> None:
        with psycopg.connect(url) as conn:
            barrier.wait()
            results.append(migrate(conn))

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [version for version, _ in migrations()]
    assert sorted(results) == [[], [], [], every]
    assert applied_versions(url) == every


def drop_connections(url: str) -> None:
    """What a server restart does to the clients of one database."""
    database = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    assert killed and all(ok for (ok,) in killed)


def test_a_broken_connection_is_replaced(postgres: PostgresCluster) -> None:
    url = postgres.create_database()
    store = PostgresAdapterStore(url)
    try:
        alpha = add(store, "alpha")
        drop_connections(url)
        assert store.get("alpha") == alpha  # on a new connection: the caller sees nothing of it
        drop_connections(url)
        beta = add(store, "beta")
        assert store.list() == [alpha, beta]
    finally:
        store.close()


def test_a_call_whose_connection_breaks_midway_fails_alone(postgres: PostgresCluster) -> None:
    db = Database(postgres.create_database())
    try:
        # Its work may have been committed when the connection broke: it is not run again.
        with pytest.raises(psycopg.OperationalError):
            db.run(lambda conn: conn.execute("SELECT pg_terminate_backend(pg_backend_pid())"))
        assert db.run(lambda conn: conn.execute("SELECT 1").fetchone()) == (1,)
    finally:
        db.close()


def test_open_adapter_store_picks_postgres_for_a_url(postgres: PostgresCluster, tmp_path: Path) -> None:
    sqlite_path = tmp_path / "registry.sqlite3"
    store = open_adapter_store(postgres.create_database(), sqlite_path)
    assert isinstance(store, PostgresAdapterStore) and not sqlite_path.exists()
    store.close()
    store = open_adapter_store(None, sqlite_path)
    assert isinstance(store, SqliteAdapterStore) and sqlite_path.exists()
    store.close()


def test_while_the_database_is_down_reads_answer_from_what_was_known_and_writes_fail_cleanly() -> None:
    cluster = PostgresCluster()  # its own server: this test stops it
    try:
        store = PostgresAdapterStore(cluster.create_database())
        alpha = add(store, "alpha")
        assert store.list() == [alpha]
        cluster.stop()
        assert store.list() == [alpha]
        assert store.get("alpha") == alpha and store.get("beta") is None
        with pytest.raises(RegistryUnavailableError) as err:
            add(store, "beta")
        assert err.value.status_code == 503 and "nothing was changed" in err.value.message
        with pytest.raises(RegistryUnavailableError):
            store.remove("alpha")
        assert store.list() == [alpha]
    finally:
        cluster.stop()
