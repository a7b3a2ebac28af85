"""What the benchmarks run on when no trained model or adapter is at hand: real PEFT LoRA folders with random
weights, and same-architecture models with random weights (speed does not depend on the weights' values,
and generation runs to a fixed length with ``ignore_eos``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from lora_registry.composite import VLLM_RANKS

DEFAULT_TARGETS = ("q_proj", "v_proj", "o_proj")
# Every linear layer of a Llama block: what a full-strength expert adapts.
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "generation_config.json",
)


def make_lora_adapter(
    base_model_dir: Path,
    out_dir: Path,
    *,
    seed: int,
    rank: int = 8,
    alpha: int = 64,
    target_modules: tuple[str, ...] = DEFAULT_TARGETS,
) -> Path:
    """A PEFT LoRA folder for ``base_model_dir`` with random weights, strong enough (alpha 64 on rank 8)
    that greedy output differs from the base model's."""
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


def make_lora_adapters(
    base_model_dir: Path,
    out_root: Path,
    count: int,
    *,
    rank: int = 16,
    target_modules: tuple[str, ...] = ALL_LINEAR,
) -> list[Path]:
    """``count`` adapters named ``lora-00``…: PEFT makes the first; the others get its layout with new random
    values, which is much faster than loading the base model ``count`` times."""
    import torch
    from safetensors.torch import load_file, save_file

    folders = [out_root / f"lora-{i:02d}" for i in range(count)]
    if all((f / "adapter_model.safetensors").is_file() for f in folders):
        return folders
    first = make_lora_adapter(base_model_dir, folders[0], seed=0, rank=rank, target_modules=target_modules)
    tensors = load_file(str(first / "adapter_model.safetensors"))
    for i, folder in enumerate(folders[1:], start=1):
        generator = torch.Generator().manual_seed(i)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(first / "adapter_config.json", folder / "adapter_config.json")
        renewed = {
            name: (torch.randn(t.shape, generator=generator) * t.float().std()).to(t.dtype)
            for name, t in tensors.items()
        }
        save_file(renewed, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    return folders


def make_random_model(like: Path, out_dir: Path, **overrides: Any) -> Path:
    """A model of ``like``'s architecture (config overridden by ``overrides``, e.g. a larger hidden size) with
    random bf16 weights and ``like``'s tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (out_dir / "config.json").is_file():
        return out_dir
    config = AutoConfig.from_pretrained(str(like))
    for key, value in overrides.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    for name in _TOKENIZER_FILES:
        if (like / name).is_file():
            shutil.copy(like / name, out_dir / name)
    return out_dir


def parameter_count(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                total += _numel(f.get_slice(name).get_shape())
    return total


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def describe_model(model_dir: Path) -> dict[str, Any]:
    config = json.loads((model_dir / "config.json").read_text())
    keys = (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
    )
    return {
        "path": model_dir.name,
        "parameters": parameter_count(model_dir),
        **{k: config.get(k) for k in keys},
    }


def adapter_folders(root: Path, count: int) -> list[Path]:
    """The first ``count`` adapter folders (with ``adapter_config.json``) right under ``root``, by name."""
    found = sorted(p.parent for p in root.glob("*/adapter_config.json"))
    if len(found) < count:
        raise ValueError(f"{root} holds {len(found)} adapter folders, {count} asked for")
    return found[:count]


def lora_rank_limit(folders: list[Path]) -> int:
    """The smallest rank limit vLLM accepts that every adapter (``r`` and ``rank_pattern``) fits under."""
    ranks = []
    for folder in folders:
        config = json.loads((folder / "adapter_config.json").read_text())
        ranks += [int(config["r"]), *(int(r) for r in (config.get("rank_pattern") or {}).values())]
    return next((limit for limit in VLLM_RANKS if limit >= max(ranks)), VLLM_RANKS[-1])
