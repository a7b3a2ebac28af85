"""Training: fit the router head on example features (seconds), optionally after fine-tuning the body.

The default keeps the body as shipped and fits only the head (`fit_head`): a logistic regression whose
regularisation is chosen by cross-validation on the examples, blended with a kernel vote of the examples,
a temperature fit on the same cross-validated predictions, and an out-of-scope threshold from each example's
nearest neighbour. ``finetune="setfit"`` first fine-tunes the body contrastively with SetFit (minutes on a
CPU; it did not route better on the public benchmark, see the README).

setfit and datasets are imported inside `train_setfit`: only fine-tuning needs them.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sentence_transformers import SentenceTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback as TqdmCallback

from classifier.data import Example
from classifier.head import MIN_PROBABILITY, LinearHead, RouterHead, calibrate, kernel_votes

logger = logging.getLogger(__name__)

Finetune = Literal["none", "setfit"]
# Share of the probability mass calibration assumes is uncertain: no message is routed with certainty.
LABEL_SMOOTHING = 0.05


@dataclass(frozen=True)
class TrainingConfig:
    """How a classifier is trained. The defaults were chosen on CLINC150's train and validation splits."""

    seed: int = 0
    finetune: Finetune = "none"
    """"none": the body as shipped, only the head is fit; "setfit": contrastive fine-tuning first."""
    body_layers: int | None = None
    """Keep only the body's first layers (None: all)."""
    pooled_layers: tuple[int, ...] | None = None
    """Layers whose mean-pooled states make the features (None: the middle one and the last)."""
    candidates: tuple[tuple[float, float], ...] = ((10.0, 0.5),)
    """(C, blend) pairs cross-validation chooses from when each adapter has about one label: sklearn's
    inverse regularisation strength for the logistic regression, and the weight of the kernel vote against
    it. A label covering a varied domain has several clusters of examples, which the nearest-example vote
    follows and a linear boundary does not."""
    sub_intent_candidates: tuple[tuple[float, float], ...] = ((100.0, 0.0),)
    """The same when adapters have two or more sub-intent labels each on average: each label is then one
    tight cluster, and a weakly regularised linear head separates them best. On CLINC150 (validation
    split, 5 draws) cross-validating over both sets chose worse than this rule: 160 examples tell the
    candidates apart by less than their own noise."""
    kernel_temperature: float = 20.0
    folds: int = 5
    oos_quantile: float = 0.05
    """Share of training examples whose nearest other example is less similar than the out-of-scope
    threshold: about the share of in-scope messages that will look out of scope."""
    num_iterations: int = 20
    num_epochs: int = 1
    batch_size: int = 16


def fit_head(
    features: np.ndarray,
    targets: np.ndarray,
    n_classes: int,
    digests: np.ndarray,
    in_scope: np.ndarray,
    scored: np.ndarray,
    groups: np.ndarray,
    config: TrainingConfig,
    on_progress: Callable[[float], None] | None = None,
) -> RouterHead:
    """The router head for examples with these ``features`` and label indices ``targets``: ``in_scope``
    marks the messages the out-of-scope threshold compares with, ``scored`` those cross-validation judges
    candidates on (both: the examples users wrote, not "none of these" ones or sub-intent names), and
    ``groups`` the group index of each label (sub-intents of one adapter share one): candidates are judged
    on the group they pick, as routing is."""
    report = on_progress or (lambda fraction: None)
    rng = np.random.default_rng(config.seed)
    folds = np.array_split(rng.permutation(len(targets)), min(config.folds, len(targets)))
    # Held-out probabilities of every example under each candidate, one fold at a time; only examples
    # a user wrote are judged (``scored``), not the names of sub-intents added as examples.
    labels_per_group = len(np.unique(targets)) / len(np.unique(groups[targets]))
    candidates = config.sub_intent_candidates if labels_per_group >= 2 else config.candidates
    held_out = {candidate: np.zeros((len(targets), n_classes)) for candidate in candidates}
    regularizations = sorted({c for c, _ in candidates})
    steps = len(folds) * len(regularizations) + 1
    for i, fold in enumerate(folds):
        train = np.setdiff1d(np.arange(len(targets)), fold)
        for j, c in enumerate(regularizations):
            linear, votes = _parts(features[train], targets[train], features[fold], n_classes, c, config)
            for candidate in candidates:
                if candidate[0] == c:
                    held_out[candidate][fold] = (1 - candidate[1]) * linear + candidate[1] * votes
            report((i * len(regularizations) + j + 1) / steps)
    (c, blend), probabilities = max(
        held_out.items(), key=lambda item: _accuracy(item[1][scored], targets[scored], groups)
    )
    temperature = _fit_temperature(probabilities[scored], targets[scored])
    fitted = _fit_linear(features, targets, c, config.seed)
    head = RouterHead(
        linear=LinearHead.from_sklearn(fitted)
        if fitted is not None
        else _uniform(n_classes, features.shape[1]),
        examples=features.astype(np.float32),
        example_labels=targets.astype(np.int64),
        example_digests=digests,
        in_scope=in_scope,
        kernel_temperature=config.kernel_temperature,
        blend=blend,
        calibration=temperature,
        oos_threshold=_oos_threshold(features[in_scope], config.oos_quantile),
    )
    logger.info(
        "head: C=%g, blend %.2f (cross-validated accuracy %.3f), calibration temperature %.2f, "
        "out-of-scope below %.3f",
        c,
        blend,
        _accuracy(probabilities[scored], targets[scored], groups),
        temperature,
        head.oos_threshold,
    )
    report(1.0)
    return head


def _fit_linear(features: np.ndarray, targets: np.ndarray, c: float, seed: int) -> LogisticRegression | None:
    if len(np.unique(targets)) < 2:
        return None
    import warnings

    with warnings.catch_warnings():
        # Few examples in many dimensions separate perfectly; lbfgs then stops at max_iter, close enough.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(features, targets)


def _parts(
    features: np.ndarray,
    targets: np.ndarray,
    query: np.ndarray,
    n_classes: int,
    c: float,
    config: TrainingConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The two parts `RouterHead` blends, for a head fit on (features, targets) only: the logistic
    regression's probabilities and the kernel vote."""
    votes = kernel_votes(query @ features.T, targets, n_classes, config.kernel_temperature)
    linear = np.zeros((len(query), n_classes))
    model = _fit_linear(features, targets, c, config.seed)
    if model is None:
        linear[:, np.unique(targets)] = 1.0
    else:
        linear[:, model.classes_] = model.predict_proba(query)
    return linear, votes


def _accuracy(probabilities: np.ndarray, targets: np.ndarray, groups: np.ndarray) -> float:
    """Share of examples whose most probable group (labels' probabilities summed) is their label's group:
    what routing decides on."""
    summed = np.zeros((len(probabilities), groups.max() + 1))
    np.add.at(summed.T, groups, probabilities.T)
    return float((summed.argmax(axis=1) == groups[targets]).mean())


def _fit_temperature(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """The temperature (0.05 to 20) minimising the held-out cross-entropy against labels smoothed by
    `LABEL_SMOOTHING`. Unsmoothed, a few easy examples that cross-validation gets all right pull the
    temperature to its floor and every probability to 0 or 1, which leaves no confidence to judge by."""
    candidates = np.geomspace(0.05, 20.0, 121)
    smoothed = np.full(probabilities.shape, LABEL_SMOOTHING / probabilities.shape[1])
    smoothed[np.arange(len(targets)), targets] += 1.0 - LABEL_SMOOTHING

    def loss(temperature: float) -> float:
        logs = np.log(np.maximum(calibrate(probabilities, temperature), MIN_PROBABILITY))
        return float(-(smoothed * logs).sum(axis=1).mean())

    return float(min(candidates, key=loss))


def _oos_threshold(in_scope: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of each in-scope example's similarity to its nearest other in-scope example."""
    if len(in_scope) < 2:
        return -1.0
    similarities = in_scope @ in_scope.T
    np.fill_diagonal(similarities, -np.inf)
    return float(np.quantile(similarities.max(axis=1), quantile))


def _uniform(n_classes: int, dim: int) -> LinearHead:
    # Only one in-scope label: the linear part says nothing, the kernel vote decides.
    rows = 1 if n_classes == 2 else n_classes
    return LinearHead(coef=np.zeros((rows, dim)), intercept=np.zeros(rows))


def train_setfit(
    body: SentenceTransformer,
    examples: list[Example],
    labels: list[str],
    config: TrainingConfig,
    on_progress: Callable[[float], None] | None,
) -> None:
    """Fine-tune ``body`` in place, contrastively, on ``examples``."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    index = {label: i for i, label in enumerate(labels)}
    # Built directly rather than with SetFitModel.from_pretrained, which looks for a pickled head.
    model = SetFitModel(model_body=body, model_head=LogisticRegression(), labels=labels)
    texts, targets = [e.text for e in examples], [index[e.label] for e in examples]
    dataset = Dataset.from_dict({"text": texts, "label": targets})
    callbacks = [FractionCallback(on_progress)] if on_progress else None
    # The trainer insists on an output folder; a throwaway one keeps the working directory clean.
    with tempfile.TemporaryDirectory(prefix="setfit-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            batch_size=config.batch_size,
            num_epochs=config.num_epochs,
            num_iterations=config.num_iterations,
            seed=config.seed,
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
            "fine-tuning on %d examples of %d labels (%d iterations, %d epochs)",
            len(examples),
            len(labels),
            config.num_iterations,
            config.num_epochs,
        )
        trainer.train()
    body.eval()


class FractionCallback(TrainerCallback):
    """Reports the fraction of training done, for progress bars."""

    def __init__(self, report: Callable[[float], None]) -> None:
        self.report = report

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.report(0.0)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.max_steps:
            self.report(state.global_step / state.max_steps)
