"""Persistence of registered adapters behind a small Protocol; SQLite is the default backend."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

from lora_registry.errors import AdapterExistsError
from lora_registry.spec import AdapterSpec, ComposePart, GenerationDefaults


class AdapterStore(Protocol):
    """Where adapter specs live. ``add`` assigns the id; ids are never handed out twice."""

    def add(
        self,
        *,
        name: str,
        path: Path,
        base_model: str,
        rank: int,
        alpha: float,
        target_modules: list[str],
        size_bytes: int,
        description: str,
        defaults: GenerationDefaults,
        examples: list[str] | dict[str, list[str]],
        created_at: int,
        composition: list[ComposePart] | None = None,
    ) -> AdapterSpec:
        """Store a new adapter; raises AdapterExistsError when the name is taken."""
        ...

    def add_all(self, entries: list[dict[str, Any]]) -> list[AdapterSpec]:
        """Store several (each entry holds ``add``'s keyword arguments) all together or not at all."""
        ...

    def remove(self, name: str) -> AdapterSpec | None: ...

    def get(self, name: str) -> AdapterSpec | None: ...

    def list(self) -> list[AdapterSpec]:
        """All adapters, oldest id first."""
        ...


# AUTOINCREMENT (unlike a plain INTEGER PRIMARY KEY) never reuses the id of a deleted row, even the largest:
# the engine caches LoRA weights by id, so a reused id could serve a removed adapter's stale weights.
SCHEMA = """
CREATE TABLE IF NOT EXISTS adapters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    base_model TEXT NOT NULL,
    rank INTEGER NOT NULL,
    alpha REAL NOT NULL,
    target_modules TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    description TEXT NOT NULL,
    defaults TEXT NOT NULL,
    examples TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    composition TEXT
)
"""
# Columns added since the first release, for files made before them (the PostgreSQL store has migrations).
ADDED_COLUMNS = {"composition": "TEXT"}
# Every column but the id, in `_to_row`'s order; the PostgreSQL store uses the same layout.
FIELDS = (
    "name",
    "path",
    "base_model",
    "rank",
    "alpha",
    "target_modules",
    "size_bytes",
    "description",
    "defaults",
    "examples",
    "created_at",
    "composition",
)
COLUMNS = ", ".join(("id", *FIELDS))
INSERT = f"INSERT INTO adapters ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})"


class SqliteAdapterStore:
    """One SQLite file; safe to share between threads (one connection, serialized by a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # WAL lets readers (e.g. an operator's sqlite3 shell) proceed while the service writes.
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute(SCHEMA)
        present = {row[1] for row in self._conn.execute("PRAGMA table_info(adapters)")}
        for column, kind in ADDED_COLUMNS.items():
            if column not in present:
                self._conn.execute(f"ALTER TABLE adapters ADD COLUMN {column} {kind}")

    def add(self, **fields: Any) -> AdapterSpec:
        return self.add_all([fields])[0]

    def add_all(self, entries: list[dict[str, Any]]) -> list[AdapterSpec]:
        # One transaction: a failure, or the process dying half-way, leaves none of the entries stored.
        rows = [_to_row(entry) for entry in entries]
        specs: list[AdapterSpec] = []
        with self._lock, self._transaction():
            for row in rows:
                try:
                    cursor = self._conn.execute(INSERT, row)
                except sqlite3.IntegrityError:
                    raise AdapterExistsError(row[0]) from None
                assert cursor.lastrowid is not None
                specs.append(_to_spec((cursor.lastrowid, *row)))
        return specs

    def remove(self, name: str) -> AdapterSpec | None:
        with self._lock, self._transaction():
            row = self._conn.execute(f"SELECT {COLUMNS} FROM adapters WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            self._conn.execute("DELETE FROM adapters WHERE id = ?", (row[0],))
        return _to_spec(row)

    def get(self, name: str) -> AdapterSpec | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {COLUMNS} FROM adapters WHERE name = ?", (name,)).fetchone()
        return None if row is None else _to_spec(row)

    def list(self) -> list[AdapterSpec]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {COLUMNS} FROM adapters ORDER BY id").fetchall()
        return [_to_spec(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _transaction(self) -> sqlite3.Connection:
        # In autocommit mode `with conn:` would not open a transaction; BEGIN IMMEDIATE takes the write lock
        # up front so a read-then-write (remove) cannot interleave with another process's write.
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn


def _to_row(entry: dict[str, Any]) -> tuple:
    defaults: GenerationDefaults = entry["defaults"]
    composition: list[ComposePart] | None = entry.get("composition")
    return (
        entry["name"],
        str(entry["path"]),
        entry["base_model"],
        entry["rank"],
        entry["alpha"],
        json.dumps(entry["target_modules"]),
        entry["size_bytes"],
        entry["description"],
        defaults.model_dump_json(),
        json.dumps(entry["examples"]),
        entry["created_at"],
        None if composition is None else json.dumps([part.model_dump() for part in composition]),
    )


def _to_spec(row: tuple) -> AdapterSpec:
    (
        id_,
        name,
        path,
        base_model,
        rank,
        alpha,
        target_modules,
        size_bytes,
        description,
        defaults,
        examples,
        created_at,
        composition,
    ) = row
    return AdapterSpec(
        id=id_,
        name=name,
        path=Path(path),
        base_model=base_model,
        rank=rank,
        alpha=alpha,
        target_modules=json.loads(target_modules),
        size_bytes=size_bytes,
        description=description,
        defaults=GenerationDefaults.model_validate_json(defaults),
        examples=json.loads(examples),
        created_at=created_at,
        composition=None if composition is None else json.loads(composition),
    )
