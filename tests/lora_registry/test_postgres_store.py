"""What only the PostgreSQL adapter store has: a connection that comes back, reads that outlast an outage.
(The behaviours every store has run on PostgreSQL too, in test_store.py; migrations and Database on their
own, in tests/database.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from lora_registry import SqliteAdapterStore, open_adapter_store
from lora_registry.errors import RegistryUnavailableError
from lora_registry.postgres_store import PostgresAdapterStore
from tests.lora_registry.test_store import add
from tests.postgres import PostgresCluster, drop_connections


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
