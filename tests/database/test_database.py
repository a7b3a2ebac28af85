"""The shared database on its own: migrations that replicas share, and a connection that comes back.
(The adapter store on PostgreSQL is tested in tests/lora_registry, the router's in tests/router/routing.)"""

from __future__ import annotations

import threading

import psycopg
import pytest

from database.connection import Database
from database.migrations import migrate, migrations
from tests.postgres import PostgresCluster, drop_connections


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


def test_opening_migrates_and_each_call_is_one_transaction(postgres: PostgresCluster) -> None:
    url = postgres.create_database()
    db = Database(url)
    try:
        assert applied_versions(url) == [version for version, _ in migrations()]
        db.run(lambda conn: conn.execute("CREATE TABLE t (x integer)"))

        def insert_then_fail(conn: psycopg.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (1)")
            raise ValueError("the work failed")

        with pytest.raises(ValueError):
            db.run(insert_then_fail)
        db.run(lambda conn: conn.execute("INSERT INTO t VALUES (2)"))
        assert db.run(lambda conn: conn.execute("SELECT x FROM t").fetchall()) == [(2,)]
    finally:
        db.close()


def test_a_connection_broken_while_idle_is_replaced(
    postgres: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.create_database()
    db = Database(url)
    try:
        db.run(lambda conn: conn.execute("CREATE TABLE t (x integer)"))
        drop_connections(url)  # as a server restart between two calls does
        # Even a write is safe to send again: the old connection failed at BEGIN, before any of it went out.
        db.run(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
        assert db.run(lambda conn: conn.execute("SELECT x FROM t").fetchall()) == [(1,)]
        assert "connection broke; opening a new one" in caplog.text
    finally:
        db.close()


def test_a_call_whose_connection_breaks_midway_fails_alone(postgres: PostgresCluster) -> None:
    db = Database(postgres.create_database())
    try:
        # Its work may have been committed when the connection broke: it is not run again.
        with pytest.raises(psycopg.OperationalError):
            db.run(lambda conn: conn.execute("SELECT pg_terminate_backend(pg_backend_pid())"))
        assert db.run(lambda conn: conn.execute("SELECT 1").fetchone()) == (1,)
    finally:
        db.close()
