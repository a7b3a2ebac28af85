"""A real LoRA training run on CPU: the folder it writes, the loss mask, the adapter served by the engine."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import httpx
import openai
import pytest
import torch
from safetensors import safe_open

from experts.formatting import load_sft_records
from experts.training import AdapterTrainConfig, ModelCard, build_trainer, train_adapter
from lora_registry import BaseModelInfo, validate_adapter_folder
from router.serving.prompts import PromptRenderer
from tests.experts.conftest import TINY, TrainedAdapter

ALL_LINEAR = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


def test_adapter_folder_holds_bf16_trained_weights(trained_adapter: TrainedAdapter) -> None:
    folder = trained_adapter.path
    assert sorted(p.name for p in folder.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "model_card.json",
    ]
    assert not list(folder.parent.glob(".*staging*"))  # the staging folder was renamed, not left behind
    with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as weights:
        keys = list(weights.keys())
        assert len(keys) == 2 * 30 * len(ALL_LINEAR)  # lora_A + lora_B, 7 modules, 30 layers
        for key in keys:
            assert weights.get_slice(key).get_dtype() == "BF16", key
        lora_b = [weights.get_tensor(k) for k in keys if ".lora_B." in k]
    # PEFT starts lora_B at zero: non-zero values everywhere mean every module was trained.
    assert all(bool(b.abs().sum() > 0) for b in lora_b)

    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["target_modules"] == ALL_LINEAR  # "all-linear" spelled out
    assert config["r"] == 4 and config["lora_alpha"] == 16 and config["peft_type"] == "LORA"
    assert config["base_model_name_or_path"] == "SmolLM2-135M-Instruct"


def test_model_card_records_how_the_adapter_was_made(
    trained_adapter: TrainedAdapter, base_model_dir: Path
) -> None:
    card = ModelCard.read(trained_adapter.path)
    assert card == trained_adapter.card
    assert card.data.sha256 == hashlib.sha256(trained_adapter.data.read_bytes()).hexdigest()
    assert card.data.records == 16
    base_sha = hashlib.sha256((base_model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert card.base_model.weights_sha256 == {"model.safetensors": base_sha}
    assert card.base_model.name == "SmolLM2-135M-Instruct"
    assert card.steps == 3 and card.epochs == 0.75  # 3 steps of 4 over 16 examples
    assert [step for step, _ in card.loss_history] == [1, 2, 3]
    assert card.final_loss == card.loss_history[-1][1] and 0 < card.train_loss < 20
    assert card.config == TINY and card.seed == 0 and card.command == "train sql"
    assert card.precision == "fp32" and card.device.startswith("cpu")
    assert {"torch", "transformers", "peft", "trl"} <= card.library_versions.keys()
    assert card.created_at and card.train_seconds > 0
    assert card.size_bytes == (trained_adapter.path / "adapter_model.safetensors").stat().st_size
    assert card.target_modules == ALL_LINEAR and card.eval == {}


def test_prompt_tokens_are_masked_out_of_the_loss(
    base_model_dir: Path, trained_adapter: TrainedAdapter, tmp_path: Path
) -> None:
    records = load_sft_records(trained_adapter.data)[:2]
    trainer = build_trainer(base_model_dir, records, TINY, output_dir=tmp_path)
    renderer = PromptRenderer(trainer.processing_class)
    for record, example in zip(records, trainer.train_dataset, strict=True):
        prompt_ids = renderer.render_chat(list(record.messages))
        ids, labels = example["input_ids"], example["labels"]
        answer_ids = renderer.encode(record.completion)
        # Exactly the served prompt (no second template, no extra BOS), then the answer and <|im_end|>.
        assert ids == [*prompt_ids, *answer_ids, trainer.processing_class.eos_token_id]
        assert labels[: len(prompt_ids)] == [-100] * len(prompt_ids)
        assert labels[len(prompt_ids) :] == ids[len(prompt_ids) :]

    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    shorter = (
        0 if len(trainer.train_dataset[0]["input_ids"]) < len(trainer.train_dataset[1]["input_ids"]) else 1
    )
    length = len(trainer.train_dataset[shorter]["input_ids"])
    assert torch.all(batch["labels"][shorter, length:] == -100)  # padding is not learned either
    assert int((batch["labels"] != -100).sum()) == sum(
        sum(label != -100 for label in trainer.train_dataset[i]["labels"]) for i in (0, 1)
    )


def test_existing_output_is_refused_unless_overwrite(trained_adapter: TrainedAdapter) -> None:
    with pytest.raises(FileExistsError, match="overwrite"):
        train_adapter(Path("unused"), trained_adapter.data, trained_adapter.path, TINY)


def test_config_refuses_unknown_target_spelling() -> None:
    with pytest.raises(ValueError, match="all-linear"):
        AdapterTrainConfig(target_modules="all_linear")
    assert AdapterTrainConfig(target_modules=[" q_proj", "v_proj "]).target_modules == ["q_proj", "v_proj"]


def test_trained_folder_passes_registry_validation(
    trained_adapter: TrainedAdapter, base_model_dir: Path
) -> None:
    base = BaseModelInfo.from_folder(base_model_dir, base_model_dir.name)
    validated = validate_adapter_folder(
        trained_adapter.path.name, adapter_root=trained_adapter.path.parent, base=base, max_rank=16
    )
    assert validated.rank == 4 and validated.alpha == 16
    assert validated.target_modules == ALL_LINEAR


def test_engine_serves_the_trained_adapter(
    trained_adapter: TrainedAdapter, service_data_dir: Path, http: httpx.Client, client: openai.OpenAI
) -> None:
    name = "trained-sql"
    shutil.copytree(trained_adapter.path, service_data_dir / "adapters" / name)
    created = http.post("/v1/adapters", json={"name": name, "path": name})
    assert created.status_code == 201, created.text
    assert created.json()["rank"] == 4 and created.json()["target_modules"] == ALL_LINEAR
    try:
        reply = client.chat.completions.create(
            model=name,
            messages=[{"role": "user", "content": "Write a query to count the customers in each city."}],
            temperature=0,
            max_tokens=24,
        )
        assert reply.model == name
        assert reply.choices[0].message.content
    finally:
        assert http.delete(f"/v1/adapters/{name}").status_code == 200
