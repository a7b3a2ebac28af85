"""The shipped default experts: installed under the adapter root and registered at start-up."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import httpx

from lora_registry import AdapterRegistration, AdapterRegistry, BaseModelInfo, SqliteAdapterStore
from router.default_experts import INSTALL_DIR, SHIPPED, install_default_experts
from router.settings import DEFAULT_BASE_MODEL

EXPERTS = ["extract", "math", "sql"]


def registry_in(tmp_path: Path, base_model_dir: Path) -> AdapterRegistry:
    root = tmp_path / "adapters"
    root.mkdir(exist_ok=True)
    return AdapterRegistry(
        SqliteAdapterStore(tmp_path / "registry.sqlite3"),
        adapter_root=root,
        base=BaseModelInfo.from_folder(base_model_dir, DEFAULT_BASE_MODEL),
        max_rank=16,
        reserved_names={"auto", DEFAULT_BASE_MODEL},
    )


def test_install_copies_and_registers_each_expert_once(tmp_path: Path, base_model_dir: Path) -> None:
    registry = registry_in(tmp_path, base_model_dir)
    added = install_default_experts(registry, registry.adapter_root)
    assert sorted(spec.name for spec in added) == EXPERTS
    for spec in added:
        installed = registry.adapter_root / INSTALL_DIR / spec.name
        assert Path(spec.path) == installed.resolve()
        assert spec.rank == 16 and spec.size_bytes <= 10_000_000
        assert not filecmp.dircmp(SHIPPED / spec.name, installed).diff_files
    mtime = (registry.adapter_root / INSTALL_DIR / "sql" / "adapter_model.safetensors").stat().st_mtime_ns
    assert install_default_experts(registry, registry.adapter_root) == []
    assert (
        registry.adapter_root / INSTALL_DIR / "sql" / "adapter_model.safetensors"
    ).stat().st_mtime_ns == mtime


def test_a_changed_copy_is_refreshed(tmp_path: Path, base_model_dir: Path) -> None:
    registry = registry_in(tmp_path, base_model_dir)
    install_default_experts(registry, registry.adapter_root)
    card = registry.adapter_root / INSTALL_DIR / "math" / "model_card.json"
    card.write_text("{}")
    install_default_experts(registry, registry.adapter_root)
    assert card.read_bytes() == (SHIPPED / "math" / "model_card.json").read_bytes()


def test_a_name_already_taken_is_left_to_its_owner(
    tmp_path: Path, base_model_dir: Path, adapter_library: Path
) -> None:
    registry = registry_in(tmp_path, base_model_dir)
    shutil.copytree(adapter_library / "alpha", registry.adapter_root / "my-sql")
    mine = registry.register(AdapterRegistration(name="sql", path="my-sql"))
    added = install_default_experts(registry, registry.adapter_root)
    assert sorted(spec.name for spec in added) == ["extract", "math"]
    assert registry.get("sql") == mine


def test_the_service_serves_the_shipped_experts(http: httpx.Client) -> None:
    adapters = {a["name"]: a for a in http.get("/v1/adapters").json()["data"]}
    for name in EXPERTS:
        assert adapters[name]["path"].endswith(f"{INSTALL_DIR}/{name}")
