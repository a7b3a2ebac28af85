"""Ask a running service one-fact questions with given sampling fields; count the right answers.

    python scripts/ask_facts.py --url http://127.0.0.1:8000 --tries 15 '{"temperature": 0.2, "top_p": 0.9}'

The sampling defaults `prepare` writes were chosen with it (README, Sampling defaults).
"""

import argparse
import json
from concurrent.futures import ThreadPoolExecutor

import openai

QUESTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("What is the capital of France?", ("Paris",)),
    ("What is the capital of Japan?", ("Tokyo",)),
    ("What is the capital of Italy?", ("Rome",)),
    ("How many days are in a week?", ("seven", "7")),
    ("What color is the sky on a clear day?", ("blue",)),
    ("What is the largest planet in the solar system?", ("Jupiter",)),
    ("Who wrote Romeo and Juliet?", ("Shakespeare",)),
    ("What is the boiling point of water in Celsius?", ("100",)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fields", nargs="?", default="{}", help="sampling fields as JSON ({} = the defaults)")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--tries", type=int, default=15)
    parser.add_argument("--api-key", default="unused")
    args = parser.parse_args()
    fields = json.loads(args.fields)
    client = openai.OpenAI(base_url=f"{args.url}/v1", api_key=args.api_key, timeout=600)

    def right(question: str, answers: tuple[str, ...]) -> bool:
        reply = client.chat.completions.create(
            model=args.model, messages=[{"role": "user", "content": question}], max_tokens=40, **fields
        )
        text = (reply.choices[0].message.content or "").lower()
        return any(answer.lower() in text for answer in answers)

    with ThreadPoolExecutor(16) as pool:
        counts = [sum(pool.map(lambda _, q=q, a=a: right(q, a), range(args.tries))) for q, a in QUESTIONS]
    for (question, _), count in zip(QUESTIONS, counts, strict=True):
        print(f"{count:3d} / {args.tries}  {question}")
    print(f"{sum(counts)} / {args.tries * len(QUESTIONS)} right with {fields or 'the defaults'}")


if __name__ == "__main__":
    main()
