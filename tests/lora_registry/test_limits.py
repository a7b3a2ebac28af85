"""Registry limits: how many adapters, how large a folder. Refusals change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from lora_registry import (
    AdapterLimitError,
    AdapterRegistration,
    AdapterTooLargeError,
    BaseModelInfo,
    RegistryError,
    SqliteAdapterStore,
)
from tests.lora_registry.crafting import assert_refused, make_registry


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_registration_past_the_adapter_limit_is_422_and_unregistering_frees_a_place(
    store: SqliteAdapterStore, adapter_root: Path, base_info: BaseModelInfo
) -> None:
    registry = make_registry(store, adapter_root, base_info, max_adapters=2)
    registry.register(AdapterRegistration(name="alpha", path="alpha"))
    registry.register(AdapterRegistration(name="beta", path="beta"))
    assert_refused(
        registry,
        AdapterRegistration(name="gamma", path="gamma"),
        AdapterLimitError,
        param="name",
        status_code=422,
        says=("2 adapters are registered",),
    )
    registry.unregister("alpha")
    assert registry.register(AdapterRegistration(name="gamma", path="gamma")).name == "gamma"


def test_seed_file_past_the_limit_registers_nothing(
    store: SqliteAdapterStore, adapter_root: Path, base_info: BaseModelInfo, tmp_path: Path
) -> None:
    registry = make_registry(store, adapter_root, base_info, max_adapters=2)
    registry.register(AdapterRegistration(name="alpha", path="alpha"))
    seed = tmp_path / "registry.yaml"
    seed.write_text("adapters:\n  - {name: beta, path: beta}\n  - {name: gamma, path: gamma}\n")
    with pytest.raises(RegistryError, match="2 adapters are registered"):
        registry.seed_from_yaml(seed)
    assert registry.names() == ["alpha"]


def test_folder_over_the_size_limit_is_413_before_it_is_parsed(
    store: SqliteAdapterStore, adapter_root: Path, base_info: BaseModelInfo
) -> None:
    # A corrupt config would be a 422 if the folder were read: the size refusal comes first.
    (adapter_root / "alpha" / "adapter_config.json").write_text("{not json")
    size = folder_bytes(adapter_root / "alpha")
    registry = make_registry(store, adapter_root, base_info, max_adapter_bytes=size - 1)
    error = assert_refused(
        registry,
        AdapterRegistration(name="alpha", path="alpha"),
        AdapterTooLargeError,
        param="path",
        status_code=413,
        says=(f"at most {size - 1} are accepted",),
    )
    assert error.code == "adapter_too_large"
    beta_size = folder_bytes(adapter_root / "beta")
    roomy = make_registry(store, adapter_root, base_info, max_adapter_bytes=beta_size)
    assert roomy.register(AdapterRegistration(name="beta", path="beta")).size_bytes == beta_size
