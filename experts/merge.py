"""Fold a LoRA adapter into the base weights: a standalone model folder, checked weight by weight.

Merging is how an adapter that vLLM cannot serve as a LoRA (one with ``modules_to_save``: modules trained in
full) still gets served, as a model of its own. PEFT does the merge; `check_merged` then proves the result
independently of PEFT, from the three safetensors files alone:

- every LoRA-targeted weight equals ``W + s·B·A`` (``s = alpha/r``, or ``alpha/√r`` with rsLoRA), computed in
  float32 and compared within ``tolerance`` units in the last place of the saved dtype (bf16 rounding of a
  correctly rounded result is at most half a unit); for a composite adapter (a ``composition.json`` beside
  it) ``W + Σ wᵢ·sᵢ·Bᵢ·Aᵢ``, from its parts' own files;
- every ``modules_to_save`` tensor is the adapter's copy, exactly;
- every other tensor is bit-for-bit the base model's.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from database.files import staged_folder
from experts.folders import ADAPTER_CONFIG, ADAPTER_WEIGHTS, COMPOSITION_RECIPE, LORA_KEY

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

MERGE_REPORT = "merge_report.json"
PEFT_PREFIX = "base_model.model."
# Files of the base folder that travel with the weights: tokenizer and chat template (not the project's
# own preparation marker, not the weights and config, which the merge writes anew).
TOKENIZER_FILES = re.compile(
    r"(tokenizer.*|special_tokens_map\.json|added_tokens\.json|chat_template\..*|vocab\..*|merges\.txt"
    r"|preprocessor_config\.json)"
)
# Modules whose weight a tied model shares between input embedding and output head.
TIED_MODULES = ("lm_head", "embed_tokens")


class MergeCheckError(RuntimeError):
    """The merged weights do not match the formula; ``report`` says where."""

    def __init__(self, report: MergeReport) -> None:
        self.report = report
        super().__init__(f"merge check failed: {'; '.join(report.failures[:5])}")


@dataclass
class MergeReport:
    base_model: str
    adapter: str
    merged: str
    dtype: str
    tolerance_ulps: float
    lora_modules: int = 0
    replaced_modules: list[str] = field(default_factory=list)
    unchanged_tensors: int = 0
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    max_ulp_error: float = 0.0
    worst_module: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures and self.lora_modules + len(self.replaced_modules) > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"merge check {verdict}: {self.lora_modules} LoRA modules within {self.tolerance_ulps:g} ulp of "
            f"W + s·B·A ({self.dtype}); {len(self.replaced_modules)} modules replaced from modules_to_save; "
            f"{self.unchanged_tensors} other tensors identical to the base",
            f"max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g}, "
            f"max {self.max_ulp_error:.3f} ulp" + (f" (in {self.worst_module})" if self.worst_module else ""),
        ]
        lines += [f"  failure: {f}" for f in self.failures[:20]]
        return "\n".join(lines)


def merge_adapter(
    base_model: Path,
    adapter: Path,
    output: Path,
    *,
    tolerance: float = 1.0,
    overwrite: bool = False,
    float32: bool = False,
) -> MergeReport:
    """Merge ``adapter`` into ``base_model`` and write a standalone HF model folder (safetensors in the base's
    dtype, or float32 with ``float32``; tokenizer and chat template copied) to ``output``, after
    `check_merged` passes.

    The merge itself runs in float32, so the weights are rounded once, when cast back to the base's dtype
    (not at all in float32: a float32 engine then computes what it computes serving the adapter).
    Raises MergeCheckError (nothing written) when the check fails, FileExistsError when ``output`` exists.
    """
    base_model, adapter, output = Path(base_model), Path(adapter), Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} already exists; pass overwrite=True (--overwrite) to replace it")
    adapter_config = _read_adapter_config(adapter)

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dtype = torch.float32 if float32 else _weights_dtype(base_model)
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    merged = peft_model.merge_and_unload(safe_merge=True)
    saved = adapter_config.get("modules_to_save") or []
    text_config = merged.config.get_text_config()
    if getattr(text_config, "tie_word_embeddings", False) and any(
        m.rpartition(".")[2] in TIED_MODULES for m in saved
    ):
        # A fully trained head (or embedding) no longer equals its tied twin: keep both, or the saved model
        # would silently drop the trained copy.
        text_config.tie_word_embeddings = False
        merged.config.tie_word_embeddings = False
    merged.to(dtype)

    with staged_folder(output, existing="replace" if overwrite else "refuse") as stage:
        merged.save_pretrained(str(stage), safe_serialization=True)
        for file in sorted(base_model.iterdir()):
            if file.is_file() and TOKENIZER_FILES.fullmatch(file.name):
                shutil.copy2(file, stage / file.name)
        report = check_merged(base_model, adapter, stage, tolerance=tolerance)
        report.merged = str(output)
        if not report.passed:
            raise MergeCheckError(report)
        (stage / MERGE_REPORT).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    logger.info("merged %s into %s: %s", adapter, output, report.summary())
    return report


def check_merged(base_model: Path, adapter: Path, merged: Path, *, tolerance: float = 1.0) -> MergeReport:
    """Compare the merged folder's weights with base + adapter, computed here from the safetensors files.

    Never raises on a mismatch: the report's ``failures`` name each one and ``passed`` is false.
    """
    import torch
    from safetensors.torch import load_file

    config = _read_adapter_config(adapter)
    if config.get("use_dora"):
        raise ValueError("DoRA adapters are not LoRA's W + s·B·A; this check does not cover them")
    base = _load_weights(base_model)
    out = _load_weights(merged)
    lora_weights = load_file(str(adapter / ADAPTER_WEIGHTS))
    # The saved dtype: the base's, or float32 (then every base value converts to it exactly).
    dtype = next(t.dtype for t in out.values() if t.is_floating_point())
    report = MergeReport(
        base_model=str(base_model),
        adapter=str(adapter),
        merged=str(merged),
        dtype=str(dtype).removeprefix("torch."),
        tolerance_ulps=tolerance,
    )

    pairs: dict[str, dict[str, torch.Tensor]] = {}
    replaced: dict[str, torch.Tensor] = {}
    for key, tensor in lora_weights.items():
        if match := LORA_KEY.fullmatch(key):
            pairs.setdefault(match["module"], {})[match["part"]] = tensor
        elif key.startswith(PEFT_PREFIX) and "lora_" not in key:
            replaced[key.removeprefix(PEFT_PREFIX)] = tensor  # a modules_to_save tensor
        else:
            report.failures.append(f"adapter tensor {key!r} is of a kind this check does not understand")

    covered: set[str] = set()
    recipe = _composition_terms(adapter)
    for module, parts in sorted(pairs.items()):
        key = f"{module}.weight"
        covered.add(key)
        if set(parts) != {"A", "B"} or key not in base:
            report.failures.append(f"{module}: no base weight, or lora_A / lora_B missing")
            continue
        if key not in out:
            report.failures.append(f"{key}: missing from the merged model")
            continue
        if recipe is None:
            terms = [(parts["A"], parts["B"], _scaling(config, module, rank=parts["A"].shape[0]))]
        else:
            terms = [term for terms_of in recipe for term in terms_of(module)]
        _check_lora_module(report, module, base[key], terms, out[key], tolerance)
        report.lora_modules += 1

    for key, tensor in sorted(replaced.items()):
        covered.add(key)
        got = out.get(key)
        if got is None:
            report.failures.append(f"{key}: a modules_to_save tensor, missing from the merged model")
        elif got.dtype != dtype or not torch.equal(got, tensor.to(dtype)):
            report.failures.append(f"{key}: differs from the adapter's modules_to_save copy")
        else:
            report.replaced_modules.append(key.rpartition(".")[0])

    for key, tensor in sorted(base.items()):
        if key in covered:
            continue
        got = out.get(key)
        if got is None:
            report.failures.append(f"{key}: missing from the merged model")
        elif got.shape != tensor.shape or not torch.equal(got, tensor.to(got.dtype)):
            report.failures.append(f"{key}: not targeted by the adapter, yet differs from the base")
        elif tensor.is_floating_point() and got.dtype != dtype:
            report.failures.append(f"{key}: saved as {got.dtype}, the other weights as {dtype}")
        else:
            report.unchanged_tensors += 1
    for key in sorted(out.keys() - base.keys() - covered):
        report.failures.append(f"{key}: in the merged model but neither in the base nor in the adapter")
    return report


Term = tuple["torch.Tensor", "torch.Tensor", float]
"""(A, B, scale): one LoRA delta ``scale·B·A``."""


def _check_lora_module(
    report: MergeReport,
    module: str,
    weight: torch.Tensor,
    terms: list[Term],
    merged: torch.Tensor,
    tolerance: float,
) -> None:
    import torch

    if merged.shape != weight.shape or merged.dtype.itemsize < weight.dtype.itemsize:
        report.failures.append(
            f"{module}: merged weight is {merged.dtype} {list(merged.shape)}, base is {weight.dtype} "
            f"{list(weight.shape)}"
        )
        return
    expected = weight.float()
    # Float32 arithmetic of B·A in another order can differ by its own rounding (~rank·eps32 of |B|·|A|);
    # negligible against a bf16 unit, it matters when the saved dtype is float32 itself.
    rounding = torch.zeros_like(expected)
    for lora_a, lora_b, scale in terms:
        a, b = lora_a.float(), lora_b.float()
        expected = expected + scale * (b @ a)
        rounding = rounding + a.shape[0] * abs(scale) * (b.abs() @ a.abs())
    error = (merged.float() - expected).abs()
    # One unit in the last place of the saved dtype, at the expected value; `eps` is that unit at 1.0.
    finfo = torch.finfo(merged.dtype)
    _, exponent = torch.frexp(expected)
    ulp = torch.ldexp(torch.full_like(expected, finfo.eps), exponent - 1).clamp_min(finfo.tiny * finfo.eps)
    slack = torch.finfo(torch.float32).eps * (rounding + expected.abs())
    in_ulps = error / (ulp + slack)
    worst = float(in_ulps.max())
    nonzero = expected.abs() > finfo.tiny
    report.max_abs_error = max(report.max_abs_error, float(error.max()))
    if nonzero.any():
        report.max_rel_error = max(
            report.max_rel_error, float((error[nonzero] / expected.abs()[nonzero]).max())
        )
    if worst > report.max_ulp_error or report.worst_module is None:
        report.max_ulp_error, report.worst_module = max(worst, report.max_ulp_error), module
    if not math.isfinite(worst) or worst > tolerance:
        bad = int((in_ulps > tolerance).sum()) if math.isfinite(worst) else int((~in_ulps.isfinite()).sum())
        report.failures.append(
            f"{module}: {bad} of {expected.numel()} values are off W + Σ s·B·A by more than {tolerance:g} "
            f"ulp (worst {worst:.3g} ulp, {float(error.max()):.3g} absolute)"
        )


def _composition_terms(adapter: Path) -> list[Callable[[str], list[Term]]] | None:
    """For a composite adapter, per part: a module's delta terms (weight times the part's own scale) read
    from the part's folder; None for any other adapter."""
    recipe_file = adapter / COMPOSITION_RECIPE
    if not recipe_file.is_file():
        return None
    from safetensors.torch import load_file

    def part_terms(folder: Path, weight: float) -> Callable[[str], list[Term]]:
        config = _read_adapter_config(folder)
        tensors = load_file(str(folder / ADAPTER_WEIGHTS))

        def terms(module: str) -> list[Term]:
            key = f"{PEFT_PREFIX}{module}.lora_"
            if f"{key}A.weight" not in tensors:
                return []  # the part does not adapt this module
            lora_a, lora_b = tensors[f"{key}A.weight"], tensors[f"{key}B.weight"]
            return [(lora_a, lora_b, weight * _scaling(config, module, rank=lora_a.shape[0]))]

        return terms

    return [
        part_terms(Path(part["path"]), float(part["weight"])) for part in json.loads(recipe_file.read_text())
    ]


def _scaling(config: dict[str, Any], module: str, *, rank: int) -> float:
    """PEFT's per-module scaling: ``alpha / r`` (``alpha / sqrt(r)`` with rsLoRA). ``alpha_pattern``
    overrides alpha for matching modules; the rank comes from the weights (so ``rank_pattern`` is covered)."""
    alpha = float(config["lora_alpha"])
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        # The same matching as PEFT's `get_pattern_key`: the pattern names the end of the module path.
        if re.match(rf"(.*\.)?({pattern})$", module):
            alpha = float(value)
            break
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def _read_adapter_config(adapter: Path) -> dict[str, Any]:
    config_file, weights_file = adapter / ADAPTER_CONFIG, adapter / ADAPTER_WEIGHTS
    if not config_file.is_file() or not weights_file.is_file():
        raise FileNotFoundError(
            f"{adapter} is not a PEFT adapter folder ({ADAPTER_CONFIG} + {ADAPTER_WEIGHTS})"
        )
    config = json.loads(config_file.read_text())
    if config.get("peft_type") != "LORA":
        raise ValueError(
            f"{adapter}: peft_type is {config.get('peft_type')!r}; only LoRA adapters merge here"
        )
    return config


def _weight_files(model_dir: Path) -> list[Path]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no safetensors weights in {model_dir}")
    return files


def _load_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for file in _weight_files(model_dir):
        weights.update(load_file(str(file)))
    return weights


def _weights_dtype(model_dir: Path) -> torch.dtype:
    """The dtype of the base model's floating-point weights, read from the first file's header."""
    import torch
    from safetensors import safe_open

    with safe_open(str(_weight_files(model_dir)[0]), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            dtype = f.get_slice(key).get_dtype()
            if dtype.startswith(("F", "BF")):
                return {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}[dtype]
    raise ValueError(f"{model_dir}: no floating-point weights")
