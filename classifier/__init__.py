"""Few-shot intent classifier (all-MiniLM-L6-v2 features, a calibrated head) that names the expert for
each chat message and tells when a message is like none of them.

Train it from a handful of labelled examples in seconds, evaluate it (accuracy, macro-F1, confusion), and save
or load it as a verified, pickle-free folder whose ``content_hash`` versions the router::

    clf = IntentClassifier.train(load_examples(Path("intents.yaml")))
    clf.predict("select the ten newest users")  # -> "sql"
    clf.save_pretrained(Path("router-model"))
"""

from classifier.data import OUT_OF_SCOPE_LABEL, Example, check_training_set, group_of, load_examples
from classifier.encoder import default_body_path
from classifier.errors import ArtifactError, ArtifactFormatError, TrainingDataError
from classifier.evaluation import EvalReport, LabelMetrics, build_report
from classifier.model import Classification, IntentClassifier
from classifier.training import TrainingConfig

__all__ = [
    "OUT_OF_SCOPE_LABEL",
    "Classification",
    "TrainingConfig",
    "group_of",
    "ArtifactError",
    "ArtifactFormatError",
    "EvalReport",
    "Example",
    "IntentClassifier",
    "LabelMetrics",
    "TrainingDataError",
    "build_report",
    "check_training_set",
    "default_body_path",
    "load_examples",
]
