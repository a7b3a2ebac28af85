"""The numpy head reproduces sklearn's LogisticRegression.predict_proba and survives safetensors storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from sklearn.linear_model import LogisticRegression

from classifier.head import LinearHead


def fitted(n_classes: int, *, seed: int = 0, dim: int = 16) -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, dim))
    y = np.repeat(np.arange(n_classes), 10)
    x = (centers[y] + rng.normal(scale=0.8, size=(len(y), dim))).astype(np.float32)
    return LogisticRegression().fit(x, y), x


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_numpy_head_equals_sklearn(n_classes: int) -> None:
    model, x = fitted(n_classes)
    head = LinearHead.from_sklearn(model)
    assert head.n_classes == n_classes
    np.testing.assert_allclose(head.predict_proba(x), model.predict_proba(x), rtol=0, atol=1e-6)


def test_binary_head_saturates_without_nan() -> None:
    head = LinearHead(coef=np.array([[1.0]]), intercept=np.array([0.0]))
    probas = head.predict_proba(np.array([[-1000.0], [1000.0]]))
    np.testing.assert_array_equal(probas, [[1.0, 0.0], [0.0, 1.0]])


def test_head_refuses_string_classes() -> None:
    model = LogisticRegression().fit(np.eye(2), ["a", "b"])
    with pytest.raises(ValueError, match="label indices"):
        LinearHead.from_sklearn(model)


def test_head_refuses_shapes_no_logistic_regression_makes() -> None:
    with pytest.raises(ValueError, match="head shapes"):
        LinearHead(coef=np.zeros((2, 4)), intercept=np.zeros(2))
    with pytest.raises(ValueError, match="head shapes"):
        LinearHead(coef=np.zeros((3, 4)), intercept=np.zeros(2))


@pytest.mark.parametrize("order", ["C", "F"])
def test_save_load_round_trip_any_memory_order(tmp_path: Path, order: str) -> None:
    coef = np.asarray(np.arange(12, dtype=np.float64).reshape(3, 4), order=order)
    head = LinearHead(coef=coef, intercept=np.array([0.1, 0.2, 0.3]))
    head.save(tmp_path / "head.safetensors")
    loaded = LinearHead.load(tmp_path / "head.safetensors")
    np.testing.assert_array_equal(loaded.coef, coef)
    np.testing.assert_array_equal(loaded.intercept, head.intercept)


@pytest.mark.parametrize(
    ("tensors", "says"),
    [
        ({"coef": np.zeros((3, 4)), "intercept": np.zeros(3)}, "expected tensors"),
        (
            {"coef": np.zeros((3, 4), np.float32), "intercept": np.zeros(3), "classes": np.arange(3)},
            "float64",
        ),
        ({"coef": np.zeros((3, 4)), "intercept": np.zeros(3), "classes": np.array([0, 2, 1])}, "classes"),
        ({"coef": np.zeros((1, 4)), "intercept": np.zeros(1), "classes": np.arange(3)}, "classes"),
    ],
)
def test_load_refuses_unexpected_tensors(tmp_path: Path, tensors: dict[str, np.ndarray], says: str) -> None:
    save_file(tensors, str(tmp_path / "head.safetensors"))
    with pytest.raises(ValueError, match=says):
        LinearHead.load(tmp_path / "head.safetensors")
