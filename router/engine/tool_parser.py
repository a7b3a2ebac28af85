"""vLLM's tool-call parsers, which read the calls a model wrote in its own syntax (Hermes' ``<tool_call>``
tags, Llama's JSON, ...) back out of its answer. Picked by ``LORA_ROUTER_TOOL_PARSER``, as ``vllm serve
--tool-call-parser`` picks them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase
    from vllm.tokenizers import TokenizerLike


class ToolCallParser:
    def __init__(self, name: str, tokenizer: PreTrainedTokenizerBase) -> None:
        try:
            from vllm.tool_parsers import ToolParserManager
        except ImportError as exc:
            raise ValueError("LORA_ROUTER_TOOL_PARSER needs vLLM installed beside the router") from exc
        try:
            self._parser_class = ToolParserManager.get_tool_parser(name)
        except KeyError as exc:
            known = ", ".join(sorted(ToolParserManager.list_registered()))
            raise ValueError(f"unknown tool parser {name!r}; vLLM has: {known}") from exc
        self.name = name
        # vLLM hands its parsers Hugging Face tokenizers too; its TokenizerLike protocol only differs from
        # them in signature details the parsers do not use (parameter names, wider return unions).
        self._tokenizer = cast("TokenizerLike", tokenizer)

    def keeps_special_tokens(self, tools: list[dict[str, Any]]) -> bool:
        """Whether answers must keep special tokens for this parser (some models mark ``<tool_call>`` so)."""
        request = self._request(tools)
        adjusted = self._parser_class(self._tokenizer, request.tools).adjust_request(request)
        return not adjusted.skip_special_tokens

    def parse(self, text: str, tools: list[dict[str, Any]]) -> tuple[str | None, list[tuple[str, str]]]:
        """The answer's text outside the calls (None when there is none), and each call's function name and
        JSON arguments."""
        request = self._request(tools)
        found = self._parser_class(self._tokenizer, request.tools).extract_tool_calls(text, request)
        if not found.tools_called:
            return text, []
        return found.content, [(call.function.name, call.function.arguments) for call in found.tool_calls]

    @staticmethod
    def _request(tools: list[dict[str, Any]]):  # -> vllm's ChatCompletionRequest
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

        # Validated from plain data, as a request body is: the tools are dicts, not vLLM's models.
        return ChatCompletionRequest.model_validate({"messages": [], "tools": tools, "tool_choice": "auto"})
