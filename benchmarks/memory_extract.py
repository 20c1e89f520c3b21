"""Customer-memory extraction speed and yield: core.memory_rules.extract with the default rules.

Prints one JSON object. Messages: every text of BANKING77 (train.csv and test.csv, customers
writing to a bank: no florist memories, many "I never got my card" near misses) mixed with 20%
synthesized florist messages (fixed seed): 3 in 4 state one to three memories, written into
longer messages with greetings, order numbers and a question after; 1 in 4 are tricky
sentences that state none ("I never said I prefer roses", "Do I prefer roses?"). Measured,
single-threaded, ROUNDS rounds over all messages interleaved with the reference, median
counts: messages/s of `extract`. Reference, side by side in the same run: a naive engine that
runs every rule's compiled regex with `finditer` over every message (no prefilter, no clause
anchoring, no guards or clean-up), as one would with plain `re.search` of all patterns.
Reported too: memories found (by kind, in BANKING77 and in the florist messages), the naive
engine's match count, and recall and precision on the florist messages' known memories.
Goal (memory rules issue): extract >= 5,000 messages/s.

`pure_extraction(messages)` is the DB-free part; the end-to-end path (rules loaded from and
memories written to the database) is measured beside it by a separate function.
"""

from __future__ import annotations

import csv
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BANKING77

from core.memory_rules import DEFAULT_RULES, CompiledRules, compile_rules, extract

ROUNDS = 5
FLORIST_SHARE = 0.2
SEED = 7
GOAL_PER_S = 5_000

Memory = tuple[str, str, str]  # kind, key, value

FLOWERS = ["roses", "lilies", "tulips", "peonies", "carnations", "sunflowers", "orchids"]
COLORS = ["blue", "pale pink", "white", "deep red", "lavender", "yellow"]
NAMES = ["Ann", "Maria Lopez", "José", "Priya", "Tom O'Brien", "Mei"]
PEOPLE = ["mother", "wife", "husband", "sister", "grandma", "boss"]
MONTHS = [("May", 5), ("June", 6), ("October", 10), ("December", 12)]
PROJECTS = ["a wedding", "our office party", "a garden party", "a baby shower"]
PREFIXES = ["", "Hi! ", "Hello, ", "Thanks for the quick reply. ", "Order 48213: ", "Hey. "]
SUFFIXES = ["", " Can you deliver on Friday?", " Thanks!", " What do you recommend?"]
TRICKY = [
    "I never said I prefer roses.",
    "Do I prefer roses or tulips?",
    "If I prefer lilies, can you swap them?",
    "I'm not allergic to lilies.",
    "She prefers tulips, I think.",
    "I prefer it.",
    "My name is...",
    "My birthday is Feb 30.",
    "Is it for my mother or my sister?",
    "I never got the bouquet I ordered.",
]


def statement(rng: random.Random) -> tuple[str, list[Memory]]:
    """One synthesized sentence and the memories it states."""
    flower, color = rng.choice(FLOWERS), rng.choice(COLORS)
    name, person = rng.choice(NAMES), rng.choice(PEOPLE)
    (month, number), day = rng.choice(MONTHS), rng.randint(1, 28)
    project = rng.choice(PROJECTS)
    options: list[tuple[str, list[Memory]]] = [
        (f"I prefer {flower}.", [("preference", "prefers", flower)]),
        (f"My name is {name}.", [("personal_info", "name", name)]),
        (f"I’m allergic to {flower}.", [("allergy", flower, flower)]),
        (f"Please never send {flower}.", [("negative_preference", flower, flower)]),
        (f"My favorite color is {color}.", [("favorite", "favorite color", color)]),
        (f"My favourite flowers are {flower}.", [("favorite", "favorite flower", flower)]),
        (
            f"My {person}'s birthday is {month} {day}.",
            [("important_date", f"{person}'s birthday", f"--{number:02d}-{day:02d}")],
        ),
        (
            f"Our anniversary is on {day} {month} 2027.",
            [("important_date", "anniversary", f"2027-{number:02d}-{day:02d}")],
        ),
        (f"It's for my {person}.", [("recipient", person, person)]),
        (f"I always order {flower}.", [("preference", "always", f"order {flower}")]),
        (
            f"I'm working on {project}.",
            [("interest", "working on", project.removeprefix("a ").removeprefix("our "))],
        ),
        (
            f"My name is {name}. I'm allergic to {flower} and my favorite color is {color}.",
            [
                ("personal_info", "name", name),
                ("allergy", flower, flower),
                ("favorite", "favorite color", color),
            ],
        ),
    ]
    return rng.choice(options)


def florist_messages(count: int, seed: int = SEED) -> list[tuple[str, list[Memory]]]:
    """`count` florist messages with the memories each states (none for the tricky ones)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text, memories = (rng.choice(TRICKY), []) if rng.random() < 0.25 else statement(rng)
        out.append((rng.choice(PREFIXES) + text + rng.choice(SUFFIXES), memories))
    return out


def banking77_texts() -> list[str]:
    texts = []
    for name in ("train.csv", "test.csv"):
        with (BANKING77 / name).open(encoding="utf-8") as f:
            texts.extend(row["text"] for row in csv.DictReader(f))
    return texts


def naive_extract(rules: CompiledRules, text: str) -> list[dict[str, str | None]]:
    """The reference: every rule's regex over the whole text, every match kept as it is."""
    return [m.groupdict() for rule in rules.rules for m in rule.pattern.finditer(text)]


def timed(fn: Callable[[str], Any], messages: Sequence[str]) -> float:
    start = time.perf_counter()
    for text in messages:
        fn(text)
    return time.perf_counter() - start


def throughput(seconds: list[float], messages: int) -> dict[str, float]:
    median = statistics.median(seconds)
    return {
        "messages_per_s": round(messages / median),
        "us_per_message": round(median * 1e6 / messages, 2),
    }


def pure_extraction(
    messages: Sequence[str],
    expected: Sequence[list[Memory] | None] | None = None,
    *,
    rounds: int = ROUNDS,
) -> dict[str, Any]:
    """Speed and yield of `extract` beside the naive reference; `expected` (None for messages
    whose memories are unknown) gives recall and precision on the known ones."""
    rules = compile_rules(DEFAULT_RULES)
    ours: list[float] = []
    reference: list[float] = []
    for _ in range(rounds):
        ours.append(timed(lambda t: extract(rules, t), messages))
        reference.append(timed(lambda t: naive_extract(rules, t), messages))
    found = [extract(rules, text) for text in messages]
    result: dict[str, Any] = {
        "rules": len(rules),
        "rounds": rounds,
        "extract": throughput(ours, len(messages)),
        "reference_naive_regex": throughput(reference, len(messages)),
        "memories": sum(map(len, found)),
        "memories_by_kind": dict(Counter(str(m.kind) for ms in found for m in ms)),
        "reference_matches": sum(len(naive_extract(rules, text)) for text in messages),
    }
    result["speedup_vs_reference"] = round(
        result["extract"]["messages_per_s"] / result["reference_naive_regex"]["messages_per_s"], 1
    )
    if expected is not None:
        result |= quality(found, expected)
    return result


def quality(found: Sequence[list[Any]], expected: Sequence[list[Memory] | None]) -> dict[str, Any]:
    """Counts in the unknown (BANKING77) messages; exact recall and precision on known ones."""
    known = [(f, e) for f, e in zip(found, expected, strict=True) if e is not None]
    unknown = sum(len(f) for f, e in zip(found, expected, strict=True) if e is None)
    got = [{(m.kind, m.key, m.value) for m in f} for f, _ in known]
    hits = sum(len(g & set(e)) for g, (_, e) in zip(got, known, strict=True))
    stated = sum(len(e) for _, e in known)
    returned = sum(len(g) for g in got)
    return {
        "memories_in_unknown_messages": unknown,
        "known_messages": len(known),
        "known_memories": stated,
        "recall_on_known": round(hits / stated, 4) if stated else None,
        "precision_on_known": round(hits / returned, 4) if returned else None,
    }


def main() -> None:
    bank = banking77_texts()
    florist = florist_messages(round(len(bank) * FLORIST_SHARE / (1 - FLORIST_SHARE)))
    rows: list[tuple[str, list[Memory] | None]] = [(t, None) for t in bank] + list(florist)
    random.Random(SEED).shuffle(rows)
    messages = [text for text, _ in rows]
    result: dict[str, Any] = {
        "benchmark": "memory_extract",
        "messages": len(messages),
        "banking77_messages": len(bank),
        "florist_messages": len(florist),
        "mean_chars": round(statistics.mean(map(len, messages)), 1),
        **pure_extraction(messages, [expected for _, expected in rows]),
    }
    result["goals"] = {
        "extract_at_least_5000_per_s": result["extract"]["messages_per_s"] >= GOAL_PER_S,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
