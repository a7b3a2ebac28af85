"""Few-shot intent classifier (SetFit on all-MiniLM-L6-v2) that names the expert for each chat message.

Train it from a handful of labelled examples, evaluate it with a confidence-threshold sweep, and save or
load it as a verified, pickle-free folder whose ``content_hash`` versions the router::

    clf = IntentClassifier.train(load_examples(Path("intents.yaml")))
    clf.predict("select the ten newest users")  # -> "sql"
    clf.save_pretrained(Path("router-model"))
"""

from classifier.data import Example, check_training_set, load_examples
from classifier.errors import ArtifactError, TrainingDataError
from classifier.evaluation import DEFAULT_THRESHOLDS, EvalReport, LabelMetrics, ThresholdRow, build_report
from classifier.model import IntentClassifier, default_body_path

__all__ = [
    "DEFAULT_THRESHOLDS",
    "ArtifactError",
    "EvalReport",
    "Example",
    "IntentClassifier",
    "LabelMetrics",
    "ThresholdRow",
    "TrainingDataError",
    "build_report",
    "check_training_set",
    "default_body_path",
    "load_examples",
]
