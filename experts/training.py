"""Train one LoRA expert adapter with TRL's SFTTrainer, loss on the answer tokens only.

The output folder is what `lora_registry` validates and vLLM serves: ``adapter_config.json`` (target modules
spelled out as concrete module names), ``adapter_model.safetensors`` (bf16) and ``model_card.json`` saying how
the adapter was made. It appears atomically: written to a temporary sibling, then renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from database.files import file_sha256, staged_folder
from experts.folders import ADAPTER_CONFIG, ADAPTER_WEIGHTS, LORA_KEY
from experts.formatting import ChatFormatter, SftRecord, load_sft_records

if TYPE_CHECKING:
    from collections.abc import Iterator

    from transformers import TrainerCallback
    from trl import SFTTrainer

logger = logging.getLogger(__name__)

ALL_LINEAR = "all-linear"
MODEL_CARD = "model_card.json"
LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "safetensors", "accelerate")

Progress = Callable[[float], None]


class AdapterTrainConfig(BaseModel):
    """Hyper-parameters of one adapter training run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(default=16, ge=1)
    alpha: float = Field(default=32, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: str | list[str] = Field(
        default=ALL_LINEAR, description="'all-linear' or module names (leaf names such as q_proj, or paths)."
    )
    modules_to_save: list[str] = Field(
        default_factory=list,
        description="Modules trained in full; such an adapter cannot be served as a LoRA, only merged.",
    )
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, description="Stop after this many optimizer steps (-1: run `epochs`).")
    learning_rate: float = Field(default=2e-4, gt=0)
    batch_size: int = Field(default=16, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    max_length: int = Field(
        default=512, ge=8, description="Tokens per example (prompt + answer), cut beyond."
    )
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    seed: int = 0
    bf16: bool | None = Field(default=None, description="Mixed bf16 precision; None: when CUDA supports it.")
    gradient_checkpointing: bool = False
    logging_steps: int = Field(default=10, ge=1)

    @field_validator("target_modules")
    @classmethod
    def _check_targets(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            if value != ALL_LINEAR:
                raise ValueError(f"target_modules must be {ALL_LINEAR!r} or a list of module names")
            return value
        if not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise ValueError("target_modules must be a non-empty list of module names")
        return [v.strip() for v in value]


class BaseModelRef(BaseModel):
    name: str
    path: str
    weights_sha256: dict[str, str] = Field(description="sha256 of each safetensors file, by file name.")


class DataRef(BaseModel):
    path: str
    sha256: str
    records: int


class ModelCard(BaseModel):
    """How an adapter was made; `eval` is left empty here and filled by evaluation."""

    kind: Literal["lora-adapter"] = "lora-adapter"
    base_model: BaseModelRef
    data: DataRef
    config: AdapterTrainConfig
    seed: int
    command: str
    target_modules: list[str]
    steps: int
    epochs: float
    train_loss: float = Field(description="Mean training loss over the run.")
    final_loss: float = Field(description="Loss of the last logged step.")
    loss_history: list[tuple[int, float]] = Field(description="(step, loss) at every logging step.")
    device: str
    precision: Literal["bf16", "fp32"]
    library_versions: dict[str, str]
    created_at: str
    train_seconds: float
    size_bytes: int = Field(description="Size of the adapter weights file.")
    eval: dict[str, Any] = Field(default_factory=dict)

    def write(self, folder: Path) -> Path:
        path = folder / MODEL_CARD
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: Path) -> ModelCard:
        return cls.model_validate_json((folder / MODEL_CARD).read_text(encoding="utf-8"))


def build_trainer(
    base_model: Path,
    records: Sequence[SftRecord],
    config: AdapterTrainConfig,
    *,
    output_dir: Path,
    callbacks: Sequence[TrainerCallback] = (),
) -> SFTTrainer:
    """An SFTTrainer for a LoRA on ``base_model``, its dataset already prepared (tokenized, prompt tokens
    labelled -100). ``output_dir`` only receives the trainer's scratch files: nothing is checkpointed."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    formatter = ChatFormatter(tokenizer)
    rows = formatter.dataset_rows(records)
    _check_plain_text_tokenization(tokenizer, rows[0]["prompt"])

    cuda = torch.cuda.is_available()
    bf16 = config.bf16 if config.bf16 is not None else cuda and torch.cuda.is_bf16_supported()
    # On CUDA the frozen base weights stay bf16 (half the memory); PEFT keeps the LoRA weights in fp32.
    model = AutoModelForCausalLM.from_pretrained(
        str(base_model), dtype=torch.bfloat16 if bf16 and cuda else torch.float32
    )
    lora = LoraConfig(
        r=config.rank,
        # PEFT annotates an int, but only ever divides it by the rank: a fractional alpha works as given.
        lora_alpha=config.alpha,  # type: ignore[arg-type]
        lora_dropout=config.dropout,
        target_modules=config.target_modules,
        modules_to_save=config.modules_to_save or None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    args = SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        # transformers 5 reads a float below 1 as a share of the total steps.
        warmup_steps=config.warmup_ratio,
        seed=config.seed,
        data_seed=config.seed,
        bf16=bf16,
        use_cpu=not cuda,
        gradient_checkpointing=config.gradient_checkpointing,
        logging_steps=config.logging_steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        max_length=config.max_length,
        packing=False,
        # Both sides are rendered text: TRL tokenizes them as they are (no second chat template) and masks
        # the prompt tokens out of the loss.
        completion_only_loss=True,
        # The answer already ends with the end-of-turn token; TRL appends its eos only when that is missing.
        eos_token=formatter.end_of_turn,
    )
    with _quiet_datasets():
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=list(callbacks),
        )
    # Without tqdm the Trainer prints every log dict to stdout; losses reach the caller through the model card
    # (and progress through the callbacks) instead.
    trainer.remove_callback(PrinterCallback)
    return trainer


def train_adapter(
    base_model: Path,
    data: Path,
    output: Path,
    config: AdapterTrainConfig | None = None,
    *,
    on_progress: Progress | None = None,
    overwrite: bool = False,
    command: Sequence[str] | None = None,
) -> ModelCard:
    """Train a LoRA adapter for ``base_model`` on the records of ``data`` (see `experts.formatting`) into the
    folder ``output``. Runs on CPU in fp32 or on CUDA (bf16 where supported); needs no network.

    ``command`` is recorded in the model card (default: this process's command line).
    Raises FileExistsError when ``output`` exists and ``overwrite`` is false, ValueError on bad data.
    """
    config = config or AdapterTrainConfig()
    base_model, data, output = Path(base_model), Path(data), Path(output)
    if output.exists() and not overwrite:  # before the slow part; checked again when publishing
        raise FileExistsError(f"{output} already exists; pass overwrite=True (--overwrite) to replace it")
    records = load_sft_records(data)
    progress = on_progress or (lambda _: None)

    from peft import PeftModel
    from transformers import TrainerCallback

    losses: list[tuple[int, float]] = []

    class _Watch(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            if state.max_steps:
                progress(min(state.global_step / state.max_steps, 1.0))

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
            if logs and "loss" in logs:
                losses.append((state.global_step, float(logs["loss"])))

    started = time.perf_counter()
    with (
        staged_folder(output, existing="replace" if overwrite else "refuse") as stage,
        tempfile.TemporaryDirectory(prefix="adapter-train-") as scratch,
    ):
        trainer = build_trainer(base_model, records, config, output_dir=Path(scratch), callbacks=[_Watch()])
        result = trainer.train()
        train_seconds = time.perf_counter() - started
        # Given a peft_config, the trainer always wraps the base model in a PeftModel.
        assert isinstance(trainer.model, PeftModel)
        trainer.model.save_pretrained(str(stage), safe_serialization=True)
        targets = _finish_adapter_folder(stage, base_model.name)
        card = ModelCard(
            base_model=BaseModelRef(
                name=base_model.name,
                path=str(base_model.resolve()),
                weights_sha256=_weights_sha256(base_model),
            ),
            data=DataRef(path=str(data.resolve()), sha256=file_sha256(data), records=len(records)),
            config=config,
            seed=config.seed,
            command=shlex.join(command if command is not None else sys.argv),
            target_modules=targets,
            steps=trainer.state.global_step,
            epochs=round(float(trainer.state.epoch or 0.0), 4),
            train_loss=float(result.training_loss),
            final_loss=losses[-1][1] if losses else float(result.training_loss),
            loss_history=losses,
            device=_device_name(trainer.args.device.type == "cuda"),
            precision="bf16" if trainer.args.bf16 else "fp32",
            library_versions=library_versions(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            train_seconds=round(train_seconds, 3),
            size_bytes=(stage / ADAPTER_WEIGHTS).stat().st_size,
        )
        card.write(stage)
    progress(1.0)
    logger.info("adapter written to %s (%d steps, final loss %.4f)", output, card.steps, card.final_loss)
    return card


def _check_plain_text_tokenization(tokenizer: Any, prompt: str) -> None:
    # TRL tokenizes prompt-completion text with the tokenizer's plain call; the service encodes without
    # special tokens. A tokenizer that adds a BOS would train on a prompt the service never sends.
    if tokenizer(text=prompt)["input_ids"] != tokenizer.encode(prompt, add_special_tokens=False):
        raise ValueError(
            "this tokenizer adds special tokens to plain text, so the trained prompt would differ from the "
            "served one (the chat template already places them)"
        )


def _finish_adapter_folder(folder: Path, base_name: str) -> list[str]:
    """Cast the weights to bf16 and spell the target modules out; returns them."""
    import torch
    from safetensors.torch import load_file, save_file

    weights_path = folder / ADAPTER_WEIGHTS
    weights = load_file(str(weights_path))

    # The engine runs LoRA weights in its own dtype (bf16 by default); bf16 files are half the size.
    weights = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, str(weights_path), metadata={"format": "pt"})

    modules = {m["module"] for key in weights if (m := LORA_KEY.fullmatch(key))}
    targets = sorted({module.rpartition(".")[2] for module in modules})
    config_path = folder / ADAPTER_CONFIG
    adapter_config = json.loads(config_path.read_text())
    # "all-linear" (or a regex) means "whatever matched on the training model"; the engine and the registry
    # check a concrete list against the base model.
    adapter_config["target_modules"] = targets
    # The folder name, not this machine's path: the registry compares it with the served base model's name.
    adapter_config["base_model_name_or_path"] = base_name
    config_path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
    # PEFT's generic README template says nothing model_card.json does not.
    (folder / "README.md").unlink(missing_ok=True)
    return targets


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    # `datasets` draws a progress bar per preprocessing pass; the caller shows its own progress.
    from datasets.utils import logging as datasets_logging

    was_enabled = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            datasets_logging.enable_progress_bar()


def _weights_sha256(model_dir: Path) -> dict[str, str]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no safetensors weights in {model_dir}")
    return {f.name: file_sha256(f) for f in files}


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def _device_name(cuda: bool) -> str:
    if cuda:
        import torch

        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
