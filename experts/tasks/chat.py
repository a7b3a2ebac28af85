"""Task `chat`: general questions the base model answers, checked by keyword; eval only (no expert to train).

The items are questions a small instruct model usually gets right, so the score measures whether routing or an
adapter damaged general chat rather than what the base model does not know.
"""

from __future__ import annotations

import random
import re

from experts.tasks.base import Split, TaskExample, check_split

# (question, accepted keywords): any keyword in the output, as a whole word and ignoring case, is a hit.
ITEMS: list[tuple[str, list[str]]] = [
    ("What is the capital of France?", ["Paris"]),
    ("whats the capital of italy", ["Rome"]),
    ("What's the capital city of Japan?", ["Tokyo"]),
    ("Which city is the capital of Germany?", ["Berlin"]),
    ("What is the capital of Spain?", ["Madrid"]),
    ("capital of the UK?", ["London"]),
    ("What is the capital of Egypt?", ["Cairo"]),
    ("Do you know the capital of Russia?", ["Moscow"]),
    ("What's the capital of China?", ["Beijing", "Peking"]),
    ("What is the capital of Greece?", ["Athens"]),
    ("Which city is the capital of Portugal?", ["Lisbon"]),
    ("What is the capital of the United States?", ["Washington"]),
    ("In which country is the Eiffel Tower?", ["France", "Paris"]),
    ("Which country are the pyramids of Giza in?", ["Egypt"]),
    ("Which planet is known as the Red Planet?", ["Mars"]),
    ("What is the largest planet in our solar system?", ["Jupiter"]),
    ("Which planet has the most famous rings?", ["Saturn"]),
    ("What is the smallest planet in the solar system?", ["Mercury"]),
    ("Which planet do we live on?", ["Earth"]),
    ("What star is at the center of our solar system?", ["Sun"]),
    ("How many planets are there in the solar system?", ["8", "eight"]),
    ("What gas do plants take in from the air to make food?", ["carbon dioxide", "CO2"]),
    ("What gas do humans need to breathe to stay alive?", ["oxygen"]),
    ("At what temperature in Celsius does water boil?", ["100"]),
    ("What is frozen water called?", ["ice"]),
    ("What is the chemical formula for water?", ["H2O"]),
    ("What is the chemical symbol for gold?", ["Au"]),
    ("Which organ pumps blood around the body?", ["heart"]),
    ("What force keeps us on the ground?", ["gravity"]),
    ("What is the center of an atom called?", ["nucleus"]),
    ("What is the hardest natural substance?", ["diamond", "diamonds"]),
    ("What color is the sky on a clear day?", ["blue"]),
    ("what colour are ripe bananas", ["yellow"]),
    ("What color is grass?", ["green"]),
    ("What color do you get if you mix blue and yellow?", ["green"]),
    ("What color is snow?", ["white"]),
    ("How many legs does a spider have?", ["8", "eight"]),
    ("How many legs does an insect have?", ["6", "six"]),
    ("What is the fastest land animal?", ["cheetah", "cheetahs"]),
    ("What is the largest mammal on Earth?", ["blue whale", "whale"]),
    ("What is the tallest animal in the world?", ["giraffe", "giraffes"]),
    ("What do bees make?", ["honey"]),
    ("What do pandas mostly eat?", ["bamboo"]),
    ("What do caterpillars turn into?", ["butterfly", "butterflies", "moth", "moths"]),
    ("What is a baby dog called?", ["puppy", "pup"]),
    ("What do you call a baby cat?", ["kitten"]),
    ("Which animal says moo?", ["cow", "cows"]),
    ("Who wrote Romeo and Juliet?", ["Shakespeare"]),
    ("Who is the author of the Harry Potter books?", ["Rowling"]),
    ("Who painted the Mona Lisa?", ["Leonardo", "da Vinci"]),
    ("Who came up with the theory of relativity?", ["Einstein"]),
    ("Who wrote Pride and Prejudice?", ["Austen"]),
    ("Who was the first person to walk on the Moon?", ["Armstrong"]),
    ("Who invented the telephone?", ["Bell"]),
    ("What is the largest ocean on Earth?", ["Pacific"]),
    ("What is the largest continent?", ["Asia"]),
    ("What is the longest river in the world?", ["Nile", "Amazon"]),
    ("What's the biggest hot desert in the world?", ["Sahara"]),
    ("What language do people speak in Brazil?", ["Portuguese"]),
    ("What language is mostly spoken in Mexico?", ["Spanish"]),
    ("What currency does Japan use?", ["yen"]),
    ("How many days are there in a week?", ["7", "seven"]),
    ("How many months are in a year?", ["12", "twelve"]),
    ("How many hours are there in a day?", ["24", "twenty-four", "twenty four"]),
    ("What season comes after winter?", ["spring"]),
    ("What musical instrument has 88 keys?", ["piano"]),
    ("What is the main ingredient of guacamole?", ["avocado", "avocados"]),
    ("What is the opposite of hot?", ["cold"]),
]

_SHUFFLE_SEED = 7


def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    # Whole words only, so "red" is not found in "bored" nor "8" in "18".
    return re.compile(rf"(?<!\w){re.escape(keyword)}(?!\w)", re.IGNORECASE)


class ChatTask:
    """General questions for the base model; eval split only."""

    name = "chat"
    has_expert = False

    def examples(self, split: Split, n: int, *, seed: int = 0) -> list[TaskExample]:
        """The first `n` items of a seeded shuffle; every item is eval, so `train` is refused."""
        if check_split(split) == "train":
            raise ValueError("chat has no expert to train: it has an eval split only")
        if not 0 <= n <= len(ITEMS):
            raise ValueError(f"chat has {len(ITEMS)} eval items, {n} asked for")
        items = list(ITEMS)
        random.Random(seed + _SHUFFLE_SEED).shuffle(items)
        return [
            TaskExample(task="chat", prompt=question, completion=keywords[0], gold=list(keywords))
            for question, keywords in items[:n]
        ]

    def score(self, example: TaskExample, output: str) -> float:
        """1.0 when any accepted keyword appears in the output as a whole word, ignoring case; else 0.0."""
        return float(any(_keyword_pattern(keyword).search(output) for keyword in example.gold))
