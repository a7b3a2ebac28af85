"""One real classifier (real MiniLM body, real training) shared by the classifier tests, and its folder.

3 clearly separable intents x 8 examples: the session pays for training once, in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier import Example, IntentClassifier, TrainingConfig

INTENTS = {
    "sql": [
        "select all rows from the users table",
        "write a sql join between orders and customers",
        "how do I use group by in postgres",
        "sql query to count orders per day",
        "delete duplicate rows in a mysql table",
        "create an index on the email column",
        "left join versus inner join in sql",
        "update a column with a subquery in sqlite",
    ],
    "chat": [
        "hi, how are you today?",
        "what's up?",
        "good morning!",
        "tell me about your weekend",
        "nice to meet you",
        "thanks, have a lovely day",
        "hello there, friend",
        "how have you been lately?",
    ],
    "math": [
        "what is 12 times 7",
        "compute 345 + 982",
        "divide 100 by 8",
        "what is the square root of 144",
        "what's 15 percent of 80",
        "2 to the power of 10",
        "subtract 37 from 120",
        "multiply 6 by 9",
    ],
}

# Messages the model never saw whose intent is obvious.
HELD_OUT = [
    ("SELECT name FROM employees WHERE salary > 5000", "sql"),
    ("inner join two tables on customer_id", "sql"),
    ("hey, nice to see you again!", "chat"),
    ("good evening, how is it going?", "chat"),
    ("what is 7 times 8", "math"),
    ("add 250 and 175", "math"),
]


@pytest.fixture(scope="session")
def training_examples() -> list[Example]:
    return [Example(text, label) for label, texts in INTENTS.items() for text in texts]


@pytest.fixture(scope="session")
def progress() -> list[float]:
    """Fractions reported by the shared model's training."""
    return []


@pytest.fixture(scope="session")
def trained(training_examples: list[Example], progress: list[float]) -> IntentClassifier:
    return IntentClassifier.train(
        training_examples, config=TrainingConfig(seed=7), on_progress=progress.append
    )


@pytest.fixture(scope="session")
def saved(trained: IntentClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared model's saved folder (read-only for tests: copy it before changing anything)."""
    path = tmp_path_factory.mktemp("saved") / "intent-classifier"
    trained.save_pretrained(path)
    return path
