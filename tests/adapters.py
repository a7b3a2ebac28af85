"""Real PEFT LoRA adapters on the real base model, made for the tests.

The weights are random but strong enough (alpha 64 on rank 8) that greedy output differs from the base
model's: trained experts come from `lora-router train-adapter`, not from here.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_TARGETS = ("q_proj", "v_proj", "o_proj")


def make_lora_adapter(
    base_model_dir: Path,
    out_dir: Path,
    *,
    seed: int,
    rank: int = 8,
    alpha: int = 64,
    target_modules: tuple[str, ...] = DEFAULT_TARGETS,
) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype=torch.float32)
    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=list(target_modules), init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(str(out_dir), safe_serialization=True)
    return out_dir
