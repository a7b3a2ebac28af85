"""Adapter administration over HTTP against the running service: hot swap and validation."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from commands.process import ServiceProcess
from router.default_experts import REGISTRY_FILE
from router.settings import DEFAULT_BASE_MODEL
from tests.router.service_checks import QUESTION, chat, wait_for


def ask(client: openai.OpenAI, model: str) -> str:
    reply = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=16)
    return reply.choices[0].message.content


def test_register_use_and_unregister_without_restart(
    client: openai.OpenAI, http: httpx.Client, service: ServiceProcess
) -> None:
    started_at = http.get("/health").json()["started_at"]
    created = http.post("/v1/adapters", json={"name": "delta", "path": "delta", "description": "hot"})
    assert created.status_code == 201, created.text
    spec = created.json()
    assert spec["name"] == "delta" and spec["rank"] == 8 and spec["base_model"] == DEFAULT_BASE_MODEL
    assert spec["loaded"] is False
    assert "delta" in {m.id for m in client.models.list().data}

    answer = ask(client, "delta")
    assert answer != ask(client, DEFAULT_BASE_MODEL)
    assert http.get("/v1/adapters/delta").json()["loaded"] is True

    deleted = http.delete("/v1/adapters/delta")
    assert deleted.status_code == 200
    assert deleted.json() == {"object": "adapter.deleted", "id": spec["id"], "name": "delta", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        ask(client, "delta")
    assert "delta" not in {m.id for m in client.models.list().data}
    assert ask(client, "alpha")  # the others keep answering

    again = http.post("/v1/adapters", json={"name": "delta", "path": "delta"}).json()
    assert again["id"] > spec["id"]  # ids are never reused: the engine caches weights by id
    assert ask(client, "delta") == answer
    assert http.delete("/v1/adapters/delta").status_code == 200
    assert http.get("/health").json()["started_at"] == started_at  # same process throughout


def test_unknown_adapter_is_404_listing_names(http: httpx.Client) -> None:
    for response in (http.get("/v1/adapters/nope"), http.delete("/v1/adapters/nope")):
        assert response.status_code == 404
        error = response.json()["error"]
        assert "alpha" in error["message"] and error["type"] == "invalid_request_error"


def _config_edit(**changes: object) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config_path = folder / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config.update(changes)
        config_path.write_text(json.dumps(config))

    return edit


def _bin_weights(folder: Path) -> None:
    (folder / "adapter_model.safetensors").unlink()
    # Pickle bytes that would run code if anyone unpickled them.
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04cos\nsystem\n(S'touch /tmp/pwned'\ntR.")


def _truncate_weights(folder: Path) -> None:
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


@pytest.mark.parametrize(
    ("case", "make", "status", "param"),
    [
        ("not-lora", _config_edit(peft_type="IA3"), 422, "adapter_config.peft_type"),
        ("rank-too-big", _config_edit(r=64), 422, "adapter_config.r"),
        ("modules-to-save", _config_edit(modules_to_save=["lm_head"]), 422, "adapter_config.modules_to_save"),
        (
            "unknown-target",
            _config_edit(target_modules=["q_proj", "qkv_fused"]),
            422,
            "adapter_config.target_modules",
        ),
        (
            "other-base",
            _config_edit(base_model_name_or_path="meta-llama/Llama-3-8B"),
            422,
            "adapter_config.base_model_name_or_path",
        ),
        ("pickle-weights", _bin_weights, 422, "weights"),
        ("truncated-weights", _truncate_weights, 422, "weights"),
        ("no-config", lambda f: (f / "adapter_config.json").unlink(), 422, "adapter_config.json"),
    ],
)
def test_invalid_adapter_folders_are_refused_and_registry_unchanged(
    http: httpx.Client,
    service_data_dir: Path,
    case: str,
    make: Callable[[Path], None],
    status: int,
    param: str,
) -> None:
    folder = service_data_dir / "adapters" / f"bad-{case}"
    shutil.copytree(service_data_dir / "adapters" / "delta", folder)
    make(folder)
    before = http.get("/v1/adapters").json()
    response = http.post("/v1/adapters", json={"name": f"bad-{case}", "path": folder.name})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"] and error["type"] == "invalid_request_error"
    assert http.get("/v1/adapters").json() == before
    assert not Path("/tmp/pwned").exists()


@pytest.fixture
def escape_links(service_data_dir: Path, adapter_library: Path) -> Path:
    root = service_data_dir / "adapters"
    link = root / "escape-link"
    if not link.exists():
        os.symlink(adapter_library / "delta", link)
    inner = root / "inner-escape"
    if not inner.exists():
        shutil.copytree(root / "delta", inner)
        (inner / "adapter_model.safetensors").unlink()
        os.symlink(
            adapter_library / "delta" / "adapter_model.safetensors", inner / "adapter_model.safetensors"
        )
    return root


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"name": "dots", "path": "../adapters/delta"}, 400, "path"),
        ({"name": "outside", "path": "/etc"}, 400, "path"),
        ({"name": "missing", "path": "no-such-folder"}, 400, "path"),
        ({"name": "remote", "path": "https://example.com/adapter"}, 400, "path"),
        ({"name": "linked", "path": "escape-link"}, 400, "path"),
        ({"name": "inner-link", "path": "inner-escape"}, 400, "path"),
        ({"name": "bad name!", "path": "delta"}, 400, "name"),
        ({"name": "auto", "path": "delta"}, 400, "name"),
        ({"name": DEFAULT_BASE_MODEL, "path": "delta"}, 400, "name"),
        ({"name": "alpha", "path": "delta"}, 409, "name"),
        ({"name": "extra", "path": "delta", "defaults": {"temperature": 9}}, 400, "defaults.temperature"),
        ({"name": "extra", "path": "delta", "surprise": 1}, 400, "surprise"),
    ],
)
def test_bad_registrations_are_refused_and_registry_unchanged(
    http: httpx.Client, escape_links: Path, body: dict, status: int, param: str
) -> None:
    before = http.get("/v1/adapters").json()
    response = http.post("/v1/adapters", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    assert error["message"]
    assert http.get("/v1/adapters").json() == before


def test_unregister_while_a_stream_runs_on_it(service: ServiceProcess, http: httpx.Client) -> None:
    assert http.post("/v1/adapters", json={"name": "leaving", "path": "delta"}).status_code == 201
    tokens = 120
    body = {"model": "leaving", "messages": QUESTION, "max_tokens": tokens, "ignore_eos": True}
    usage = {"stream": True, "stream_options": {"include_usage": True}}
    with ThreadPoolExecutor(1) as pool:
        streaming = pool.submit(chat, service.url, body | usage)
        assert wait_for(lambda: http.get("/health").json()["in_flight"] == 1, within_s=30)
        deleted = http.delete("/v1/adapters/leaving")
        assert deleted.status_code == 200  # answered at once, not after the stream
        assert not streaming.done()
        refused = chat(service.url, body | {"max_tokens": 2})
        assert refused.status == 404 and refused.events[0]["error"]["code"] == "model_not_found"
        outcome = streaming.result(timeout=120)
    # The stream already running kept its adapter's weights to its last token.
    assert outcome.status == 200 and outcome.events[-1] == "[DONE]"
    assert not any("error" in event for event in outcome.events[:-1])
    assert outcome.events[-2]["usage"]["completion_tokens"] == tokens
    assert "leaving" not in {a["name"] for a in http.get("/v1/adapters").json()["data"]}


def test_auto_falls_back_when_the_routed_adapter_was_removed(
    http: httpx.Client, client: openai.OpenAI
) -> None:
    shipped = yaml.safe_load(REGISTRY_FILE.read_text())["adapters"]
    math_entry = next(entry for entry in shipped if entry["name"] == "math")
    question = [{"role": "user", "content": "A baker had 12 rolls and sold 5. How many rolls are left?"}]

    def route() -> tuple[dict[str, str], str]:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=question, max_tokens=4, temperature=0
        )
        return dict(raw.headers), raw.parse().model

    headers, _ = route()
    assert headers["x-router-adapter"] == "math" and headers["x-router-fallback"] == "none"
    assert http.delete("/v1/adapters/math").status_code == 200
    try:
        headers, model = route()
        assert headers["x-router-label"] == "math"  # the router still says math...
        assert headers["x-router-fallback"] == "no_adapter"  # ...but there is none: the base answers
        assert headers["x-lora-adapter"] == "none" and model == DEFAULT_BASE_MODEL
    finally:
        assert http.post("/v1/adapters", json=math_entry).status_code == 201
    headers, model = route()
    assert headers["x-router-adapter"] == "math" and model == "math"
