"""SetFit training: contrastive fine-tuning of the sentence-embedding body, then a logistic-regression head.

setfit and datasets are imported inside `train_setfit`: only training needs them,
and a router that just loads a classifier should not pay for their import.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentence_transformers import SentenceTransformer
from sklearn.linear_model import LogisticRegression
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback as TqdmCallback

from classifier.data import Example
from classifier.head import LinearHead
from classifier.onnx_body import truncate_layers

logger = logging.getLogger(__name__)

# Share of the progress bar given to fine-tuning the body; fitting the head is quick and takes the rest.
BODY_SHARE = 0.95


def train_setfit(
    examples: list[Example],
    labels: list[str],
    *,
    body_path: Path,
    seed: int,
    num_iterations: int,
    num_epochs: int,
    batch_size: int,
    body_layers: int | None,
    device: str | None,
    on_progress: Callable[[float], None] | None,
) -> tuple[SentenceTransformer, LinearHead]:
    """Fine-tune a copy of the body at ``body_path`` on ``examples``; the head's classes index ``labels``."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    index = {label: i for i, label in enumerate(labels)}
    body = SentenceTransformer(str(body_path), device=device, local_files_only=True)
    if body_layers is not None:
        truncate_layers(body, body_layers)
    # Built directly rather than with SetFitModel.from_pretrained, which looks for a pickled head.
    model = SetFitModel(model_body=body, model_head=LogisticRegression(), labels=labels)
    texts, targets = [e.text for e in examples], [index[e.label] for e in examples]
    dataset = Dataset.from_dict({"text": texts, "label": targets})
    callbacks = [FractionCallback(on_progress)] if on_progress else None
    # The trainer insists on an output folder; a throwaway one keeps the working directory clean.
    with tempfile.TemporaryDirectory(prefix="setfit-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            batch_size=batch_size,
            num_epochs=num_epochs,
            num_iterations=num_iterations,
            seed=seed,
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            show_progress_bar=False,
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=callbacks)
        # setfit does not pass these on to the sentence-transformers trainer that fine-tunes the body:
        # left alone, it draws a tqdm bar (callers have on_progress) and warns about pinned memory on CPU.
        trainer.st_trainer.remove_callback(TqdmCallback)
        trainer.st_trainer.args.dataloader_pin_memory = body.device.type == "cuda"
        logger.info(
            "training on %d examples of %d labels (%d iterations, %d epochs)",
            len(examples),
            len(labels),
            num_iterations,
            num_epochs,
        )
        trainer.train()
    if on_progress:
        on_progress(1.0)
    return model.model_body, LinearHead.from_sklearn(model.model_head)


class FractionCallback(TrainerCallback):
    """Reports the fraction of training done, for progress bars."""

    def __init__(self, report: Callable[[float], None]) -> None:
        self.report = report

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.report(0.0)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.max_steps:
            self.report(BODY_SHARE * state.global_step / state.max_steps)
