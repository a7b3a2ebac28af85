"""A LoRA adapter whose weights are all zero: it leaves every output exactly as the base model's.

vLLM's CPU LoRA kernels (torch ops) look up each token's adapter as ``weights[index]``; a token of a
request without an adapter has index -1, which Python reads as "the last slot", so in a batch that mixes
adapters with the base model, base requests silently ran through whatever adapter held the last slot.
Giving base requests this adapter on the CPU keeps every index valid and their answers the base model's.
"""

from __future__ import annotations

import json
from pathlib import Path

from database.files import staged_folder
from lora_registry import BaseModelInfo
from router.engine.base import AdapterRef

# Far above any id the registry hands out (SQLite AUTOINCREMENT from 1), inside vLLM's int range.
IDENTITY_LORA_ID = 2**31 - 1
IDENTITY_LORA_NAME = "__base__"
RANK = 8
TARGET = "q_proj"


def identity_adapter(base: BaseModelInfo, folder: Path) -> AdapterRef:
    return AdapterRef(name=IDENTITY_LORA_NAME, id=IDENTITY_LORA_ID, path=write_identity_lora(base, folder))


def write_identity_lora(base: BaseModelInfo, folder: Path) -> Path:
    """Write (once) a rank-8, all-zero adapter on every ``q_proj`` of the base model."""
    if (folder / "adapter_model.safetensors").is_file():
        return folder
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for module, (out_features, in_features) in base.linear_shapes.items():
        if module.rpartition(".")[2] == TARGET:
            tensors[f"base_model.model.{module}.lora_A.weight"] = torch.zeros(RANK, in_features)
            tensors[f"base_model.model.{module}.lora_B.weight"] = torch.zeros(out_features, RANK)
    config = {
        "peft_type": "LORA",
        "r": RANK,
        "lora_alpha": RANK,
        "target_modules": [TARGET],
        "base_model_name_or_path": base.name,
        "bias": "none",
        "modules_to_save": None,
    }
    # Written aside and renamed into place: router replicas sharing an adapter volume may write it at once,
    # and the first one's copy (the same zeros) stays.
    with staged_folder(folder, existing="keep") as staging:
        (staging / "adapter_config.json").write_text(json.dumps(config))
        save_file(tensors, str(staging / "adapter_model.safetensors"))
    return folder
