"""One small adapter, really trained on sql examples, shared by the training, merge and CLI tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from experts.tasks import TASKS, write_jsonl
from experts.training import AdapterTrainConfig, ModelCard, train_adapter

# A few steps on short sequences: enough to move every LoRA weight, cheap on a 2-core CPU.
TINY = AdapterTrainConfig(
    rank=4,
    alpha=16,
    max_steps=3,
    batch_size=4,
    max_length=256,
    learning_rate=1e-3,
    warmup_ratio=0.0,
    logging_steps=1,
)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Train with one thread: the two cores are shared with the engine process and other work, and two
    threads contending for them measured several times slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class TrainedAdapter:
    path: Path
    card: ModelCard
    data: Path


@pytest.fixture(scope="session")
def sql_train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(
        TASKS["sql"].examples("train", 16, seed=0), tmp_path_factory.mktemp("data") / "sql.jsonl"
    )


@pytest.fixture(scope="session")
def trained_adapter(
    base_model_dir: Path, sql_train_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> TrainedAdapter:
    """Read-only for tests: copy before mutating."""
    output = tmp_path_factory.mktemp("trained") / "sql-expert"
    with one_torch_thread():
        card = train_adapter(base_model_dir, sql_train_file, output, TINY, command=["train", "sql"])
    return TrainedAdapter(path=output, card=card, data=sql_train_file)
