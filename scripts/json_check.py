"""Ask a running service for JSON (response_format json_object and json_schema) on 20 extraction prompts of
the `extract` task's eval split, greedy; count the answers that parse and validate.

    python scripts/json_check.py --url http://127.0.0.1:8000 --model SmolLM2-135M-Instruct --model extract
"""

import argparse
import json
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import openai

from experts.tasks.extract import ExtractTask, json_schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--api-key", default="unused")
    args = parser.parse_args()
    client = openai.OpenAI(base_url=f"{args.url}/v1", api_key=args.api_key, timeout=900, max_retries=0)
    schema = json_schema()
    formats = {
        "json_object": {"type": "json_object"},
        "json_schema strict": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": schema, "strict": True},
        },
        "json_schema": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    examples = ExtractTask().examples("eval", args.prompts)

    def check(model: str, name: str, messages: list[dict[str, str]]) -> tuple[bool, bool, str]:
        reply = client.chat.completions.create(
            model=model,
            messages=messages,
            temperature=0,
            max_tokens=args.max_tokens,
            response_format=formats[name],
        )
        text = reply.choices[0].message.content or ""
        try:
            value = json.loads(text)
        except ValueError:
            return False, False, reply.choices[0].finish_reason or ""
        if name == "json_object":
            return isinstance(value, dict), isinstance(value, dict), ""
        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError:
            return True, False, ""
        return True, True, ""

    with ThreadPoolExecutor(8) as pool:
        for model in args.model or ["SmolLM2-135M-Instruct"]:
            for name in formats:
                asks = [(model, name, [{"role": "user", "content": e.prompt}]) for e in examples]
                results = list(pool.map(lambda ask: check(*ask), asks))
                parsed = sum(r[0] for r in results)
                valid = sum(r[1] for r in results)
                cut = sum(r[2] == "length" for r in results)
                print(
                    f"{model:24s} {name:20s} parse {parsed}/{len(results)}  valid {valid}/{len(results)}"
                    f"  cut at max_tokens {cut}"
                )


if __name__ == "__main__":
    main()
