"""The one place that picks the adapter store: it imports both implementations, and neither imports it."""

from __future__ import annotations

from pathlib import Path

from lora_registry.store import AdapterStore, SqliteAdapterStore


def open_adapter_store(database_url: str | None, sqlite_path: Path) -> AdapterStore:
    """On PostgreSQL, shared by router replicas, when ``database_url`` is set; else one SQLite file."""
    if database_url:
        # Imported here so that a service on SQLite never loads the PostgreSQL driver.
        from lora_registry.postgres_store import PostgresAdapterStore

        return PostgresAdapterStore(database_url)
    return SqliteAdapterStore(sqlite_path)
