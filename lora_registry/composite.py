"""One LoRA adapter holding a weighted sum of others: a composition the engine batches like any adapter.

A weighted sum of LoRA deltas is itself a LoRA (PEFT's ``add_weighted_adapter(combination_type="cat")``):

    Σᵢ wᵢ·sᵢ·Bᵢ·Aᵢ  =  [w₁s₁B₁ | w₂s₂B₂ | …] · [A₁; A₂; …]      rank Σ rᵢ, scale 1

with sᵢ each part's own scale (α/r, or α/√r with rsLoRA). A module that some parts do not adapt gets zeros
in their place, and the rank is padded with zeros up to one vLLM supports. Weights are kept in float32, so
the sum is exact on a float32 engine and rounded once on a bfloat16 one. Parts are read from safetensors
only; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from database.files import file_sha256, staged_folder
from lora_registry.composition import CompositionError
from lora_registry.spec import AdapterSpec, ComposePart
from lora_registry.validation import CONFIG_FILE, LORA_KEY, WEIGHTS_FILE

# Under the adapter root, where remote replicas read adapters too; hidden, so operators' listings skip it.
COMPOSITIONS_FOLDER = ".compositions"
# The ranks vLLM's engine accepts for max_lora_rank (its MaxLoRARanks).
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Part of every content key: a change to how composites are written must not reuse older folders.
FORMAT = "cat-float32-v1"
RECIPE_FILE = "composition.json"


@dataclass(frozen=True)
class WeightedAdapter:
    spec: AdapterSpec
    weight: float


def composite_rank(
    parts: Sequence[WeightedAdapter], *, base_model: str, max_rank: int, param: str = "model"
) -> int:
    """The rank the composite is written with; raises CompositionError (naming ``param``) when the engine
    cannot serve it."""
    for part in parts:
        if part.spec.base_model != base_model:
            raise CompositionError(
                f"adapter {part.spec.name!r} is made for {part.spec.base_model!r}, not {base_model!r}: "
                "parts of a composition share the base model",
                param=param,
            )
        if part.spec.composition is not None:
            raise CompositionError(
                f"{part.spec.name!r} is a composition itself; compose its parts instead", param=param
            )
    total = sum(part.spec.rank for part in parts)
    padded = next((rank for rank in VLLM_RANKS if rank >= total), None)
    if padded is None or padded > max_rank:
        ranks = " + ".join(f"{part.spec.name} {part.spec.rank}" for part in parts)
        raise CompositionError(
            f"a composition's rank is the sum of its parts' ({ranks} = {total}, served as "
            f"{padded or total}); this service serves ranks up to {max_rank} (max_lora_rank)",
            param=param,
        )
    return padded


@dataclass(frozen=True)
class CompositePlan:
    """A composition checked against its registered parts, ready to be written."""

    parts: list[WeightedAdapter]
    """The parts weighed above 0: a part weighed 0 adds nothing, and costs no rank."""
    rank: int

    def write(self, root: Path) -> Path:
        """The composite's folder under ``root``, named by its content, written when not there yet. Reads
        and writes files."""
        return write_composite(self.parts, self.rank, root / content_key(self.parts)[:32])


def plan_composite(
    parts: Sequence[ComposePart],
    specs: Sequence[AdapterSpec],
    *,
    base_model: str,
    max_rank: int,
    param: str = "model",
) -> CompositePlan:
    """``parts`` with their registered ``specs``; raises CompositionError (naming ``param``) when the engine
    cannot serve their composite."""
    weighted = [
        WeightedAdapter(spec, part.weight) for part, spec in zip(parts, specs, strict=True) if part.weight > 0
    ]
    return CompositePlan(
        weighted, composite_rank(weighted, base_model=base_model, max_rank=max_rank, param=param)
    )


def content_key(parts: Sequence[WeightedAdapter]) -> str:
    """A digest of the parts' files and weights: equal keys, equal composites. Reads the files."""
    described = [
        [file_sha256(part.spec.path / WEIGHTS_FILE), file_sha256(part.spec.path / CONFIG_FILE), part.weight]
        for part in parts
    ]
    return hashlib.sha256(json.dumps([FORMAT, described]).encode()).hexdigest()


def write_composite(parts: Sequence[WeightedAdapter], rank: int, folder: Path) -> Path:
    """Write the composite into ``folder`` (once: an existing one holds the same content)."""
    if (folder / WEIGHTS_FILE).is_file():
        return folder
    import torch
    from safetensors.torch import load_file, save_file

    # module -> {"in": features, "out": features, "blocks": [(offset, part rank, A, scaled B)]}
    modules: dict[str, dict] = {}
    offset = 0
    targets: set[str] = set()
    for part in parts:
        config = json.loads((part.spec.path / CONFIG_FILE).read_text())
        scale = part.spec.alpha / (math.sqrt(part.spec.rank) if config.get("use_rslora") else part.spec.rank)
        tensors = load_file(str(part.spec.path / WEIGHTS_FILE))
        for key, tensor in tensors.items():
            match = LORA_KEY.fullmatch(key)
            if match is None or match["part"] != "A":
                continue
            module = match["module"]
            lora_a = tensor.float()
            lora_b = tensors[f"base_model.model.{module}.lora_B.weight"].float() * (part.weight * scale)
            entry = modules.setdefault(module, {"in": lora_a.shape[1], "out": lora_b.shape[0], "blocks": []})
            entry["blocks"].append((offset, part.spec.rank, lora_a, lora_b))
            targets.add(module.rpartition(".")[2])
        offset += part.spec.rank
    out: dict[str, torch.Tensor] = {}
    for module, entry in modules.items():
        lora_a = torch.zeros(rank, entry["in"])
        lora_b = torch.zeros(entry["out"], rank)
        for start, part_rank, part_a, part_b in entry["blocks"]:
            lora_a[start : start + part_rank] = part_a
            lora_b[:, start : start + part_rank] = part_b
        out[f"base_model.model.{module}.lora_A.weight"] = lora_a
        out[f"base_model.model.{module}.lora_B.weight"] = lora_b
    config = {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": rank,
        "target_modules": sorted(targets),
        "base_model_name_or_path": parts[0].spec.base_model,
        "bias": "none",
        "modules_to_save": None,
        "use_rslora": False,
        "use_dora": False,
    }
    # Beside the config, not in it: PEFT and vLLM read that one; an operator reads this one, and `lora-router
    # merge` checks a merged composite against the parts it names (experts.folders.COMPOSITION_RECIPE).
    recipe = [
        {
            "adapter": part.spec.name,
            "weight": part.weight,
            "rank": part.spec.rank,
            "path": str(part.spec.path),
        }
        for part in parts
    ]
    # Content-addressed: router replicas sharing the adapter volume may write it at once, and either copy is
    # the same.
    with staged_folder(folder, existing="keep") as staging:
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        (staging / RECIPE_FILE).write_text(json.dumps(recipe, indent=2))
        save_file(out, str(staging / WEIGHTS_FILE))
    return folder
