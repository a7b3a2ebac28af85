"""The real classifier: training, predictions, the features and head against independent computations, the
fast path against the torch one, safe save/load."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from classifier import (
    OUT_OF_SCOPE_LABEL,
    ArtifactError,
    ArtifactFormatError,
    Example,
    IntentClassifier,
    TrainingConfig,
    TrainingDataError,
    default_body_path,
)
from classifier.artifact import MANIFEST
from classifier.head import LinearHead
from classifier.model import sub_intent_names
from tests.classifier.artifacts import resign
from tests.classifier.conftest import HELD_OUT


def copy_of(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "copy"))


def refused(path: Path, *says: str) -> ArtifactError:
    with pytest.raises(ArtifactError) as caught:
        IntentClassifier.from_pretrained(path)
    for text in says:
        assert text in caught.value.message
    return caught.value


def test_labels_are_sorted_and_stored_with_training_metadata(trained: IntentClassifier) -> None:
    assert trained.labels == ["chat", "math", "sql"]
    meta = trained.metadata
    assert (meta["config"]["seed"], meta["config"]["finetune"], meta["example_count"]) == (7, "none", 24)
    assert meta["label_counts"] == {"chat": 8, "math": 8, "sql": 8}
    assert meta["encoded"] == 24
    assert {"sentence-transformers", "torch", "scikit-learn", "onnxruntime"} <= meta["versions"].keys()
    assert trained.content_hash is None


def test_progress_runs_from_zero_to_one(trained: IntentClassifier, progress: list[float]) -> None:
    assert progress[-1] == 1.0
    assert progress == sorted(progress) and len(progress) > 3


def test_held_out_obvious_messages_are_classified_right(trained: IntentClassifier) -> None:
    texts, expected = zip(*HELD_OUT, strict=True)
    assert trained.predict(list(texts)) == list(expected)
    assert trained.predict(texts[0]) == expected[0]


def test_shapes_for_string_and_list(trained: IntentClassifier) -> None:
    one = trained.predict_proba("what is 3 plus 4")
    many = trained.predict_proba(["what is 3 plus 4", "hello", "select 1"])
    assert one.shape == (3,) and many.shape == (3, 3)
    assert one.dtype == np.float64
    np.testing.assert_allclose(many.sum(axis=1), 1.0, atol=1e-12)
    assert one.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(many[0], one, atol=1e-6)
    assert isinstance(trained.predict("hello"), str)
    assert trained.predict([]) == [] and trained.predict_proba([]).shape == (0, 3)


def test_scores_name_every_label(trained: IntentClassifier) -> None:
    scores = trained.scores("compute 17 times 3")
    assert list(scores) == trained.labels
    assert max(scores, key=scores.get) == "math"
    assert sum(scores.values()) == pytest.approx(1.0)


def test_features_are_the_pooled_layers_of_the_body(trained: IntentClassifier) -> None:
    """Computed again from transformers' own hidden states: the mean over real tokens of layers 3 and 6,
    each normalised, concatenated and normalised."""
    from transformers import AutoModel, AutoTokenizer

    body = default_body_path()
    tokenizer, model = AutoTokenizer.from_pretrained(body), AutoModel.from_pretrained(body).eval()
    texts = [text for text, _ in HELD_OUT] * 7  # more than one encode batch, mixed lengths
    tokens = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**tokens, output_hidden_states=True).hidden_states
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    parts = [torch.nn.functional.normalize((hidden[n] * mask).sum(1) / mask.sum(1), dim=-1) for n in (3, 6)]
    expected = torch.nn.functional.normalize(torch.cat(parts, dim=-1), dim=-1).numpy()
    assert trained.encoder.pooled_layers == (3, 6)
    np.testing.assert_allclose(trained.encode(texts), expected, atol=1e-5)


def test_probabilities_blend_the_regression_and_the_examples_vote(trained: IntentClassifier) -> None:
    """The head's probabilities, from its stored parts: (1 - w)·logistic regression + w·kernel vote of the
    training examples, then the calibration temperature."""
    head = trained.head
    features = trained.encode([text for text, _ in HELD_OUT])
    weights = np.exp(head.kernel_temperature * (features @ head.examples.T - 1.0))
    votes = np.stack([weights[:, head.example_labels == i].mean(axis=1) for i in range(3)], axis=1)
    votes /= votes.sum(axis=1, keepdims=True)
    blend = (1 - head.blend) * head.linear.predict_proba(features) + head.blend * votes
    logits = np.log(blend) / head.calibration
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(head.predict_proba(features), expected, atol=1e-9)
    assert head.calibration > 0 and head.blend in (0.0, 0.5)


@pytest.mark.parametrize("n_labels", [2, 3])
def test_numpy_head_equals_sklearn_on_real_features(
    trained: IntentClassifier, training_examples: list[Example], n_labels: int
) -> None:
    examples = [e for e in training_examples if e.label in trained.labels[:n_labels]]
    x = trained.encode([e.text for e in examples])
    y = [trained.labels.index(e.label) for e in examples]
    sklearn_head = LogisticRegression().fit(x, y)
    probe = trained.encode([text for text, _ in HELD_OUT])
    np.testing.assert_allclose(
        LinearHead.from_sklearn(sklearn_head).predict_proba(probe),
        sklearn_head.predict_proba(probe),
        atol=1e-6,
    )


def test_similarity_is_to_the_nearest_in_scope_example(trained: IntentClassifier) -> None:
    texts = ["select all rows from the users table", "what is the weather like in Paris tomorrow?"]
    features = trained.encode(texts)
    expected = (features @ trained.head.examples.T).max(axis=1)
    np.testing.assert_allclose(trained.similarity(texts), expected, atol=1e-6)
    assert trained.similarity(texts)[0] == pytest.approx(1.0, abs=1e-5)  # a training example itself
    assert (
        trained.classify(texts[1]).similarity < trained.oos_threshold < trained.classify(texts[0]).similarity
    )


def test_same_config_trains_the_same_model() -> None:
    examples = [Example(t, "sql") for t in ("select 1", "drop table t", "join a b")] + [
        Example(t, "chat") for t in ("hi", "hello there", "how are you")
    ]
    first, second = (IntentClassifier.train(examples, config=TrainingConfig(seed=3)) for _ in range(2))
    probe = ["select * from users", "hey"]
    np.testing.assert_allclose(first.predict_proba(probe), second.predict_proba(probe), atol=1e-9)


def test_warm_start_encodes_only_new_texts_and_trains_the_same_head(
    trained: IntentClassifier, training_examples: list[Example]
) -> None:
    more = [*training_examples, Example("what is 9 squared", "math"), Example("howdy partner", "chat")]
    warm = IntentClassifier.train(more, config=TrainingConfig(seed=7), warm_start=trained)
    cold = IntentClassifier.train(more, config=TrainingConfig(seed=7))
    assert (warm.metadata["encoded"], cold.metadata["encoded"]) == (2, 26)
    assert warm.encoder is trained.encoder
    probe = [text for text, _ in HELD_OUT]
    np.testing.assert_allclose(warm.predict_proba(probe), cold.predict_proba(probe), atol=1e-5)


def test_sub_intents_train_under_their_own_labels_with_their_names(training_examples: list[Example]) -> None:
    examples = [
        Example(e.text, "sql/joins" if "join" in e.text else "sql/queries") if e.label == "sql" else e
        for e in training_examples
    ] + [Example("how do I join three tables", "sql/joins")]
    classifier = IntentClassifier.train(examples, config=TrainingConfig(seed=7))
    assert classifier.labels == ["chat", "math", "sql/joins", "sql/queries"]
    # Each sub-intent's name is one more example of it; the names are not what similarity compares with.
    names = sub_intent_names(examples)
    assert names == [Example("joins", "sql/joins"), Example("queries", "sql/queries")]
    assert len(classifier.head.examples) == len(examples) + 2
    assert classifier.head.in_scope.sum() == len(examples)
    assert classifier.predict("inner join orders and customers") == "sql/joins"


def test_none_examples_teach_out_of_scope_and_are_not_compared_with(training_examples: list[Example]) -> None:
    none = ["what's the weather tomorrow", "book me a flight to Rome", "play some jazz music"]
    examples = training_examples + [Example(text, OUT_OF_SCOPE_LABEL) for text in none]
    classifier = IntentClassifier.train(examples, config=TrainingConfig(seed=7))
    assert OUT_OF_SCOPE_LABEL in classifier.labels
    assert classifier.head.in_scope.tolist() == [True] * len(training_examples) + [False] * len(none)
    assert classifier.predict("will it rain in Paris tomorrow?") == OUT_OF_SCOPE_LABEL
    # A "none" example itself is far from every in-scope one: similarity ignores the "none" examples.
    assert classifier.similarity([none[0]])[0] < 0.9


def test_out_of_scope_threshold_is_the_quantile_of_nearest_neighbours(trained: IntentClassifier) -> None:
    examples = trained.head.examples[trained.head.in_scope]
    similarities = examples @ examples.T
    np.fill_diagonal(similarities, -np.inf)
    expected = np.quantile(similarities.max(axis=1), TrainingConfig().oos_quantile)
    assert trained.oos_threshold == pytest.approx(expected, abs=1e-6)


def test_setfit_fine_tuning_stays_available(training_examples: list[Example]) -> None:
    config = TrainingConfig(seed=7, finetune="setfit", num_iterations=1)
    tuned = IntentClassifier.train(training_examples, config=config)
    assert tuned.encoder.fingerprint is None and tuned.cached_features() == {}
    texts, expected = zip(*HELD_OUT, strict=True)
    assert tuned.predict(list(texts)) == list(expected)
    # A later training does not take features from a fine-tuned body.
    again = IntentClassifier.train(training_examples, config=TrainingConfig(seed=7), warm_start=tuned)
    assert again.metadata["encoded"] == len(training_examples) and again.encoder is not tuned.encoder


def test_bad_training_data_is_refused_before_training() -> None:
    with pytest.raises(TrainingDataError) as caught:
        IntentClassifier.train(
            [Example("hi", "chat"), Example("hello", "chat")], body_path=Path("/nonexistent")
        )
    assert caught.value.param == "labels"


def test_round_trip_gives_identical_probabilities_and_hash(
    trained: IntentClassifier, saved: Path, tmp_path: Path
) -> None:
    loaded = IntentClassifier.from_pretrained(saved, backend="torch")
    texts = [text for text, _ in HELD_OUT]
    np.testing.assert_allclose(loaded.predict_proba(texts), trained.predict_proba(texts), atol=1e-12)
    assert loaded.labels == trained.labels
    assert loaded.metadata == trained.metadata
    assert (
        loaded.content_hash
        == trained.content_hash
        == json.loads((saved / MANIFEST).read_text())["content_hash"]
    )
    # Saving is deterministic: the loaded model saves to the very same bytes.
    assert loaded.save_pretrained(tmp_path / "again") == loaded.content_hash


def test_saved_folder_holds_no_pickle(saved: Path) -> None:
    names = {p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file()}
    assert {
        "head.safetensors",
        "classifier.json",
        MANIFEST,
        "body/model.safetensors",
        "body/modules.json",
    } <= names
    assert not [n for n in names if n.endswith((".pkl", ".bin", ".pt", ".pth", ".joblib", ".pickle"))]


def test_tampered_weights_are_refused_naming_the_file(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    weights = folder / "body" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    refused(folder, "body/model.safetensors", "does not match its sha256")


def test_tampered_labels_are_refused_naming_the_file(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    config = folder / "classifier.json"
    config.write_text(config.read_text().replace('"sql"', '"admin"'))
    refused(folder, "classifier.json")


class RunsShell:
    """Unpickling this runs a shell command: what a malicious model_head.pkl would do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (self.command,)


def test_planted_pickle_is_refused_unopened(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    marker = tmp_path / "pwned"
    (folder / "model_head.pkl").write_bytes(pickle.dumps(RunsShell(f"touch {marker}")))
    refused(folder, "model_head.pkl", "pickle")
    assert not marker.exists()
    # The planted file would indeed have run the command; it is the loader that never opened it.
    pickle.loads((folder / "model_head.pkl").read_bytes())
    assert marker.exists()


def test_pickle_listed_in_a_valid_manifest_is_still_refused(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    (folder / "body" / "pytorch_model.bin").write_bytes(b"not even a pickle")
    refused(resign(folder), "body/pytorch_model.bin")


def test_missing_manifest_is_refused(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    (folder / MANIFEST).unlink()
    refused(folder, MANIFEST, "missing")


def test_labels_disagreeing_with_head_are_refused(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    config_path = folder / "classifier.json"
    config = json.loads(config_path.read_text())
    config["labels"].append("extra")
    config_path.write_text(json.dumps(config))
    refused(resign(folder), "head.safetensors has 3 classes", "4 labels")


def test_foreign_module_in_body_is_refused(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    modules_path = folder / "body" / "modules.json"
    modules = json.loads(modules_path.read_text())
    modules[-1]["type"] = "os.system"
    modules_path.write_text(json.dumps(modules))
    refused(resign(folder), "body/modules.json", "'os.system'")


def test_evaluate_uses_the_models_predictions(trained: IntentClassifier) -> None:
    examples = [Example(text, label) for text, label in HELD_OUT]
    report = trained.evaluate(examples)
    assert report.count == len(HELD_OUT) and report.accuracy == 1.0
    assert report.labels == trained.labels
    assert sum(report.confusion[i][i] for i in range(len(report.labels))) == len(HELD_OUT)


def test_classify_all_is_classify_one_by_one(trained: IntentClassifier) -> None:
    texts = [text for text, _ in HELD_OUT]
    together = trained.classify_all(texts)
    for text, batched in zip(texts, together, strict=True):
        alone = trained.classify(text)
        np.testing.assert_allclose(batched.probabilities, alone.probabilities, atol=1e-5)
        assert batched.similarity == pytest.approx(alone.similarity, abs=1e-5)


def test_onnx_body_encodes_like_the_torch_body(trained: IntentClassifier, saved: Path) -> None:
    fast = IntentClassifier.from_pretrained(saved)
    assert (fast.backend, trained.backend) == ("onnx", "torch")
    # Lengths on both sides of the export's sample, one by one and padded together in a batch.
    texts = [text for text, _ in HELD_OUT] + ["hi", "sum " * 120]
    for batch in ([[t] for t in texts], [texts]):
        for part in batch:
            a, b = fast.encode(part), trained.encode(part)
            assert a.shape == b.shape
            assert np.min(np.sum(a * b, axis=1)) > 0.99999
    np.testing.assert_allclose(fast.predict_proba(texts), trained.predict_proba(texts), atol=1e-4)
    assert fast.predict(texts) == trained.predict(texts)


def test_saving_a_loaded_body_links_its_files_and_verifies(saved: Path, tmp_path: Path) -> None:
    loaded = IntentClassifier.from_pretrained(saved)
    more = [Example(t, "math") for t in ("what is 9 squared", "halve 64")]
    retrained = IntentClassifier.train(more + [Example(t, "chat") for t in ("hey", "yo")], warm_start=loaded)
    folder = tmp_path / "retrained"
    retrained.save_pretrained(folder)
    assert (folder / "body.onnx").stat().st_ino == (saved / "body.onnx").stat().st_ino
    assert IntentClassifier.from_pretrained(folder).predict("what is 3 times 3") == "math"


def test_older_format_is_refused_as_such(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    config_path = folder / "classifier.json"
    config = json.loads(config_path.read_text())
    config["format_version"] = 1
    config_path.write_text(json.dumps(config))
    with pytest.raises(ArtifactFormatError, match="format_version 1"):
        IntentClassifier.from_pretrained(resign(folder))


def test_tampered_onnx_body_is_refused(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    graph = folder / "body.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    refused(folder, "body.onnx", "does not match its sha256")


def test_body_layers_keeps_the_first_layers(training_examples: list[Example], tmp_path: Path) -> None:
    small = IntentClassifier.train(training_examples, config=TrainingConfig(seed=7, body_layers=2))
    assert len(small.encoder.body[0].auto_model.encoder.layer) == 2
    assert small.encoder.pooled_layers == (1, 2)
    assert small.metadata["config"]["body_layers"] == 2
    small.save_pretrained(tmp_path / "small")
    loaded = IntentClassifier.from_pretrained(tmp_path / "small")
    assert loaded.backend == "onnx" and len(loaded.encoder.body[0].auto_model.encoder.layer) == 2
    texts = [text for text, _ in HELD_OUT]
    np.testing.assert_allclose(loaded.predict_proba(texts), small.predict_proba(texts), atol=1e-4)


@pytest.mark.parametrize("layers", [0, 7])
def test_body_layers_out_of_range_is_refused(training_examples: list[Example], layers: int) -> None:
    with pytest.raises(ValueError, match="body_layers must be from 1 to 6"):
        IntentClassifier.train(training_examples, config=TrainingConfig(body_layers=layers))
