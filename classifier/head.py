"""The logistic-regression head as plain arrays: applied with numpy, stored as safetensors (never pickle)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression

HEAD_FORMAT = "lora-router-linear-head"
TENSOR_NAMES = {"coef", "intercept", "classes"}


@dataclass(frozen=True, eq=False)
class LinearHead:
    """Weights of a fitted sklearn `LogisticRegression` whose classes are the label indices ``0..n-1``.

    ``coef`` has one row per label (softmax over rows), except for two labels, where sklearn keeps a single
    row that scores label 1 against label 0 (sigmoid); ``predict_proba`` follows sklearn in both cases.
    """

    coef: np.ndarray
    intercept: np.ndarray

    def __post_init__(self) -> None:
        if self.coef.ndim != 2 or self.intercept.shape != (self.coef.shape[0],) or self.coef.shape[0] == 2:
            raise ValueError(
                f"head shapes do not fit a logistic regression: coef {self.coef.shape}, "
                f"intercept {self.intercept.shape}"
            )

    @classmethod
    def from_sklearn(cls, model: LogisticRegression) -> LinearHead:
        classes = np.asarray(model.classes_)
        if not np.array_equal(classes, np.arange(len(classes))):
            raise ValueError(f"head classes must be the label indices 0..n-1, got {classes.tolist()}")
        coef, intercept = np.asarray(model.coef_, np.float64), np.asarray(model.intercept_, np.float64)
        return cls(coef=coef, intercept=intercept)

    @property
    def n_classes(self) -> int:
        return 2 if self.coef.shape[0] == 1 else self.coef.shape[0]

    @property
    def dim(self) -> int:
        return self.coef.shape[1]

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), equal to sklearn's ``predict_proba``."""
        # float64 like sklearn, so the numbers match its own to rounding.
        z = embeddings.astype(np.float64, copy=False) @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:
            with np.errstate(over="ignore"):  # exp overflow -> inf -> probability 0, which is right
                p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.column_stack([1.0 - p1, p1])
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def save(self, path: Path) -> None:
        tensors = {
            # safetensors writes an array's memory as is: a Fortran-ordered coef (sklearn's multinomial
            # solvers return one) would come back transposed-scrambled without this.
            "coef": np.ascontiguousarray(self.coef),
            "intercept": np.ascontiguousarray(self.intercept),
            "classes": np.arange(self.n_classes),
        }
        save_file(tensors, str(path), metadata={"format": HEAD_FORMAT})

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        """Read a head written by `save`; ValueError if the tensors are not what `save` writes."""
        tensors = load_file(str(path))
        if set(tensors) != TENSOR_NAMES:
            raise ValueError(f"expected tensors {sorted(TENSOR_NAMES)}, found {sorted(tensors)}")
        coef, intercept, classes = tensors["coef"], tensors["intercept"], tensors["classes"]
        if coef.dtype != np.float64 or intercept.dtype != np.float64:
            raise ValueError(f"coef and intercept must be float64, found {coef.dtype} and {intercept.dtype}")
        head = cls(coef=coef, intercept=intercept)
        if not np.array_equal(classes, np.arange(head.n_classes)):
            raise ValueError(f"classes must be 0..{head.n_classes - 1} in order, found {classes.tolist()}")
        return head
