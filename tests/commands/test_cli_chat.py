"""`lora-router chat`, the real command with piped input, against the real service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from commands.process import ServiceProcess
from tests.router.test_routing_api import SQL
from tests.service_config import USER_KEY

LORA_ROUTER = Path(sys.executable).with_name("lora-router")


def chat(service: ServiceProcess, lines: list[str], *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LORA_ROUTER), "chat", "--url", service.url, "--max-tokens", "8", *options],
        input="\n".join(lines) + "\n",
        env={**os.environ, "LORA_ROUTER_API_KEY": USER_KEY},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_chat_shows_routing_pins_and_reports_errors_without_stopping(service: ServiceProcess) -> None:
    done = chat(
        service,
        [
            SQL,
            "/model math",
            "/models",
            "What is 12 times 7?",
            "/model no-such-model",
            "Hello?",
            "/quit",
            "this line is never read",
        ],
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()

    routed = next(line for line in out if line.startswith("auto → "))
    shown = re.fullmatch(r"auto → sql · label sql (\S+) · scores sql (\S+), \w+ \S+, \w+ \S+", routed)
    assert shown, routed  # the winning label's confidence, then the top three adapters' scores
    assert 0.5 < float(shown[1]) <= 1 and 0.5 < float(shown[2]) <= 1
    assert "fallback" not in routed
    assert "* math" in " ".join(out)  # /models marks the model in use
    assert "math (pinned)" in out
    assert sum(line.startswith("TTFT ") and " tok/s" in line for line in out) == 2
    error = next(line for line in out if line.startswith("error: "))
    assert error.startswith("error: HTTP 404: The model 'no-such-model' does not exist. Available: ")
    assert error.endswith("[model_not_found]")
    assert "you> /quit" in out and "this line is never read" not in done.stdout


def test_end_of_input_quits_and_reset_forgets(service: ServiceProcess) -> None:
    done = chat(service, ["/model sql", "/reset", "/nonsense"])
    assert done.returncode == 0, done.stderr
    assert "conversation cleared" in done.stdout
    assert "unknown command /nonsense" in done.stdout and "/models" in done.stdout
