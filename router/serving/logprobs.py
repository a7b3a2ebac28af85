"""Logprobs in OpenAI's two shapes, from the engine's token ids: chat's list of tokens with their top
alternatives, and the legacy completions' parallel lists. Tokens are named by the router's tokenizer, so both
engines (in-process and remote) answer alike, and a stream's pieces add up to the whole answer's.

Special tokens the model ends on (``<|im_end|>``) are not part of the answer's text, so they are not among
its tokens either; they still show among the alternatives."""

from __future__ import annotations

import math

from router.engine.base import TokenLogprob
from router.protocol import ChatLogprobs, CompletionLogprobs, TopLogprob
from router.protocol import TokenLogprob as ChatTokenLogprob
from router.serving.prompts import PromptRenderer

# What OpenAI (and vLLM) send for a probability of zero: JSON has no infinity.
FLOOR = -9999.0


def _finite(logprob: float) -> float:
    return max(logprob, FLOOR) if not math.isnan(logprob) else FLOOR


def chat_logprobs(tokens: list[TokenLogprob], renderer: PromptRenderer) -> ChatLogprobs:
    content = []
    for entry in _answer(tokens, renderer):
        text, raw = renderer.token(entry.token_id)
        top = []
        for token_id, logprob in entry.top:
            alt_text, alt_raw = renderer.token(token_id)
            top.append(TopLogprob(token=alt_text, logprob=_finite(logprob), bytes=alt_raw))
        content.append(
            ChatTokenLogprob(token=text, logprob=_finite(entry.logprob), bytes=raw, top_logprobs=top)
        )
    return ChatLogprobs(content=content)


def completion_logprobs(
    tokens: list[TokenLogprob], renderer: PromptRenderer, text_offset: int = 0
) -> CompletionLogprobs:
    """``text_offset`` is where the first of ``tokens`` starts in the completion (a stream's later pieces
    continue the count). Each position's ``top_logprobs`` holds the sampled token too, as OpenAI's does."""
    result = CompletionLogprobs()
    for entry in _answer(tokens, renderer):
        text, _ = renderer.token(entry.token_id)
        result.tokens.append(text)
        result.token_logprobs.append(_finite(entry.logprob))
        top = {renderer.token(token_id)[0]: _finite(logprob) for token_id, logprob in entry.top}
        top.setdefault(text, _finite(entry.logprob))
        result.top_logprobs.append(top)
        result.text_offset.append(text_offset)
        text_offset += len(text)
    return result


def _answer(tokens: list[TokenLogprob], renderer: PromptRenderer) -> list[TokenLogprob]:
    return [entry for entry in tokens if entry.token_id not in renderer.special_ids]
