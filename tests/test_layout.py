"""The import graph stays one-way: the command line on top of the service, the service on top of its stores
and the classifier; the experts and the classifier know nothing of the service (only the storage package,
for its staged writes); no module cycles."""

from __future__ import annotations

import importlib.util
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
