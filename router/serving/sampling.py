"""A request's sampling values: the request's own, else the adapter's defaults, else the base model's
(its ``generation_config.json``, as vLLM's server reads it), else OpenAI's neutral ones."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

from lora_registry import GenerationDefaults
from lora_registry.response_format import JsonObjectFormat, JsonSchemaFormat, ResponseFormat
from router.engine.base import SamplingOptions, StructuredOutput
from router.errors import InvalidRequestError
from router.protocol import _SamplingFields

logger = logging.getLogger(__name__)
T = TypeVar("T")

GENERATION_CONFIG = "generation_config.json"
# transformers' own defaults: vLLM's server applies only the values a model's config changes from these.
_TRANSFORMERS_DEFAULTS = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 50,
    "min_p": None,
    "repetition_penalty": 1.0,
}


@dataclass(frozen=True)
class ModelDefaults:
    """Sampling values the base model's authors recommend, from its ``generation_config.json``."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    max_new_tokens: int | None = None

    @classmethod
    def from_folder(cls, folder: Path) -> ModelDefaults:
        path = folder / GENERATION_CONFIG
        try:
            config = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        values = {
            f.name: config[f.name]
            for f in fields(cls)
            if config.get(f.name) is not None and config[f.name] != _TRANSFORMERS_DEFAULTS.get(f.name)
        }
        defaults = cls(**values)
        logger.info("base model sampling defaults from %s: %s", path, values or "none")
        return defaults


def structured_output(
    request: _SamplingFields, defaults: GenerationDefaults | None
) -> StructuredOutput | None:
    """The constraint the request asks for (``response_format`` or vLLM's ``structured_outputs``), else the
    adapter's default response format. A request's ``{"type": "text"}`` lifts the adapter's."""
    if request.structured_outputs is not None:
        if request.response_format is not None:
            raise InvalidRequestError(
                "send response_format or structured_outputs, not both", param="structured_outputs"
            )
        so = request.structured_outputs
        source = "structured_outputs"
        if so.json_ is not None:
            return StructuredOutput("json", json_schema=so.json_, source=source)
        if so.regex is not None:
            return StructuredOutput("regex", regex=so.regex, source=source)
        return StructuredOutput("choice", choice=tuple(so.choice or ()), source=source)
    response_format = request.response_format or (defaults.response_format if defaults else None)
    return from_response_format(response_format)


def from_response_format(response_format: ResponseFormat | None) -> StructuredOutput | None:
    if isinstance(response_format, JsonSchemaFormat):
        return StructuredOutput("json", json_schema=response_format.json_schema.schema_)
    if isinstance(response_format, JsonObjectFormat):
        return StructuredOutput("json_object")
    return None


def resolve_sampling(
    request: _SamplingFields,
    *,
    requested_max_tokens: int | None,
    defaults: GenerationDefaults | None,
    model_defaults: ModelDefaults,
    structured: StructuredOutput | None,
    logprobs: int | None,
    default_max_tokens: int,
    max_n: int,
    prompt_tokens: int,
    max_model_len: int,
    prompt_param: str,
) -> SamplingOptions:
    """Request values win over the adapter's defaults, which win over the base model's, which win over the
    service's (max_tokens) and OpenAI's neutral ones."""
    defaults = defaults or GenerationDefaults()
    if request.n > max_n:
        raise InvalidRequestError(f"n must be at most {max_n}, got {request.n}", param="n")
    room = max_model_len - prompt_tokens
    if room <= 0:
        raise InvalidRequestError(
            f"The prompt is {prompt_tokens} tokens; this model's context is {max_model_len} tokens",
            param=prompt_param,
            code="context_length_exceeded",
        )
    if requested_max_tokens is not None and requested_max_tokens > room:
        raise InvalidRequestError(
            f"max_tokens={requested_max_tokens} plus the prompt's {prompt_tokens} tokens exceeds the "
            f"model's context of {max_model_len} tokens; at most {room} tokens can be generated",
            param="max_tokens",
            code="context_length_exceeded",
        )
    max_tokens = _first(
        requested_max_tokens, defaults.max_tokens, model_defaults.max_new_tokens, default_max_tokens
    )
    stops = list(dict.fromkeys([*defaults.stop, *request.stop_list]))
    return SamplingOptions(
        max_tokens=min(max_tokens, room),
        temperature=_first(request.temperature, defaults.temperature, model_defaults.temperature, 1.0),
        top_p=_first(request.top_p, defaults.top_p, model_defaults.top_p, 1.0),
        top_k=_first(request.top_k, model_defaults.top_k, 0),
        min_p=_first(request.min_p, model_defaults.min_p, 0.0),
        presence_penalty=_first(request.presence_penalty, 0.0),
        frequency_penalty=_first(request.frequency_penalty, 0.0),
        repetition_penalty=_first(request.repetition_penalty, model_defaults.repetition_penalty, 1.0),
        logit_bias=tuple((int(token), bias) for token, bias in (request.logit_bias or {}).items()),
        n=request.n,
        stop=tuple(stops),
        seed=request.seed,
        ignore_eos=request.ignore_eos,
        structured=structured,
        logprobs=logprobs,
    )


def _first(*values: T | None) -> T:
    return next(v for v in values if v is not None)
