from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture(scope="session")
def vllm_parse() -> Callable[[list[str]], object]:
    """vLLM's own `serve` argument parser and validation (importing vLLM takes ~20 s)."""
    try:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    except ImportError:  # vLLM releases before the launchers package
        from vllm.entrypoints.openai.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser())

    def parse(argv: list[str]) -> object:
        args = parser.parse_args(argv)
        validate_parsed_serve_args(args)
        return args

    return parse
