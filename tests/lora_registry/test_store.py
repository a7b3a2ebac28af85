"""The SQLite store on its own: ids, uniqueness, round-tripping, concurrency."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lora_registry import AdapterExistsError, AdapterSpec, GenerationDefaults, SqliteAdapterStore


def add(store: SqliteAdapterStore, name: str, **overrides: object) -> AdapterSpec:
    fields: dict[str, object] = {
        "name": name,
        "path": Path("/adapters") / name,
        "base_model": "SmolLM2-135M-Instruct",
        "rank": 8,
        "alpha": 16.0,
        "target_modules": ["q_proj", "v_proj"],
        "size_bytes": 1234,
        "description": f"{name} expert",
        "defaults": GenerationDefaults(stop=["\n\n"], temperature=0.0),
        "examples": ["How many orders were placed?", "List every customer"],
        "created_at": 1_700_000_000,
    }
    return store.add(**(fields | overrides))


def test_round_trip_of_every_field(store: SqliteAdapterStore) -> None:
    defaults = GenerationDefaults(
        system_prompt="Be brief.", stop=["a", "b"], temperature=1.5, top_p=0.5, max_tokens=9
    )
    spec = add(store, "alpha", alpha=12.5, defaults=defaults, description="ünïcode ✓")
    assert spec.id >= 1
    assert store.get("alpha") == spec
    assert store.list() == [spec]
    assert store.get("alpha").defaults == defaults


def test_creates_parent_folders_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "registry.sqlite3"
    store = SqliteAdapterStore(path)
    try:
        add(store, "alpha")
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_duplicate_name_raises_409_and_stores_nothing(store: SqliteAdapterStore) -> None:
    first = add(store, "alpha")
    with pytest.raises(AdapterExistsError) as err:
        add(store, "alpha", rank=4)
    assert (err.value.status_code, err.value.param) == (409, "name")
    assert store.list() == [first]


def test_remove_returns_the_spec_or_none(store: SqliteAdapterStore) -> None:
    alpha = add(store, "alpha")
    assert store.remove("alpha") == alpha
    assert store.remove("alpha") is None
    assert store.get("alpha") is None
    assert store.list() == []


def test_ids_are_never_reused_even_after_emptying(db_path: Path) -> None:
    store = SqliteAdapterStore(db_path)
    ids = [add(store, name).id for name in ("a", "b", "c")]
    for name in ("c", "b", "a"):
        store.remove(name)
    store.close()

    store = SqliteAdapterStore(db_path)
    try:
        assert add(store, "a").id > max(ids)
    finally:
        store.close()


def test_concurrent_adds_of_one_name_store_it_once(store: SqliteAdapterStore) -> None:
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        try:
            add(store, "contested")
            results.append("added")
        except AdapterExistsError:
            results.append("exists")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["added"] + ["exists"] * 7
    assert [spec.name for spec in store.list()] == ["contested"]


def test_two_stores_on_one_file_see_each_other(db_path: Path, store: SqliteAdapterStore) -> None:
    other = SqliteAdapterStore(db_path)
    try:
        spec = add(other, "alpha")
        assert store.get("alpha") == spec
        with pytest.raises(AdapterExistsError):
            add(store, "alpha")
        assert add(store, "beta").id > spec.id
    finally:
        other.close()


# A process that dies (os._exit: no cleanup, no rollback of its own) after the first of two inserts.
DIES_MID_TRANSACTION = """
import os, sys
from pathlib import Path
import lora_registry.store as store_module
from lora_registry import GenerationDefaults, SqliteAdapterStore

real_to_spec = store_module._to_spec
def dying_to_spec(row):  # runs inside the transaction, after each insert
    if row[1] == "second":
        os._exit(9)
    return real_to_spec(row)
store_module._to_spec = dying_to_spec

fields = dict(base_model="b", rank=8, alpha=16.0, target_modules=["q_proj"], size_bytes=1, description="",
              defaults=GenerationDefaults(), examples=[], created_at=0)
store = SqliteAdapterStore(Path(sys.argv[1]))
store.add(name="single", path="/adapters/single", **fields)
store.add_all([dict(name=n, path=f"/adapters/{n}", **fields) for n in ("first", "second")])
"""


def test_a_crash_mid_registration_leaves_no_half_entry(db_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", DIES_MID_TRANSACTION, str(db_path)], timeout=60)
    assert done.returncode == 9  # it did die inside the second registration
    store = SqliteAdapterStore(db_path)
    try:
        # The committed registration is there; of the one in progress, nothing (not even "first").
        assert [spec.name for spec in store.list()] == ["single"]
        # No lock or journal was left behind to block the next writer.
        assert add(store, "first").name == "first"
    finally:
        store.close()
