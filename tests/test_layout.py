"""The import graph stays one-way: the command line on top of the service, the service on top of its stores
and the classifier; the experts and the classifier know nothing of the service (only the storage package,
for its staged writes); no module cycles."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "import_cycles.py"
spec = importlib.util.spec_from_file_location("import_cycles", SCRIPT)
assert spec is not None and spec.loader is not None
import_cycles = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_cycles)

# What each top-level package may import of the others.
ALLOWED = {
    "commands": {"router", "classifier", "lora_registry", "experts", "database"},
    "router": {"classifier", "lora_registry", "database"},
    "lora_registry": {"database"},
    "classifier": {"database"},
    "experts": {"database"},
    "database": set(),
}


def test_packages_import_one_way_and_modules_have_no_cycles() -> None:
    edges = import_cycles.graph(import_cycles.PACKAGES)
    assert set(import_cycles.PACKAGES) == set(ALLOWED)
    wrong = sorted(
        f"{source} -> {target}"
        for source, targets in edges.items()
        for target in targets
        if target.split(".")[0] != source.split(".")[0]
        and target.split(".")[0] not in ALLOWED[source.split(".")[0]]
    )
    assert wrong == []
    assert import_cycles.cycles(edges) == []


def test_the_service_installs_and_imports_without_the_training_and_benchmark_extras() -> None:
    import subprocess
    import sys
    import tomllib

    project = tomllib.loads((SCRIPT.parent.parent / "pyproject.toml").read_text())["project"]
    extras_only = {"peft", "trl", "matplotlib"}
    core = {re.split(r"[<>=\[ ]", requirement)[0].lower() for requirement in project["dependencies"]}
    assert core & extras_only == set()
    assert {"train", "bench"} <= set(project["optional-dependencies"])
    # What `serve` and a replica load (the app with its engines) and the command line itself, in a process
    # where the extras look uninstalled (transformers imports peft only when it finds it).
    probe = "import sys; sys.modules.update(dict.fromkeys(%r)); "
    probe += "import router.app, router.engine, commands.main"
    subprocess.run([sys.executable, "-c", probe % sorted(extras_only)], check=True, timeout=120)
