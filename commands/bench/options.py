"""The options several `lora-router bench` commands share, each declared once with its help text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOut = Annotated[Path | None, typer.Option(help="Write the result as JSON here.")]
ServiceUrl = Annotated[str, typer.Option(help="The running service.")]
BaseModelDir = Annotated[Path | None, typer.Option(help="Base model folder (default: the prepared one).")]

# Engine benchmarks: random adapters are made when no folder is given.
RandomAdaptersDir = Annotated[
    Path | None, typer.Option(help="Folder of adapter folders (default: make random ones).")
]
AdapterCounts = Annotated[
    str, typer.Option(help="Adapters mixed per run, comma-separated (0 = base model only).")
]
ConcurrencyList = Annotated[str, typer.Option(help="Requests in flight, comma-separated.")]
PromptTokens = Annotated[int, typer.Option(help="Prompt length of every request.", min=1)]
OutputTokens = Annotated[int, typer.Option(help="Tokens every request generates (ignore_eos).", min=1)]
Waves = Annotated[int, typer.Option(help="Requests per run, as a multiple of the concurrency.", min=1)]
RandomRank = Annotated[int, typer.Option(help="Rank of the random adapters made when none are given.")]

# Service benchmarks: real servers serve adapters already on disk.
ServedAdaptersDir = Annotated[
    Path | None,
    typer.Option(
        help="Folder of adapter folders; the first --adapters of them by name are served "
        "(default: the adapter root from settings).",
        exists=True,
        file_okay=False,
    ),
]
ServedAdapters = Annotated[int, typer.Option(help="Adapters served; requests go to them in turn.", min=1)]
NumPrompts = Annotated[int, typer.Option(help="Requests per client run.", min=1)]
Concurrency = Annotated[int, typer.Option(help="Requests in flight.", min=1)]
InputLen = Annotated[int, typer.Option(help="Prompt tokens per request.", min=1)]
OutputLen = Annotated[int, typer.Option(help="Tokens generated per request (ignore_eos).", min=1)]
GpuShare = Annotated[
    float,
    typer.Option(help="Each engine's share of the GPU (those on one GPU must fit).", min=0.05, max=0.95),
]
