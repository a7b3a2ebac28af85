from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lora_registry import AdapterRegistry, BaseModelInfo, SqliteAdapterStore
from tests.lora_registry.crafting import make_registry


@pytest.fixture(scope="session")
def base_info(base_model_dir: Path) -> BaseModelInfo:
    return BaseModelInfo.from_folder(base_model_dir, base_model_dir.name)


@pytest.fixture
def adapter_root(tmp_path: Path, adapter_library: Path) -> Path:
    """A fresh adapter root holding copies of the shared adapters (tests may mutate them)."""
    root = tmp_path / "adapters"
    root.mkdir()
    for name in ("alpha", "beta", "gamma"):
        shutil.copytree(adapter_library / name, root / name)
    return root


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "registry.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteAdapterStore]:
    store = SqliteAdapterStore(db_path)
    yield store
    store.close()


@pytest.fixture
def registry(store: SqliteAdapterStore, adapter_root: Path, base_info: BaseModelInfo) -> AdapterRegistry:
    return make_registry(store, adapter_root, base_info)
