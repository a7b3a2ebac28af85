"""The expert commands of `lora-router`, run in-process: data → adapter registered with the running service
→ merged model."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
from typer.testing import CliRunner

from commands.main import app
from commands.process import ServiceProcess
from tests.experts.conftest import one_torch_thread
from tests.service_config import ADMIN_KEY

runner = CliRunner()


def test_generate_train_register_and_merge(
    tmp_path: Path,
    base_model_dir: Path,
    service: ServiceProcess,
    service_data_dir: Path,
    http: httpx.Client,
    client: openai.OpenAI,
) -> None:
    data = tmp_path / "sql.jsonl"
    done = runner.invoke(app, ["generate-data", "sql", "--n", "8", "--seed", "3", "--output", str(data)])
    assert done.exit_code == 0, done.output
    assert "wrote 8 sql train examples" in done.output
    assert [json.loads(line)["task"] for line in data.read_text().splitlines()] == ["sql"] * 8

    adapter = service_data_dir / "adapters" / "cli-sql"
    train = [
        "train-adapter", str(data), "--output", str(adapter), "--base-model", str(base_model_dir),
        "--rank", "2", "--alpha", "4", "--target-modules", "q_proj,v_proj", "--max-steps", "1",
        "--batch-size", "2", "--max-length", "128", "--register", service.url, "--name", "cli-sql",
        "--api-key", ADMIN_KEY,
    ]  # fmt: skip
    with one_torch_thread():
        done = runner.invoke(app, train)
    assert done.exit_code == 0, done.output
    assert f"adapter written to {adapter}" in done.output and "1 step (" in done.output
    assert "modules q_proj,v_proj" in done.output and "registered as 'cli-sql'" in done.output
    try:
        reply = client.chat.completions.create(
            model="cli-sql",
            messages=[{"role": "user", "content": "Count the orders."}],
            temperature=0,
            max_tokens=8,
        )
        assert reply.model == "cli-sql"
    finally:
        assert http.delete("/v1/adapters/cli-sql").status_code == 200

    merged = tmp_path / "merged"
    merge = ["merge", str(adapter), "--output", str(merged), "--base-model", str(base_model_dir)]
    with one_torch_thread():
        done = runner.invoke(app, merge)
    assert done.exit_code == 0, done.output
    assert "merge check PASSED: 60 LoRA modules" in done.output
    assert (merged / "model.safetensors").is_file()

    again = runner.invoke(app, merge)
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_register_failure_is_reported(tmp_path: Path, base_model_dir: Path, service: ServiceProcess) -> None:
    """A folder outside the service's adapter root is refused by the service; the command says why."""
    data = tmp_path / "sql.jsonl"
    assert runner.invoke(app, ["generate-data", "sql", "--n", "2", "--output", str(data)]).exit_code == 0
    train = [
        "train-adapter", str(data), "--output", str(tmp_path / "outside"),
        "--base-model", str(base_model_dir), "--rank", "2", "--target-modules", "q_proj",
        "--max-steps", "1", "--batch-size", "2", "--max-length", "64", "--register", service.url,
        "--api-key", ADMIN_KEY,
    ]  # fmt: skip
    with one_torch_thread():
        done = runner.invoke(app, train)
    assert done.exit_code == 1
    assert "registration failed (HTTP 4" in done.output and "outside the adapter root" in done.output
    assert (tmp_path / "outside" / "adapter_model.safetensors").is_file()  # the adapter itself was written
