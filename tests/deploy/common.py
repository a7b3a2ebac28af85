"""Loaders for deploy/: the rendered Kustomize overlays, the interpolated Compose file, the settings a
container's environment gives, and an engine replica's real vLLM command line."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from dotenv import dotenv_values

from commands.main import app
from router.replica import replica_command
from router.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("cpu", "gpu")
PREFIX = "LORA_ROUTER_"

Doc = dict[str, Any]

# What routers and replicas both read: `lora-router replica` derives vLLM's flags from them, and routers
# address adapters and the base model by them.
SHARED_SETTINGS = (
    "base_model_name",
    "max_loras",
    "max_cpu_loras",
    "max_lora_rank",
    "max_model_len",
    "replica_identity_base",
    "engine_api_key",
    "resolved_adapter_root",
    "dtype",
    "seed",
)


# --- settings and the engine command ----------------------------------------------------------------------


def settings_from(env: dict[str, str]) -> Settings:
    """The service's Settings from exactly ``env``, as a container with that environment builds them."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith(PREFIX)]:
            mp.delenv(name)
        for name, value in env.items():
            mp.setenv(name, value)
        return Settings()


def replica_options(command: list[str]) -> dict[str, Any]:
    """The options of a `lora-router replica ...` command line, parsed by the CLI itself."""
    assert command[:2] == ["lora-router", "replica"], f"an engine runs {command}, not `lora-router replica`"
    replica = typer.main.get_command(app).commands["replica"]  # type: ignore[attr-defined]
    return replica.make_context("replica", list(command[2:])).params


def vllm_argv(env: dict[str, str], command: list[str], *, dtype: str) -> list[str]:
    """The arguments `lora-router replica` (``command``) hands vLLM's server in this environment, where the
    replica's hardware resolves the dtype setting to ``dtype``."""
    options = replica_options(command)
    argv = replica_command(settings_from(env), host=options["host"], port=options["port"], dtype=dtype)
    module = argv.index("-m")
    assert argv[module + 1] == "vllm.entrypoints.openai.api_server", argv
    return argv[module + 2 :]


def url_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.hostname and parts.port, f"{url!r}: want http://host:port"
    return parts.hostname, parts.port


# --- Kustomize -------------------------------------------------------------------------------------------


def kustomize(path: Path) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing (`make system` installs it)"
    done = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@dataclass
class Rendered:
    """One rendered overlay, with the router's and the engine's resolved environments."""

    name: str
    docs: list[Doc]

    def all(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Doc:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: want one {kind} {name or ''}, found {len(found)}"
        return found[0]

    @property
    def router(self) -> Doc:
        return self.one("Deployment", "router")

    @property
    def engine(self) -> Doc:
        return self.one("StatefulSet", "engine")

    def container(self, workload: Doc) -> Doc:
        containers = workload["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1, f"{workload['metadata']['name']}: want one container"
        return containers[0]

    def secret_values(self, name: str) -> dict[str, str]:
        secret = self.one("Secret", name)
        values = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        return values | secret.get("stringData", {})

    def env(self, workload: Doc) -> dict[str, str]:
        """The container's environment, every ConfigMap/Secret reference resolved against this render (a
        reference to something the render lacks fails)."""
        container = self.container(workload)
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env |= self.one("ConfigMap", source["configMapRef"]["name"])["data"]
            else:
                env |= self.secret_values(source["secretRef"]["name"])
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            ref = var["valueFrom"]
            if "secretKeyRef" in ref:
                values = self.secret_values(ref["secretKeyRef"]["name"])
                key = ref["secretKeyRef"]["key"]
            else:
                values = self.one("ConfigMap", ref["configMapKeyRef"]["name"])["data"]
                key = ref["configMapKeyRef"]["key"]
            assert key in values, f"{var['name']} refers to missing key {key}"
            env[var["name"]] = values[key]
        return env

    def command(self, workload: Doc) -> list[str]:
        container = self.container(workload)
        return [*container.get("command", []), *container.get("args", [])]


def render_overlay(name: str) -> Rendered:
    return Rendered(name, kustomize(DEPLOY / "k8s" / "overlays" / name))


# --- Compose ---------------------------------------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|\$\$"
)


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Compose's `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and `$$`; an unset variable without a
    default fails, as `docker compose config` does."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        name = name or match.group("bare")
        current = variables.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if missing and op in (":-", "-"):
            return arg
        assert not missing, f"compose variable {name} is unset ({arg or 'no default'})"
        return current

    return _VARIABLE.sub(substitute, value)


def compose_variables() -> dict[str, str]:
    return {k: v or "" for k, v in dotenv_values(DEPLOY / ".env.example").items()}


def load_compose() -> Doc:
    """deploy/compose.yaml with YAML anchors merged and variables taken from .env.example."""
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return interpolate(raw, compose_variables())


def compose_env(service: Doc) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


# --- Dockerfiles -----------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    text: str
    # LORA_ROUTER_* variables set by ENV lines before this instruction (in its stage).
    env: dict[str, str]


def dockerfiles() -> list[Path]:
    return sorted((DEPLOY / "docker").glob("*.Dockerfile"))


def dockerfile_for(image: str) -> Path:
    """The Dockerfile building ``lora-router/<name>[:tag]``."""
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    assert repository.startswith("lora-router/"), image
    path = DEPLOY / "docker" / f"{repository.removeprefix('lora-router/')}.Dockerfile"
    assert path.is_file(), f"no Dockerfile builds {image}"
    return path


def parse_dockerfile(path: Path) -> list[Instruction]:
    logical: list[str] = []
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, f"{path.name} ends inside a continued line"

    instructions: list[Instruction] = []
    env: dict[str, str] = {}
    for line in logical:
        keyword, _, text = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            env = {}
        instructions.append(Instruction(keyword, text.strip(), dict(env)))
        if keyword == "ENV":
            for token in shlex.split(text):
                name, _, value = token.partition("=")
                if name.startswith(PREFIX):
                    env[name] = value
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    return instructions[starts[-1] :]


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.text)
    assert isinstance(value, list), f"{instruction.keyword} is not in exec form"
    return value


def image_command(path: Path) -> tuple[list[str], dict[str, str]]:
    """What a container of the image runs without overrides (ENTRYPOINT + CMD), and its LORA_ROUTER_* env."""
    stage = final_stage(parse_dockerfile(path))
    entrypoint = [exec_form(i) for i in stage if i.keyword == "ENTRYPOINT"]
    cmd = [exec_form(i) for i in stage if i.keyword == "CMD"]
    env = stage[-1].env | _env_of(stage[-1])
    return [*(entrypoint[-1] if entrypoint else []), *(cmd[-1] if cmd else [])], env


def _env_of(instruction: Instruction) -> dict[str, str]:
    if instruction.keyword != "ENV":
        return {}
    pairs = (token.partition("=") for token in shlex.split(instruction.text))
    return {name: value for name, _, value in pairs if name.startswith(PREFIX)}


PREPARE = re.compile(r"lora-router\s+prepare\b")


def prepared_model_path(path: Path) -> Path:
    """Where the image's `lora-router prepare` wrote the base model (the settings at that RUN)."""
    runs = [
        i
        for i in parse_dockerfile(path)
        if i.keyword == "RUN" and re.search(r"lora-router\s+prepare", i.text)
    ]
    assert runs, f"{path.name} never runs `lora-router prepare`"
    return settings_from(runs[-1].env).resolved_base_model_path
