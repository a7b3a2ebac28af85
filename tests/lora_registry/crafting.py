"""Make broken adapters from real ones: copy a PEFT folder, then edit its config or rewrite its weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from lora_registry import (
    AdapterRegistration,
    AdapterRegistry,
    AdapterStore,
    BaseModelInfo,
    RegistryError,
)

LORA_PREFIX = "base_model.model."
MAX_RANK = 16


def make_registry(
    store: AdapterStore, adapter_root: Path, base: BaseModelInfo, **limits: int
) -> AdapterRegistry:
    """``limits``: ``max_adapters`` / ``max_adapter_bytes``, unlimited when not given."""
    return AdapterRegistry(
        store,
        adapter_root=adapter_root,
        base=base,
        max_rank=MAX_RANK,
        reserved_names={"auto", base.name},
        **limits,
    )


def copy_adapter(library: Path, name: str, dest: Path) -> Path:
    shutil.copytree(library / name, dest)
    return dest


def edit_config(folder: Path, **changes: object) -> None:
    file = folder / "adapter_config.json"
    config = json.loads(file.read_text())
    config.update(changes)
    file.write_text(json.dumps(config))


def lora_pair(module: str, *, rank: int, in_features: int, out_features: int) -> dict[str, np.ndarray]:
    return {
        f"{LORA_PREFIX}{module}.lora_A.weight": np.zeros((rank, in_features), dtype=np.float32),
        f"{LORA_PREFIX}{module}.lora_B.weight": np.zeros((out_features, rank), dtype=np.float32),
    }


def write_weights(folder: Path, tensors: dict[str, np.ndarray]) -> None:
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})


def assert_refused(
    registry: AdapterRegistry,
    reg: AdapterRegistration,
    error: type[RegistryError],
    *,
    param: str,
    status_code: int,
    says: tuple[str, ...] = (),
) -> RegistryError:
    """Register ``reg``, expect ``error`` naming ``param``, and check the registry did not change."""
    before = registry.list()
    try:
        registry.register(reg)
    except RegistryError as exc:
        assert type(exc) is error, repr(exc)
        assert exc.param == param, repr(exc)
        assert exc.status_code == status_code
        for fragment in says:
            assert fragment in exc.message, f"{fragment!r} not in {exc.message!r}"
        assert registry.list() == before
        return exc
    raise AssertionError(f"registering {reg!r} succeeded; expected {error.__name__}")
