"""A LoRA adapter whose weights are all zero: it leaves every output exactly as the base model's.

vLLM's CPU LoRA kernels (torch ops) look up each token's adapter as ``weights[index]``; a token of a
request without an adapter has index -1, which Python reads as "the last slot", so in a batch that mixes
adapters with the base model, base requests silently ran through whatever adapter held the last slot.
Giving base requests this adapter on the CPU keeps every index valid and their answers the base model's.
"""

from __future__ import annotations

import json
from pathlib import Path

from lora_registry import BaseModelInfo

# Far above any id the registry hands out (SQLite AUTOINCREMENT from 1), inside vLLM's int range.
IDENTITY_LORA_ID = 2**31 - 1
IDENTITY_LORA_NAME = "__base__"
RANK = 8
TARGET = "q_proj"


def write_identity_lora(base: BaseModelInfo, folder: Path) -> Path:
    """Write (once) a rank-8, all-zero adapter on every ``q_proj`` of the base model."""
    weights = folder / "adapter_model.safetensors"
    if weights.is_file():
        return folder
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for module, (out_features, in_features) in base.linear_shapes.items():
        if module.rpartition(".")[2] == TARGET:
            tensors[f"base_model.model.{module}.lora_A.weight"] = torch.zeros(RANK, in_features)
            tensors[f"base_model.model.{module}.lora_B.weight"] = torch.zeros(out_features, RANK)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "LORA",
        "r": RANK,
        "lora_alpha": RANK,
        "target_modules": [TARGET],
        "base_model_name_or_path": base.name,
        "bias": "none",
        "modules_to_save": None,
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    save_file(tensors, str(weights))
    return folder
