"""Linear-layer shapes from real safetensors headers: single file, sharded with index, sharded without."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from lora_registry import BaseModelInfo
from lora_registry.safetensors_header import read_safetensors_header


def test_real_base_model_shapes(base_info: BaseModelInfo, base_model_dir: Path) -> None:
    assert base_info.name == "SmolLM2-135M-Instruct"
    assert base_info.path == base_model_dir
    shapes = base_info.linear_shapes
    assert shapes["model.layers.0.self_attn.q_proj"] == (576, 576)
    assert shapes["model.layers.29.self_attn.k_proj"] == (192, 576)
    assert shapes["model.layers.7.self_attn.v_proj"] == (192, 576)
    assert shapes["model.layers.7.mlp.up_proj"] == (1536, 576)
    assert shapes["model.layers.7.mlp.down_proj"] == (576, 1536)
    # 30 layers x 7 projections + the (tied) embedding; norms are 1-D and left out.
    assert len(shapes) == 30 * 7 + 1
    assert not any("norm" in module for module in shapes)
    assert base_info.leaf_names == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens"
    }  # fmt: skip


def test_header_reader_agrees_with_the_safetensors_library(adapter_library: Path) -> None:
    file = adapter_library / "alpha" / "adapter_model.safetensors"
    ours = read_safetensors_header(file)
    with safe_open(str(file), framework="numpy") as f:
        theirs = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    assert {key: info.shape for key, info in ours.items()} == theirs
    assert {info.dtype for info in ours.values()} == {"F32"}


def shard(folder: Path, name: str, tensors: dict[str, tuple[int, ...]]) -> None:
    save_file({key: np.zeros(shape, dtype=np.float16) for key, shape in tensors.items()}, str(folder / name))


SHARD_1 = {"model.layers.0.mlp.up_proj.weight": (6, 4), "model.norm.weight": (4,)}
SHARD_2 = {"lm_head.weight": (10, 4), "model.layers.0.mlp.down_proj.weight": (4, 6)}
EXPECTED = {"model.layers.0.mlp.up_proj": (6, 4), "model.layers.0.mlp.down_proj": (4, 6), "lm_head": (10, 4)}


def test_sharded_model_with_index(tmp_path: Path) -> None:
    shard(tmp_path, "model-00001-of-00002.safetensors", SHARD_1)
    shard(tmp_path, "model-00002-of-00002.safetensors", SHARD_2)
    # A stray shard the index does not name must be ignored.
    shard(tmp_path, "model-00003-of-00003.safetensors", {"model.stray.weight": (2, 2)})
    weight_map = {key: "model-00001-of-00002.safetensors" for key in SHARD_1}
    weight_map |= {key: "model-00002-of-00002.safetensors" for key in SHARD_2}
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )

    info = BaseModelInfo.from_folder(tmp_path, "tiny")
    assert info.linear_shapes == EXPECTED
    assert info.leaf_names == {"up_proj", "down_proj", "lm_head"}


def test_sharded_model_without_index(tmp_path: Path) -> None:
    shard(tmp_path, "model-00001-of-00002.safetensors", SHARD_1)
    shard(tmp_path, "model-00002-of-00002.safetensors", SHARD_2)
    assert BaseModelInfo.from_folder(tmp_path, "tiny").linear_shapes == EXPECTED


def test_index_naming_a_file_outside_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a.weight": "../x.safetensors"}})
    )
    with pytest.raises(ValueError, match="plain file names"):
        BaseModelInfo.from_folder(tmp_path, "tiny")


def test_folder_without_weights_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        BaseModelInfo.from_folder(tmp_path, "tiny")
