"""A quick run of `lora-router bench routing-quality` on the real CLINC150 files, so the benchmark cannot rot
(its numbers are the benchmark's job, not a test's), and the few-shot draws it is built on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from commands.bench.routing_quality import OOS, draw_examples, load_split

# A few queries per intent of CLINC150 (see its README): the full data set is not part of the repository.
SAMPLE = Path(__file__).with_name("clinc150-sample")


def test_draws_spread_over_intents_and_label_sub_intents() -> None:
    train = load_split(SAMPLE, "train")
    intent_of = {q.text: q.intent for q in train}
    varied = draw_examples(train, "varied", 16, seed=0)
    assert Counter(e.label for e in varied) == dict.fromkeys(Counter(e.label for e in varied), 16)
    assert len({e.label for e in varied}) == 10
    banking = {intent_of[e.text] for e in varied if e.label == "banking"}
    assert len(banking) == 15  # every intent of the domain before any twice
    sub = draw_examples(train, "sub-intents", 2, seed=0, none=5)
    assert len(sub) == 305 and sum(e.label == "none" for e in sub) == 5
    assert all(e.label == "none" or e.label.split("/")[1] == intent_of[e.text] for e in sub)
    assert draw_examples(train, "random", 8, seed=3) == draw_examples(train, "random", 8, seed=3)
    assert not any(q.domain == OOS for q in train if q.text in {e.text for e in varied})


def test_bench_routing_quality_smoke(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("lora-router")
    args = ["bench", "routing-quality", "--shots", "4", "--sub-intent-shots", "2", "--none", "4"]
    args += ["--no-random", "--seeds", "2", "--data", str(SAMPLE), "--out", str(tmp_path)]
    env = {**os.environ, "LORA_ROUTER_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([str(cli), *args], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "routing-quality.json").read_text())
    assert [(r["draw"], r["k"], r["none_examples"]) for r in result["rows"]] == [
        ("varied", 4, 0),
        ("sub-intents", 2, 0),
        ("varied", 4, 4),
        ("sub-intents", 2, 4),
    ]
    for row in result["rows"]:
        assert len(row["runs"]) == 2 and row["accuracy"]["mean"] > 0.3
        assert 0 <= row["fallback_rate"]["mean"] <= 1 and 0 <= row["oos_recall"]["mean"] <= 1
        assert len(row["curve"]) == 26
    assert result["rows"][1]["sub_intent_accuracy"]["mean"] > 0
    assert (tmp_path / "routing-quality.png").stat().st_size > 10_000
