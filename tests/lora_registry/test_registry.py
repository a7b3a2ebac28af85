"""Registering, looking up and removing real PEFT adapters; ids and persistence on a real SQLite file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lora_registry import (
    AdapterExistsError,
    AdapterNotFoundError,
    AdapterRegistration,
    AdapterRegistry,
    BaseModelInfo,
    GenerationDefaults,
    InvalidAdapterNameError,
    SqliteAdapterStore,
)
from tests.lora_registry.crafting import assert_refused, make_registry


def test_register_get_list_unregister(
    registry: AdapterRegistry, adapter_root: Path, base_info: BaseModelInfo
) -> None:
    defaults = GenerationDefaults(
        system_prompt="You are terse.", stop=["###"], temperature=0.2, max_tokens=64
    )
    before = int(time.time())
    spec = registry.register(
        AdapterRegistration(name="alpha", path="alpha", description="first expert", defaults=defaults)
    )

    assert spec.name == "alpha"
    assert spec.path == (adapter_root / "alpha").resolve()
    assert spec.path.is_absolute()
    assert spec.base_model == base_info.name
    assert (spec.rank, spec.alpha) == (8, 64.0)
    assert spec.target_modules == ["o_proj", "q_proj", "v_proj"]
    assert spec.size_bytes == sum(f.stat().st_size for f in (adapter_root / "alpha").iterdir())
    assert spec.description == "first expert"
    assert spec.defaults == defaults
    assert before <= spec.created_at <= int(time.time())

    beta = registry.register(AdapterRegistration(name="beta", path="beta"))
    assert registry.get("alpha") == spec
    assert registry.find("alpha") == spec
    assert registry.find("nope") is None
    assert registry.list() == [spec, beta]
    assert registry.names() == ["alpha", "beta"]

    assert registry.unregister("alpha") == [spec]
    assert registry.names() == ["beta"]
    assert registry.find("alpha") is None


def test_lookup_of_unknown_name_lists_registered(registry: AdapterRegistry) -> None:
    with pytest.raises(AdapterNotFoundError) as empty:
        registry.get("alpha")
    assert empty.value.status_code == 404
    assert "none" in empty.value.message

    registry.register(AdapterRegistration(name="alpha", path="alpha"))
    registry.register(AdapterRegistration(name="beta", path="beta"))
    for call in (registry.get, registry.unregister):
        with pytest.raises(AdapterNotFoundError) as missing:
            call("gamma")
        err = missing.value
        assert (err.status_code, err.code, err.param) == (404, "model_not_found", "name")
        assert "'gamma'" in err.message and "'alpha'" in err.message and "'beta'" in err.message
        assert err.available == ["alpha", "beta"]
    assert registry.names() == ["alpha", "beta"]


def test_absolute_path_inside_root_is_accepted(registry: AdapterRegistry, adapter_root: Path) -> None:
    spec = registry.register(AdapterRegistration(name="alpha", path=str(adapter_root / "alpha")))
    assert spec.path == (adapter_root / "alpha").resolve()


def test_symlink_inside_root_is_accepted(registry: AdapterRegistry, adapter_root: Path) -> None:
    (adapter_root / "latest").symlink_to(adapter_root / "beta", target_is_directory=True)
    assert registry.register(AdapterRegistration(name="latest", path="latest")).path == (
        adapter_root / "beta"
    )


def test_same_folder_under_two_names(registry: AdapterRegistry) -> None:
    first = registry.register(AdapterRegistration(name="alpha", path="alpha"))
    second = registry.register(AdapterRegistration(name="alpha-v2", path="alpha"))
    assert first.path == second.path and first.id != second.id


def test_ids_are_stable_and_never_reused(
    registry: AdapterRegistry, db_path: Path, adapter_root: Path, base_info: BaseModelInfo
) -> None:
    alpha = registry.register(AdapterRegistration(name="alpha", path="alpha"))
    beta = registry.register(AdapterRegistration(name="beta", path="beta"))
    assert registry.get("alpha").id == alpha.id

    # Removing the newest row is the case a plain INTEGER PRIMARY KEY would reuse.
    registry.unregister("beta")
    beta_again = registry.register(AdapterRegistration(name="beta", path="beta"))
    assert beta_again.id not in {alpha.id, beta.id}

    registry.unregister("alpha")
    registry.unregister("beta")
    reopened = make_registry(SqliteAdapterStore(db_path), adapter_root, base_info)
    gamma = reopened.register(AdapterRegistration(name="gamma", path="gamma"))
    assert gamma.id > max(alpha.id, beta.id, beta_again.id)


def test_state_survives_a_new_store_on_the_same_file(
    registry: AdapterRegistry, db_path: Path, adapter_root: Path, base_info: BaseModelInfo
) -> None:
    defaults = GenerationDefaults(stop=["</s>", "\n\n"], top_p=0.9)
    registry.register(AdapterRegistration(name="alpha", path="alpha", description="kept", defaults=defaults))
    registry.register(AdapterRegistration(name="beta", path="beta"))
    registry.unregister("beta")
    sub_intents = {"refund": ["money back please"], "card-lost": ["I lost my card", "card stolen"]}
    registry.register(AdapterRegistration(name="gamma", path="gamma", examples=sub_intents))
    expected = registry.list()

    store = SqliteAdapterStore(db_path)
    try:
        reopened = make_registry(store, adapter_root, base_info)
        assert reopened.list() == expected
        assert reopened.get("alpha").defaults == defaults
        assert reopened.get("gamma").examples == sub_intents
    finally:
        store.close()


@pytest.mark.parametrize(
    ("name", "says"),
    [
        *((name, "invalid adapter name") for name in ["", "-alpha", ".hidden", "a/b", "has space", "x" * 65]),
        *((name, "invalid adapter name") for name in ["naïve", "tab\t", "trailing\n", "a:b", "a+b"]),
        *(
            (name, "reserved")
            for name in ["auto", "AUTO", "Auto", "smollm2-135m-instruct", "SmolLM2-135M-Instruct"]
        ),
    ],
)
def test_bad_or_reserved_name_is_refused(registry: AdapterRegistry, name: str, says: str) -> None:
    registry.register(AdapterRegistration(name="alpha", path="alpha"))
    assert_refused(
        registry,
        AdapterRegistration(name=name, path="beta"),
        InvalidAdapterNameError,
        param="name",
        status_code=400,
        says=(says,),
    )


def test_longest_name_is_accepted(registry: AdapterRegistry) -> None:
    name = "A" + "b.c_d-" * 10 + "xyz"
    assert len(name) == 64
    assert registry.register(AdapterRegistration(name=name, path="alpha")).name == name


def test_base_model_name_is_reserved_even_when_not_passed(
    store: SqliteAdapterStore, adapter_root: Path, base_info: BaseModelInfo
) -> None:
    registry = AdapterRegistry(
        store, adapter_root=adapter_root, base=base_info, max_rank=16, reserved_names=set()
    )
    assert_refused(
        registry,
        AdapterRegistration(name=base_info.name.upper(), path="alpha"),
        InvalidAdapterNameError,
        param="name",
        status_code=400,
    )


def test_duplicate_name_is_refused_with_409(registry: AdapterRegistry) -> None:
    original = registry.register(AdapterRegistration(name="alpha", path="alpha"))
    err = assert_refused(
        registry,
        AdapterRegistration(name="alpha", path="beta"),
        AdapterExistsError,
        param="name",
        status_code=409,
        says=("'alpha'", "already registered"),
    )
    assert err.code == "adapter_exists"
    assert registry.get("alpha") == original


def test_reads_answer_from_a_snapshot_that_refresh_brings_up_to_date(
    tmp_path: Path, adapter_root: Path, base_info: BaseModelInfo
) -> None:
    """Two routers on one database: each serves what it knows; the other's writes show after a refresh, and
    an adapter it has not seen yet is read from the store the first time it is asked for."""
    db = tmp_path / "shared.sqlite3"
    here = make_registry(SqliteAdapterStore(db), adapter_root, base_info)
    there = make_registry(SqliteAdapterStore(db), adapter_root, base_info)
    alpha = there.register(AdapterRegistration(name="alpha", path="alpha"))
    beta = there.register(AdapterRegistration(name="beta", path="beta"))

    assert here.find("alpha") is None and here.names() == []
    assert here.find_stored("alpha") == alpha  # read through, and kept
    assert here.find("alpha") == alpha and here.names() == ["alpha"]
    assert here.find_stored("nope") is None

    assert here.refresh() is True and here.list() == [alpha, beta]
    assert here.refresh() is False  # nothing new
    there.unregister("alpha")
    assert here.get("alpha") == alpha  # served from the snapshot until the next refresh
    assert here.refresh() is True and here.names() == ["beta"]
    with pytest.raises(AdapterNotFoundError):
        here.get("alpha")
