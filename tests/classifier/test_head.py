"""The numpy head: its regression reproduces sklearn's predict_proba, its kernel vote and calibration are
what they say, and it survives safetensors storage (and refuses what storage would not write)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression

from classifier.head import LinearHead, RouterHead, calibrate, kernel_votes


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


def router_head(*, order: str = "C", n_classes: int = 3, seed: int = 0) -> RouterHead:
    rng = np.random.default_rng(seed)
    examples = rng.normal(size=(7, 4)).astype(np.float32)
    examples /= np.linalg.norm(examples, axis=1, keepdims=True)
    rows = 1 if n_classes == 2 else n_classes
    coef = np.asarray(rng.normal(size=(rows, 4)), order=order)
    return RouterHead(
        linear=LinearHead(coef=coef, intercept=rng.normal(size=rows)),
        examples=examples,
        example_labels=np.array([0, 0, 1, 1, 2, 2, 2])[:7] % n_classes,
        example_digests=rng.integers(0, 256, size=(7, 32), dtype=np.uint8),
        in_scope=np.array([True, True, True, True, True, False, False]),
        kernel_temperature=20.0,
        blend=0.5,
        calibration=0.7,
        oos_threshold=0.31,
    )


@pytest.mark.parametrize("order", ["C", "F"])
def test_router_head_round_trip_any_memory_order(tmp_path: Path, order: str) -> None:
    head = router_head(order=order)
    head.save(tmp_path / "head.safetensors")
    loaded = RouterHead.load(tmp_path / "head.safetensors")
    np.testing.assert_array_equal(loaded.linear.coef, head.linear.coef)
    for name in ("examples", "example_labels", "example_digests", "in_scope"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(head, name))
    assert (loaded.kernel_temperature, loaded.blend, loaded.calibration, loaded.oos_threshold) == (
        20.0,
        0.5,
        0.7,
        0.31,
    )
    probe = np.random.default_rng(1).normal(size=(5, 4))
    np.testing.assert_array_equal(loaded.predict_proba(probe), head.predict_proba(probe))


def test_kernel_votes_average_each_labels_examples() -> None:
    similarities = np.array([[1.0, 0.5, 0.0]])
    votes = kernel_votes(similarities, np.array([0, 0, 1]), 3, temperature=2.0)
    raw = [(1.0 + np.exp(-1.0)) / 2, np.exp(-2.0), 0.0]  # the third label has no example: no vote
    np.testing.assert_allclose(votes[0], np.array(raw) / sum(raw))


def test_calibration_temperature_one_changes_nothing_and_others_keep_the_order() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    np.testing.assert_allclose(calibrate(p, 1.0), p)
    sharp, soft = calibrate(p, 0.5), calibrate(p, 2.0)
    assert (sharp.argmax(axis=1) == soft.argmax(axis=1)).all()
    assert (sharp.max(axis=1) > p.max(axis=1)).all() and (soft.max(axis=1) < p.max(axis=1)).all()


def test_similarity_ignores_examples_out_of_scope() -> None:
    head = router_head()
    probe = head.examples[[5, 0]]  # an out-of-scope example, then an in-scope one
    similarity = head.similarity(probe)
    assert similarity[1] == pytest.approx(1.0, abs=1e-6)
    assert similarity[0] == pytest.approx((head.examples[5] @ head.examples[:5].T).max(), abs=1e-6)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda t, m: t.pop("in_scope"), "expected tensors"),
        (lambda t, m: t.update(coef=t["coef"].astype(np.float32)), "float64"),
        (lambda t, m: t.update(examples=t["examples"].astype(np.float64)), "examples must be float32"),
        (lambda t, m: t.update(example_labels=np.full(7, 9)), "example labels must index"),
        (lambda t, m: t.update(settings=t["settings"][:-1]), "settings missing"),
        (lambda t, m: t["settings"].__setitem__(2, np.nan), "finite"),
        (lambda t, m: m.update(format="something else"), "not a"),
    ],
)
def test_load_refuses_what_save_does_not_write(tmp_path: Path, change, says: str) -> None:  # noqa: ANN001
    head = router_head()
    head.save(tmp_path / "good.safetensors")
    tensors = load_file(str(tmp_path / "good.safetensors"))
    with safe_open(str(tmp_path / "good.safetensors"), framework="numpy") as f:
        metadata = dict(f.metadata())
    change(tensors, metadata)
    save_file(tensors, str(tmp_path / "head.safetensors"), metadata=metadata)
    with pytest.raises(ValueError, match=says):
        RouterHead.load(tmp_path / "head.safetensors")
