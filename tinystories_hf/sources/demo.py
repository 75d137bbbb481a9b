"""`--source demo`: a small SYNTHETIC corpus written by this package so the pipeline runs offline.

As a story format: one shard per split (its name), read as one batch, normalised like every other format.

These are not TinyStories: they are template stories in the same simple style, generated from a fixed
seed, so every machine produces the same corpus. A few very short and very long stories are included on
purpose so the skip and truncation counters have something to count.
"""
import random

import pyarrow as pa

NAME = "demo"
SUFFIXES = ()

DEMO_SPLITS = {"train": 3000, "validation": 300}

NAMES = ["Lily", "Tom", "Mia", "Ben", "Sue", "Max", "Anna", "Tim", "Lucy", "Sam", "Zoe", "Jack"]
ANIMALS = ["cat", "dog", "bird", "frog", "bunny", "duck", "bear", "fox", "fish", "mouse"]
THINGS = ["ball", "kite", "red hat", "toy car", "big box", "shiny rock", "blue cup", "little boat", "drum", "book"]
PLACES = ["park", "garden", "forest", "beach", "farm", "house", "school", "pond", "hill", "shop"]
FEELINGS = ["happy", "sad", "scared", "excited", "proud", "tired", "curious", "angry"]
ADJECTIVES = ["big", "small", "kind", "funny", "brave", "shy", "silly", "gentle"]
WEATHER = ["sunny", "rainy", "windy", "cold", "warm", "cloudy"]

OPENINGS = [
    "Once upon a time, there was a {adj} {animal} named {name}.",
    "One day, a little girl named {name} went to the {place}.",
    "There was a {adj} boy named {name} who loved his {thing}.",
    "It was a {weather} day, and {name} wanted to play outside.",
]
MIDDLES = [
    "{name} saw a {animal} near the {place}.",
    "The {animal} was {feeling} because it lost its {thing}.",
    "{name} said, \"Do you want to play with my {thing}?\"",
    "They looked under the trees and behind the {place}.",
    "{name} felt {feeling}, but {pronoun} did not give up.",
    "A {adj} {animal} came to help them look.",
    "They ran and jumped and laughed all day.",
    "Mom said, \"Be careful, {name}. The {thing} is not a toy for the {place}.\"",
    "{name} shared the {thing} with the {animal}.",
    "The sky was {weather}, so they went inside for a while.",
]
ENDINGS = [
    "In the end, {name} and the {animal} became best friends.",
    "{name} learned that sharing makes everyone {feeling2}.",
    "They went home, {feeling2} and tired, and slept well that night.",
    "From that day on, {name} always took good care of the {thing}.",
]


def _story(rng: random.Random) -> str:
    slots = {
        "name": rng.choice(NAMES), "animal": rng.choice(ANIMALS), "thing": rng.choice(THINGS),
        "place": rng.choice(PLACES), "feeling": rng.choice(FEELINGS), "adj": rng.choice(ADJECTIVES),
        "weather": rng.choice(WEATHER), "pronoun": rng.choice(["she", "he"]), "feeling2": "happy",
    }
    roll = rng.random()
    if roll < 0.01:
        return f"{slots['name']} smiled."  # shorter than the default 10-token minimum
    middle_count = rng.randint(40, 60) if roll > 0.985 else rng.randint(3, 9)  # some exceed 512 tokens
    sentences = [rng.choice(OPENINGS)] + [rng.choice(MIDDLES) for _ in range(middle_count)]
    sentences.append(rng.choice(ENDINGS))
    paragraphs, current = [], []
    for sentence in sentences:
        current.append(sentence.format(**slots))
        if len(current) >= 3 and rng.random() < 0.4:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n".join(paragraphs)


def demo_stories(split: str, count: int = 0):
    """Yield `{"text": story}` rows of the synthetic demo corpus; the same on every machine.

    Example:
        >>> next(demo_stories("train"))["text"][:16]
        'Once upon a time'
    """
    rng = random.Random(f"tinystories-hf-demo-{split}")
    for _ in range(count or DEMO_SPLITS[split]):
        yield {"text": _story(rng)}


def read(split: str, *, text_column: str):
    """Yield `(split, story column)`: the whole split as one batch."""
    yield split, pa.array([row["text"] for row in demo_stories(split)], pa.string())


def invalid_text(shard, where, row: int):
    """Never called: the demo corpus is ASCII."""
    raise AssertionError("the demo corpus is ASCII")


def shards(splits, *, text_column: str) -> list:
    """One shard per split: its name."""
    return list(splits)
