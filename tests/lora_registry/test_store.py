"""The adapter stores on their own: ids, uniqueness, round-tripping, concurrency. The behaviours every store
must have run on SQLite and on a real PostgreSQL server; the last tests are SQLite's own."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lora_registry import (
    AdapterExistsError,
    AdapterSpec,
    AdapterStore,
    GenerationDefaults,
    SqliteAdapterStore,
)
from lora_registry.postgres_store import PostgresAdapterStore


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, db_path: Path) -> Iterator[Callable[[], AdapterStore]]:
    """Opens stores on one fresh place: a SQLite file, or a PostgreSQL database of the test's own."""
    url = request.getfixturevalue("postgres").create_database() if request.param == "postgres" else None
    opened: list[SqliteAdapterStore | PostgresAdapterStore] = []

    def open_() -> AdapterStore:
        opened.append(SqliteAdapterStore(db_path) if url is None else PostgresAdapterStore(url))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], AdapterStore]) -> AdapterStore:
    return open_store()


def entry(name: str, **overrides: object) -> dict[str, object]:
    """``add``'s keyword arguments for an adapter called ``name``."""
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
    return fields | overrides


def add(store: AdapterStore, name: str, **overrides: object) -> AdapterSpec:
    return store.add(**entry(name, **overrides))


def test_round_trip_of_every_field(store: AdapterStore) -> None:
    defaults = GenerationDefaults(
        system_prompt="Be brief.", stop=["a", "b"], temperature=1.5, top_p=0.5, max_tokens=9
    )
    spec = add(store, "alpha", alpha=0.1, size_bytes=2**40, defaults=defaults, description="ünïcode ✓")
    assert spec.id >= 1
    assert store.get("alpha") == spec
    assert store.list() == [spec]
    assert store.get("alpha").defaults == defaults


def test_duplicate_name_raises_409_and_stores_nothing(store: AdapterStore) -> None:
    first = add(store, "alpha")
    with pytest.raises(AdapterExistsError) as err:
        add(store, "alpha", rank=4)
    assert (err.value.status_code, err.value.param) == (409, "name")
    assert store.list() == [first]


def test_add_all_stores_all_or_nothing(store: AdapterStore) -> None:
    taken = add(store, "taken")
    with pytest.raises(AdapterExistsError):
        store.add_all([entry("first"), entry("taken"), entry("last")])
    assert store.list() == [taken]
    first, last = store.add_all([entry("first"), entry("last")])
    assert taken.id < first.id < last.id
    assert store.list() == [taken, first, last]


def test_remove_returns_the_spec_or_none(store: AdapterStore) -> None:
    alpha = add(store, "alpha")
    assert store.remove("alpha") == alpha
    assert store.remove("alpha") is None
    assert store.get("alpha") is None
    assert store.list() == []


def test_ids_are_never_reused_even_after_emptying(open_store: Callable[[], AdapterStore]) -> None:
    store = open_store()
    ids = [add(store, name).id for name in ("a", "b", "c")]
    store.remove("c")  # the largest id first: a store counting from max(id) would hand it out again
    assert add(store, "d").id > max(ids)
    for name in ("d", "b", "a"):
        store.remove(name)
    # Another store on the same place, as after a restart.
    assert add(open_store(), "a").id > max(ids) + 1


def test_concurrent_adds_of_one_name_store_it_once(open_store: Callable[[], AdapterStore]) -> None:
    stores = [open_store(), open_store()]  # threads of one store, and two stores (two replicas) at once
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker(store: AdapterStore) -> None:
        barrier.wait()
        try:
            add(store, "contested")
            results.append("added")
        except AdapterExistsError:
            results.append("exists")

    threads = [threading.Thread(target=worker, args=(stores[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["added"] + ["exists"] * 7
    assert [spec.name for spec in stores[0].list()] == ["contested"]


def test_two_stores_on_one_place_see_each_other(open_store: Callable[[], AdapterStore]) -> None:
    store, other = open_store(), open_store()
    spec = add(other, "alpha")
    assert store.get("alpha") == spec
    with pytest.raises(AdapterExistsError):
        add(store, "alpha")
    assert add(store, "beta").id > spec.id
    assert other.remove("beta") is not None
    assert store.list() == [spec]


# SQLite's own: its file, and a process dying mid-transaction.
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
