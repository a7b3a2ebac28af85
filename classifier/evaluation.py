"""Evaluation of a classifier on labelled messages: accuracy, macro-F1, per-label scores, confusion matrix.

These are the classifier's own numbers (top label against true label). What the router answers, with its
fallback rules on top, is the router's evaluation under its live policy.

`build_report` is a pure function of true labels and probabilities, so the numbers can be checked by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LabelMetrics:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvalReport:
    """Metrics of one evaluation. ``labels`` are the confusion matrix axes (rows = true, columns = predicted):
    the classifier's labels, then any true label it does not know (such messages can never be routed right).
    """

    count: int
    accuracy: float
    macro_f1: float
    labels: list[str]
    per_label: list[LabelMetrics]
    confusion: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        width = max(8, *(len(label) for label in self.labels))
        lines = [
            f"messages: {self.count}   accuracy: {self.accuracy:.3f}   macro-F1: {self.macro_f1:.3f}",
            "",
            f"{'label':<{width}}  precision  recall      f1  support",
        ]
        for m in self.per_label:
            scores = f"{m.precision:9.3f}  {m.recall:6.3f}  {m.f1:6.3f}"
            lines.append(f"{m.label:<{width}}  {scores}  {m.support:7d}")
        cell = max(5, width)
        lines += ["", "confusion matrix (rows = true, columns = predicted)"]
        lines.append(" " * width + "".join(f"  {label:>{cell}}" for label in self.labels))
        for label, counts in zip(self.labels, self.confusion, strict=True):
            lines.append(f"{label:<{width}}" + "".join(f"  {n:>{cell}d}" for n in counts))
        return "\n".join(lines) + "\n"

    def save_confusion_png(self, path: Path) -> None:
        """Write the confusion matrix as an annotated heatmap."""
        # Figure + Agg canvas, not pyplot: no global backend or figure state, safe inside a server.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        matrix = np.array(self.confusion)
        size = 2.5 + 0.7 * len(self.labels)
        figure = Figure(figsize=(size + 1, size))
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        image = ax.imshow(matrix, cmap="Blues", vmin=0)
        figure.colorbar(image, ax=ax)
        ticks = range(len(self.labels))
        ax.set_xticks(ticks, self.labels, rotation=45, ha="right")
        ax.set_yticks(ticks, self.labels)
        ax.set_xlabel("predicted label")
        ax.set_ylabel("true label")
        ax.set_title(f"Intent classifier: accuracy {self.accuracy:.1%} on {self.count} messages")
        dark = matrix.max() / 2
        for (i, j), n in np.ndenumerate(matrix):
            ax.text(j, i, str(n), ha="center", va="center", color="white" if n > dark else "black")
        figure.tight_layout()
        figure.savefig(path, format="png", dpi=120)


def build_report(
    true_labels: Sequence[str],
    probas: np.ndarray,
    labels: Sequence[str],
) -> EvalReport:
    """Metrics for messages with ``true_labels`` given ``probas`` (row per message, columns = ``labels``)."""
    if probas.shape != (len(true_labels), len(labels)) or not len(true_labels):
        raise ValueError(
            f"probas must have shape (messages, labels) = ({len(true_labels)}, {len(labels)}) with at least "
            f"one message, got {probas.shape}"
        )
    axis = [*labels, *sorted(set(true_labels) - set(labels))]
    position = {label: i for i, label in enumerate(axis)}
    true = np.array([position[label] for label in true_labels])
    predicted = probas.argmax(axis=1)
    confusion = np.zeros((len(axis), len(axis)), dtype=np.int64)
    np.add.at(confusion, (true, predicted), 1)
    correct = true == predicted

    hits = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    precision = _ratio(hits, predicted_count)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    # Like sklearn's default: average over the labels that occur as truth or as prediction.
    present = (support + predicted_count) > 0
    return EvalReport(
        count=len(true_labels),
        accuracy=float(correct.mean()),
        macro_f1=float(f1[present].mean()),
        labels=axis,
        per_label=[
            LabelMetrics(label, float(p), float(r), float(f), int(s))
            for label, p, r, f, s in zip(axis, precision, recall, f1, support, strict=True)
        ],
        confusion=confusion.tolist(),
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise division that is 0 where the denominator is 0 (sklearn's ``zero_division=0``)."""
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, 0.0)
