"""`lora-router chat`: the terminal chat (commands/terminal_chat.py) against a running service."""

from __future__ import annotations

from typing import Annotated

import typer

from commands.common import ApiKey


def chat(
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    model: Annotated[
        str, typer.Option(help="'auto' (route each message), an adapter's name or the base model's.")
    ] = "auto",
    max_tokens: Annotated[
        int | None, typer.Option(help="Most tokens per answer (default: the service's).", min=1)
    ] = None,
    system: Annotated[str | None, typer.Option(help="System prompt put before the conversation.")] = None,
    api_key: ApiKey = None,
) -> None:
    """Chat with a running service in the terminal; before each answer, which model answers and why.

    Commands: /model NAME, /models, /reset, /help, /quit (end of input quits too). Input may be piped."""
    from commands.terminal_chat import TerminalChat

    TerminalChat(url, api_key, model=model, max_tokens=max_tokens, system=system).run()
