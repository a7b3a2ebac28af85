"""The base model's linear layers, read from safetensors headers: what adapters are checked against."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from lora_registry.safetensors_header import read_safetensors_header

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


@dataclass(frozen=True)
class BaseModelInfo:
    name: str
    path: Path
    # Full module path (e.g. "model.layers.0.self_attn.q_proj") -> (out_features, in_features).
    linear_shapes: dict[str, tuple[int, int]]

    @classmethod
    def from_folder(cls, path: Path, name: str) -> BaseModelInfo:
        """Read the weight headers of an HF-layout folder (single file or sharded); no tensor is loaded.

        Raises FileNotFoundError when the folder holds no safetensors weights, ValueError when a header or the
        shard index is malformed.
        """
        shapes: dict[str, tuple[int, int]] = {}
        for file in _weight_files(path):
            for key, info in read_safetensors_header(file).items():
                module, dot, leaf = key.rpartition(".")
                if dot and leaf == "weight" and module and len(info.shape) == 2:
                    shapes[module] = (info.shape[0], info.shape[1])
        if not shapes:
            raise ValueError(f"no 2-D weights found in the safetensors files under {path}")
        return cls(name=name, path=path, linear_shapes=shapes)

    @cached_property
    def leaf_names(self) -> set[str]:
        """Last component of every module path: q_proj, k_proj, ..., embed_tokens and lm_head if present."""
        return {module.rpartition(".")[2] for module in self.linear_shapes}


def _weight_files(folder: Path) -> list[Path]:
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            names = sorted(set(weight_map.values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{index}: not a safetensors shard index ({exc!r})") from None
        # Shard names come from a file: keep them to plain names inside the folder.
        if not all(isinstance(n, str) and n == Path(n).name and n not in ("", ".", "..") for n in names):
            raise ValueError(f"{index}: shard names must be plain file names inside {folder}")
        return [folder / n for n in names]
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    shards = sorted(folder.glob("model-*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"no {SINGLE_FILE}, {INDEX_FILE} or model-*.safetensors in {folder}")
    return shards
