"""Merging the trained adapter into the base: the weight-by-weight check, its failures, and equal output."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from experts.formatting import ChatFormatter
from experts.merge import MergeReport, check_merged, merge_adapter
from lora_registry import (
    AdapterRegistration,
    AdapterRegistry,
    AdapterValidationError,
    BaseModelInfo,
    ComposePart,
    SqliteAdapterStore,
    validate_adapter_folder,
)
from tests.experts.conftest import TrainedAdapter, one_torch_thread

LAYERS, MODULES_PER_LAYER = 30, 7


@dataclass(frozen=True)
class Merged:
    path: Path
    report: MergeReport


@pytest.fixture(scope="module")
def merged(
    trained_adapter: TrainedAdapter, base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Merged:
    output = tmp_path_factory.mktemp("merged") / "sql-merged"
    with one_torch_thread():
        report = merge_adapter(base_model_dir, trained_adapter.path, output)
    return Merged(output, report)


def test_merge_report_passes_and_folder_is_standalone(merged: Merged, base_model_dir: Path) -> None:
    report = merged.report
    assert report.passed and not report.failures
    assert report.lora_modules == LAYERS * MODULES_PER_LAYER
    assert report.unchanged_tensors == 272 - report.lora_modules  # norms and the embedding
    assert report.replaced_modules == [] and report.dtype == "bfloat16"
    # PEFT merges in float32 here and rounds once: at most half a unit in the last place.
    assert report.max_ulp_error <= 0.5 + 1e-6 and report.max_abs_error > 0
    assert json.loads((merged.path / "merge_report.json").read_text())["passed"] is True
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (merged.path / name).read_bytes() == (base_model_dir / name).read_bytes()
    assert json.loads((merged.path / "config.json").read_text())["dtype"] == "bfloat16"
    assert not (merged.path / "prepared.json").exists()  # the base's preparation marker is not the merge's


def test_merged_weights_equal_base_plus_scaled_product(
    merged: Merged, trained_adapter: TrainedAdapter, base_model_dir: Path
) -> None:
    base = load_file(str(base_model_dir / "model.safetensors"))
    adapter = load_file(str(trained_adapter.path / "adapter_model.safetensors"))
    out = load_file(str(merged.path / "model.safetensors"))
    scale = 16 / 4  # alpha / r
    for module in ("model.layers.0.self_attn.q_proj", "model.layers.29.mlp.down_proj"):
        a = adapter[f"base_model.model.{module}.lora_A.weight"].float()
        b = adapter[f"base_model.model.{module}.lora_B.weight"].float()
        expected = (base[f"{module}.weight"].float() + scale * (b @ a)).to(torch.bfloat16)
        got = out[f"{module}.weight"]
        assert got.dtype == torch.bfloat16
        assert not torch.equal(got, base[f"{module}.weight"])  # the adapter did change it
        # Float32 sums in another order may round the odd value the other way.
        assert float((got == expected).float().mean()) > 0.999
        assert torch.allclose(got.float(), expected.float(), rtol=2**-7, atol=0)
    for key in ("model.embed_tokens.weight", "model.norm.weight", "model.layers.5.input_layernorm.weight"):
        assert torch.equal(out[key], base[key]), key


def test_check_fails_on_a_corrupted_merged_weight(
    merged: Merged, trained_adapter: TrainedAdapter, base_model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(merged.path, broken)
    weights = load_file(str(broken / "model.safetensors"))
    weights["model.layers.3.self_attn.v_proj.weight"][7, 11] *= 1.25  # many units in the last place
    weights["model.layers.8.post_attention_layernorm.weight"][0] += 1  # a weight the adapter never touches
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})

    report = check_merged(base_model_dir, trained_adapter.path, broken)
    assert not report.passed
    assert len(report.failures) == 2, report.failures
    assert report.failures[0].startswith("model.layers.3.self_attn.v_proj: 1 of ")
    assert "model.layers.8.post_attention_layernorm.weight: not targeted by the adapter" in report.failures[1]
    assert "FAILED" in report.summary()


def test_merged_model_answers_like_the_adapter_on_the_base(
    merged: Merged, trained_adapter: TrainedAdapter, base_model_dir: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    formatter = ChatFormatter.from_model_dir(merged.path)
    prompt = formatter.prompt([{"role": "user", "content": "How many orders did each customer place?"}])
    ids = formatter.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")

    def greedy(model: torch.nn.Module) -> list[int]:
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=8, do_sample=False)
        return out[0, ids["input_ids"].shape[1] :].tolist()

    with one_torch_thread():
        standalone = greedy(AutoModelForCausalLM.from_pretrained(str(merged.path), dtype=torch.float32))
        base = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype=torch.float32)
        with_adapter = greedy(PeftModel.from_pretrained(base, str(trained_adapter.path)))
    assert standalone == with_adapter
    assert len(standalone) > 0


# PEFT warns, rightly, that a trained head no longer ties to the embedding: the test is about exactly that.
@pytest.mark.filterwarnings(
    "ignore:Model has `tie_word_embeddings=True`", "ignore:Input and output embeddings"
)
def test_modules_to_save_adapter_merges_with_its_trained_head(base_model_dir: Path, tmp_path: Path) -> None:
    """An adapter the engine refuses (fully trained lm_head, tied to the embedding in this model) is served
    by merging it: the merged model keeps the trained head beside the untouched embedding."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    adapter = tmp_path / "adapters" / "with-head"
    with one_torch_thread():
        model = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype=torch.float32)
        torch.manual_seed(0)
        config = LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj"], modules_to_save=["lm_head"], init_lora_weights=False
        )
        peft_model = get_peft_model(model, config)
        with torch.no_grad():
            peft_model.base_model.model.lm_head.modules_to_save["default"].weight.mul_(1.5)
        peft_model.save_pretrained(str(adapter))

        base = BaseModelInfo.from_folder(base_model_dir, base_model_dir.name)
        with pytest.raises(AdapterValidationError, match="lora-router merge"):
            validate_adapter_folder("with-head", adapter_root=adapter.parent, base=base, max_rank=16)

        report = merge_adapter(base_model_dir, adapter, tmp_path / "merged")
    assert report.passed, report.summary()
    assert report.replaced_modules == ["lm_head"] and report.lora_modules == LAYERS
    out = load_file(str(tmp_path / "merged" / "model.safetensors"))
    head = load_file(str(adapter / "adapter_model.safetensors"))["base_model.model.lm_head.weight"]
    assert torch.equal(out["lm_head.weight"], head.to(torch.bfloat16))
    base_weights = load_file(str(base_model_dir / "model.safetensors"))
    assert torch.equal(out["model.embed_tokens.weight"], base_weights["model.embed_tokens.weight"])
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["tie_word_embeddings"] is False


def test_existing_output_is_refused(
    trained_adapter: TrainedAdapter, base_model_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="overwrite"):
        merge_adapter(base_model_dir, trained_adapter.path, tmp_path / "taken")


@pytest.mark.parametrize("parts", [{"alpha": 0.7, "beta": 0.3}, {"alpha": 0.5, "beta": 0.3, "gamma": 0.2}])
def test_a_merged_composite_equals_the_base_plus_its_parts_weighted_deltas(
    base_model_dir: Path, adapter_library: Path, tmp_path: Path, parts: dict[str, float]
) -> None:
    root = tmp_path / "adapters"
    for name in parts:
        shutil.copytree(adapter_library / name, root / name)
    base = BaseModelInfo.from_folder(base_model_dir, base_model_dir.name)
    store = SqliteAdapterStore(tmp_path / "registry.sqlite3")
    registry = AdapterRegistry(store, adapter_root=root, base=base, max_rank=32, reserved_names=set())
    for name in parts:
        registry.register(AdapterRegistration(name=name, path=name))
    compose = [ComposePart(adapter=name, weight=weight) for name, weight in parts.items()]
    composite = registry.register(AdapterRegistration(name="blend", compose=compose))
    store.close()

    # The 3-part one saved in float32 (no rounding of the merged weights), the other in the base's bf16.
    float32 = len(parts) == 3
    with one_torch_thread():
        report = merge_adapter(base_model_dir, composite.path, tmp_path / "merged", float32=float32)
    # Checked against the parts' own files, not the composite's factors.
    assert report.passed, report.summary()
    assert report.lora_modules == LAYERS * 3 and report.max_ulp_error <= 1.0
    assert report.dtype == ("float32" if float32 else "bfloat16")

    # A part changed since the composite was written: the merge no longer matches its parts.
    alpha = root / "alpha" / "adapter_model.safetensors"
    tensors = load_file(str(alpha))
    key = next(k for k in tensors if k.endswith("layers.0.self_attn.q_proj.lora_B.weight"))
    tensors[key] = tensors[key] * 2
    save_file(tensors, str(alpha), metadata={"format": "pt"})
    again = check_merged(base_model_dir, composite.path, tmp_path / "merged")
    assert not again.passed and again.failures[0].startswith("model.layers.0.self_attn.q_proj:")
