"""A seconds-long run of `lora-router bench lora-ops` on the real model's shapes, so it cannot rot (the
speed-up is the benchmark's business, not a test's)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.commands.bench.test_bench_engine import finished


def test_lora_ops_bench_times_both_ops_for_every_case(tmp_path: Path, base_model_dir: Path) -> None:
    out = tmp_path / "lora-ops.json"
    stdout = finished(
        tmp_path,
        "lora-ops",
        "--base-model-dir",
        str(base_model_dir),
        "--dtypes",
        "float32,bfloat16",
        "--repeats",
        "1",
        "--out",
        str(out),
    )
    assert "speed-up" in stdout
    result = json.loads(out.read_text())
    assert result["rank"] == 16 and result["environment"]["versions"]
    rows = result["rows"]
    assert {r["dtype"] for r in rows} == {"float32", "bfloat16"}
    assert {r["tokens"] for r in rows} == {1, 16, 30, 16 * 30}
    for row in rows:
        assert row["vllm_ms"] > 0 and row["batched_ms"] > 0
        assert row["speedup"] == round(row["vllm_ms"] / row["batched_ms"], 2)
