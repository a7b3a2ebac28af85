"""`lora-router chat`: a terminal chat with a running service that shows which model answered and why.

Speaks the service's OpenAI API over plain HTTP (httpx, a dependency of the package; the `openai` client is
only a dev one) and reads the routing explanation from the first chunk of each streamed answer.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from commands.client import service_client
from router.protocol import RoutingInfo

HELP = (
    "/model NAME  answer with NAME: auto (route each message), an adapter or the base model\n"
    "/model       show the current model\n"
    "/models      list the service's models\n"
    "/reset       forget the conversation\n"
    "/quit        leave (so does end of input)"
)
TOP_SCORES = 3


class ServiceError(Exception):
    """The service refused or broke off a request, or could not be reached; the message says which."""


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        detail = f"{error['message']}" + (f" [{error['code']}]" if error.get("code") else "")
    except (ValueError, KeyError, TypeError):
        detail = response.text.strip() or response.reason_phrase
    return f"HTTP {response.status_code}: {detail}"


def stream_chat(client: httpx.Client, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The chunks of a streamed chat completion, as dicts; ServiceError for an error status or event."""
    try:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                response.read()
                raise ServiceError(_error_message(response))
            for line in response.iter_lines():
                data = line.removeprefix("data:").strip() if line.startswith("data:") else None
                if data == "[DONE]":
                    return
                if data:
                    event = json.loads(data)
                    if "error" in event:  # a failure after the stream began (OpenAI's shape)
                        raise ServiceError(f"stream broke off: {event['error'].get('message')}")
                    yield event
    except httpx.HTTPError as error:
        raise ServiceError(f"cannot talk to {client.base_url}: {error}") from None


def describe_routing(routing: RoutingInfo) -> str:
    """One line: what answered, and why (for `auto`: label, confidence, fallback, top scores)."""
    if routing.mode == "pinned":
        return f"{routing.model} (pinned)"
    if routing.mode == "composed":
        return f"{routing.model} (composed)"
    if routing.mode == "base":
        return f"{routing.model} (base model)"
    parts = [f"auto → {routing.model}" + ("" if routing.adapter else " (base model)")]
    if routing.mode == "blend":
        parts[0] += " (blend)"
    if routing.label is not None and routing.confidence is not None:
        parts.append(f"label {routing.label} {routing.confidence:.2f}")
    if routing.fallback_reason:
        parts.append(f"fallback {routing.fallback_reason}: {routing.detail}")
    if routing.scores:
        top = sorted(routing.scores.items(), key=lambda item: item[1], reverse=True)[:TOP_SCORES]
        parts.append("scores " + ", ".join(f"{label} {score:.2f}" for label, score in top))
    return " · ".join(parts)


class TerminalChat:
    """One conversation: keeps the history, sends it with every new message, prints answers as they come."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        model: str = "auto",
        max_tokens: int | None = None,
        system: str | None = None,
        console: Console | None = None,
    ) -> None:
        self.url = url
        # Long read timeout: a busy CPU engine may take a while before the first token.
        self.client = service_client(url, api_key, timeout_s=600)
        self.model = model
        self.max_tokens = max_tokens
        self.system = system
        self.history: list[dict[str, str]] = []
        # soft_wrap: long lines (routing, errors) stay whole when the output is piped.
        self.console = console or Console(soft_wrap=True, highlight=False)

    def run(self) -> None:
        self.console.print(f"chatting with {escape(self.url)} as {escape(self.model)}; /help for commands")
        with self.client:
            for line in self._lines():
                if not line:
                    continue
                if line.startswith("/"):
                    if not self.command(line):
                        return
                else:
                    self.ask(line)

    def _lines(self) -> Iterator[str]:
        interactive = sys.stdin.isatty()
        if interactive:
            try:
                import readline  # noqa: F401  (line editing and history for input())
            except ImportError:  # not on every platform
                pass
        while True:
            try:
                line = self.console.input("[bold green]you>[/] ") if interactive else sys.stdin.readline()
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return
            if not interactive:
                if not line:  # end of input
                    return
                # Echo piped input so the transcript reads as a conversation.
                self.console.print(f"[bold green]you>[/] {escape(line.rstrip())}")
            yield line.strip()

    def command(self, line: str) -> bool:
        """Run one slash command; False to leave."""
        name, _, argument = line.partition(" ")
        argument = argument.strip()
        if name in ("/quit", "/exit"):
            return False
        if name == "/model" and argument:
            self.model = argument
            self.console.print(f"[dim]model: {escape(argument)}[/]")
        elif name == "/model":
            self.console.print(f"[dim]model: {escape(self.model)}[/]")
        elif name == "/models":
            self.list_models()
        elif name == "/reset":
            self.history.clear()
            self.console.print("[dim]conversation cleared[/]")
        else:
            self.console.print(("" if name == "/help" else f"unknown command {escape(name)}\n") + HELP)
        return True

    def list_models(self) -> None:
        try:
            response = self.client.get("/v1/models")
        except httpx.HTTPError as error:
            self._error(f"cannot talk to {self.url}: {error}")
            return
        if response.status_code != 200:
            self._error(_error_message(response))
            return
        for card in response.json()["data"]:
            kind = (
                "route each message"
                if card["id"] == "auto"
                else "base model"
                if card.get("parent") is None
                else "adapter" + (f": {card['description']}" if card.get("description") else "")
            )
            mark = "*" if card["id"] == self.model else " "
            self.console.print(f"{mark} {escape(card['id']):<28} [dim]{escape(kind)}[/]")

    def ask(self, text: str) -> None:
        """Send the conversation plus ``text``; keep both in the history only if the answer arrives."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages += [*self.history, {"role": "user", "content": text}]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        out = self.console.file
        pieces: list[str] = []
        tokens = 0
        started = time.perf_counter()
        first_token: float | None = None
        try:
            for chunk in stream_chat(self.client, body):
                if routing := chunk.get("routing"):
                    explained = describe_routing(RoutingInfo.model_validate(routing))
                    self.console.print(f"[cyan]{escape(explained)}[/]")
                if usage := chunk.get("usage"):
                    tokens = usage["completion_tokens"]
                for choice in chunk.get("choices", []):
                    if piece := (choice.get("delta") or {}).get("content"):
                        first_token = first_token or time.perf_counter()
                        pieces.append(piece)
                        out.write(piece)
                        out.flush()
        except ServiceError as error:
            self._error(str(error), after_text=bool(pieces))
            return
        except KeyboardInterrupt:  # stop this answer, not the chat (closing the stream aborts it there)
            self.console.print("\n[dim](interrupted)[/]")
            return
        finished = time.perf_counter()
        self.console.print()
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": "".join(pieces)}]
        self.console.print(f"[dim]{self._timing(started, first_token, finished, tokens)}[/]")

    @staticmethod
    def _timing(started: float, first_token: float | None, finished: float, tokens: int) -> str:
        if first_token is None:
            return f"no text · {tokens} tokens in {finished - started:.2f} s"
        line = f"TTFT {first_token - started:.2f} s · {tokens} tokens"
        # Decode speed: the tokens after the first, over the time after the first.
        if tokens > 1 and finished > first_token:
            line += f" · {(tokens - 1) / (finished - first_token):.1f} tok/s"
        return line

    def _error(self, message: str, *, after_text: bool = False) -> None:
        self.console.print(("\n" if after_text else "") + f"[bold red]error:[/] {escape(message)}")
