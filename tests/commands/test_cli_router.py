"""`lora-router eval-router` through the real command: the classifier's metrics and what the live policy
answers, given the adapters registered in the data folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from classifier import load_examples

REPO = Path(__file__).parents[2]
HELDOUT = REPO / "router" / "defaults" / "intents_heldout.yaml"


def test_eval_router_reports_the_policy_with_the_registered_adapters(
    default_router_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(default_router_dir, data / "routers")
    cli = Path(sys.executable).with_name("lora-router")
    env = {**os.environ, "LORA_ROUTER_DATA_DIR": str(data)}
    out = tmp_path / "report"
    done = subprocess.run(
        [str(cli), "eval-router", str(HELDOUT), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"] > 0.9
    # No adapter is registered in this data folder: the policy sends every message to the base model, so
    # only the messages the base model serves (chat) are answered right, whatever the classifier says.
    examples = load_examples(HELDOUT)
    chat_share = sum(e.label == "chat" for e in examples) / len(examples)
    assert report["policy"]["accuracy_with_fallback"] == chat_share
    assert report["policy"]["fallback_reasons"]["no_adapter"] > 0
    assert "under the live policy" in done.stdout and (out / "confusion.png").stat().st_size > 0
