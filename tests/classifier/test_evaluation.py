"""`build_report` on made-up predictions whose metrics are worked out by hand below; the report's outputs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from classifier import EvalReport, build_report

LABELS = ["chat", "math", "sql"]
# true label, probabilities (chat, math, sql)      -> predicted, top probability
CASES = [
    ("sql", [0.10, 0.10, 0.80]),  # sql  0.80  right
    ("sql", [0.20, 0.50, 0.30]),  # math 0.50  wrong
    ("math", [0.10, 0.60, 0.30]),  # math 0.60  right
    ("chat", [0.90, 0.05, 0.05]),  # chat 0.90  right
    ("chat", [0.45, 0.20, 0.35]),  # chat 0.45  right
    ("math", [0.20, 0.20, 0.60]),  # sql  0.60  wrong
]
TRUE = [label for label, _ in CASES]
PROBAS = np.array([p for _, p in CASES])


@pytest.fixture
def report() -> EvalReport:
    return build_report(TRUE, PROBAS, LABELS)


def test_accuracy_confusion_and_per_label_metrics(report: EvalReport) -> None:
    assert report.count == 6
    assert report.accuracy == pytest.approx(4 / 6)
    # rows = true (chat, math, sql), columns = predicted
    assert report.confusion == [[2, 0, 0], [0, 1, 1], [0, 1, 1]]
    per_label = {m.label: (m.precision, m.recall, m.f1, m.support) for m in report.per_label}
    assert per_label["chat"] == (1.0, 1.0, 1.0, 2)
    assert per_label["math"] == pytest.approx((0.5, 0.5, 0.5, 2))
    assert per_label["sql"] == pytest.approx((0.5, 0.5, 0.5, 2))
    assert report.macro_f1 == pytest.approx(2 / 3)


def test_true_labels_unknown_to_the_model_get_their_own_row() -> None:
    report = build_report(["chat", "sql"], np.array([[0.4, 0.6], [0.3, 0.7]]), ["math", "sql"])
    assert report.labels == ["math", "sql", "chat"]
    assert report.confusion == [[0, 0, 0], [0, 1, 0], [0, 1, 0]]
    assert report.accuracy == 0.5
    # math is neither true nor predicted anywhere, so (like sklearn) it is left out of the macro average.
    assert report.macro_f1 == pytest.approx(f1_score(["chat", "sql"], ["sql", "sql"], average="macro"))
    assert report.macro_f1 == pytest.approx((2 / 3 + 0) / 2)


def test_macro_f1_matches_sklearn(report: EvalReport) -> None:
    predicted = [LABELS[i] for i in PROBAS.argmax(axis=1)]
    assert report.macro_f1 == pytest.approx(f1_score(TRUE, predicted, average="macro"))


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        build_report(TRUE, PROBAS[:, :2], LABELS)
    with pytest.raises(ValueError, match="at least one message"):
        build_report([], np.empty((0, 3)), LABELS)


def test_json_round_trips(report: EvalReport) -> None:
    data = json.loads(report.to_json())
    assert data["accuracy"] == pytest.approx(4 / 6)
    assert data["confusion"] == report.confusion
    assert data["per_label"][0] == {"label": "chat", "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}


def test_text_shows_metrics_and_matrix(report: EvalReport) -> None:
    text = report.to_text()
    assert "accuracy: 0.667" in text and "macro-F1: 0.667" in text
    matrix = text.split("rows = true, columns = predicted)\n")[1].splitlines()
    assert matrix[0].split() == LABELS
    assert matrix[2].split() == ["math", "0", "1", "1"]


def test_confusion_png_is_a_valid_png(report: EvalReport, tmp_path: Path) -> None:
    path = tmp_path / "confusion.png"
    report.save_confusion_png(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 200 and height > 200
    assert data[-8:-4] == b"IEND"
