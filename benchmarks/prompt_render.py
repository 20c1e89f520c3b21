"""Prompt template parsing and rendering speed: a ~10 KB template with 400 placeholders.

Prints one JSON object. Measured: `core.placeholders.parse` of the template text, `render` of the
parsed template (list values joined in English on every render, as the preview does), the two
together ("end_to_end", what rendering from stored text costs), and `check` of the same template
with every placeholder unknown (the slowest refusal: each problem gets a position and a
did-you-mean). Each is timed 200 times after 20 warm-up rounds, interleaved with the reference,
and reported as p50/p95 milliseconds and microseconds per placeholder. Reference, side by side
in the same run: `str.format_map` on the same constant template (written here, never user text)
with the list values joined beforehand. Goal (issue #7): well under a millisecond per
placeholder, i.e. end-to-end p95 < 1000 us per placeholder.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.placeholders import Placeholder, check, join_list, parse, render

ROUNDS, WARM_UP = 200, 20
NAMES = ["style", "flowers", "colors", "occasion", "container", "arrangement", "mood", "season"]
VALUES: dict[str, str | list[str]] = {
    "style": "romantic",
    "flowers": ["roses", "peonies", "ranunculus"],
    "colors": ["blush pink", "ivory"],
    "occasion": "wedding",
    "container": "a low ceramic bowl",
    "arrangement": "hand-tied",
    "mood": "dreamy",
    "season": "late spring",
}
# Eight placeholders and one escaped brace pair per block; 50 blocks make the template.
BLOCK = (
    "Create a beautiful {style} bouquet with {flowers} in {colors} colors for {occasion}, "
    "set in {container} as a {arrangement} piece; the mood is {mood} for {season} {{v2}}. "
    "Soft daylight, shallow depth of field.\n"
)
TEMPLATE = BLOCK * 50


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(seconds: list[float], placeholders: int) -> dict[str, float]:
    cuts = statistics.quantiles(seconds, n=20)
    p50, p95 = statistics.median(seconds), cuts[18]
    return {
        "p50_ms": round(p50 * 1e3, 3),
        "p95_ms": round(p95 * 1e3, 3),
        "p50_us_per_placeholder": round(p50 * 1e6 / placeholders, 3),
        "p95_us_per_placeholder": round(p95 * 1e6 / placeholders, 3),
    }


def main() -> None:
    template = parse(TEMPLATE, NAMES)
    placeholders = sum(1 for part in template.parts if isinstance(part, Placeholder))
    joined = {k: v if isinstance(v, str) else join_list(v) for k, v in VALUES.items()}
    unknown = TEMPLATE.replace("{colors}", "{colour}").replace("{mood}", "{moody}")
    unknown_names = ["budget"]  # every placeholder of the template is unknown
    cases: dict[str, Callable[[], Any]] = {
        "parse": lambda: parse(TEMPLATE, NAMES),
        "render": lambda: render(template, VALUES),
        "end_to_end": lambda: render(TEMPLATE, VALUES, allowed=NAMES),
        "check_all_unknown": lambda: check(unknown, unknown_names),
        "reference_format_map": lambda: TEMPLATE.format_map(joined),
    }
    assert render(template, VALUES) == TEMPLATE.format_map(joined)
    assert len(check(unknown, unknown_names)) == placeholders
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_number in range(WARM_UP + ROUNDS):
        for name, fn in cases.items():
            seconds = timed(fn)
            if round_number >= WARM_UP:
                times[name].append(seconds)
    result: dict[str, Any] = {
        "benchmark": "prompt_render",
        "template_chars": len(TEMPLATE),
        "placeholders": placeholders,
        "rounds": ROUNDS,
        **{name: summary(seconds, placeholders) for name, seconds in times.items()},
    }
    end_to_end = result["end_to_end"]
    result["end_to_end_vs_reference_p50"] = round(
        end_to_end["p50_ms"] / result["reference_format_map"]["p50_ms"], 1
    )
    result["goals"] = {
        "end_to_end_p95_under_1ms_per_placeholder": end_to_end["p95_us_per_placeholder"] < 1000,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
